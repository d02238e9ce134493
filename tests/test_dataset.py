"""Tests of gislr_utils.dataset: reading, validating and writing GISLR files."""
import io
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gislr_utils import config, dataset
from gislr_utils.dataset import (SCHEMA, GISLRDataError, clip_summary,
                                 landmark_table, load_frames, read_clips, read_table,
                                 validate_file, write_landmark_file)

REAL = config.REAL_SAMPLE_DIR            # 84 clips beside the repository (not on a user's clone)
needs_real = pytest.mark.skipif(not (REAL / "train.csv").exists(),
                                reason=f"real GISLR sample not found at {REAL}")
SHIPPED = config.real_sample_dir()      # 16 clips shipped in the package: these tests always run
SAMPLES = [pytest.param(SHIPPED, id="shipped"), pytest.param(REAL, id="shared84", marks=needs_real)]


def _frames(n=3, seed=0, missing_left=True):
    rng = np.random.default_rng(seed)
    f = rng.random((n, 543, 3)).astype(np.float32)
    if missing_left:
        f[:, 468:489] = np.nan
    return f


def _pandas_frames(path):
    """Independent reader: pandas, sorted as stored, NaN for nulls."""
    df = pd.read_parquet(path)
    return df[["x", "y", "z"]].to_numpy(dtype=np.float64).reshape(-1, 543, 3), df


# ------------------------------------------------------------------------------ real sample
@needs_real
def test_read_clips_real_sample():
    clips = read_clips(REAL)
    assert list(clips.columns) == ["path", "participant_id", "sequence_id", "sign", "label"]
    assert len(clips) == 84
    assert clips["participant_id"].nunique() == 21
    assert set(clips["sign"]) == {"hello", "thankyou"}
    assert dict(clips.groupby("sign")["label"].first()) == {"hello": 113, "thankyou": 214}
    assert clips["participant_id"].dtype == np.int64 and clips["label"].dtype == np.int64
    # Order and values are train.csv's; paths are absolute and exist.
    csv = pd.read_csv(REAL / "train.csv")
    assert clips["sequence_id"].tolist() == csv["sequence_id"].tolist()
    assert all(p.startswith("/") for p in clips["path"])
    assert clips["path"].iloc[0].endswith(csv["path"].iloc[0])
    assert (clips["sign"] == "hello").sum() == 42


@pytest.mark.parametrize("sample", SAMPLES)
def test_load_frames_matches_pandas(sample):
    clips = read_clips(sample)
    for path in clips["path"].iloc[:4]:
        frames = load_frames(path)
        expected, df = _pandas_frames(path)
        assert frames.dtype == np.float32
        assert frames.shape == (df["frame"].nunique(), 543, 3)
        np.testing.assert_array_equal(frames, expected.astype(np.float32))
        assert np.isnan(frames).sum() == df[["x", "y", "z"]].isna().to_numpy().sum()
        assert not np.isnan(frames[:, :468]).any()          # face always present in the sample


@pytest.mark.parametrize("sample", SAMPLES)
def test_validate_real_files(sample):
    for path in read_clips(sample)["path"]:
        assert validate_file(path) == load_frames(path).shape[0]


@pytest.mark.parametrize("sample", SAMPLES)
def test_write_reproduces_real_file_exactly(tmp_path, sample):
    path = read_clips(sample)["path"].iloc[0]
    real = pq.read_table(path)
    first = real.column("frame")[0].as_py()
    out = write_landmark_file(tmp_path / "copy.parquet", load_frames(path), first_frame=first)
    copy = pq.read_table(out)
    assert copy.schema.remove_metadata() == real.schema.remove_metadata() == SCHEMA
    assert copy.equals(real.replace_schema_metadata(None))   # every value, null and row id
    assert copy.column("x").null_count == real.column("x").null_count > 0


