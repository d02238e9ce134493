"""GISLR files in and out: landmark parquet files and data directories, with validation.

Chapter 1 (data exploration) explains the format. A GISLR data directory holds

* ``train.csv`` with columns ``path, participant_id, sequence_id, sign``;
* ``sign_to_prediction_index_map.json``: the competition's map of its 250 signs to class indices
  ('TV' -> 0 ... 'zipper' -> 249; `read_sign_map` refuses any other map);
* ``train_landmark_files/<participant_id>/<sequence_id>.parquet`` (`read_clips` checks the ids of
  train.csv against such paths): one clip per file, 543 rows per
  frame (face 0-467, left_hand 0-20, pose 0-32, right_hand 0-20), frames in increasing order
  (out-of-order or repeated frames are an error, never re-sorted: see :func:`load_frames`),
  with columns ``frame`` (int16), ``row_id`` (string ``"{frame}-{type}-{landmark_index}"``), ``type`` (string),
  ``landmark_index`` (int16), ``x``, ``y``, ``z`` (float64; a hand that MediaPipe did not find is
  stored as nulls, which read back as NaN).

The same functions read the real Kaggle download and the synthetic set of :mod:`gislr_utils.synthetic`.
"""
from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from .config import SIGN_TO_INDEX
from .landmarks import N_DIMS, N_ROWS, TYPE_COUNTS, TYPE_ORDER, dominant_hand

COLUMNS = ("frame", "row_id", "type", "landmark_index", "x", "y", "z")
TRAIN_CSV_COLUMNS = ("path", "participant_id", "sequence_id", "sign")
# Arrow types of a Kaggle GISLR landmark file (read from the real files with pyarrow).
SCHEMA = pa.schema([
    ("frame", pa.int16()), ("row_id", pa.string()), ("type", pa.string()),
    ("landmark_index", pa.int16()), ("x", pa.float64()), ("y", pa.float64()), ("z", pa.float64()),
])
SIGN_MAP_NAME = "sign_to_prediction_index_map.json"

# Per-row layout of one frame: type name (and its index in TYPE_ORDER) and landmark index of
# each of the 543 rows.
ROW_TYPES = np.repeat(np.array(TYPE_ORDER), [TYPE_COUNTS[t] for t in TYPE_ORDER])
ROW_TYPE_CODES = np.repeat(np.arange(len(TYPE_ORDER), dtype=np.int32), [TYPE_COUNTS[t] for t in TYPE_ORDER])
ROW_LANDMARK_INDEX = np.concatenate([np.arange(TYPE_COUNTS[t]) for t in TYPE_ORDER]).astype(np.int16)
LAYOUT_RULE = ("543 rows per frame in the order face 0-467, left_hand 0-20, pose 0-32, "
               "right_hand 0-20, frames in increasing order")

# Largest |coordinate| accepted. MediaPipe's coordinates are normalised image coordinates (x and y
# in [0, 1] inside the image, z on about the same scale); the largest |value| among the 84 real
# clips of ../shared/real_sample is 3.85 (z; x 1.47, y 2.88). 1,000 leaves a factor of 250 and
# refuses what breaks the model: x = 1e19 on two landmarks of a real clip makes every probability
# NaN (1e12 does not). One rule for files (`load_frames`) and arrays (`preprocessing.check_clip`).
COORDINATE_BOUND = 1e3
COORDINATE_RULE = (f"coordinates must be finite and within +-{COORDINATE_BOUND:g} (MediaPipe's normalised image "
                   "coordinates; the largest |value| in 84 real GISLR clips is 3.85), or missing (NaN/null)")


class GISLRDataError(ValueError):
    """A GISLR file or directory is malformed; the message names the file and the problem."""


# ---------------------------------------------------------------------------------------------
# Reading one clip
# ---------------------------------------------------------------------------------------------
# Columns read on the data path: the layout columns (not row_id: frame, type and landmark_index
# say the same, and its strings cost more to decode than x, y, z) and the coordinates.
READ_COLUMNS = ("frame", "type", "landmark_index", "x", "y", "z")


def _is_string_like(t: pa.DataType) -> bool:
    t = t.value_type if pa.types.is_dictionary(t) else t
    return pa.types.is_string(t) or pa.types.is_large_string(t)


_KINDS = {"frame": pa.types.is_integer, "landmark_index": pa.types.is_integer, "row_id": _is_string_like,
          "type": _is_string_like, "x": pa.types.is_floating, "y": pa.types.is_floating, "z": pa.types.is_floating}


