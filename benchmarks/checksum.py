"""What the checksums of the artefacts cost: SHA-256 throughput and the check of a prepared folder.

Every load of a prepared data set (`preprocessing.prepare_dataset`, which chapters 2 to 7 call
first) and of a run (`recipe.train_run`, `training.load_run`) checks each file against its
manifest (`runs.check` -> `runs.check_files`): its size and the SHA-256 of all its bytes
(`runs.file_hash`). On the full competition set X.npy is 94,477 x 64 x 66 x 3 float32 values,
4.79 GB, so the throughput of `runs.file_hash` sets what a chapter pays before its first cell
that uses the data.

This writes a ``--gb`` GB file of random bytes into ``--dir`` (default: the system's temporary
folder), flushes it to disk, and times `runs.file_hash` on it ``--rounds`` times each:

* **cached**: the file's pages in memory (the page cache: a file read or written recently, as
  X.npy when the chapters run one after the other on a machine with enough memory);
* **from disk**: the file's pages dropped from the page cache first (``posix_fadvise``
  ``DONTNEED``, after ``fsync``; no root needed), so the bytes come from the disk;

and ``hashlib.sha256`` on a 256 MB buffer in memory (the CPU's bound). The file is deleted at the
end. Then it times `runs.check` of the book's synthetic set's prepared folder (under
``--artifacts-dir``; prepared first if needed) and projects every number to the full set's X.npy.
Load average before and after each timing. Quick check: ``--gb 0.5 --rounds 1``.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import gislr_utils  # noqa: F401
from gislr_utils import config, preprocessing, runs, synthetic

FULL_X_BYTES = 94_477 * 64 * 66 * 3 * 4          # the full competition set's X.npy
CHUNK = 64 * 2**20


def write_file(path: Path, size: int) -> None:
    block = np.random.default_rng(0).bytes(CHUNK)
    with open(path, "wb") as f:
        for start in range(0, size, CHUNK):
            f.write(block[:min(CHUNK, size - start)])
        f.flush()
        os.fsync(f.fileno())


def drop_cache(path: Path) -> None:
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def timed(fn) -> tuple[float, tuple, tuple]:
    load0, t0 = os.getloadavg(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, load0, os.getloadavg()


def report(what: str, nbytes: int, times: list) -> None:
    rates = [nbytes / 1e6 / t for t, _, _ in times]
    loads = ", ".join(f"{a[0]:.2f}->{b[0]:.2f}" for _, a, b in times)
    best = max(rates)
    print(f"{what:34s} {np.median(rates):7.0f} MB/s median ({min(rates):.0f}-{best:.0f}); full X.npy "
          f"{FULL_X_BYTES / 1e6 / np.median(rates):5.1f} s (best {FULL_X_BYTES / 1e6 / best:.1f} s); load {loads}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=2.0, help="size of the test file (10**9 bytes)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--artifacts-dir", type=Path, default=config.default_artifacts_dir())
    args = ap.parse_args(argv)
    size = int(args.gb * 1e9)
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; full X.npy "
          f"{FULL_X_BYTES / 1e9:.2f} GB")

    buffer = np.random.default_rng(1).bytes(256 * 2**20)
    report("hashlib.sha256, buffer in memory", len(buffer),
           [timed(lambda: hashlib.sha256(buffer).hexdigest()) for _ in range(args.rounds)])

    fd, name = tempfile.mkstemp(prefix="gislr_checksum_", suffix=".bin", dir=args.dir)
    os.close(fd)
    path = Path(name)
    try:
        t0 = time.perf_counter()
        write_file(path, size)
        print(f"wrote {size / 1e9:.2f} GB to {path} in {time.perf_counter() - t0:.1f} s")
        cached, cold = [], []
        for _ in range(args.rounds):
            runs.file_hash(path)                       # the pages in the cache
            cached.append(timed(lambda: runs.file_hash(path)))
            drop_cache(path)
            cold.append(timed(lambda: runs.file_hash(path)))
        report("runs.file_hash, cached", size, cached)
        report("runs.file_hash, from disk", size, cold)
    finally:
        path.unlink(missing_ok=True)
        print(f"deleted {path}")

    prep = preprocessing.prepare_dataset(synthetic.ensure_data_dir(args.artifacts_dir), args.artifacts_dir,
                                         progress=False, mmap=True)
    folder = prep.cache_dir
    record = runs.read_manifest(folder)
    nbytes = sum(v["size"] for v in record["files"].values())
    times = [timed(lambda: runs.check(folder, record["spec"])) for _ in range(args.rounds)]
    print(f"runs.check of the synthetic set's prepared folder ({len(record['files'])} files, "
          f"{nbytes / 1e6:.0f} MB, cached):")
    report("  runs.check", nbytes, times)


if __name__ == "__main__":
    main()