def test_shipped_sample_is_small_varied_and_the_original_files():
    import hashlib
    files = sorted(SHIPPED.glob("train_landmark_files/*/*.parquet"))
    assert len(files) == 16
    assert sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file()) <= 6_000_000
    # byte for byte the files listed in SHA256SUMS (and, where ../shared is present, the originals)
    sums = dict(line.split()[::-1] for line in (SHIPPED / "SHA256SUMS").read_text().splitlines())
    assert sorted(sums) == sorted(str(f.relative_to(SHIPPED)) for f in files)
    for f in files:
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        assert digest == sums[str(f.relative_to(SHIPPED))], f
        original = REAL / f.relative_to(SHIPPED)
        if original.exists():
            assert original.read_bytes() == f.read_bytes(), f
    assert (SHIPPED / "sign_to_prediction_index_map.json").read_bytes() == \
        (SHIPPED.parent / "sign_to_prediction_index_map.json").read_bytes()   # the competition's map
    # train.csv lists exactly these files, with the competition's rows
    csv = pd.read_csv(SHIPPED / "train.csv")
    assert list(csv.columns) == ["path", "participant_id", "sequence_id", "sign"]
    assert sorted(csv["path"]) == sorted(str(f.relative_to(SHIPPED)) for f in files)
    if (REAL / "train.csv").exists():
        full = pd.read_csv(REAL / "train.csv").set_index("path")
        pd.testing.assert_frame_equal(csv.set_index("path"), full.loc[csv["path"]])
    # what the sample must cover
    s = clip_summary(read_clips(SHIPPED))
    assert s["sign"].value_counts().to_dict() == {"hello": 8, "thankyou": 8}
    assert s["participant_id"].nunique() >= 6
    assert set(s["dominant"]) == {"left", "right"}
    hand_missing = np.where(s["dominant"] == "left", s["left_hand_missing"], s["right_hand_missing"])
    hand_frames = np.rint(s["n_frames"] * (1 - hand_missing))
    assert s["n_frames"].min() <= 6 and hand_frames.max() > 64      # padded and pooled clips
    text = (SHIPPED / "ATTRIBUTION.md").read_text()
    for words in ("CC BY 4.0", "PopSign ASL v1.0", "Deaf Professional Arts Network",
                  "Georgia Institute of Technology", "asl-signs"):
        assert words in text


def test_read_clips_shipped_sample():
    clips = read_clips(SHIPPED)
    assert list(clips.columns) == ["path", "participant_id", "sequence_id", "sign", "label"]
    assert len(clips) == 16 and clips["participant_id"].nunique() == 12
    assert dict(clips.groupby("sign")["label"].first()) == {"hello": 113, "thankyou": 214}
    assert clips["participant_id"].dtype == np.int64 and clips["label"].dtype == np.int64
    csv = pd.read_csv(SHIPPED / "train.csv")
    assert clips["sequence_id"].tolist() == csv["sequence_id"].tolist()
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in clips["path"])
    assert clips["path"].iloc[0].endswith(csv["path"].iloc[0])
    assert (clips["sign"] == "hello").sum() == 8
    s = clip_summary(clips)
    for row in s.itertuples():                 # independent count with pandas, every clip
        df = pd.read_parquet(row.path, columns=["frame", "type", "x"])
        n = df.groupby("type")["x"].count()
        assert row.n_frames == df["frame"].nunique()
        assert row.dominant == ("left" if n["left_hand"] >= n["right_hand"] else "right")
        frames_with = df[df["type"] == "left_hand"].x.notna().to_numpy().reshape(-1, 21).any(1)
        assert row.left_hand_missing == pytest.approx(1 - frames_with.mean())
        hand = df[df["type"] == f"{row.dominant}_hand"].x.notna().to_numpy().reshape(-1, 21)
        assert row.n_hand_frames == hand.any(1).sum()
    assert s["dominant"].value_counts().to_dict() == {"right": 9, "left": 7}


@needs_real
def test_clip_summary_real_sample():
    clips = read_clips(REAL)
    s = clip_summary(clips)
    assert len(s) == 84 and (s["n_frames"] > 0).all()
    # Independent count: non-null x per hand type with pandas.
    for row in s.iloc[:10].itertuples():
        df = pd.read_parquet(row.path, columns=["type", "x"])
        n = df.groupby("type")["x"].count()
        assert row.dominant == ("left" if n["left_hand"] >= n["right_hand"] else "right")
        frames_with = df[df["type"] == "left_hand"].x.notna().to_numpy().reshape(-1, 21).any(1)
        assert row.left_hand_missing == pytest.approx(1 - frames_with.mean())
        hand = df[df["type"] == f"{row.dominant}_hand"].x.notna().to_numpy().reshape(-1, 21)
        assert row.n_hand_frames == hand.any(1).sum()
    assert s["dominant"].value_counts().to_dict() == {"right": 51, "left": 33}


