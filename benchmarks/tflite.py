"""TFLite file size and per-clip latency of the exported competition graph (Chapter 6).

For each preset (seed, classroom) the model is built with *untrained* weights (size and latency
do not depend on the values), exported with `export.export_tflite` in float32 and with float16
weights, and every clip of the real sample (raw parquet frames, preprocessing inside the graph)
is run through the LiteRT signature runner: `repeats` timed calls per clip after one warm-up.
"best-of-repeats median" is the median over clips of each clip's fastest call, which other
processes on a shared machine disturb less than the plain median.

The latency of the seed model is bound by arithmetic: TensorFlow's profiler counts the float
operations of one forward pass (678 MFLOP for seed, 27 for classroom), and the script measures
what this CPU sustains on the model's typical product ([64, 512] x [512, 512], NumPy/OpenBLAS,
one thread); "compute floor" is the time those FLOPs take at that rate on the interpreter's
threads. A median near the floor means only a faster CPU (or less arithmetic) makes it faster.
Without the real sample, random raw clips of 10-120 frames are used (said in the output).

    python benchmarks/tflite.py [--presets seed classroom] [--repeats 3] [--threads N] [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import gislr_utils  # noqa: F401
from gislr_utils import config, export
from gislr_utils._tf import keras, tf
from gislr_utils.dataset import load_frames
from gislr_utils.model import build_model, frame_drop_at_inference


def clips_for_timing():
    files = sorted(config.REAL_SAMPLE_DIR.glob("train_landmark_files/*/*.parquet"))
    if files:
        return [load_frames(f) for f in files], f"{len(files)} real sample clips ({config.REAL_SAMPLE_DIR})"
    rng = np.random.default_rng(0)
    clips = []
    for n in rng.integers(10, 121, 40):
        c = rng.random((n, 543, 3)).astype("float32")
        c[:, 522:] = np.nan
        clips.append(c)
    return clips, "40 random clips (real sample not found)"


def forward_mflop(model):
    """Float operations of one forward pass on one clip, counted by TensorFlow's profiler."""
    try:
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2_as_graph)
    except ImportError:  # pragma: no cover - private API; the column then says n/a
        return float("nan")
    with frame_drop_at_inference(model, False):              # as in the exported file
        fn = tf.function(lambda frames, idxs: model([frames, idxs], training=False))
        concrete = fn.get_concrete_function(tf.TensorSpec([1, *model.inputs[0].shape[1:]], tf.float32),
                                            tf.TensorSpec([1, *model.inputs[1].shape[1:]], tf.float32))
        _, graph_def = convert_variables_to_constants_v2_as_graph(concrete)
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name="")
        opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        opts["output"] = "none"
        prof = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(),
                                             cmd="op", options=opts)
    return prof.total_float_ops / 1e6


def cpu_gflops(repeats=2000):
    """GFLOP/s of one core on a [64, 512] x [512, 512] float32 product (NumPy's BLAS, one thread)."""
    from threadpoolctl import threadpool_limits
    a = np.random.default_rng(0).random((64, 512), dtype=np.float32)
    b = np.random.default_rng(1).random((512, 512), dtype=np.float32)
    with threadpool_limits(1):
        for _ in range(20):
            a @ b
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        seconds = (time.perf_counter() - start) / repeats
    return 2 * 64 * 512 * 512 / seconds / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["seed", "classroom"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="interpreter threads (default: LiteRT's)")
    ap.add_argument("--out", type=Path, default=None, help="keep the .tflite files here")
    args = ap.parse_args(argv)

    clips, what = clips_for_timing()
    frames = np.array([len(c) for c in clips])
    print(f"timing on {what}: {frames.min()}-{frames.max()} frames (median {np.median(frames):.0f}); "
          f"repeats={args.repeats}, threads={args.threads or 'default'}, cpu_count={os.cpu_count()}, "
          f"tf={tf.__version__}, untrained weights")
    gflops = cpu_gflops()
    threads = args.threads or 1          # LiteRT's default ran on one thread here (see --threads)
    print(f"this CPU: {gflops:.1f} GFLOP/s per core on a [64, 512] x [512, 512] product; "
          f"compute floor below for {threads} thread{'s' if threads > 1 else ''}")
    out = args.out or Path(tempfile.mkdtemp(prefix="gislr_tflite_"))
    rows = []
    for preset in args.presets:
        keras.utils.set_random_seed(0)
        model = build_model(preset)
        mflop = forward_mflop(model)
        for fp16 in (False, True):
            path = export.export_tflite(model, out / f"{preset}{'_fp16' if fp16 else ''}.tflite", fp16=fp16)
            r = export.tflite_size_and_latency(path, clips, repeats=args.repeats, num_threads=args.threads)
            r["mflop"] = mflop
            rows.append((preset, "fp16" if fp16 else "fp32", model.count_params(), r))
    print(f"{'preset':10s} {'weights':7s} {'params':>10s} {'size MiB':>9s} {'median ms':>10s} "
          f"{'p90 ms':>8s} {'mean ms':>8s} {'best-of-repeats median ms':>26s} {'MFLOP':>7s} "
          f"{'compute floor ms':>17s}")
    for preset, kind, params, r in rows:
        print(f"{preset:10s} {kind:7s} {params:10,d} {r['size_mb']:9.2f} {r['median_ms']:10.2f} "
              f"{r['p90_ms']:8.2f} {r['mean_ms']:8.2f} {r['best_median_ms']:26.2f} {r['mflop']:7.0f} "
              f"{r['mflop'] / 1e3 / (gflops * threads) * 1e3:17.2f}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")
    if args.out is None:
        for f in out.glob("*.tflite"):
            f.unlink()
        out.rmdir()
    return rows


if __name__ == "__main__":
    main()