def _read_checked(path, columns, read_dictionary=None) -> tuple[pa.Table, int]:
    """`columns` of one landmark file (pyarrow, one thread, no pre-buffering) and its number of
    frames, after the checks of the file, its columns and their types, the row count and the
    layout (:func:`_check_layout`). FileNotFoundError for a missing file, GISLRDataError else."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: landmark file not found")
    try:
        pf = pq.ParquetFile(path, pre_buffer=False, read_dictionary=read_dictionary)
        schema = pf.schema_arrow
    except KeyError:             # a column of read_dictionary is absent: named below
        return _read_checked(path, columns)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise GISLRDataError(f"{path}: not a readable parquet file ({err})") from err
    twice = sorted({c for c in schema.names if c in COLUMNS and schema.names.count(c) > 1})
    if twice:
        raise GISLRDataError(f"{path}: column(s) {twice} appear more than once (columns {schema.names}); "
                             f"a GISLR file has each of {list(COLUMNS)} once")
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise GISLRDataError(f"{path}: missing column(s) {sorted(missing)}; found {schema.names}")
    wrong = [c for c in columns if not _KINDS[c](schema.field(c).type)]
    if wrong:
        raise GISLRDataError(f"{path}: column {wrong[0]!r} has type {schema.field(wrong[0]).type}, "
                             f"expected {SCHEMA.field(wrong[0]).type}")
    try:
        table = pf.read(columns=list(columns), use_threads=False)
    except (ValueError, pa.ArrowException, OSError) as err:
        raise GISLRDataError(f"{path}: cannot read columns {list(columns)} ({err})") from err
    n = table.num_rows
    if n == 0:
        raise GISLRDataError(f"{path}: empty file (0 rows)")
    if n % N_ROWS:
        raise GISLRDataError(f"{path}: {n} rows is not a multiple of {N_ROWS} landmarks per frame")
    _check_layout(path, table, n // N_ROWS)
    return table, n // N_ROWS


def _column_numpy(path, table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        r = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise GISLRDataError(f"{path}: column {name!r} has {col.null_count} missing value(s), first at row {r}")
    return col.to_numpy()


def _check_layout(path, table: pa.Table, n_frames: int) -> None:
    """Every 543-row block is one frame, frame numbers increase from block to block, and the
    rows of a block are face 0-467, left_hand 0-20, pose 0-32, right_hand 0-20 (type and
    landmark_index). Raises GISLRDataError naming the file, the row and what is wrong."""
    blocks = _column_numpy(path, table, "frame").reshape(n_frames, N_ROWS)
    first = blocks[:, 0]
    if not (blocks == first[:, None]).all():
        b = int(np.flatnonzero((blocks != first[:, None]).any(axis=1))[0])
        r = b * N_ROWS + int(np.flatnonzero(blocks[b] != first[b])[0])
        raise GISLRDataError(
            f"{path}: frame number changes inside the 543-row block of frame #{b} (row {r} has "
            f"frame {blocks[b].flat[r - b * N_ROWS]}, the block starts with {first[b]}): rows "
            f"out of order or missing; expected {LAYOUT_RULE}")
    step = np.diff(first.astype(np.int64))
    if (step <= 0).any():
        b = int(np.flatnonzero(step <= 0)[0])
        what = ("appears twice (duplicate rows)" if step[b] == 0
                else f"comes after frame {first[b]} (frames out of order)")
        raise GISLRDataError(f"{path}: frame {first[b + 1]} at rows {(b + 1) * N_ROWS}-"
                             f"{(b + 2) * N_ROWS - 1} {what}; expected {LAYOUT_RULE}")
    types = table.column("type")
    if types.null_count:
        raise GISLRDataError(f"{path}: column 'type' has {types.null_count} missing value(s)")
    types = pc.dictionary_encode(types.combine_chunks())         # a no-op on the data path
    names = types.dictionary.to_pylist()       # compared as dictionary indices: -1 matches no row
    expected = np.array([names.index(t) if t in names else -1 for t in TYPE_ORDER])[ROW_TYPE_CODES]
    codes = types.indices.to_numpy().reshape(n_frames, N_ROWS)
    if not (codes == expected).all():
        r = _first_mismatch(codes != expected)
        raise GISLRDataError(f"{path}: landmark types out of order at row {r}: {names[codes.flat[r]]!r}, "
                             f"expected {str(ROW_TYPES[r % N_ROWS])!r}; expected {LAYOUT_RULE}")
    lmi = _column_numpy(path, table, "landmark_index").reshape(n_frames, N_ROWS)
    if not (lmi == ROW_LANDMARK_INDEX).all():
        r = _first_mismatch(lmi != ROW_LANDMARK_INDEX)
        raise GISLRDataError(f"{path}: landmark_index {lmi.flat[r]} at row {r} ({ROW_TYPES[r % N_ROWS]}), "
                             f"expected {ROW_LANDMARK_INDEX[r % N_ROWS]}; expected {LAYOUT_RULE}")


def _first_mismatch(wrong: np.ndarray) -> int:
    return int(np.flatnonzero(wrong)[0])


def check_coordinates(source, xyz: np.ndarray) -> None:
    """The rule for coordinate values, shared by files and arrays: NaN marks a missing landmark;
    +-inf, and finite values beyond +-`COORDINATE_BOUND` (1,000; where the bound comes from: see
    the constant), are a GISLRDataError naming `source` (the file or the clip; None: no name),
    the number of such values, the first frame and landmark and its value. `xyz` is ``[rows, 3]``,
    rows in the file's order, in its own dtype (so that 1e300 in a float64 file is "too large",
    not the infinity float32 would make of it). `load_frames` and `preprocessing.check_clip`
    (`preprocess`, `export.tflite_predict`) apply it. Chapter 1."""
    bad = np.abs(xyz) > COORDINATE_BOUND                    # NaN: False
    if not bad.any():
        return
    inf = np.isinf(xyz)
    bad, what = ((inf, "infinite coordinate value(s)") if inf.any()
                 else (bad, f"coordinate value(s) beyond +-{COORDINATE_BOUND:g} (too large)"))
    r = int(np.flatnonzero(bad.any(axis=1))[0])
    frame, lm = divmod(r, N_ROWS)
    value = xyz[r][bad[r]][0]
    where = "" if source is None else f"{source}: "
    raise GISLRDataError(f"{where}{int(bad.sum())} {what}, the first in frame #{frame}, landmark {lm} "
                         f"({ROW_TYPES[lm]} {ROW_LANDMARK_INDEX[lm]}): {value:g}; {COORDINATE_RULE}")


def _xyz(path, table: pa.Table) -> np.ndarray:
    """x, y, z columns -> float32 ``[rows, 3]``, nulls as NaN, values checked (`check_coordinates`)
    as stored (float64) before they are rounded to float32."""
    xyz = np.column_stack([table.column(name).to_numpy() for name in ("x", "y", "z")])
    check_coordinates(path, xyz)
    return xyz.astype(np.float32, copy=False)


def load_frames(path) -> np.ndarray:
    """Read one landmark file as float32 ``[n_frames, 543, 3]`` (x, y, z; NaN kept), checked.

    Reads the columns frame, type, landmark_index, x, y, z (pyarrow, one thread, no
    pre-buffering: the batch preprocessing parallelises over files; `type` is read
    dictionary-encoded, so checking it costs a few integer comparisons). Nulls, MediaPipe's
    missing hands, become NaN. Every bad input raises :class:`GISLRDataError` naming the file
    and the problem (FileNotFoundError for a missing file): not parquet, missing columns or
    wrong column types, an empty file, rows not a multiple of 543, a frame number that changes
    inside a 543-row block (rows out of order), frames out of order (**frame numbers must
    increase**: a file is never re-sorted, it is an error) or repeated (duplicate rows),
    landmark types or indices out of the fixed order (face, left_hand, pose, right_hand;
    landmark_index ascending), infinite coordinates and coordinates beyond +-1,000
    (:func:`check_coordinates`). ``row_id`` is not read (it repeats frame, type and index);
    :func:`validate_file` checks it too. A column name that appears twice is an error too.
    The one reader of the data path: `preprocessing`'s
    `preprocess_files` and `prepare_dataset`, and so every chapter, start here. Chapter 1 shows
    the array.
    """
    table, n_frames = _read_checked(path, READ_COLUMNS, read_dictionary=["type"])
    return _xyz(path, table).reshape(n_frames, N_ROWS, N_DIMS)


def read_table(path) -> pa.Table:
    """Read all seven columns of one landmark file after checking it completely (see
    :func:`validate_file`); chapter 1 shows the table (``read_table(path).to_pandas()``)."""
    table, n_frames = _read_checked(path, COLUMNS)
    row_id = pc.cast(table.column("row_id"), pa.string())
    expected_row_id = _row_ids(table.column("frame"), n_frames)
    if not pc.all(pc.fill_null(pc.equal(row_id, expected_row_id), False)).as_py():
        values = row_id.to_numpy(zero_copy_only=False)
        expected = expected_row_id.to_numpy(zero_copy_only=False)
        r = _first_mismatch(values != expected)
        raise GISLRDataError(f"{path}: row_id {values[r]!r} at row {r}, expected {expected[r]!r} "
                             f"(format '{{frame}}-{{type}}-{{landmark_index}}')")
    _xyz(path, table)
    return table


def validate_file(path) -> int:
    """Check one landmark file completely; return its number of frames.

    The checks of :func:`load_frames` (columns and their types, empty file, rows a multiple of
    543, one frame per 543-row block, frames increasing, type and landmark_index order, finite
    coordinates within the bound) on all seven columns, plus
    ``row_id == f"{frame}-{type}-{landmark_index}"`` on every row. Raises :class:`GISLRDataError`
    naming the file, the row and the problem.
    """
    return read_table(path).num_rows // N_ROWS


# ---------------------------------------------------------------------------------------------
# Writing one clip
# ---------------------------------------------------------------------------------------------
_ROW_TYPE_NAMES = pa.array(ROW_TYPES.tolist())
_ROW_LANDMARK_INDEX = pa.array(ROW_LANDMARK_INDEX)
_ROW_ID_SUFFIX = pa.array([f"-{t}-{i}" for t, i in zip(ROW_TYPES, ROW_LANDMARK_INDEX)])


def _per_row(values: pa.Array, n_frames: int) -> pa.Array:
    """`values` (one per row of a frame) for `n_frames` frames."""
    return values.take(pa.array(np.tile(np.arange(N_ROWS, dtype=np.int32), n_frames)))


def _row_ids(frame, n_frames: int) -> pa.Array:
    """Row ids ``"{frame}-{type}-{landmark_index}"`` of the rows of `n_frames` frames."""
    return pc.binary_join_element_wise(pc.cast(frame, pa.string()), _per_row(_ROW_ID_SUFFIX, n_frames), "")


def landmark_table(frames, first_frame: int = 0) -> pa.Table:
    """The Arrow table of a clip in the Kaggle GISLR layout (see :func:`write_landmark_file`)."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[1:] != (N_ROWS, N_DIMS) or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape [n>0, {N_ROWS}, {N_DIMS}], got {frames.shape}")
    n, first_frame = frames.shape[0], int(first_frame)
    if first_frame < 0 or first_frame + n - 1 > np.iinfo(np.int16).max:
        raise ValueError(f"frame numbers {first_frame}..{first_frame + n - 1} do not fit int16")
    frame = pa.array(np.repeat(np.arange(first_frame, first_frame + n, dtype=np.int16), N_ROWS))
    # Real GISLR values are float32 numbers stored as float64; missing values are nulls.
    xyz = frames.reshape(-1, N_DIMS).astype(np.float32).astype(np.float64)
    cols = [frame, _row_ids(frame, n), _per_row(_ROW_TYPE_NAMES, n), _per_row(_ROW_LANDMARK_INDEX, n)]
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
    pq.write_table(table, path, compression="snappy", use_dictionary=["frame", "type", "landmark_index"])
    return path