# ------------------------------------------------------------------------------ writing
def test_write_is_deterministic_and_readable(tmp_path):
    f = _frames(5)
    a = write_landmark_file(tmp_path / "a.parquet", f, first_frame=17)
    time.sleep(1.1)                                   # a stored timestamp would now differ
    b = write_landmark_file(tmp_path / "b.parquet", f, first_frame=17)
    assert a.read_bytes() == b.read_bytes()
    np.testing.assert_array_equal(load_frames(a), f)
    df = pd.read_parquet(a)
    assert df["frame"].tolist()[:1] == [17] and df["frame"].iloc[-1] == 21
    expected = df["frame"].astype(str) + "-" + df["type"] + "-" + df["landmark_index"].astype(str)
    assert (df["row_id"] == expected).all()
    assert df["type"].iloc[:543].value_counts().to_dict() == {
        "face": 468, "pose": 33, "left_hand": 21, "right_hand": 21}
    assert validate_file(a) == 5
    c = write_landmark_file(tmp_path / "c.parquet", f, first_frame=2000)  # beyond the row-id cache
    assert validate_file(c) == 5
    with pytest.raises(ValueError, match="shape"):
        write_landmark_file(tmp_path / "d.parquet", f[:, :500])


# ------------------------------------------------------------------------------ bad files
def _write_table(path, table):
    pq.write_table(table, path)
    return path


def _bad(tmp_path, name, table):
    return _write_table(tmp_path / f"{name}.parquet", table)


def test_bad_landmark_files(tmp_path):
    good = landmark_table(_frames(2))
    cases = {}
    cases["rows"] = (good.slice(0, 1000), "not a multiple of 543")
    cases["empty"] = (good.slice(0, 0), "empty file")
    cases["nocol"] = (good.drop_columns(["z", "row_id"]), r"missing column\(s\) \['row_id', 'z'\]")
    types = good.column("type").to_pylist()
    types[468], types[489] = types[489], types[468]
    cases["order"] = (good.set_column(2, "type", pa.array(types)), "types out of order at row 468")
    lmi = good.column("landmark_index").to_numpy().copy()
    lmi[5] = 7
    cases["lmi"] = (good.set_column(3, "landmark_index", pa.array(lmi)), "landmark_index 7 at row 5")
    rid = good.column("row_id").to_pylist()
    rid[600] = "1-face-999"
    cases["rowid"] = (good.set_column(1, "row_id", pa.array(rid)), "row_id '1-face-999' at row 600")
    frame = good.column("frame").to_numpy().copy()
    frame[700] = 5
    cases["frame"] = (good.set_column(0, "frame", pa.array(frame)), "frame number changes")
    x = good.set_column(4, "x", pa.array(good.column("x").to_numpy(zero_copy_only=False).astype(str)))
    cases["xtype"] = (x, "column 'x' has type string")
    for name, (table, message) in cases.items():
        path = _bad(tmp_path, name, table)
        with pytest.raises(GISLRDataError, match=message) as err:
            validate_file(path)
        assert str(path) in str(err.value), name
    for name in ("rows", "empty", "order", "lmi", "frame", "xtype"):   # the data path too
        with pytest.raises(GISLRDataError, match=cases[name][1]) as err:
            load_frames(tmp_path / f"{name}.parquet")
        assert f"{name}.parquet" in str(err.value)
    with pytest.raises(GISLRDataError, match="nocol.parquet"):
        load_frames(tmp_path / "nocol.parquet")
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(GISLRDataError, match="text.parquet"):
        validate_file(tmp_path / "text.parquet")
    with pytest.raises(FileNotFoundError, match="absent.parquet"):
        load_frames(tmp_path / "absent.parquet")
    with pytest.raises(FileNotFoundError, match="absent.parquet"):
        validate_file(tmp_path / "absent.parquet")


# ------------------------------------------------------------------------------ broken real files
def _real_table():
    """A genuine file of the shipped sample (125 frames, 18796/1420920309)."""
    return pq.read_table(SHIPPED / "train_landmark_files" / "18796" / "1420920309.parquet")


def _rows(table, order):
    return table.take(pa.array(np.asarray(order, dtype=np.int64)))


