"""GISLR files in and out: landmark parquet files and data directories, with validation.

Chapter 1 (data exploration) explains the format. A GISLR data directory holds

* ``train.csv`` with columns ``path, participant_id, sequence_id, sign``;
* ``sign_to_prediction_index_map.json`` (sign name -> class index, 250 signs in the competition);
* ``train_landmark_files/<participant_id>/<sequence_id>.parquet``: one clip per file, 543 rows per
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
# Columns read on the data path: the layout columns (not row_id: frame, type and landmark_index
# say the same, and its strings cost more to decode than x, y, z) and the coordinates.
READ_COLUMNS = ("frame", "type", "landmark_index", "x", "y", "z")
_KINDS = {"frame": pa.types.is_integer, "landmark_index": pa.types.is_integer,
          "row_id": lambda t: _is_string_like(t), "type": lambda t: _is_string_like(t),
          "x": pa.types.is_floating, "y": pa.types.is_floating, "z": pa.types.is_floating}
ROW_TYPE_CODES = np.repeat(np.arange(len(TYPE_ORDER), dtype=np.int32),
                           [TYPE_COUNTS[t] for t in TYPE_ORDER])
LAYOUT_RULE = ("543 rows per frame in the order face 0-467, left_hand 0-20, pose 0-32, "
               "right_hand 0-20, frames in increasing order")


def _open(path, **kwargs) -> pq.ParquetFile:
    """Open a parquet file: FileNotFoundError if absent, GISLRDataError if not parquet."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: landmark file not found")
    try:
        return pq.ParquetFile(path, pre_buffer=False, **kwargs)
    except KeyError:     # a column of read_dictionary is absent: _check_schema names it
        return _open(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise GISLRDataError(f"{path}: not a readable parquet file ({err})") from err


_GOOD_SCHEMAS: dict = {}      # columns -> schemas already found good (usually one: Kaggle's)


try:   # ParquetFile's reader without its Python set-up (file system resolution, nested paths)
    from pyarrow._parquet import ParquetReader as _ParquetReader
except ImportError:  # pragma: no cover - any pyarrow of requirements.txt has it
    _ParquetReader = None


class _Reader:
    """The part of :class:`pyarrow.parquet.ParquetFile` the data path uses, on the reader."""

    __slots__ = ("reader",)

    def __init__(self, reader):
        self.reader = reader

    @property
    def schema_arrow(self) -> pa.Schema:
        return self.reader.schema_arrow

    @property
    def metadata(self):
        return self.reader.metadata

    def read(self, columns, use_threads=False) -> pa.Table:
        idx = [self.reader.column_name_idx(c) for c in columns]
        return self.reader.read_all(column_indices=idx, use_threads=use_threads)


def _open_data_path(path):
    """`_open(path, read_dictionary=["type"])`, a little cheaper (about 0.05 ms a file); any
    failure goes to `_open`, which gives the error its message."""
    if _ParquetReader is not None and os.path.exists(path):
        try:
            reader = _ParquetReader()
            reader.open(path, pre_buffer=False, read_dictionary=["type"])
            return _Reader(reader)
        except Exception:  # noqa: BLE001 - _open meets the same failure, with its message
            return _open(path, read_dictionary=["type"])
    return _open(path, read_dictionary=["type"])


def _check_schema(path, schema: pa.Schema, columns) -> None:
    """Named missing columns, then a wrong kind of type (integer, string, float) per column."""
    known = _GOOD_SCHEMAS.get(columns, ())
    if any(schema.equals(good) for good in known):
        return
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise GISLRDataError(f"{path}: missing column(s) {sorted(missing)}; found {schema.names}")
    for col in columns:
        t = schema.field(col).type
        if not _KINDS[col](t):
            raise GISLRDataError(f"{path}: column {col!r} has type {t}, "
                                 f"expected {SCHEMA.field(col).type}")
    if len(known) < 8:
        _GOOD_SCHEMAS[columns] = (*known, schema)


def _check_rows(path, n: int) -> int:
    if n == 0:
        raise GISLRDataError(f"{path}: empty file (0 rows)")
    if n % N_ROWS:
        raise GISLRDataError(f"{path}: {n} rows is not a multiple of {N_ROWS} landmarks per frame")
    return n // N_ROWS


_TILES: tuple = (0, None, None)


def _tiles(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Expected type codes (index in TYPE_ORDER) and landmark_index of `n_frames` frames, sliced
    from a cache that grows (one tuple swapped at once, so threads may share it)."""
    global _TILES
    cached = _TILES
    if cached[0] < n_frames:
        n = max(n_frames, 2 * cached[0], 256)
        cached = (n, np.tile(ROW_TYPE_CODES, n), np.tile(ROW_LANDMARK_INDEX, n))
        _TILES = cached
    rows = n_frames * N_ROWS
    return cached[1][:rows], cached[2][:rows]


def _column_numpy(path, table: pa.Table, name: str) -> np.ndarray:
    col = table.column(name)
    if col.null_count:
        r = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise GISLRDataError(f"{path}: column {name!r} has {col.null_count} missing value(s), "
                             f"first at row {r}")
    return col.chunk(0).to_numpy() if col.num_chunks == 1 else col.to_numpy()


_TYPE_DICTIONARY = pa.array(TYPE_ORDER)


def _type_codes(path, column: pa.ChunkedArray) -> np.ndarray:
    """Codes 0-3 (TYPE_ORDER) of a `type` column; a dictionary-encoded column (how the data
    path reads it) is decoded from its few dictionary values and its integer indices."""
    if column.null_count:
        raise GISLRDataError(f"{path}: column 'type' has {column.null_count} missing value(s)")
    chunks = column.chunks
    if len(chunks) == 1 and pa.types.is_dictionary(chunks[0].type):
        if chunks[0].dictionary.equals(_TYPE_DICTIONARY):      # the files' own order
            return chunks[0].indices.to_numpy()
        names = chunks[0].dictionary.to_pylist()
        codes = [TYPE_ORDER.index(v) if v in TYPE_ORDER else -1 for v in names]
        indices = chunks[0].indices.to_numpy()
        if codes == list(range(len(codes))):          # dictionary in file order: no remapping
            return indices
        return np.asarray(codes, np.int32)[indices]
    values = pc.cast(column, pa.string()).to_numpy(zero_copy_only=False)
    codes = np.full(len(values), -1, np.int32)
    for i, name in enumerate(TYPE_ORDER):
        codes[values == name] = i
    return codes


def _check_layout(path, table: pa.Table, n_frames: int) -> None:
    """Every 543-row block is one frame, frame numbers increase from block to block, and the
    rows of a block are face 0-467, left_hand 0-20, pose 0-32, right_hand 0-20 (type and
    landmark_index; not checked when `table` has no `type` column: see :func:`read_checked`).
    Raises GISLRDataError naming the file, the row and what is wrong."""
    frame = _column_numpy(path, table, "frame")
    blocks = frame.reshape(n_frames, N_ROWS)
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
    if "type" in table.column_names:
        _check_type_and_index(path, table, n_frames)


def _check_type_and_index(path, table: pa.Table, n_frames: int) -> None:
    expected_codes, expected_lmi = _tiles(n_frames)
    codes = _type_codes(path, table.column("type"))
    if not np.array_equal(codes, expected_codes):
        r = _first_mismatch(codes, expected_codes)
        found = pc.cast(table.column("type").slice(r, 1), pa.string())[0].as_py()
        raise GISLRDataError(f"{path}: landmark types out of order at row {r}: {found!r}, "
                             f"expected {str(ROW_TYPES[r % N_ROWS])!r}; expected {LAYOUT_RULE}")
    lmi = _column_numpy(path, table, "landmark_index")
    if not np.array_equal(lmi, expected_lmi):
        r = _first_mismatch(lmi, expected_lmi)
        raise GISLRDataError(f"{path}: landmark_index {lmi[r]} at row {r} ({ROW_TYPES[r % N_ROWS]}), "
                             f"expected {expected_lmi[r]}; expected {LAYOUT_RULE}")


def _xyz(table: pa.Table) -> np.ndarray:
    """x, y, z columns -> float32 ``[rows, 3]``, nulls as NaN."""
    n = table.num_rows
    out = np.empty((n, N_DIMS), dtype=np.float32)
    for i, name in enumerate(("x", "y", "z")):
        out[:, i] = table.column(name).to_numpy()
    return out


def check_finite(path, xyz: np.ndarray) -> None:
    """NaN marks a missing landmark; +-inf in `xyz` (``[rows, 3]``, rows in the file's order) is
    a GISLRDataError naming `path` (the file or the clip; None: no name), the number of such
    values and the first frame and landmark (``np.nan_to_num`` would make them 3.4e38)."""
    inf = np.isinf(xyz)
    if inf.any():
        rows = np.flatnonzero(inf.reshape(len(xyz), -1).any(axis=1))
        r = int(rows[0])
        frame, lm = divmod(r, N_ROWS)
        where = "" if path is None else f"{path}: "
        raise GISLRDataError(f"{where}{int(inf.sum())} infinite coordinate value(s), the first "
                             f"in frame #{frame}, landmark {lm} ({ROW_TYPES[lm]} "
                             f"{ROW_LANDMARK_INDEX[lm]}); coordinates must be finite or "
                             "missing (NaN/null)")


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
    landmark_index ascending), and infinite coordinates. ``row_id`` is not read (it repeats
    frame, type and index); :func:`validate_file` checks it too. Chapter 1 shows the array.
    """
    table, n_frames = read_checked(path)
    out = _xyz(table)
    check_finite(path, out)
    return out.reshape(n_frames, N_ROWS, N_DIMS)


# Column chunks of `type` and `landmark_index` (their bytes as stored: dictionary page and data
# pages) that decoded to the fixed layout. Decoding is a function of these bytes, so a file whose
# chunks are byte-identical to such a chunk has the fixed layout too, and its two columns need
# no decoding. The Kaggle files were all written alike: their chunks depend only on the number
# of frames (36 different pairs among the 84 files of the real sample), so nearly every file
# of a data set hits. Bounded; a miss costs one decode and check, as without it.
_GOOD_CHUNKS: dict[tuple, None] = {}
_GOOD_CHUNKS_MAX = 4096
_LAYOUT_COLUMNS = ("type", "landmark_index")


def _layout_chunks(path, pf, schema: pa.Schema) -> tuple | None:
    """The raw bytes of the `type` and `landmark_index` column chunks with their physical
    types and value counts (None for a file of several row groups: it is decoded)."""
    md = pf.metadata
    if md.num_row_groups != 1:
        return None
    rg = md.row_group(0)
    key = []
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        for name in _LAYOUT_COLUMNS:
            c = rg.column(schema.get_field_index(name))
            if c.path_in_schema != name:
                return None
            start = c.dictionary_page_offset if c.has_dictionary_page else c.data_page_offset
            key += [c.physical_type, c.num_values, os.pread(fd, c.total_compressed_size, start)]
    finally:
        os.close(fd)
    return tuple(key)


def read_checked(path) -> tuple[pa.Table, int]:
    """The columns of one landmark file that the data path needs, with its number of frames,
    after every check of :func:`load_frames` but the finiteness of x, y, z (checked on the
    converted values). The one reader of the data path: `load_frames`, and so
    `preprocessing.preprocess_files` and every chapter, start here.

    `frame`, x, y, z are always read and `frame` always checked. `type` and `landmark_index`
    are decoded and checked unless their stored bytes are identical to those of a file already
    found in order (see ``_GOOD_CHUNKS``); then the table has no `type` and `landmark_index`.
    """
    pf = _open_data_path(path)
    schema = pf.schema_arrow                 # built anew on every access: once
    _check_schema(path, schema, READ_COLUMNS)
    chunks = _layout_chunks(path, pf, schema)
    known = chunks is not None and chunks in _GOOD_CHUNKS
    columns = [c for c in READ_COLUMNS if not (known and c in _LAYOUT_COLUMNS)]
    try:
        table = pf.read(columns=columns, use_threads=False)
    except (ValueError, pa.ArrowException, OSError) as err:
        raise GISLRDataError(f"{path}: cannot read columns {columns} ({err})") from err
    n_frames = _check_rows(path, table.num_rows)
    _check_layout(path, table, n_frames)
    if chunks is not None and not known and len(_GOOD_CHUNKS) < _GOOD_CHUNKS_MAX:
        _GOOD_CHUNKS[chunks] = None          # checked above: in order
    return table, n_frames


def _first_mismatch(values: np.ndarray, expected: np.ndarray) -> int:
    return int(np.flatnonzero(values != expected)[0])


def read_table(path) -> pa.Table:
    """Read all seven columns of one landmark file after checking it completely (see
    :func:`validate_file`); chapter 1 shows the table (``read_table(path).to_pandas()``)."""
    pf = _open(path)
    _check_schema(path, pf.schema_arrow, COLUMNS)
    try:
        table = pf.read(columns=list(COLUMNS), use_threads=False)
    except (ValueError, pa.ArrowException, OSError) as err:
        raise GISLRDataError(f"{path}: cannot read columns {list(COLUMNS)} ({err})") from err
    n_frames = _check_rows(path, table.num_rows)
    _check_layout(path, table, n_frames)
    row_id = table.column("row_id")
    expected_row_id = pc.binary_join_element_wise(
        pc.cast(table.column("frame"), pa.string()), _layout(n_frames)["suffix"], "")
    if not _all_equal(pc.cast(row_id, pa.string()), expected_row_id):
        values = row_id.to_numpy(zero_copy_only=False)
        expected = expected_row_id.to_numpy(zero_copy_only=False)
        r = _first_mismatch(values, expected)
        raise GISLRDataError(f"{path}: row_id {values[r]!r} at row {r}, expected {expected[r]!r} "
                             f"(format '{{frame}}-{{type}}-{{landmark_index}}')")
    check_finite(path, _xyz(table))
    return table


def validate_file(path) -> int:
    """Check one landmark file completely; return its number of frames.

    The checks of :func:`load_frames` (columns and their types, empty file, rows a multiple of
    543, one frame per 543-row block, frames increasing, type and landmark_index order, finite
    coordinates) on all seven columns, plus ``row_id == f"{frame}-{type}-{landmark_index}"`` on
    every row. Raises :class:`GISLRDataError` naming the file, the row and the problem.
    """
    return read_table(path).num_rows // N_ROWS


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
    columns, non-integer ids, signs not in the map (with the csv line), a landmark file listed
    on more than one line (with the lines: a clip must not count twice) and listed landmark
    files that do not exist (how many, and the first ones) raise :class:`GISLRDataError`.
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
    same = pd.Series([os.path.normpath(p) for p in paths])
    dup = same.duplicated(keep=False).to_numpy()
    if dup.any():   # the same clip twice would count twice in training and validation
        lines = df.index.to_numpy()[dup] + 2            # csv line numbers (header is line 1)
        groups = pd.Series(lines).groupby(same[dup].to_numpy(), sort=False)
        shown = [f"{df['path'].loc[g.iloc[0] - 2]!r} on lines {', '.join(map(str, g))}"
                 for _, g in list(groups)[:3]]
        raise GISLRDataError(f"{csv}: {groups.ngroups} landmark file(s) listed more than once "
                             f"({int(dup.sum())} lines): {'; '.join(shown)}; remove the "
                             "duplicate lines")
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


SUMMARY_COLUMNS = ("n_frames", "left_hand_missing", "right_hand_missing", "dominant")


def compare_summaries(summaries: dict) -> pd.DataFrame:
    """Clip lengths and missing hands of several data sets side by side (chapter 2).

    `summaries` maps a name to :func:`clip_summary`'s table. One column per data set, rows:
    clips, median / mean / max frames, the mean share of frames without the dominant hand and
    without the other hand, and the share of left-dominant clips.
    """
    if not summaries:
        raise ValueError("summaries is empty")
    table = {}
    for name, s in summaries.items():
        missing = [c for c in SUMMARY_COLUMNS if c not in s]
        if missing:
            raise ValueError(f"summary {name!r} lacks column(s) {missing}; expected clip_summary's table")
        left = (s["dominant"] == "left").to_numpy()
        dominant = np.where(left, s["left_hand_missing"], s["right_hand_missing"])
        other = np.where(left, s["right_hand_missing"], s["left_hand_missing"])
        table[name] = {"clips": len(s), "median frames": s["n_frames"].median(),
                       "mean frames": s["n_frames"].mean(), "max frames": s["n_frames"].max(),
                       "frames without dominant hand": dominant.mean(),
                       "frames without other hand": other.mean(),
                       "left-dominant clips": left.mean()}
    return pd.DataFrame(table)