# ---------------------------------------------------------------------------------------------
# Reading a data directory
# ---------------------------------------------------------------------------------------------
def read_sign_map(data_dir) -> dict[str, int]:
    """Read ``sign_to_prediction_index_map.json`` of a data directory: it must be the
    competition's 250-sign map (`config.SIGN_TO_INDEX`), which the book and its model are
    built on; ``train.csv`` may use any subset of its signs. Any other map is a GISLRDataError
    naming the file and the first difference (chapter 1)."""
    path = Path(data_dir) / SIGN_MAP_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: sign map not found")
    try:
        sign_map = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise GISLRDataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(sign_map, dict):
        raise GISLRDataError(f"{path}: expected a JSON object sign -> index")
    rule = "the book needs the competition's 250-sign map (Kaggle asl-signs)"
    for sign, index in sign_map.items():
        if type(index) is not int or SIGN_TO_INDEX.get(sign) != index:
            theirs = f"{sign!r} -> {SIGN_TO_INDEX[sign]}" if sign in SIGN_TO_INDEX else f"no sign {sign!r}"
            raise GISLRDataError(f"{path}: {sign!r} -> {index!r}, the competition's map has {theirs}; {rule}")
    missing = [s for s in SIGN_TO_INDEX if s not in sign_map]
    if missing:
        raise GISLRDataError(f"{path}: {len(missing)} sign(s) of the competition's map missing, the first "
                             f"{missing[0]!r} -> {SIGN_TO_INDEX[missing[0]]}; {rule}")
    return sign_map


