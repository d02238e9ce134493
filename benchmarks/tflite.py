"""TFLite file size and per-clip latency of the exported competition graph (Chapter 6).

For each preset (seed, classroom) the model is built with *untrained* weights (size and latency
do not depend on the values) and exported with `export.export_tflite` twice: the file that
computes only the clip's valid frames ("valid", the default) and the former graph that always
computes 64 rows ("64-frame", ``compact=False``), both float32; the valid-frames file also with
float16 weights (size). Every clip of the real sample (raw parquet frames, preprocessing inside
the graph) is run through the LiteRT signature runner at 1 and 2 interpreter threads: one
warm-up, then `repeats` passes over all clips, the two graphs called alternately clip by clip
so that other processes on a shared machine slow both alike. Per clip the fastest of its
`repeats` calls counts ("best of repeats"); the table gives the median and p90 over clips of
those, and in brackets the range of the plain per-pass medians. The load average is printed
before and after. A second table gives the latency against the clip's number of valid frames.

The latency of the seed model is bound by arithmetic: TensorFlow's profiler counts the float
operations of one forward pass (678 MFLOP for seed, 27 for classroom), and the script measures
what this CPU sustains on the model's typical product ([64, 512] x [512, 512], NumPy/OpenBLAS,
one thread); "compute floor" is the time those FLOPs take at that rate on the interpreter's
threads. A median near the floor means only a faster CPU (or less arithmetic) makes it faster.
Without the real sample, random raw clips of 10-120 frames are used (said in the output).

    python benchmarks/tflite.py [--presets seed classroom] [--repeats 5] [--threads 1 2] [--out DIR]
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


def valid_frames(clip):
    """Frames with the dominant hand, at most 64 (what the valid-frames file computes)."""
    from gislr_utils.preprocessing import preprocess
    return int((preprocess(clip)[1] != -1).sum())


LENGTH_BINS = ((0, 8), (9, 16), (17, 32), (33, 63), (64, 64))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["seed", "classroom"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="interpreter threads")
    ap.add_argument("--out", type=Path, default=None, help="keep the .tflite files here")
    args = ap.parse_args(argv)

    clips, what = clips_for_timing()
    frames = np.array([len(c) for c in clips])
    valid = np.array([valid_frames(c) for c in clips])
    print(f"timing on {what}: {frames.min()}-{frames.max()} frames (median {np.median(frames):.0f}), "
          f"{valid.min()}-{valid.max()} valid frames with the dominant hand (median "
          f"{np.median(valid):.0f}); repeats={args.repeats}, cpu_count={os.cpu_count()}, "
          f"tf={tf.__version__}, untrained weights")
    gflops = cpu_gflops()
    print(f"this CPU: {gflops:.1f} GFLOP/s per core on a [64, 512] x [512, 512] product")
    out = args.out or Path(tempfile.mkdtemp(prefix="gislr_tflite_"))
    rows, by_length = [], []
    for preset in args.presets:
        keras.utils.set_random_seed(0)
        model = build_model(config.resolve(preset))
        mflop = forward_mflop(model)
        paths = {"64-frame": export.export_tflite(model, out / f"{preset}_64.tflite", compact=False),
                 "valid": export.export_tflite(model, out / f"{preset}.tflite")}
        fp16 = export.export_tflite(model, out / f"{preset}_fp16.tflite", fp16=True)
        sizes = {k: os.path.getsize(p) / 2**20 for k, p in paths.items()}
        sizes["valid fp16"] = os.path.getsize(fp16) / 2**20
        for threads in args.threads:
            load0 = os.getloadavg()[0]
            t = export.tflite_clip_latencies(list(paths.values()), clips, args.repeats, threads)
            load1 = os.getloadavg()[0]
            best = t.min(axis=1)                                   # [graph, clip]
            for g, name in enumerate(paths):
                passes = np.median(t[g], axis=1)
                rows.append(dict(preset=preset, graph=name, threads=threads, size=sizes[name],
                                 median=np.median(best[g]), p90=np.percentile(best[g], 90),
                                 lo=passes.min(), hi=passes.max(), load=(load0, load1),
                                 mflop=mflop, floor=mflop / 1e3 / (gflops * threads) * 1e3))
            rows[-1]["speedup"] = rows[-2]["median"] / rows[-1]["median"]
            if threads == args.threads[0]:
                for lo, hi in LENGTH_BINS:
                    sel = (valid >= lo) & (valid <= hi)
                    if sel.any():
                        by_length.append((preset, threads, f"{lo}-{hi}" if lo < hi else f"{lo}",
                                          int(sel.sum()), np.median(best[0][sel]),
                                          np.median(best[1][sel])))
        print(f"{preset}: sizes MiB " + ", ".join(f"{k} {v:.2f}" for k, v in sizes.items()))
    print(f"\n{'preset':10s} {'graph':9s} {'thr':>3s} {'median ms':>9s} {'p90 ms':>7s} "
          f"{'(per-pass medians)':>19s} {'speed-up':>8s} {'64-frame floor ms':>17s} "
          f"{'load avg before/after':>21s}")
    for r in rows:
        speed = f"{r['speedup']:7.1f}x" if "speedup" in r else ""
        rng = f"({r['lo']:.2f}-{r['hi']:.2f})"
        print(f"{r['preset']:10s} {r['graph']:9s} {r['threads']:3d} {r['median']:9.2f} "
              f"{r['p90']:7.2f} {rng:>19s} {speed:>8s} {r['floor']:17.2f} "
              f"{r['load'][0]:10.1f}/{r['load'][1]:.1f}")
    print(f"\nlatency against the clip's valid frames (best-of-repeats median ms, "
          f"{args.threads[0]} thread{'s' if args.threads[0] > 1 else ''})")
    print(f"{'preset':10s} {'valid frames':>12s} {'clips':>5s} {'64-frame':>9s} {'valid':>7s}")
    for preset, _, label, n, old, new in by_length:
        print(f"{preset:10s} {label:>12s} {n:5d} {old:9.2f} {new:7.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")
    if args.out is None:
        for f in out.glob("*.tflite"):
            f.unlink()
        out.rmdir()
    return rows, by_length


if __name__ == "__main__":
    main()
