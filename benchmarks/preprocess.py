"""Files per second: `preprocessing.preprocess_files` beside the original per-file path.

The original path (Wijkhuizen's notebook, `load_relevant_data_subset` + `PreprocessLayer`):
`pandas.read_parquet(path, columns=["x", "y", "z"])`, reshape to `[n, 543, 3]` float32, then the
TF layer called on that one file; one file after the other. The fast path reads x, y, z with
pyarrow (`dataset.load_frames`), preprocesses in NumPy (`preprocess`) and runs files on a
thread pool. Both produce the same arrays (checked here, <= 1e-5).

Files: the real sample (84 genuine GISLR files, `config.REAL_SAMPLE_DIR`) listed `--repeat`
times (default 12 -> 1,008 files), or, when it is absent, the synthetic set
(`synthetic.ensure_data_dir`). Run: `python benchmarks/preprocess.py [--repeat N] [--workers W]`.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

import gislr_utils  # noqa: F401
from gislr_utils import dataset
from gislr_utils.config import REAL_SAMPLE_DIR
from gislr_utils.landmarks import N_DIMS, N_ROWS
from gislr_utils.preprocessing import PreprocessLayer, preprocess_files


def original_per_file(paths, layer):
    """pandas read_parquet + the TF layer, one file at a time (the original notebook's path)."""
    X, IDX = [], []
    for path in paths:
        data = pd.read_parquet(path, columns=["x", "y", "z"])
        n_frames = len(data) // N_ROWS
        frames = data.values.reshape(n_frames, N_ROWS, N_DIMS).astype(np.float32)
        x, idx = layer(frames)
        X.append(x.numpy())
        IDX.append(idx.numpy())
    return np.stack(X), np.stack(IDX)


def timed(fn):
    """Wall-clock seconds, CPU seconds of this process (all threads) and the result."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=12, help="times the file list is repeated")
    ap.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    args = ap.parse_args(argv)

    if (REAL_SAMPLE_DIR / "train.csv").exists():
        source, clips = f"real sample ({REAL_SAMPLE_DIR})", dataset.read_clips(REAL_SAMPLE_DIR)
    else:
        from gislr_utils import synthetic
        data_dir = synthetic.ensure_data_dir()
        source, clips = f"synthetic set ({data_dir})", dataset.read_clips(data_dir)
    base = list(clips["path"])
    paths = base * args.repeat
    frames_per_file = np.mean([pq_rows(p) for p in base]) / N_ROWS
    mb = sum(os.path.getsize(p) for p in paths) / 1e6
    workers = args.workers or os.cpu_count()
    print(f"files: {source}: {len(base)} files x {args.repeat} = {len(paths)} files, "
          f"{mb:.0f} MB, {frames_per_file:.1f} frames per file on average; "
          f"{os.cpu_count()} cores")

    layer = PreprocessLayer()
    original_per_file(base[:3], layer)                               # trace the tf.function
    preprocess_files(base[:3], workers=workers, progress=False)      # warm the page cache/pool

    rows = []
    t, cpu, (X0, I0) = timed(lambda: original_per_file(paths, layer))
    rows.append(("original: pandas.read_parquet + TF layer, per file", t, cpu))
    t, cpu, (X1, I1) = timed(lambda: preprocess_files(paths, workers=1, progress=False))
    rows.append(("preprocess_files, 1 worker", t, cpu))
    t, cpu, (X2, I2) = timed(lambda: preprocess_files(paths, workers=workers, progress=False))
    rows.append((f"preprocess_files, {workers} workers", t, cpu))
    # The floor: reading x, y, z alone (no preprocessing), on the same pool of threads.
    t, cpu, _ = timed(lambda: read_only(paths, workers))
    rows.append((f"  of which reading x, y, z alone, {workers} workers", t, cpu))
    for X, IDX in ((X1, I1), (X2, I2)):
        np.testing.assert_allclose(X, X0, rtol=0, atol=1e-5)
        np.testing.assert_allclose(IDX, I0, rtol=0, atol=1e-5)

    base_rate = len(paths) / rows[0][1]
    print(f"\n{'path':52s} {'seconds':>8s} {'files/s':>8s} {'vs original':>12s} {'CPU ms/file':>12s}")
    for name, t, cpu in rows:
        rate = len(paths) / t
        print(f"{name:52s} {t:8.2f} {rate:8.0f} {rate / base_rate:11.1f}x {cpu / len(paths) * 1e3:12.2f}")
    read_cpu = rows[-1][2] / len(paths)
    print("\nsame arrays from every path (<= 1e-5); CPU ms/file counts all threads of this process.")
    print(f"reading alone costs {read_cpu * 1e3:.2f} CPU ms per file (pyarrow's Snappy decompression of "
          f"the x, y, z pages, most of it): {os.cpu_count()} cores cannot read more than about "
          f"{os.cpu_count() / read_cpu:.0f} files/s, whatever the preprocessing.")
    if hasattr(os, "getloadavg"):
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
              "(other processes share the cores when it exceeds the workers' share)")


def read_only(paths, workers):
    from concurrent.futures import ThreadPoolExecutor
    chunks = [paths[i:i + 32] for i in range(0, len(paths), 32)]
    with ThreadPoolExecutor(workers) as ex:
        return sum(ex.map(lambda chunk: sum(len(dataset.load_frames(p)) for p in chunk), chunks))


def pq_rows(path):
    import pyarrow.parquet as pq
    return pq.ParquetFile(path).metadata.num_rows


if __name__ == "__main__":
    main()
