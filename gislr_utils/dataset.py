"""GISLR files in and out: landmark parquet files and data directories, with validation.

Chapter 1 (data exploration) explains the format. A GISLR data directory holds

* ``train.csv`` with columns ``path, participant_id, sequence_id, sign``;
* ``sign_to_prediction_index_map.json`` (sign name -> class index, 250 signs in the competition);
* ``train_landmark_files/<participant_id>/<sequence_id>.parquet``: one clip per file, 543 rows per
  frame (face 0-467, left_hand 0-20, pose 0-32, right_hand 0-20) with columns
  ``frame`` (int16), ``row_id`` (string ``"{frame}-{type}-{landmark_index}"``), ``type`` (string),
  ``landmark_index`` (int16), ``x``, ``y``, ``z`` (float64; a hand that MediaPipe did not find is
  stored as nulls, which read back as NaN).

The same functions read the real Kaggle download and the synthetic set of :mod:`gislr_utils.synthetic`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .landmarks import N_DIMS, N_ROWS, TYPE_COUNTS, TYPE_ORDER, dominant_hand

COLUMNS = ("frame", "row_id", "type", "landmark_index", "x", "y", "z")
TRAIN_CSV_COLUMNS = ("path", "participant_id", "sequence_id", "sign")
# Arrow types of a Kaggle GISLR landmark file (read from the real files with pyarrow).
SCHEMA = pa.schema([
    ("frame", pa.int16()), ("row_id", pa.string()), ("type", pa.string()),
    ("landmark_index", pa.int16()), ("x", pa.float64()), ("y", pa.float64()), ("z", pa.float64()),
])
SIGN_MAP_NAME = "sign_to_prediction_index_map.json"

# Per-row layout of one frame: type name and landmark index of each of the 543 rows.
ROW_TYPES = np.repeat(np.array(TYPE_ORDER), [TYPE_COUNTS[t] for t in TYPE_ORDER])
ROW_LANDMARK_INDEX = np.concatenate([np.arange(TYPE_COUNTS[t]) for t in TYPE_ORDER]).astype(np.int16)


class GISLRDataError(ValueError):
    """A GISLR file or directory is malformed; the message names the file and the problem."""


# ---------------------------------------------------------------------------------------------
# Reading one clip
# ---------------------------------------------------------------------------------------------
def load_frames(path) -> np.ndarray:
    """Read one landmark file as float32 ``[n_frames, 543, 3]`` (x, y, z only; NaN kept).

    Only the three coordinate columns are read (pyarrow, one thread and no pre-buffering: the
    batch preprocessing parallelises over files, and most of a read is Snappy decompression).
    Nulls, MediaPipe's missing hands, become NaN. The layout is trusted; :func:`validate_file`
    checks it fully. Chapter 1 shows what the array holds.
    """
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


def _first_mismatch(values: np.ndarray, expected: np.ndarray) -> int:
    return int(np.flatnonzero(values != expected)[0])


def validate_file(path) -> int:
    """Check one landmark file completely; return its number of frames.

    Checks: the seven columns exist (missing ones are named) with integer/string/float types,
    the file is not empty, the row count is a multiple of 543, every 543-row block has one frame
    number, the landmark types come in the order face, left_hand, pose, right_hand with
    landmark_index 0..n-1 within each type, and ``row_id == f"{frame}-{type}-{landmark_index}"``
    on every row. Raises :class:`GISLRDataError` naming the file, the row and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: landmark file not found")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise GISLRDataError(f"{path}: not a readable parquet file ({err})") from err
    schema = pf.schema_arrow
    missing = [c for c in COLUMNS if c not in schema.names]
    if missing:
        raise GISLRDataError(f"{path}: missing column(s) {missing}; found {schema.names}")
    kinds = {"frame": pa.types.is_integer, "landmark_index": pa.types.is_integer,
             "row_id": _is_string_like, "type": _is_string_like,
             "x": pa.types.is_floating, "y": pa.types.is_floating, "z": pa.types.is_floating}
    for col, ok in kinds.items():
        if not ok(schema.field(col).type):
            raise GISLRDataError(f"{path}: column {col!r} has type {schema.field(col).type}, "
                                 f"expected {SCHEMA.field(col).type}")
    table = pf.read(columns=list(COLUMNS), use_threads=False)
    n = table.num_rows
    if n == 0:
        raise GISLRDataError(f"{path}: empty file (0 rows)")
    if n % N_ROWS:
        raise GISLRDataError(f"{path}: {n} rows is not a multiple of {N_ROWS} landmarks per frame")
    n_frames = n // N_ROWS

    frame = table.column("frame").to_numpy(zero_copy_only=False)
    if table.column("frame").null_count:
        raise GISLRDataError(f"{path}: column 'frame' has missing values")
    blocks = frame.reshape(n_frames, N_ROWS)
    bad = np.flatnonzero((blocks != blocks[:, :1]).any(axis=1))
    if bad.size:
        b = int(bad[0])
        raise GISLRDataError(f"{path}: frame number changes inside the 543-row block of frame "
                             f"#{b} (rows {b * N_ROWS}-{(b + 1) * N_ROWS - 1}); blocks must hold one frame")

    types = pc.cast(table.column("type"), pa.string())
    expected_types = _layout(n_frames)["type"]
    if not _all_equal(types, expected_types):
        values = types.to_numpy(zero_copy_only=False)
        r = _first_mismatch(values, np.tile(ROW_TYPES, n_frames))
        raise GISLRDataError(f"{path}: landmark types out of order at row {r}: {values[r]!r}, expected "
                             f"{ROW_TYPES[r % N_ROWS]!r} (order per frame: face 468, left_hand 21, "
                             f"pose 33, right_hand 21)")
    lmi = table.column("landmark_index").to_numpy(zero_copy_only=False)
    expected_lmi = np.tile(ROW_LANDMARK_INDEX, n_frames)
    if lmi.shape != expected_lmi.shape or not np.array_equal(lmi, expected_lmi):
        r = _first_mismatch(lmi, expected_lmi)
        raise GISLRDataError(f"{path}: landmark_index {lmi[r]} at row {r} ({ROW_TYPES[r % N_ROWS]}), "
                             f"expected {expected_lmi[r]}")
    row_id = table.column("row_id")
    expected_row_id = pc.binary_join_element_wise(
        pc.cast(table.column("frame"), pa.string()), _layout(n_frames)["suffix"], "")
    if not _all_equal(pc.cast(row_id, pa.string()), expected_row_id):
        values = row_id.to_numpy(zero_copy_only=False)
        expected = expected_row_id.to_numpy(zero_copy_only=False)
        r = _first_mismatch(values, expected)
        raise GISLRDataError(f"{path}: row_id {values[r]!r} at row {r}, expected {expected[r]!r} "
                             f"(format '{{frame}}-{{type}}-{{landmark_index}}')")
    return n_frames