def _int64_column(csv, df: pd.DataFrame, col: str) -> np.ndarray:
    """A train.csv column of integers (written as such, within int64) -> int64 array."""
    text = df[col].astype(str)
    ok = np.array(text.str.fullmatch(r"\s*[+-]?\d+\s*").fillna(False), dtype=bool)
    ok[ok] = [-2 ** 63 <= int(v) < 2 ** 63 for v in text[ok]]
    if not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        raise GISLRDataError(f"{csv}: column {col!r} must hold integers within int64; line {r + 2} "
                             f"has {df[col].iloc[r]!r}")
    return text.to_numpy(object).astype(np.int64)


def read_clips(data_dir) -> pd.DataFrame:
    """The clips of a GISLR data directory as a DataFrame.

    Columns: ``path`` (absolute str), ``participant_id`` (int), ``sequence_id`` (int), ``sign``
    (str) and ``label`` (int, the sign's index in the competition's sign map). Rows keep the
    order of ``train.csv`` (the original notebook's order), index 0..n-1.

    Errors name the path: missing ``train.csv`` or sign map (FileNotFoundError), a sign map
    other than the competition's (`read_sign_map`), missing columns, ids that are not integers
    within int64 (with the csv line and column), signs not in the map (with the csv line),
    lines whose participant_id or sequence_id is not the participant folder or the file name of
    their path when the path has the Kaggle layout
    ``train_landmark_files/<participant_id>/<sequence_id>.parquet`` (with the lines: such a
    signer would be on both sides of the split by participant; the sequence_id is checked too,
    as it names the clip; paths of another layout are taken as they are), a
    landmark file listed on more than one line, also through a symlink or another spelling of
    its path (with the lines: a clip must not count twice) and listed landmark files that do not
    exist (how many, and the first ones) raise :class:`GISLRDataError`. Chapter 1 uses it first.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: data directory not found")
    csv = data_dir / "train.csv"
    if not csv.exists():
        raise FileNotFoundError(f"{csv}: train.csv not found")
    sign_map = read_sign_map(data_dir)
    try:
        df = pd.read_csv(csv, dtype={"participant_id": str, "sequence_id": str, "sign": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise GISLRDataError(f"{csv}: cannot parse ({err})") from err
    missing = [c for c in TRAIN_CSV_COLUMNS if c not in df.columns]
    if missing:
        raise GISLRDataError(f"{csv}: missing column(s) {missing}; found {list(df.columns)}")
    if df.empty:
        raise GISLRDataError(f"{csv}: no clips listed")
    ids = {col: _int64_column(csv, df, col) for col in ("participant_id", "sequence_id")}
    df = df.assign(**ids, sign=df["sign"].astype(str))
    unknown = ~df["sign"].isin(list(sign_map))
    if unknown.any():
        r = int(np.flatnonzero(unknown.to_numpy())[0])
        names = sorted(df.loc[unknown, "sign"].unique())
        raise GISLRDataError(f"{csv}: sign {df['sign'].iloc[r]!r} on line {r + 2} is not in "
                             f"{SIGN_MAP_NAME} ({unknown.sum()} row(s), sign(s) {names[:10]})")
    _check_ids_match_paths(csv, df)
    root = str(data_dir.absolute())
    paths = [os.path.join(root, p) for p in df["path"].astype(str)]
    _check_listed_once(csv, df, pd.Series([os.path.realpath(p) for p in paths]))
    exists = np.fromiter((os.path.isfile(p) for p in paths), dtype=bool, count=len(paths))
    if not exists.all():
        lost = [p for p, e in zip(paths, exists) if not e]
        raise GISLRDataError(f"{csv}: {len(lost)} of {len(paths)} listed landmark file(s) not found, "
                             f"e.g. {lost[:3]}")
    return pd.DataFrame({"path": pd.Series(paths, dtype=object), **{c: df[c].to_numpy(np.int64) for c in ids},
                         "sign": pd.Series(df["sign"].to_numpy(), dtype=object),
                         "label": df["sign"].map(sign_map).to_numpy(dtype=np.int64)})


# A path in the Kaggle layout: train_landmark_files/<participant_id>/<sequence_id>.parquet.
KAGGLE_PATH = r"(?:^|/)train_landmark_files/(\d+)/(\d+)\.parquet$"


def _check_ids_match_paths(csv, df: pd.DataFrame) -> None:
    """Where a line's path has the Kaggle layout (`KAGGLE_PATH`), its participant_id and its
    sequence_id must be the path's folder and file name: a line whose participant_id is not the
    signer of its file would put that signer on both sides of the participant split, and a
    sequence_id that is not its file's names another clip. An error naming the lines."""
    written = df["path"].astype(str)
    pid, sid = df["participant_id"].to_numpy(), df["sequence_id"].to_numpy()
    expected = [f"train_landmark_files/{p}/{s}.parquet" for p, s in zip(pid.tolist(), sid.tolist())]
    other = np.flatnonzero(written.to_numpy() != np.array(expected, dtype=object))   # the usual spelling: fine
    parts = written.iloc[other].str.replace("\\", "/").map(posixpath.normpath).str.extract(KAGGLE_PATH)
    kaggle = parts[0].notna().to_numpy()
    ids = zip(parts[0][kaggle], parts[1][kaggle], pid[other][kaggle], sid[other][kaggle])
    wrong = other[kaggle][[int(p) != i or int(s) != j for p, s, i, j in ids]]
    if not len(wrong):
        return
    shown = "; ".join(f"line {r + 2} has participant_id {df['participant_id'].iloc[r]} and sequence_id "
                      f"{df['sequence_id'].iloc[r]} but path {written.iloc[r]!r}" for r in wrong[:3])
    raise GISLRDataError(
        f"{csv}: {len(wrong)} line(s) disagree with the participant folder or file name of their path "
        f"(train_landmark_files/<participant_id>/<sequence_id>.parquet): {shown}; a signer listed "
        "under another participant_id ends up on both sides of the split by participant: correct these lines")


