"""Files per second: `preprocessing.preprocess_files` beside the code before the layout checks,
the decode floor and the original per-file path, all in one run on the same files.

Paths timed (each produces the same arrays; checked here, <= 1e-5 against the original):

* **original**: Wijkhuizen's notebook (`load_relevant_data_subset` + `PreprocessLayer`):
  `pandas.read_parquet(path, columns=["x", "y", "z"])`, reshape to `[n, 543, 3]` float32, the TF
  layer on that one file; one file after the other (timed once: it is slow).
* **before checks**: `preprocess_files` as it was before issue 9 (commit 030ae6a), kept verbatim
  below (`before_load_frames`, `before_preprocess_files`): x, y, z only, the layout trusted (the
  preprocessing itself is today's public `preprocessing.preprocess`, whose `check_clip` adds the
  coordinate check of the clip).
* **now**: `preprocess_files`: reads frame, type (dictionary-encoded), landmark_index, x, y, z,
  checks the layout, the frame order and the coordinates of every file, then preprocesses.
* **decode floor**: `ParquetFile.read(columns=["x", "y", "z"])` alone (no conversion, no check,
  no preprocessing) on the same pool of threads: what pyarrow needs to decode the coordinates,
  a bound no reader of these files can beat.

The three pool paths are timed `--rounds` times, interleaved (before, now, floor, then rotated),
because other processes share the cores; the table gives the median and the range of each and
the ratios are computed round by round. The CPU columns (CPU time of this process, all threads,
per file) show where the time goes whatever the load.

Files: the real sample (84 genuine GISLR files, `config.REAL_SAMPLE_DIR`) listed `--repeat`
times (default 12 -> 1,008 files), or, when it is absent, the synthetic set
(`synthetic.ensure_data_dir`). Run: `python benchmarks/preprocess.py [--repeat N] [--workers W]
[--rounds R] [--skip-original]`.
"""
from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import gislr_utils  # noqa: F401
from gislr_utils import dataset
from gislr_utils.config import REAL_SAMPLE_DIR
from gislr_utils.dataset import GISLRDataError
from gislr_utils.landmarks import N_COLS, N_DIMS, N_ROWS
from gislr_utils.preprocessing import PreprocessLayer, preprocess, preprocess_files


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