def _all_equal(a, b) -> bool:
    """True when two Arrow arrays are equal on every row (a null counts as different)."""
    return bool(pc.all(pc.fill_null(pc.equal(a, b), False)).as_py())


def _is_string_like(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


# ---------------------------------------------------------------------------------------------
# Writing one clip
# ---------------------------------------------------------------------------------------------
_LAYOUT_CACHE: dict[str, object] = {"n": 0}


def _layout(n_frames: int) -> dict:
    """Cached Arrow arrays of the per-row layout for `n_frames` frames (type, landmark_index,
    row_id suffix ``"-{type}-{landmark_index}"``), sliced zero-copy from a cache that grows."""
    if _LAYOUT_CACHE["n"] < n_frames:
        n = max(n_frames, 2 * _LAYOUT_CACHE["n"], 512)
        take = pa.array(np.tile(np.arange(N_ROWS, dtype=np.int32), n))
        suffix = pa.array([f"-{t}-{i}" for t, i in zip(ROW_TYPES, ROW_LANDMARK_INDEX)])
        _LAYOUT_CACHE.update(
            n=n,
            type=pa.array(ROW_TYPES.tolist()).take(take),
            landmark_index=pa.array(ROW_LANDMARK_INDEX).take(take),
            suffix=suffix.take(take),
        )
    rows = n_frames * N_ROWS
    return {k: _LAYOUT_CACHE[k].slice(0, rows) for k in ("type", "landmark_index", "suffix")}


_ROW_ID_CACHE: dict[str, object] = {}
_ROW_ID_FRAMES = 1024   # row ids of frames 0..1023 are built once and sliced


def _row_ids(first_frame: int, n_frames: int) -> pa.Array:
    """Row ids ``"{frame}-{type}-{landmark_index}"`` of frames first_frame.. (+n_frames)."""
    if first_frame + n_frames > _ROW_ID_FRAMES:
        frame = pa.array(np.repeat(np.arange(first_frame, first_frame + n_frames), N_ROWS))
        return pc.binary_join_element_wise(pc.cast(frame, pa.string()), _layout(n_frames)["suffix"], "")
    if "row_id" not in _ROW_ID_CACHE:
        frame = pa.array(np.repeat(np.arange(_ROW_ID_FRAMES), N_ROWS))
        _ROW_ID_CACHE["row_id"] = pc.binary_join_element_wise(
            pc.cast(frame, pa.string()), _layout(_ROW_ID_FRAMES)["suffix"], "")
    return _ROW_ID_CACHE["row_id"].slice(first_frame * N_ROWS, n_frames * N_ROWS)


def landmark_table(frames, first_frame: int = 0) -> pa.Table:
    """The Arrow table of a clip in the Kaggle GISLR layout (see :func:`write_landmark_file`)."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[1:] != (N_ROWS, N_DIMS) or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape [n>0, {N_ROWS}, {N_DIMS}], got {frames.shape}")
    n = frames.shape[0]
    first_frame = int(first_frame)
    if first_frame < 0 or first_frame + n - 1 > np.iinfo(np.int16).max:
        raise ValueError(f"frame numbers {first_frame}..{first_frame + n - 1} do not fit int16")
    layout = _layout(n)
    frame = pa.array(np.repeat(np.arange(first_frame, first_frame + n, dtype=np.int16), N_ROWS))
    row_id = _row_ids(first_frame, n)
    # Real GISLR values are float32 numbers stored as float64; missing values are nulls.
    xyz = frames.reshape(-1, N_DIMS).astype(np.float32).astype(np.float64)
    cols = [frame, row_id, layout["type"], layout["landmark_index"]]
    cols += [pa.array(xyz[:, i], type=pa.float64(), from_pandas=True) for i in range(N_DIMS)]
    return pa.Table.from_arrays(cols, schema=SCHEMA)


def write_landmark_file(path, frames, first_frame: int = 0) -> Path:
    """Write one clip ``frames [n, 543, 3]`` as a GISLR landmark parquet file; return the path.

    Columns, order and Arrow types are those of the Kaggle files (frame int16, row_id string,
    type string, landmark_index int16, x/y/z float64); NaN is written as null as in the real
    files; frame numbers run from `first_frame`. The bytes depend only on the input (and the
    pyarrow version): no timestamps are stored. Used by :mod:`gislr_utils.synthetic` (chapter 1).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = landmark_table(frames, first_frame)
    pq.write_table(table, path, compression="snappy",
                   use_dictionary=["frame", "type", "landmark_index"])
    return path


# ---------------------------------------------------------------------------------------------
# Reading a data directory
# ---------------------------------------------------------------------------------------------
def read_sign_map(data_dir) -> dict[str, int]:
    """Read ``sign_to_prediction_index_map.json`` of a data directory and check it."""
    path = Path(data_dir) / SIGN_MAP_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: sign map not found")
    try:
        sign_map = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise GISLRDataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(sign_map, dict) or not sign_map:
        raise GISLRDataError(f"{path}: expected a non-empty JSON object sign -> index")
    values = list(sign_map.values())
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise GISLRDataError(f"{path}: indices must be integers")
    if sorted(values) != list(range(len(values))):
        raise GISLRDataError(f"{path}: indices must be 0..{len(values) - 1}, each once")
    return sign_map


def read_clips(data_dir, signs=None) -> pd.DataFrame:
    """The clips of a GISLR data directory as a DataFrame.

    Columns: ``path`` (absolute str), ``participant_id`` (int), ``sequence_id`` (int), ``sign``
    (str) and ``label`` (int, the sign's index in the directory's sign map). Rows keep the order
    of ``train.csv`` (the original notebook's order), index 0..n-1. `signs` (optional) keeps only
    those signs (names; each must be in the map and have clips).

    Errors name the path: missing ``train.csv`` or sign map (FileNotFoundError), missing
    columns, non-integer ids, signs not in the map (with the csv line) and listed landmark files
    that do not exist (how many, and the first ones) raise :class:`GISLRDataError`.
    Chapter 1 uses it first.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: data directory not found")
    csv = data_dir / "train.csv"
    if not csv.exists():
        raise FileNotFoundError(f"{csv}: train.csv not found")
    sign_map = read_sign_map(data_dir)
    try:
        df = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise GISLRDataError(f"{csv}: cannot parse ({err})") from err
    missing = [c for c in TRAIN_CSV_COLUMNS if c not in df.columns]
    if missing:
        raise GISLRDataError(f"{csv}: missing column(s) {missing}; found {list(df.columns)}")
    if df.empty:
        raise GISLRDataError(f"{csv}: no clips listed")
    for col in ("participant_id", "sequence_id"):
        if not pd.api.types.is_integer_dtype(df[col]):
            bad = pd.to_numeric(df[col], errors="coerce")
            r = int(np.flatnonzero(bad.isna() | (bad != bad.round()))[0])
            raise GISLRDataError(f"{csv}: column {col!r} must hold integers; line {r + 2} has "
                                 f"{df[col].iloc[r]!r}")
    df["sign"] = df["sign"].astype(str)
    unknown = ~df["sign"].isin(list(sign_map))
    if unknown.any():
        r = int(np.flatnonzero(unknown.to_numpy())[0])
        names = sorted(df.loc[unknown, "sign"].unique())
        raise GISLRDataError(f"{csv}: sign {df['sign'].iloc[r]!r} on line {r + 2} is not in "
                             f"{SIGN_MAP_NAME} ({unknown.sum()} row(s), sign(s) {names[:10]})")
    if signs is not None:
        signs = [signs] if isinstance(signs, str) else list(signs)
        not_in_map = [s for s in signs if s not in sign_map]
        if not_in_map:
            raise ValueError(f"signs {not_in_map} are not in {data_dir / SIGN_MAP_NAME}")
        absent = sorted(set(signs) - set(df["sign"]))
        if absent:
            raise GISLRDataError(f"{csv}: no clips of sign(s) {absent}")
        df = df[df["sign"].isin(signs)]
    root = str(data_dir.absolute())
    paths = [os.path.join(root, p) for p in df["path"].astype(str)]
    exists = np.fromiter((os.path.isfile(p) for p in paths), dtype=bool, count=len(paths))
    if not exists.all():
        lost = [p for p, e in zip(paths, exists) if not e]
        raise GISLRDataError(f"{csv}: {len(lost)} of {len(paths)} listed landmark file(s) not found, "
                             f"e.g. {lost[:3]}")
    return pd.DataFrame({
        "path": pd.Series(paths, dtype=object),
        "participant_id": df["participant_id"].to_numpy(dtype=np.int64),
        "sequence_id": df["sequence_id"].to_numpy(dtype=np.int64),
        "sign": pd.Series(df["sign"].to_numpy(), dtype=object),
        "label": df["sign"].map(sign_map).to_numpy(dtype=np.int64),
    })


# ---------------------------------------------------------------------------------------------
# Summaries for chapter 1
# ---------------------------------------------------------------------------------------------
def hand_counts(frames: np.ndarray) -> dict:
    """Per-clip hand statistics of raw frames ``[n, 543, 3]``: frames in which each hand is
    missing (all NaN), non-NaN values per hand, the `dominant` hand and the number of frames in
    which it is visible, ``n_hand_frames`` (the rule and the frames of `landmarks.dominant_hand`,
    which preprocessing keeps; chapters 1 and 2)."""
    hands = dominant_hand(frames)
    out = {"n_frames": int(frames.shape[0])}
    for side, values in (("left", hands.left_values), ("right", hands.right_values)):
        out[f"{side}_hand_missing"] = float((values == 0).mean()) if len(values) else 0.0
        out[f"{side}_hand_values"] = int(values.sum())
    out["dominant"] = "left" if hands.left else "right"
    out["n_hand_frames"] = int(hands.visible.sum())
    return out


def clip_summary(clips: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
    """One row per clip of `clips` (from :func:`read_clips`): the clip's columns plus
    ``n_frames``, ``left_hand_missing`` / ``right_hand_missing`` (fraction of frames without
    that hand), ``dominant`` ('left'/'right', `landmarks.dominant_hand`'s rule: more non-NaN
    values, ties to left), ``n_hand_frames`` (frames in which the dominant hand is visible: the
    frames preprocessing keeps) and ``no_hand`` (neither hand in any frame). Reads each file
    once (chapters 1 and 2)."""
    paths = clips["path"].tolist()
    it = paths
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(paths, desc="clip summary", unit="clip")
    rows = [hand_counts(load_frames(p)) for p in it]
    stats = pd.DataFrame(rows, index=clips.index)
    stats["no_hand"] = (stats["left_hand_values"] == 0) & (stats["right_hand_values"] == 0)
    stats = stats.drop(columns=["left_hand_values", "right_hand_values"])
    return pd.concat([clips, stats], axis=1)
