"""Normalisation statistics of the 66 landmarks: mean and std of their non-zero x and y values.

Chapter 2 (landmark statistics) computes them on the training clips, draws one boxplot per
landmark (`landmark_values`) and shows the data before and after `normalise`. The model
(`model.build_model(stats=...)`) applies the same normalisation in its graph; `normalise` here is
the NumPy reference.

The definition is the original notebook's (`get_lips_mean_std` and its hand/pose twins): for each
landmark and for x and y, over all frames of all clips,
``v = l[np.nonzero(l)]; mean = v.mean(); std = v.std()`` (population std). Zeros are left out
because preprocessing writes 0 for "missing" (padding frames and NaN landmarks). z is not used.
Two degenerate cases differ from the original, which would divide by zero in the model: a
landmark with no non-zero value gets mean 0 and std 1, and one whose non-zero values are all equal
(std 0, or below 1e-8 after rounding) gets std 1. Neither happens on real or synthetic training
sets; both keep `normalise` finite.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .landmarks import DIM_NAMES, GROUPS, N_COLS

STAT_DIMS = 2          # x and y
_CHUNK = 2048          # clips per chunk: bounded memory on the full data set (float64 copies)


def _check_X(X) -> np.ndarray:
    X = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if X.ndim < 2 or X.shape[-2] != N_COLS or X.shape[-1] < STAT_DIMS:
        raise ValueError(f"X must have shape [..., {N_COLS}, >=2] (e.g. [n, 64, {N_COLS}, 3]), "
                         f"got {list(X.shape)}")
    return X


def _chunks(X, rows=None):
    """Float64 x, y of a few thousand clips at a time, as [frames, 66, 2]; with `rows`, of the
    clips `X[rows]` in that order, read a chunk at a time (the same chunks as `X[rows]` gives).
    `[n, 64, 66, d]` (possibly a memory map) is cut into `_CHUNK` clips, other shapes
    `[..., 66, d]` into `_CHUNK * 64` frames."""
    if X.ndim != 4:
        X, rows = (X if rows is None else X[rows]).reshape(-1, *X.shape[-2:]), None
    step = _CHUNK if X.ndim == 4 else _CHUNK * 64
    for start in range(0, len(X) if rows is None else len(rows), step):
        part = slice(start, start + step) if rows is None else rows[start:start + step]
        yield np.asarray(X[part][..., :STAT_DIMS], np.float64).reshape(-1, N_COLS, STAT_DIMS)


def compute_stats(X, rows=None) -> dict[str, np.ndarray]:
    """Mean and std of the non-zero x, y values of each landmark -> {"mean", "std"} [66, 2] f32.

    `X` is a prepared array `[n, 64, 66, 3]` (any `[..., 66, >=2]` works); rows of the result
    are the 66 landmark columns, columns are x and y. Vectorised with masked sums in float64,
    in chunks of clips (two passes: mean, then squared deviations, like `np.std`); it equals the
    original per-landmark loop up to float32 rounding. No non-zero value: mean 0, std 1;
    std 0: std 1 (see the module docstring). `rows` (optional, integer indices into the first
    axis) restricts the statistics to those clips: ``compute_stats(X, rows)`` equals
    ``compute_stats(X[rows])`` bit for bit without copying them (the training clips of a
    memory-mapped full set would be 4.3 GB).
    Raises ValueError if X holds NaN (preprocessing writes 0 for missing values). Chapter 2.
    """
    X = _check_X(X)
    if rows is not None:
        rows = np.asarray(rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"rows must be a 1-D array of integer indices, got {rows.dtype} {list(rows.shape)}")
    count, total, squares = (np.zeros((N_COLS, STAT_DIMS)) for _ in range(3))
    for v in _chunks(X, rows):
        if np.isnan(v).any():
            raise ValueError("X contains NaN: compute statistics on preprocessed arrays "
                             "(preprocessing.preprocess turns NaN into 0)")
        count += (v != 0).sum(axis=0)
        total += v.sum(axis=0)           # zeros add nothing
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    for v in _chunks(X, rows):
        squares += np.where(v != 0, (v - mean) ** 2, 0.0).sum(axis=0)
    std = np.sqrt(np.divide(squares, count, out=np.ones_like(squares), where=count > 0))
    std[std < 1e-8] = 1.0                # constant values (std 0 up to rounding)
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32)}


def _check_stats(stats) -> dict[str, np.ndarray]:
    out = {}
    for name in ("mean", "std"):
        if name not in stats:
            raise ValueError(f"stats lacks {name!r}; expected keys 'mean' and 'std'")
        a = np.asarray(stats[name], dtype=np.float32)
        if a.shape != (N_COLS, STAT_DIMS):
            raise ValueError(f"stats[{name!r}] must have shape [{N_COLS}, {STAT_DIMS}], got {list(a.shape)}")
        out[name] = a
    if not np.all(np.isfinite(out["mean"])) or not np.all(out["std"] > 0):
        raise ValueError("stats must have finite means and positive stds")
    return out


def save_stats(stats, path) -> Path:
    """Write statistics to the ``.npz`` file `path` (chapter 4's recipe saves them with a run)."""
    stats = _check_stats(stats)
    with open(path, "wb") as f:       # a file object: np.savez would not append ".npz" twice
        np.savez(f, **stats)
    return Path(path)


def load_stats(path) -> dict[str, np.ndarray]:
    """Read statistics written by `save_stats` -> {"mean", "std"} [66, 2] float32."""
    with np.load(path) as f:
        stats = {k: f[k] for k in f.files}
    try:
        return _check_stats(stats)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def landmark_values(X, group: str, dim) -> list[np.ndarray]:
    """The non-zero values of one dimension for each landmark of a group (chapter 2's boxplots).

    `group` is "lips", "hand" or "pose" (`landmarks.GROUPS`), `dim` is "x", "y", "z" or 0, 1, 2.
    Returns one 1-D float32 array per landmark of the group, in column order; these are exactly
    the values `compute_stats` averages (for x and y).
    """
    X = _check_X(X)
    if group not in GROUPS:
        raise ValueError(f"group={group!r} is not valid; choose one of {sorted(GROUPS)}")
    d = DIM_NAMES.index(dim) if isinstance(dim, str) and dim in DIM_NAMES else dim
    if not isinstance(d, (int, np.integer)) or not 0 <= d < X.shape[-1]:
        raise ValueError(f"dim={dim!r} is not valid; choose one of {list(DIM_NAMES[:X.shape[-1]])}")
    values = np.asarray(X[..., GROUPS[group], d]).reshape(-1, len(GROUPS[group]))
    return [col[col != 0].astype(np.float32) for col in values.T]


def normalise(X, stats) -> np.ndarray:
    """Standardise x and y per landmark: `(v - mean) / std`, zeros (missing) stay zero.

    `X [..., 66, >=2]` -> float32 `[..., 66, 2]` (z is dropped, as the model drops it). The NumPy
    reference of the model's normalisation (chapter 2 draws before/after).
    """
    stats = _check_stats(stats)
    v = np.asarray(_check_X(X)[..., :STAT_DIMS], dtype=np.float32)
    return np.where(v == 0, np.float32(0), (v - stats["mean"]) / stats["std"]).astype(np.float32)
