"""TFLite file size and per-clip latency of the exported competition graph (chapters 6 and 7).

For each preset (default: seed and improved, the two that chapter 7 compares) the model is built
with *untrained* weights (size and latency do not depend on the values) and exported with
chapter 6's recipe, `recipe.export_tflite`, four times: the file that computes only the clip's
valid frames ("compact", the book's export) and the graph that always computes 64 rows
("64-row", ``compact=False``), each with float32 weights and with float16 weights
(``fp16=True``: the weights stored in float16, the arithmetic in float32). Every genuine clip of
the real sample (raw parquet frames, preprocessing inside the graph) is run through the LiteRT
signature runner (`export.tflite_clip_latencies`) at each ``--threads`` count: one warm-up, then
``--repeats`` passes over all clips, the four files called one after the other on each clip, so
that other processes on a shared machine slow them alike. Per clip the fastest of its repeats
counts ("best of repeats"); the table gives the median and 90th percentile over clips of those,
and in brackets the range of the plain per-pass medians. The load average is printed before and
after each timing. A second table gives the latency against the clip's number of valid frames;
a last line checks each float32 file against the competition's limit of 40 MB.

The latency of the seed model is bound by arithmetic: TensorFlow's profiler counts the float
operations of one forward pass of 64 rows, and the script measures what this CPU sustains on the
model's typical product ([64, 512] x [512, 512], NumPy/OpenBLAS, one thread); "64-row floor" is
the time those FLOPs take at that rate on the interpreter's threads. A 64-row median near the
floor means only a faster CPU (or less arithmetic, as the compact file) makes it faster.

Clips (``--sample``): the 84 genuine clips beside the repository (``config.REAL_SAMPLE_DIR``,
``../shared/real_sample``) when present, else the 16 shipped with the package
(``config.real_sample_dir()``); ``--limit N`` takes the first N.

    python benchmarks/tflite.py [--presets seed improved] [--repeats 5] [--threads 1 2]
                                [--sample auto|shared|shipped] [--limit N] [--out DIR]

Quick check: ``--presets classroom --limit 4 --repeats 1 --threads 1``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import gislr_utils  # noqa: F401
from gislr_utils import config, dataset, export, recipe
from gislr_utils._tf import keras, tf
from gislr_utils.model import build_model, frame_drop_at_inference
from gislr_utils.preprocessing import preprocess

LIMIT_MB = 40          # the competition's limit on the file (10**6 bytes)
FILES = {"compact": dict(compact=True), "compact fp16": dict(compact=True, fp16=True),
         "64-row": dict(compact=False), "64-row fp16": dict(compact=False, fp16=True)}
LENGTH_BINS = ((0, 8), (9, 16), (17, 32), (33, 63), (64, 64))


def clips_for_timing(sample: str = "auto", limit: int | None = None):
    """Raw frames of the genuine clips of `sample` and a line saying which."""
    shared = (config.REAL_SAMPLE_DIR / "train.csv").is_file()
    if sample == "shared" and not shared:
        raise SystemExit(f"--sample shared: {config.REAL_SAMPLE_DIR} holds no train.csv")
    folder = config.REAL_SAMPLE_DIR if shared and sample != "shipped" else config.real_sample_dir()
    paths = list(dataset.read_clips(folder)["path"])[:limit]
    return [dataset.load_frames(p) for p in paths], f"{len(paths)} genuine clips ({config.show_path(folder)})"


def forward_mflop(model):
    """Float operations of one forward pass of 64 rows on one clip, counted by TensorFlow's profiler."""
    try:
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2_as_graph)
    except ImportError:  # pragma: no cover - private API; the column then says nan
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
    """Frames with the dominant hand, at most 64 (what the compact file computes)."""
    return int((preprocess(clip)[1] != -1).sum())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["seed", "improved"], choices=sorted(config.PRESETS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="interpreter threads")
    ap.add_argument("--sample", default="auto", choices=["auto", "shared", "shipped"])
    ap.add_argument("--limit", type=int, default=None, help="the first N clips only")
    ap.add_argument("--out", type=Path, default=None, help="keep the .tflite files here")
    args = ap.parse_args(argv)

    clips, what = clips_for_timing(args.sample, args.limit)
    frames = np.array([len(c) for c in clips])
    valid = np.array([valid_frames(c) for c in clips])
    print(f"timing on {what}: {frames.min()}-{frames.max()} frames (median {np.median(frames):.0f}), "
          f"{valid.min()}-{valid.max()} valid frames with the dominant hand (median "
          f"{np.median(valid):.0f}); repeats={args.repeats}, cpu_count={os.cpu_count()}, "
          f"tf={tf.__version__}, untrained weights")
    gflops = cpu_gflops()
    print(f"this CPU: {gflops:.1f} GFLOP/s per core on a [64, 512] x [512, 512] product")
    out = args.out or Path(tempfile.mkdtemp(prefix="gislr_tflite_"))
    rows, by_length, sizes = [], [], {}
    for preset in args.presets:
        keras.utils.set_random_seed(0)
        net = build_model(config.resolve(preset))
        mflop = forward_mflop(net)
        t0 = time.perf_counter()
        paths = {name: recipe.export_tflite(net, out / f"{preset}_{name.replace(' ', '_')}.tflite", **kw)
                 for name, kw in FILES.items()}
        sizes[preset] = {k: os.path.getsize(p) for k, p in paths.items()}
        print(f"{preset}: {net.count_params():,} parameters, {mflop:.0f} MFLOP a 64-row forward pass; "
              f"4 files exported in {time.perf_counter() - t0:.0f} s; sizes MiB (MB) "
              + ", ".join(f"{k} {v / 2**20:.2f} ({v / 1e6:.2f})" for k, v in sizes[preset].items()))
        for threads in args.threads:
            load0 = os.getloadavg()
            t = export.tflite_clip_latencies(list(paths.values()), clips, args.repeats, threads)
            load1 = os.getloadavg()
            best = t.min(axis=1)                                   # [file, clip]
            for g, name in enumerate(paths):
                passes = np.median(t[g], axis=1)
                rows.append(dict(preset=preset, file=name, threads=threads,
                                 median=np.median(best[g]), p90=np.percentile(best[g], 90),
                                 lo=passes.min(), hi=passes.max(), load=(load0[0], load1[0]),
                                 floor=mflop / 1e3 / (gflops * threads) * 1e3))
            if threads == args.threads[0]:
                for lo, hi in LENGTH_BINS:
                    sel = (valid >= lo) & (valid <= hi)
                    if sel.any():
                        by_length.append((preset, f"{lo}-{hi}" if lo < hi else f"{lo}", int(sel.sum()),
                                          np.median(best[2][sel]), np.median(best[0][sel])))
    print(f"\n{'preset':9s} {'file':13s} {'thr':>3s} {'median ms':>9s} {'p90 ms':>7s} "
          f"{'(per-pass medians)':>19s} {'64-row floor ms':>15s} {'load avg before/after':>21s}")
    for r in rows:
        rng = f"({r['lo']:.2f}-{r['hi']:.2f})"
        print(f"{r['preset']:9s} {r['file']:13s} {r['threads']:3d} {r['median']:9.2f} "
              f"{r['p90']:7.2f} {rng:>19s} {r['floor']:15.2f} {r['load'][0]:14.2f}/{r['load'][1]:.2f}")
    print(f"\nlatency against the clip's valid frames (best-of-repeats median ms, float32 files, "
          f"{args.threads[0]} thread{'s' if args.threads[0] > 1 else ''})")
    print(f"{'preset':9s} {'valid frames':>12s} {'clips':>5s} {'64-row':>7s} {'compact':>8s}")
    for preset, label, n, old, new in by_length:
        print(f"{preset:9s} {label:>12s} {n:5d} {old:7.2f} {new:8.2f}")
    for preset, s in sizes.items():
        big = max(s["compact"], s["64-row"]) / 1e6
        print(f"{preset}: the float32 file is {big:.2f} MB: "
              f"{'within' if big <= LIMIT_MB else 'OVER'} the competition's {LIMIT_MB} MB")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    if args.out is None:
        for f in out.glob("*.tflite"):
            f.unlink()
        out.rmdir()
    return rows, by_length


if __name__ == "__main__":
    main()