def _expect_error(path, message):
    """load_frames (every chapter's reader), read_table (chapter 1's table) and validate_file
    all refuse the file with the same message, naming it."""
    for fn in (load_frames, read_table, validate_file):
        with pytest.raises(GISLRDataError, match=message) as err:
            fn(path)
        assert str(path) in str(err.value), fn.__name__


def test_rows_out_of_order_within_a_frame_are_refused(tmp_path):
    """Issue 9.2: a real file whose rows are permuted inside a frame was read as if in order."""
    table = _real_table()
    n = table.num_rows
    order = np.arange(n)
    order[543 + 470], order[543 + 471] = order[543 + 471], order[543 + 470]   # two hand rows
    path = _write_table(tmp_path / "swapped.parquet", _rows(table, order))
    _expect_error(path, r"landmark_index 3 at row 1013 \(left_hand\), expected 2")
    # whole pose block before the left hand in frame 0 (types out of order)
    order = np.arange(n)
    order[468:543] = np.r_[489:522, 468:489, 522:543]
    path = _write_table(tmp_path / "types.parquet", _rows(table, order))
    _expect_error(path, "landmark types out of order at row 468: 'pose', expected 'left_hand'")
    # sorted by row_id (a plausible edit): text order puts frame 11 after 109, and "face-10"
    # before "face-2" inside a frame
    path = _write_table(tmp_path / "sorted.parquet", table.sort_by("row_id"))
    _expect_error(path, r"frame 11 at rows 7059-7601 comes after frame 109 \(frames out of order")
    path = _write_table(tmp_path / "sorted2.parquet",
                        table.sort_by([("frame", "ascending"), ("row_id", "ascending")]))
    _expect_error(path, r"landmark_index 10 at row 2 \(face\), expected 2")
    # a frame with a row missing and one of the next frame's rows in its block
    path = _write_table(tmp_path / "shifted.parquet", _rows(table, np.r_[1:n, 0]))
    _expect_error(path, "frame number changes inside the 543-row block of frame #0")


def test_frames_out_of_order_or_repeated_are_refused(tmp_path):
    """Issue 9.3: frames out of order are an error naming the file (never re-sorted)."""
    table = _real_table()
    n_frames = table.num_rows // 543
    frames = table.column("frame").to_numpy()[::543]
    blocks = np.arange(n_frames)
    blocks[[1, 2]] = blocks[[2, 1]]
    order = (blocks[:, None] * 543 + np.arange(543)).ravel()
    path = _write_table(tmp_path / "frames.parquet", _rows(table, order))
    _expect_error(path, f"frame {frames[1]} at rows 1086-1628 comes after frame {frames[2]} "
                        r"\(frames out of order\)")
    order = np.r_[np.arange(2 * 543), np.arange(543, table.num_rows)]         # frame 1 twice
    path = _write_table(tmp_path / "twice.parquet", _rows(table, order))
    _expect_error(path, rf"frame {frames[1]} at rows 1086-1628 appears twice \(duplicate rows\)")


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_coordinates_are_refused(tmp_path, value):
    """Issue 9.4: inf became 3.4e38 (nan_to_num) and then statistics of 1e36."""
    table = _real_table()
    y = table.column("y").to_numpy(zero_copy_only=False).copy()
    y[[600, 700]] = value
    path = _write_table(tmp_path / "inf.parquet",
                        table.set_column(5, "y", pa.array(y, from_pandas=True)))
    _expect_error(path, r"2 infinite coordinate value\(s\), the first in frame #1, landmark 57 "
                        r"\(face 57\)")


def _real_with(tmp_path, name, *changes):
    """The genuine file with `(column, rows, value)` changes, written as `name`."""
    table = _real_table()
    for column, rows, value in changes:
        v = table.column(column).to_numpy(zero_copy_only=False).copy()
        v[rows] = value
        table = table.set_column(table.column_names.index(column), column, pa.array(v, from_pandas=True))
    return _write_table(tmp_path / name, table)