# ---------------------------------------------------------------------------------------------
# The code before issue 9 (commit 030ae6a), verbatim but for names: the reference for ">= 90% of
# the speed before the checks". preprocess() then was the shape/dtype checks below + the
# preprocessing, here the public `preprocess` (which checks the clip's coordinates as well).
def before_load_frames(path) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: landmark file not found")
    try:
        table = pq.ParquetFile(path, pre_buffer=False).read(columns=["x", "y", "z"], use_threads=False)
    except (KeyError, ValueError, pa.ArrowException) as err:  # missing column or not parquet
        raise GISLRDataError(f"{path}: cannot read columns x, y, z ({err})") from err
    if table.num_columns != N_DIMS:
        missing = [c for c in ("x", "y", "z") if c not in table.column_names]
        raise GISLRDataError(f"{path}: missing column(s) {missing}")
    n = table.num_rows
    if n == 0:
        raise GISLRDataError(f"{path}: empty file (0 rows)")
    if n % N_ROWS:
        raise GISLRDataError(f"{path}: {n} rows is not a multiple of {N_ROWS} landmarks per frame")
    out = np.empty((n, N_DIMS), dtype=np.float32)
    for i in range(N_DIMS):
        out[:, i] = table.column(i).to_numpy()
    return out.reshape(n // N_ROWS, N_ROWS, N_DIMS)


def before_preprocess(frames, size=64):
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[1:] != (N_ROWS, N_DIMS):
        raise ValueError(f"frames must have shape [n_frames, {N_ROWS}, {N_DIMS}], got {list(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError("frames has 0 frames")
    if frames.dtype != np.float32:
        frames = frames.astype(np.float32)
    return preprocess(frames, size)


def before_preprocess_path(path, input_size):
    try:
        frames = before_load_frames(path)
        return before_preprocess(frames, input_size)
    except (GISLRDataError, FileNotFoundError) as e:
        if str(path) in str(e):
            raise
        raise type(e)(f"{path}: {e}") from e


def before_preprocess_files(paths, workers, size=64):
    """preprocess_files of commit 030ae6a (progress bar off)."""
    paths = [str(p) for p in paths]
    n = len(paths)
    X = np.zeros((n, size, N_COLS, N_DIMS), np.float32)
    IDX = np.zeros((n, size), np.float32)

    def work(chunk):
        for i in chunk:
            X[i], IDX[i] = before_preprocess_path(paths[i], size)
        return len(chunk)

    step = max(1, min(64, n // (8 * workers)))
    chunks = [range(i, min(i + step, n)) for i in range(0, n, step)]
    if workers == 1 or len(chunks) <= 1:
        for chunk in chunks:
            work(chunk)
    else:
        ex = ThreadPoolExecutor(max_workers=min(workers, len(chunks)))
        try:
            for _ in ex.map(work, chunks):
                pass
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
    return X, IDX


# ---------------------------------------------------------------------------------------------
def decode_floor(paths, workers):
    """pyarrow's decode of x, y, z alone, files spread over the same number of threads."""
    def work(chunk):
        return sum(pq.ParquetFile(p, pre_buffer=False).read(columns=["x", "y", "z"],
                                                            use_threads=False).num_rows
                   for p in chunk)
    step = max(1, min(64, len(paths) // (8 * workers)))
    chunks = [paths[i:i + step] for i in range(0, len(paths), step)]
    if workers == 1:
        return sum(map(work, chunks))
    with ThreadPoolExecutor(workers) as ex:
        return sum(ex.map(work, chunks))


def stages(base, rounds):
    """Why preprocess_files stays below the decode floor: one thread's CPU per file for each
    step it adds to the decode (minimum over rounds, the least disturbed by other processes)."""
    steps = {
        "decode x, y, z (the floor)": lambda p: pq.ParquetFile(p, pre_buffer=False).read(
            columns=["x", "y", "z"], use_threads=False),
        "+ layout columns and checks, float32": dataset.load_frames,
        "+ preprocessing (as preprocess_files)": lambda p: preprocess(dataset.load_frames(p)),
        "before checks (030ae6a), whole": lambda p: before_preprocess_path(p, 64),
    }
    best = {k: np.inf for k in steps}
    for _ in range(rounds):
        for k, fn in steps.items():
            cpu = time.process_time()
            for p in base:
                fn(p)
            best[k] = min(best[k], (time.process_time() - cpu) / len(base) * 1e3)
    print("\nCPU ms per file, one thread, cumulative (min over rounds):")
    for k, v in best.items():
        print(f"  {k:40s} {v:6.3f}")
    names = list(steps)
    floor, full, before = best[names[0]], best[names[-2]], best[names[-1]]
    print(f"one thread, CPU-bound: now at {before / full:.0%} of the speed before the checks")
    print(f"on CPU-bound cores preprocess_files can reach at most {floor / full:.0%} of the decode "
          "floor: the conversion and the preprocessing (NumPy, one clip at a time) alone cost "
          "more than 10% of the decode. Every file's frame, type and landmark_index columns are "
          "decoded and checked (no memo of files found good).")


def timed(fn):
    """Wall-clock seconds, CPU seconds of this process (all threads) and the result."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=12, help="times the file list is repeated")
    ap.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timings of each pool path")
    ap.add_argument("--skip-original", action="store_true", help="do not time the original path")
    args = ap.parse_args(argv)

    if (REAL_SAMPLE_DIR / "train.csv").exists():
        source, clips = f"real sample ({REAL_SAMPLE_DIR})", dataset.read_clips(REAL_SAMPLE_DIR)
    else:
        from gislr_utils import synthetic
        data_dir = synthetic.ensure_data_dir()
        source, clips = f"synthetic set ({data_dir})", dataset.read_clips(data_dir)
    base = list(clips["path"])
    paths = base * args.repeat
    frames_per_file = np.mean([pq.ParquetFile(p).metadata.num_rows for p in base]) / N_ROWS
    mb = sum(os.path.getsize(p) for p in paths) / 1e6
    workers = args.workers or os.cpu_count()
    print(f"files: {source}: {len(base)} files x {args.repeat} = {len(paths)} files, "
          f"{mb:.0f} MB, {frames_per_file:.1f} frames per file on average; "
          f"{os.cpu_count()} cores, {workers} workers, {args.rounds} rounds")

    # same arrays from every path
    layer = PreprocessLayer()
    t, cpu, (X0, I0) = timed(lambda: original_per_file(base, layer))   # also traces the layer
    X1, I1 = before_preprocess_files(base, workers)
    X2, I2 = preprocess_files(base, workers=workers, progress=False)
    for X, IDX in ((X1, I1), (X2, I2)):
        np.testing.assert_allclose(X, X0, rtol=0, atol=1e-5)
        np.testing.assert_allclose(IDX, I0, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(X2, X1)
    np.testing.assert_array_equal(I2, I1)

    rows = {}
    if not args.skip_original:
        t, cpu, _ = timed(lambda: original_per_file(paths, layer))
        rows["original: pandas + TF layer, per file"] = ([t], [cpu])
    pool = {
        "before checks (030ae6a)": lambda: before_preprocess_files(paths, workers),
        "now: preprocess_files": lambda: preprocess_files(paths, workers=workers, progress=False),
        "decode floor: x, y, z alone": lambda: decode_floor(paths, workers),
    }
    names = list(pool)
    times = {name: ([], []) for name in names}
    for r in range(args.rounds):
        for name in names[r % 3:] + names[:r % 3]:
            t, cpu, _ = timed(pool[name])
            times[name][0].append(t)
            times[name][1].append(cpu)
    rows.update(times)

    n = len(paths)
    print(f"\n{'path':40s} {'files/s median':>14s} {'(range)':>13s} {'CPU ms/file':>12s}")
    for name, (ts, cpus) in rows.items():
        rates = n / np.asarray(ts)
        rng = f"({rates.min():.0f}-{rates.max():.0f})" if len(ts) > 1 else ""
        print(f"{name:40s} {np.median(rates):14.0f} {rng:>13s} {np.median(cpus) / n * 1e3:12.2f}")

    before, now, floor = (np.asarray(times[k][0]) for k in names)
    speed = before / now                                  # per round: now's speed / before's
    of_floor = floor / now
    print(f"\nnow vs before checks, round by round: median {np.median(speed):.0%} "
          f"(range {speed.min():.0%}-{speed.max():.0%}) of the speed before")
    print(f"now vs the decode floor, round by round: median {np.median(of_floor):.0%} "
          f"(range {of_floor.min():.0%}-{of_floor.max():.0%}) of the floor")
    c_before, c_now, c_floor = (np.median(times[k][1]) / n * 1e3 for k in names)
    print(f"CPU per file: decode floor {c_floor:.2f} ms, before {c_before:.2f} ms "
          f"(+{c_before - c_floor:.2f} conversion and preprocessing), now {c_now:.2f} ms "
          f"(+{c_now - c_before:.2f} for the layout columns and checks)")
    stages(base, args.rounds)
    if hasattr(os, "getloadavg"):
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
              "(other processes share the cores when it exceeds the workers' share)")


if __name__ == "__main__":
    main()