def _check_listed_once(csv, df: pd.DataFrame, real: pd.Series) -> None:
    """The same landmark file (`real`: resolved paths, symlinks followed) on two lines of
    train.csv would count twice in training and validation: an error naming the lines."""
    dup = real.duplicated(keep=False).to_numpy()
    if not dup.any():
        return
    groups: dict[str, list] = {}           # resolved path -> [(csv line, path as written), ...]
    for line, written, key in zip(df.index[dup] + 2, df["path"].astype(str)[dup], real[dup]):
        groups.setdefault(key, []).append((line, written))
    shown = []
    for items in list(groups.values())[:3]:
        other = sorted({w for _, w in items} - {items[0][1]})
        also = f" (one file, also listed as {', '.join(map(repr, other))})" if other else ""
        shown.append(f"{items[0][1]!r} on lines {', '.join(str(line) for line, _ in items)}{also}")
    raise GISLRDataError(f"{csv}: {len(groups)} landmark file(s) listed more than once ({int(dup.sum())} "
                         f"lines): {'; '.join(shown)}; remove the duplicate lines")


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
    paths = tqdm(clips["path"].tolist(), desc="clip summary", unit="clip", disable=not progress)
    rows = [hand_counts(load_frames(p)) for p in paths]
    stats = pd.DataFrame(rows, index=clips.index)
    stats["no_hand"] = (stats["left_hand_values"] == 0) & (stats["right_hand_values"] == 0)
    stats = stats.drop(columns=["left_hand_values", "right_hand_values"])
    return pd.concat([clips, stats], axis=1)


def pick_example(summary: pd.DataFrame, min_hand_share: float = 0.6, dominant: str | None = None):
    """A typical clip to draw (chapters 1 and 2): its dominant hand visible in at least
    `min_hand_share` of its frames, its length closest to the median; ties by sequence_id.

    `summary` is :func:`clip_summary`'s table; `dominant` ("left"/"right") restricts the choice
    to clips of that dominant hand when there are any. Returns the summary row (a Series).
    """
    if len(summary) == 0:
        raise ValueError("summary is empty: no clip to pick")
    if dominant not in (None, "left", "right"):
        raise ValueError(f"dominant={dominant!r} must be 'left', 'right' or None")
    candidates = summary[~summary["no_hand"]] if "no_hand" in summary else summary
    same = candidates[candidates["dominant"] == dominant]
    candidates = same if len(same) else candidates
    good = candidates[candidates["n_hand_frames"] >= min_hand_share * candidates["n_frames"]]
    candidates = good if len(good) else (candidates if len(candidates) else summary)
    target = float(summary["n_frames"].median())
    order = candidates.assign(_d=(candidates["n_frames"] - target).abs()).sort_values(["_d", "sequence_id"])
    return order.drop(columns="_d").iloc[0]