@pytest.mark.parametrize("value", [1e19, -1e19, 1e300, 1000.5])
def test_coordinates_beyond_the_bound_are_refused(tmp_path, value):
    """Issue 19: x = 1e19 on two landmarks of a real clip made every probability NaN, and 1e300
    in a float64 file was reported as an infinite value (float32 makes inf of it)."""
    path = _real_with(tmp_path, "big.parquet", ("x", [600, 700], value))
    _expect_error(path, rf"2 coordinate value\(s\) beyond \+-1000 \(too large\), the first in frame #1, "
                        rf"landmark 57 \(face 57\): {re.escape(f'{value:g}')}; "
                        r"coordinates must be finite and within \+-1000 \(MediaPipe's normalised image "
                        r"coordinates; the largest \|value\| in 84 real GISLR clips is 3.85\)")
    with pytest.raises(GISLRDataError) as err:
        load_frames(path)
    assert "infinite" not in str(err.value)
    # inf and a large value: the infinite one is reported (as before)
    path = _real_with(tmp_path, "both.parquet", ("z", [543 * 3], np.inf), ("x", [5], value))
    _expect_error(path, r"1 infinite coordinate value\(s\), the first in frame #3, landmark 0 \(face 0\): inf")


def test_coordinates_at_the_bound_are_accepted(tmp_path):
    """A real clip with values at +-1000 (the bound) reads, validates and preprocesses to finite arrays."""
    from gislr_utils.preprocessing import preprocess
    path = _real_with(tmp_path, "bound.parquet", *[(c, [10 + i, 543 * 5 + 500], v)    # face and pose landmarks
                                                    for i, (c, v) in enumerate((("x", 1e3), ("y", -1e3), ("z", 1e3)))])
    frames = load_frames(path)
    assert np.abs(np.nan_to_num(frames)).max() == 1000.0
    assert validate_file(path) == len(frames)
    x, idx = preprocess(frames)
    assert np.isfinite(x).all() and np.abs(x).max() <= 1000 and np.isfinite(idx).all()


def test_every_file_is_decoded_and_checked_also_after_an_identical_one(tmp_path):
    """No memo of files found good: a file whose layout columns are byte-identical to a good
    file's is still checked in full (frames out of order, rows swapped inside a frame)."""
    good = landmark_table(_frames(3))
    a = _write_table(tmp_path / "a.parquet", good)
    b = _write_table(tmp_path / "b.parquet", good)
    np.testing.assert_array_equal(load_frames(b), load_frames(a))
    swapped = good.take(pa.array(np.r_[543:1086, 0:543, 1086:1629]))
    c = _write_table(tmp_path / "c.parquet", swapped)
    with pytest.raises(GISLRDataError, match="c.parquet: frame 0 .* comes after frame 1"):
        load_frames(c)
    rows = np.arange(1629)
    rows[[600, 601]] = rows[[601, 600]]
    d = _write_table(tmp_path / "d.parquet", good.take(pa.array(rows)))
    for _ in range(2):
        with pytest.raises(GISLRDataError, match="d.parquet: landmark_index 58 at row 600"):
            load_frames(d)
    # several row groups (chunked columns) read and checked the same way
    e = tmp_path / "e.parquet"
    pq.write_table(good, e, row_group_size=700)
    assert pq.ParquetFile(e).metadata.num_row_groups == 3
    np.testing.assert_array_equal(load_frames(e), load_frames(a))
    assert validate_file(e) == 3


def test_missing_type_column_is_a_data_error(tmp_path):
    """Issue 9.8: chapter 1 read a file without `type` with pandas (bare KeyError: 'type')."""
    path = _bad(tmp_path, "notype", landmark_table(_frames(2)).drop_columns(["type"]))
    _expect_error(path, r"missing column\(s\) \['type'\]")
    path = _bad(tmp_path, "intframe", landmark_table(_frames(2)).set_column(
        0, "frame", pa.array(np.repeat([1.5, 2.5], 543))))
    _expect_error(path, "column 'frame' has type double")


def test_read_table_is_pandas_table_of_a_good_file():
    path = sorted((SHIPPED / "train_landmark_files").glob("*/*.parquet"))[3]
    pd.testing.assert_frame_equal(read_table(path).to_pandas(), pd.read_parquet(path))


# ------------------------------------------------------------------------------ bad directories
def _data_dir(tmp_path, n=3):
    d = tmp_path / "data"
    rows = []
    for i in range(n):
        rel = f"train_landmark_files/100/{i + 1}.parquet"
        write_landmark_file(d / rel, _frames(2, seed=i))
        rows.append((rel, 100, i + 1, ["hello", "thankyou"][i % 2]))
    pd.DataFrame(rows, columns=["path", "participant_id", "sequence_id", "sign"]).to_csv(
        d / "train.csv", index=False)
    (d / "sign_to_prediction_index_map.json").write_text(json.dumps(config.SIGN_TO_INDEX))
    return d


