"""GISLR files in and out: reading landmark parquet files and data directories, with validation.

Chapter 1 (data exploration) explains the format.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .landmarks import N_DIMS, N_ROWS


class GISLRDataError(ValueError):
    """A GISLR file or directory is malformed; the message names the file and the problem."""


def load_frames(path) -> np.ndarray:
    """Read one landmark file as float32 `[n_frames, 543, 3]` (x, y, z only; NaN kept)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: landmark file not found")
    table = pq.read_table(path, columns=["x", "y", "z"])
    n = table.num_rows
    if n == 0:
        raise GISLRDataError(f"{path}: empty file (0 rows)")
    if n % N_ROWS:
        raise GISLRDataError(f"{path}: {n} rows is not a multiple of {N_ROWS} landmarks per frame")
    data = np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in ("x", "y", "z")], axis=-1)
    return data.astype(np.float32, copy=False).reshape(n // N_ROWS, N_ROWS, N_DIMS)
