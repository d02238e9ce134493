"""Tests of gislr_utils.dataset: reading, validating and writing GISLR files."""
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gislr_utils import config
from gislr_utils.dataset import (SCHEMA, GISLRDataError, clip_summary,
                                 landmark_table, load_frames, read_clips, validate_file,
                                 write_landmark_file)

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
    hello = read_clips(REAL, signs=["hello"])
    assert len(hello) == 42 and set(hello["sign"]) == {"hello"}
    with pytest.raises(ValueError, match="notasign"):
        read_clips(REAL, signs=["notasign"])
    with pytest.raises(GISLRDataError, match="zipper"):        # in the map, but no clips
        read_clips(REAL, signs=["hello", "zipper"])


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
    assert len(clips) == 16 and clips["participant_id"].nunique() == 12
    assert dict(clips.groupby("sign")["label"].first()) == {"hello": 113, "thankyou": 214}
    csv = pd.read_csv(SHIPPED / "train.csv")
    assert clips["sequence_id"].tolist() == csv["sequence_id"].tolist()
    assert all(Path(p).is_file() for p in clips["path"])
    hello = read_clips(SHIPPED, signs=["hello"])
    assert len(hello) == 8 and set(hello["sign"]) == {"hello"}
    with pytest.raises(GISLRDataError, match="zipper"):        # in the map, but no clips
        read_clips(SHIPPED, signs=["hello", "zipper"])
    s = clip_summary(clips)
    for row in s.itertuples():                 # independent count with pandas, every clip
        df = pd.read_parquet(row.path, columns=["frame", "type", "x"])
        n = df.groupby("type")["x"].count()
        assert row.n_frames == df["frame"].nunique()
        assert row.dominant == ("left" if n["left_hand"] >= n["right_hand"] else "right")
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
    for name in ("rows", "empty"):
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

    shutil.rmtree(d)
    d = _data_dir(tmp_path)
    (d / "sign_to_prediction_index_map.json").write_text(json.dumps({"a": 0, "b": 2}))
    with pytest.raises(GISLRDataError, match="indices must be 0..1"):
        read_clips(d)