def test_read_clips_small_dir(tmp_path):
    d = _data_dir(tmp_path)
    clips = read_clips(d)
    assert clips["label"].tolist() == [113, 214, 113]
    assert clips["sequence_id"].tolist() == [1, 2, 3]


def test_read_clips_errors(tmp_path):
    d = _data_dir(tmp_path)
    csv = d / "train.csv"
    good = csv.read_text()
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_clips(tmp_path / "nowhere")

    (d / "sign_to_prediction_index_map.json").rename(d / "map.bak")
    with pytest.raises(FileNotFoundError, match="sign_to_prediction_index_map.json"):
        read_clips(d)
    (d / "map.bak").rename(d / "sign_to_prediction_index_map.json")

    csv.rename(d / "train.bak")
    with pytest.raises(FileNotFoundError, match="train.csv"):
        read_clips(d)
    (d / "train.bak").rename(csv)

    pd.read_csv(csv).drop(columns=["sign"]).to_csv(csv, index=False)
    with pytest.raises(GISLRDataError, match=r"train.csv: missing column\(s\) \['sign'\]"):
        read_clips(d)

    df = pd.read_csv(io.StringIO(good))
    df.loc[1, "sign"] = "unicorn"
    df.to_csv(csv, index=False)
    with pytest.raises(GISLRDataError, match="sign 'unicorn' on line 3 is not in"):
        read_clips(d)

    lines = good.splitlines()
    lines[3] = lines[3].replace(",100,", ",abc,")
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(GISLRDataError, match="participant_id.*line 4"):
        read_clips(d)

    csv.write_text(good)
    (d / "train_landmark_files/100/2.parquet").unlink()
    (d / "train_landmark_files/100/3.parquet").unlink()
    with pytest.raises(GISLRDataError, match=r"2 of 3 listed landmark file\(s\) not found.*100/2.parquet"):
        read_clips(d)

    df = pd.read_csv(io.StringIO(good))                      # issue 9.5: same file twice
    df = pd.concat([df, df.iloc[[0]], df.iloc[[2]].assign(path="./" + df["path"].iloc[2])])
    df.to_csv(csv, index=False)
    with pytest.raises(GISLRDataError, match=r"train.csv: 2 landmark file\(s\) listed more than "
                       r"once \(4 lines\): 'train_landmark_files/100/1.parquet' on lines 2, 5; "):
        read_clips(d)

    shutil.rmtree(d)
    d = _data_dir(tmp_path)
    (d / "sign_to_prediction_index_map.json").write_text(json.dumps({"a": 0, "b": 2}))
    with pytest.raises(GISLRDataError, match="'a' -> 0, the competition's map has no sign 'a'"):
        read_clips(d)


def test_sign_map_must_be_the_competitions(tmp_path):
    """Issue 19: the book promises the competition's map; a map of its own was accepted (and its
    indices used as labels). train.csv may still use any subset of the 250 signs."""
    d = _data_dir(tmp_path)
    path = d / "sign_to_prediction_index_map.json"
    full = config.SIGN_TO_INDEX
    shifted = {s: (i + 1) % 250 for s, i in full.items()}
    cases = [({"hello": 0, "thankyou": 1}, "'hello' -> 0, the competition's map has 'hello' -> 113"),
             (shifted, "'TV' -> 1, the competition's map has 'TV' -> 0"),
             ({**full, "hello": "113"}, "'hello' -> '113', the competition's map has 'hello' -> 113"),
             ({**full, "TV": False}, "'TV' -> False, the competition's map has 'TV' -> 0"),
             ({s: i for s, i in full.items() if s != "zipper"},
              r"1 sign\(s\) of the competition's map missing, the first 'zipper' -> 249"),
             ({**full, "unicorn": 250}, "'unicorn' -> 250, the competition's map has no sign 'unicorn'"),
             ([0, 1], "expected a JSON object")]
    for sign_map, message in cases:
        path.write_text(json.dumps(sign_map))
        for read in (dataset.read_sign_map, read_clips):
            with pytest.raises(GISLRDataError, match=message) as err:
                read(d)
            assert str(err.value).startswith(f"{path}: ")
    path.write_text(json.dumps(dict(reversed(list(full.items())))))        # any order of the keys
    assert dataset.read_sign_map(d) == full
    assert read_clips(d)["label"].tolist() == [113, 214, 113]


def test_ids_must_be_integers_within_int64(tmp_path):
    """Issue 19: a float participant_id (30680.0, 1e3) or one beyond int64 ended in
    `IndexError: index 0 is out of bounds`; now the file, the line and the column are named."""
    d = _data_dir(tmp_path)
    csv = d / "train.csv"
    good = csv.read_text().splitlines()
    for col, value in [("participant_id", "30680.0"), ("participant_id", "1e3"), ("sequence_id", "2.5"),
                       ("participant_id", "9223372036854775808"), ("sequence_id", "-9223372036854775809"),
                       ("participant_id", ""), ("sequence_id", "abc")]:
        lines = list(good)
        fields = lines[3].split(",")
        fields[1 if col == "participant_id" else 2] = value
        lines[3] = ",".join(fields)
        csv.write_text("\n".join(lines) + "\n")
        with pytest.raises(GISLRDataError, match=rf"^{re.escape(str(csv))}: column '{col}' must hold integers "
                                                 rf"within int64; line 4 has") as err:
            read_clips(d)
        assert repr(value) in str(err.value) or (value == "" and "nan" in str(err.value))
    lines = list(good)
    big = "9223372036854775807"                                              # the largest int64 is fine
    lines[3] = lines[3].replace(",100,", f",{big},").replace("/100/", f"/{big}/")   # its own folder
    shutil.copytree(d / "train_landmark_files/100", d / f"train_landmark_files/{big}")
    csv.write_text("\n".join(lines) + "\n")
    assert read_clips(d)["participant_id"].tolist() == [100, 100, 2 ** 63 - 1]


def test_the_same_file_through_a_symlink_is_listed_twice(tmp_path):
    """Issue 19: two train.csv lines whose files are one file through a symlink were accepted
    (the clip counted twice); resolved paths are compared and both lines named."""
    d = _data_dir(tmp_path)
    os.symlink(d / "train_landmark_files/100/1.parquet", d / "train_landmark_files/100/9.parquet")
    os.symlink(d / "train_landmark_files/100", d / "train_landmark_files/linked")        # a linked folder
    df = pd.read_csv(d / "train.csv")
    extra = df.iloc[[0, 2]].assign(path=["train_landmark_files/100/9.parquet",
                                         "train_landmark_files/linked/3.parquet"], sequence_id=[9, 10])
    pd.concat([df, extra]).to_csv(d / "train.csv", index=False)
    with pytest.raises(GISLRDataError, match=(
            r"train.csv: 2 landmark file\(s\) listed more than once \(4 lines\): "
            r"'train_landmark_files/100/1.parquet' on lines 2, 5 \(one file, also listed as "
            r"'train_landmark_files/100/9.parquet'\); 'train_landmark_files/100/3.parquet' on lines 4, 6 "
            r"\(one file, also listed as 'train_landmark_files/linked/3.parquet'\)")):
        read_clips(d)
    df.to_csv(d / "train.csv", index=False)
    assert len(read_clips(d)) == 3


def test_ids_must_match_the_kaggle_path(tmp_path):
    """Issue 26: a train.csv line whose participant_id is not the participant folder of its path
    (train_landmark_files/<participant_id>/<sequence_id>.parquet) put one signer on both sides
    of the split by participant, without a word; now refused, naming train.csv and the lines.
    The sequence_id is checked against the file name too; paths of another layout are not."""
    d = _data_dir(tmp_path, n=4)
    csv = d / "train.csv"
    good = pd.read_csv(csv)
    for col, rows, value in [("participant_id", [1, 3], 2044), ("sequence_id", [2], 7)]:
        bad = good.assign(**{col: good[col].where(~good.index.isin(rows), value)})
        bad.to_csv(csv, index=False)
        with pytest.raises(GISLRDataError) as err:
            read_clips(d)
        message = str(err.value)
        assert message.startswith(f"{csv}: {len(rows)} line(s) disagree with the participant folder or "
                                  "file name of their path")
        lines = [f"line {r + 2} has participant_id {bad.participant_id[r]} and sequence_id "
                 f"{bad.sequence_id[r]} but path '{bad.path[r]}'" for r in rows]
        assert all(line in message for line in lines) and f"{col} {value}" in lines[0]
    # the same file written another way is checked the same way; another layout is not checked
    odd = good.assign(path=good.path.where(good.index != 0, "./" + good.path[0]))
    odd.assign(participant_id=odd.participant_id.where(odd.index != 0, 5)).to_csv(csv, index=False)
    with pytest.raises(GISLRDataError, match="line 2 has participant_id 5 .* but path "
                                             "'./train_landmark_files/100/1.parquet'"):
        read_clips(d)
    shutil.copytree(d / "train_landmark_files" / "100", d / "clips")
    good.assign(path=good.path.str.replace("train_landmark_files/100", "clips"),
                participant_id=[1, 1, 2, 2]).to_csv(csv, index=False)
    assert read_clips(d).participant_id.tolist() == [1, 1, 2, 2]
    good.to_csv(csv, index=False)
    assert read_clips(d).participant_id.tolist() == [100] * 4


def test_a_column_name_twice_is_a_data_error(tmp_path):
    """Issue 26: a parquet file with a second column named x gave `KeyError: 'Column x does not
    exist in schema'` on chapter 1's and 2's path (read_table, load_frames) with no file named;
    now every reader names the file and the column, also the preparation of a data set."""
    from gislr_utils import preprocessing
    good = landmark_table(_frames(2))
    for name in ("x", "type"):
        path = _write_table(tmp_path / f"twice_{name}.parquet", good.append_column(name, good.column(name)))
        for read in (load_frames, read_table, validate_file,
                     lambda p: preprocessing.preprocess_files([p], progress=False)):
            with pytest.raises(GISLRDataError, match=rf"^{re.escape(str(path))}: column\(s\) \['{name}'\] "
                                                     "appear more than once"):
                read(path)
    extra = _write_table(tmp_path / "extra.parquet", good.append_column("note", good.column("x"))
                         .append_column("note", good.column("y")))
    np.testing.assert_array_equal(load_frames(extra), load_frames(_write_table(tmp_path / "g.parquet", good)))


def test_summary_and_pick_example_on_clips_without_hand_or_gaps(tmp_path):
    """What chapters 1 and 2 check before they draw a hand or a frame without it (issue 26):
    clip_summary's counts on 1-frame clips (no frame can lose the hand) and on a clip without
    any hand, and pick_example, which takes a clip showing a hand whenever there is one and a
    clip without (no_hand True) only when no clip shows a hand."""
    d = tmp_path / "data"
    right_only, no_hand, left_only = _frames(1, seed=1), _frames(3, seed=2), _frames(1, seed=3)
    right_only[:, 468:489] = np.nan
    no_hand[:, 468:489] = no_hand[:, 522:543] = np.nan
    left_only[:, 522:543] = np.nan
    left_only[:, 468:489] = 0.5
    rows = []
    for seq, frames in [(1, right_only), (2, no_hand), (3, left_only)]:
        rel = f"train_landmark_files/100/{seq}.parquet"
        write_landmark_file(d / rel, frames)
        rows.append((rel, 100, seq, "hello"))
    pd.DataFrame(rows, columns=["path", "participant_id", "sequence_id", "sign"]).to_csv(
        d / "train.csv", index=False)
    (d / "sign_to_prediction_index_map.json").write_text(json.dumps(config.SIGN_TO_INDEX))
    summary = clip_summary(read_clips(d)).set_index("sequence_id")
    assert summary.n_frames.tolist() == [1, 3, 1]
    assert summary.n_hand_frames.tolist() == [1, 0, 1]
    assert summary.no_hand.tolist() == [False, True, False]
    assert summary.dominant.tolist() == ["right", "left", "left"]       # no hand: a tie, left
    assert summary.left_hand_missing.tolist() == [1.0, 1.0, 0.0]
    assert summary.right_hand_missing.tolist() == [0.0, 1.0, 1.0]
    summary = summary.reset_index()
    assert dataset.pick_example(summary).sequence_id == 1                # length 1 = median; ties by id
    assert dataset.pick_example(summary, dominant="left").sequence_id == 3
    only = dataset.pick_example(summary[summary.no_hand])
    assert only.sequence_id == 2 and only.no_hand
    with pytest.raises(ValueError, match="empty"):
        dataset.pick_example(summary.iloc[:0])
