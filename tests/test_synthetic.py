"""Tests of gislr_utils.synthetic: the generated set is real GISLR format, varied and deterministic."""
import hashlib
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from gislr_utils import config, runs, synthetic
from gislr_utils.landmarks import LIPS_IDXS0, N_DIMS
from gislr_utils.dataset import (SCHEMA, clip_summary, load_frames, read_clips,
                                 validate_file)

SHIPPED = config.real_sample_dir()      # the 16 genuine clips shipped in the package: always present


# The synthetic set's realism check: summary statistics per landmark group (NaN ignored).
LANDMARK_GROUPS = {
    "face": np.arange(0, 468),
    "lips": LIPS_IDXS0,
    "left_hand": np.arange(468, 489),
    "pose": np.arange(489, 522),
    "right_hand": np.arange(522, 543),
}


def landmark_stats(clips: pd.DataFrame, max_clips: int | None = None) -> pd.DataFrame:
    """Mean, std, 5% and 95% quantiles of x, y, z per landmark group (face, lips, left_hand, pose,
    right_hand) over all frames of `clips` (NaN ignored), with the fraction of missing values."""
    groups = LANDMARK_GROUPS
    paths = clips["path"].tolist()[:max_clips]
    if not paths:
        raise ValueError("landmark_stats needs at least one clip")
    data = np.concatenate([load_frames(p) for p in paths]).astype(np.float64)
    rows = []
    for name, idx in groups.items():
        v = data[:, idx].reshape(-1, N_DIMS)
        missing = float(np.isnan(v[:, 0]).mean())
        for d, dim in enumerate(("x", "y", "z")):
            col = v[:, d]
            col = col[~np.isnan(col)]
            q = np.quantile(col, [0.05, 0.95]) if col.size else (np.nan, np.nan)
            rows.append({"group": name, "dim": dim, "mean": col.mean() if col.size else np.nan,
                         "std": col.std() if col.size else np.nan, "q05": q[0], "q95": q[1],
                         "missing": missing})
    return pd.DataFrame(rows)


def test_landmark_stats_helper_on_the_real_sample():
    clips = read_clips(SHIPPED)
    stats = landmark_stats(clips, max_clips=5).set_index(["group", "dim"])
    sub = np.concatenate([load_frames(p) for p in clips["path"].iloc[:5]]).astype(np.float64)
    assert stats.loc[("face", "x"), "mean"] == pytest.approx(sub[:, :468, 0].mean())
    assert stats.loc[("face", "x"), "missing"] == 0
SMALL = dict(n_signs=8, n_participants=10, clips_per_sign=1)       # 80 clips, about a second


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("syn") / "data", seed=0, **SMALL)


@pytest.fixture(scope="module")
def small_clips(small_set):
    return read_clips(small_set)


@pytest.fixture(scope="module")
def small_summary(small_clips):
    return clip_summary(small_clips)


def test_layout_and_reader(small_set, small_clips):
    assert len(small_clips) == 8 * 10 * 1
    assert small_clips["participant_id"].nunique() == 10
    specs = synthetic.CATALOGUE[:8]
    assert sorted(small_clips["sign"].unique()) == sorted(s.name for s in specs)
    assert {"hello", "thankyou"} <= set(small_clips["sign"])
    assert (small_clips["label"] == small_clips["sign"].map(config.SIGN_TO_INDEX)).all()
    assert (small_clips.groupby(["participant_id", "sign"]).size() == 1).all()
    assert json.loads((small_set / "sign_to_prediction_index_map.json").read_text()) == \
        config.SIGN_TO_INDEX
    ids = small_clips["participant_id"]
    assert ids.between(1000, 99999).all()                      # 4-5 digits like the real ids
    assert small_clips["sequence_id"].is_unique
    for row in small_clips.itertuples():
        assert row.path.endswith(f"train_landmark_files/{row.participant_id}/{row.sequence_id}.parquet")


def test_every_file_is_valid_gislr(small_clips):
    for path in small_clips["path"]:
        assert validate_file(path) >= 3


def test_schema_equals_real_files(small_clips):
    real = {pq.read_schema(p).remove_metadata() for p in read_clips(SHIPPED)["path"]}
    assert real == {SCHEMA}                                # every shipped genuine file
    for path in small_clips["path"].iloc[:5]:
        assert pq.read_schema(path).remove_metadata() == SCHEMA


def test_row_ids_frames_and_nans(small_clips):
    firsts = []
    for path in small_clips["path"]:
        df = pd.read_parquet(path, columns=["frame", "row_id", "type", "landmark_index"])
        firsts.append(int(df["frame"].iloc[0]))
        if len(firsts) <= 3:                                   # row id format, independently
            expected = (df["frame"].astype(str) + "-" + df["type"] + "-"
                        + df["landmark_index"].astype(str))
            assert (df["row_id"] == expected).all()
        frames = np.unique(df["frame"])
        assert (np.diff(frames) == 1).all()                    # consecutive frame numbers
    assert sum(f > 0 for f in firsts) > len(firsts) // 2       # frames do not all start at 0
    assert len(set(firsts)) > 5
    all_frames = [load_frames(p) for p in small_clips["path"]]
    for f in all_frames:
        assert not np.isnan(f[:, :468]).any() and not np.isnan(f[:, 489:522]).any()  # face, pose
        for sl in (slice(468, 489), slice(522, 543)):          # a hand is all there or all NaN
            nan = np.isnan(f[:, sl]).reshape(len(f), -1)
            assert (nan.all(1) | ~nan.any(1)).all()
    hand_missing = np.concatenate([np.isnan(f[:, [468, 522], 0]).ravel() for f in all_frames])
    assert 0.2 < hand_missing.mean() < 0.9                     # MediaPipe-like dropouts


def test_dominant_hands_and_lengths(small_set, small_summary):
    s = small_summary
    assert set(s["dominant"]) == {"left", "right"}
    people = pd.read_csv(small_set / "synthetic_participants.csv")
    assert set(people["dominant"]) == {"left", "right"}
    merged = s.merge(people[["participant_id", "dominant"]], on="participant_id",
                     suffixes=("", "_participant"))
    assert (merged["dominant"] == merged["dominant_participant"]).mean() > 0.8
    # Non-dominant hand mostly missing, dominant hand mostly present (real sample: 0.99, 0.33).
    dom = np.where(s["dominant"] == "left", s["left_hand_missing"], s["right_hand_missing"])
    non = np.where(s["dominant"] == "left", s["right_hand_missing"], s["left_hand_missing"])
    assert dom.mean() < 0.6 and non.mean() > 0.8
    n = s["n_frames"]
    assert (n > 64).any() and (n > 100).any()                  # the downsampling path is used
    assert 10 <= n.median() <= 30 and n.min() >= 3


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    size = dict(n_signs=3, n_participants=2, clips_per_sign=1)
    a = synthetic.generate(tmp_path / "a", seed=5, **size)
    b = synthetic.generate(tmp_path / "b", seed=5, **size)
    c = synthetic.generate(tmp_path / "c", seed=6, **size)
    assert (a / "train.csv").read_bytes() == (b / "train.csv").read_bytes()
    ca, cb = read_clips(a), read_clips(b)
    for pa_, pb_ in zip(ca["path"], cb["path"]):
        np.testing.assert_array_equal(load_frames(pa_), load_frames(pb_))
        assert open(pa_, "rb").read() == open(pb_, "rb").read()
    assert (a / "train.csv").read_bytes() != (c / "train.csv").read_bytes()
    fa, fc = load_frames(ca["path"].iloc[0]), load_frames(read_clips(c)["path"].iloc[0])
    assert fa.shape != fc.shape or not np.array_equal(fa, fc, equal_nan=True)
    with pytest.raises(FileExistsError, match="not empty"):
        synthetic.generate(a, seed=5, **size)
    assert synthetic.generate(a, seed=6, overwrite=True, **size) == a
    assert (a / "train.csv").read_bytes() == (c / "train.csv").read_bytes()


TINY = dict(n_signs=2, n_participants=2, clips_per_sign=1)


@pytest.fixture
def tiny_default(monkeypatch):
    """The default set at 4 clips, and a count of `generate`'s calls."""
    monkeypatch.setattr(synthetic, "DEFAULT_SIZE", TINY)
    calls, real = [], synthetic.generate
    monkeypatch.setattr(synthetic, "generate", lambda out, **kw: calls.append(kw) or real(out, **kw))
    return calls


def test_ensure_data_dir(tmp_path, tiny_default, monkeypatch, capsys):
    """The default set is generated once per artifacts folder, seed and generator version, with a
    manifest (runs' format) of what it was made from and the checksums of train.csv and the sign
    map; an edited train.csv or a set of another generator version is generated again, with a line."""
    art = tmp_path / "art"
    d = synthetic.ensure_data_dir(artifacts_dir=art, seed=3)
    assert d == art / "synthetic_seed3" and len(read_clips(d)) == 4
    assert [p.name for p in art.iterdir()] == ["synthetic_seed3"]        # no temporaries left
    record = runs.read_manifest(d)
    assert record["spec"] == {"artefact": "synthetic data set", "seed": 3, **TINY,
                              "generator_version": synthetic.GENERATOR_VERSION}
    assert sorted(record["files"]) == ["sign_to_prediction_index_map.json", "train.csv"]
    for name, want in record["files"].items():
        data = (d / name).read_bytes()
        assert want == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    original = (d / "train.csv").read_bytes()
    assert synthetic.ensure_data_dir(artifacts_dir=art, seed=3) == d and len(tiny_default) == 1   # reused

    (d / "train.csv").write_bytes(original[:original.rindex(b"\n", 0, -1) + 1])   # a line removed
    assert synthetic.ensure_data_dir(artifacts_dir=art, seed=3) == d and len(tiny_default) == 2
    assert "train.csv is not the file its manifest vouches for" in capsys.readouterr().out
    assert (d / "train.csv").read_bytes() == original                 # the same bytes again

    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    assert synthetic.ensure_data_dir(artifacts_dir=art, seed=3) == d and len(tiny_default) == 3
    assert "generator_version" in capsys.readouterr().out
    assert runs.read_manifest(d)["spec"]["generator_version"] == synthetic.GENERATOR_VERSION
    assert [p.name for p in art.iterdir()] == ["synthetic_seed3"]


def test_an_interrupted_generation_leaves_the_old_set_and_no_temporary(tmp_path, tiny_default, monkeypatch):
    art = tmp_path / "art"
    d = synthetic.ensure_data_dir(artifacts_dir=art, seed=3)
    before = _files(d)
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)

    def killed(out_dir, **kw):
        synthetic.write_landmark_file(Path(out_dir) / "train_landmark_files/1/2.parquet",
                                      np.zeros((3, 543, 3)))
        raise KeyboardInterrupt
    monkeypatch.setattr(synthetic, "generate", killed)
    with pytest.raises(KeyboardInterrupt):
        synthetic.ensure_data_dir(artifacts_dir=art, seed=3)
    assert [p.name for p in art.iterdir()] == ["synthetic_seed3"] and _files(d) == before


def _files(folder: Path) -> dict:
    """Each file under `folder`: (inode, modification time, SHA-256 of its bytes)."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("when", ["start", "end"])
def test_two_processes_generating_the_set_leave_one_complete_copy(when, tmp_path, tiny_default,
                                                                   monkeypatch):
    """Issue 19: two processes generate the set into one artifacts folder and the first finishes
    while the second is generating (at the start of the second's generation, or after it wrote its
    files but before it renamed them into place). Simulated in one process: the second's
    `generate` runs the first's whole `ensure_data_dir`. The second's copy replaces the first's
    whole: the same bytes (the set is deterministic), complete (used again without generating),
    and the file the first still has open stays readable."""
    art, real_generate, first = tmp_path / "art", synthetic.generate, {}

    def second_generate(out_dir, **kw):
        if when == "end":
            real_generate(out_dir, **kw)
        monkeypatch.setattr(synthetic, "generate", real_generate)      # the first process
        d = synthetic.ensure_data_dir(artifacts_dir=art, seed=3)
        first.update(dir=d, files=_files(d), reading=open(next(d.rglob("*.parquet")), "rb"))
        if when == "start":
            real_generate(out_dir, **kw)
        return Path(out_dir)

    monkeypatch.setattr(synthetic, "generate", second_generate)
    d = synthetic.ensure_data_dir(artifacts_dir=art, seed=3)
    assert d == first["dir"] == art / "synthetic_seed3"
    sums = {p: v[2] for p, v in _files(d).items()}
    assert sums == {p: v[2] for p, v in first["files"].items()}       # same files, same bytes
    with first["reading"] as f:
        assert hashlib.sha256(f.read()).hexdigest() == first["files"][Path(f.name)][2]
    n_calls = len(tiny_default)
    assert synthetic.ensure_data_dir(artifacts_dir=art, seed=3) == d and len(tiny_default) == n_calls
    assert len(read_clips(d)) == 4 and [p.name for p in art.iterdir()] == ["synthetic_seed3"]


def test_ensure_data_dir_removes_what_killed_generations_left(tmp_path, tiny_default):
    """A killed generation leaves its temporary folder (0.5 GB for the default set): generating the
    set removes the temporaries nobody touched for `runs.STALE_AFTER_S` (the `runs.atomic_path`
    names and the ``.synthetic_seed<seed>.tmp<pid>`` folders of earlier versions) and keeps
    younger ones, which may belong to a generation still running."""
    art = tmp_path / "art"
    old = time.time() - runs.STALE_AFTER_S - 60
    gone = [art / ".synthetic_seed3.1234-abcd1234.tmp", art / ".synthetic_seed0.tmp99"]
    kept = [art / ".synthetic_seed3.5678-ef567890.tmp"]
    for folder in gone + kept:
        (folder / "train_landmark_files" / "1000").mkdir(parents=True)
        (folder / "train_landmark_files" / "1000" / "1.parquet").write_bytes(b"half-written")
    for folder in gone:
        os.utime(folder, (old, old))
    assert synthetic.ensure_data_dir(artifacts_dir=art, seed=3) == art / "synthetic_seed3"
    assert sorted(p.name for p in art.iterdir()) == sorted(["synthetic_seed3"] + [p.name for p in kept])


def test_catalogue_and_the_sizes_generate_accepts(tmp_path):
    names = [s.name for s in synthetic.CATALOGUE]
    assert len(names) == 26 and len(set(names)) == 26 and set(names) <= set(config.SIGN_TO_INDEX)
    assert names[:2] == ["hello", "thankyou"] and config.SIGN_TO_INDEX[names[0]] == 113
    default = names[:synthetic.DEFAULT_SIZE["n_signs"]]
    for a, b, _why in synthetic.SIMILAR_PAIRS:                # chapter 5 looks for them
        assert a in default and b in default
    for bad, message in [(dict(n_signs=1), "n_signs=1"), (dict(n_signs=27), "n_signs=27"),
                         (dict(clips_per_sign=0), "clips_per_sign=0"),
                         (dict(n_participants=0), "n_participants=0"),
                         (dict(no_hand_fraction=1.5), "no_hand_fraction=1.5")]:
        with pytest.raises(ValueError, match=message):
            synthetic.generate(tmp_path / "x", **bad)
    assert not (tmp_path / "x").exists()


def test_hand_shapes_bend_fingers():
    tpl = synthetic.load_template()
    flat = synthetic.hand_shape(tpl["hand"], np.array([synthetic.HANDSHAPES["5"]]))[0]
    fist = synthetic.hand_shape(tpl["hand"], np.array([synthetic.HANDSHAPES["S"]]))[0]
    # Bones keep their lengths; fingertips come close to the wrist in a fist.
    for a, b in ((5, 6), (6, 7), (7, 8), (1, 2), (2, 3), (3, 4)):
        assert np.linalg.norm(fist[b] - fist[a]) == pytest.approx(np.linalg.norm(flat[b] - flat[a]))
    for tip in (8, 12, 16, 20):
        assert np.linalg.norm(fist[tip]) < 0.75 * np.linalg.norm(flat[tip])
    assert np.allclose(flat[0], 0) and np.allclose(flat[9], tpl["hand"][9])


def _benchmark_script():
    """benchmarks/synthetic.py, which holds the maintainer's `derive_template` and `write_template`."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "synthetic.py"
    spec = importlib.util.spec_from_file_location("benchmark_synthetic", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# How far a template derived from 16 genuine clips may lie from the shipped one (derived from the 84
# clips beside the repository): the 99th percentile, over 1,000 random 16-of-84 subsets (numpy seed 0),
# of the largest absolute deviation of each entry, rounded up to two significant digits. Units: the
# face and pose_head x, y in face radii (RMS), pose_body and rest_arm x, y in shoulder widths, the
# hand in wrist-to-middle-finger-base lengths, the other z in MediaPipe's; the statistics in theirs.
TEMPLATE_TOLERANCE = {
    "face": 0.22, "pose_head": 0.22, "pose_body": 0.60, "rest_arm": 0.31, "hand": 0.24,
    "mid_mean": 0.043, "mid_std": 0.029, "shoulder_width_mean": 0.036, "shoulder_width_std": 0.021,
    "face_offset_mean": 0.034, "face_offset_std": 0.030, "face_scale_mean": 0.0093,
    "face_scale_std": 0.0066, "head_motion_std": 0.0074, "head_roll_std": 0.044,
    "head_roll_frame_std": 0.012, "face_z_mean": 0.0001, "pose_z_clip_std": 0.11,
    "hand_length_mean": 0.052, "hand_length_std": 0.021, "upper_arm": 0.060, "forearm": 0.12,
    "rest_arm_z": 0.29, "active_arm_z": 0.43,
}
SHAPES = {"face": (468, 3), "pose_head": (11, 3), "pose_body": (33, 3), "rest_arm": (6, 3), "hand": (21, 3)}


def _check_template_form(t: dict, name: str):
    """What holds for any template `derive_template` makes, by construction or by anatomy."""
    def close(a, b, what):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-4, err_msg=f"{name}: {what}")

    values = {**{k: t[k] for k in SHAPES}, **t["stats"]}
    for key, v in values.items():
        v = np.asarray(v, dtype=np.float64)
        assert np.isfinite(v).all(), f"{name}: {key} not finite"
        close(v * 1e4, np.rint(v * 1e4), f"{key} rounded to 4 decimals")
    for key, shape in SHAPES.items():
        assert np.shape(t[key]) == shape, (name, key)
    face, body, arm, hand = (np.asarray(t[k]) for k in ("face", "pose_body", "rest_arm", "hand"))
    close(face.mean(0), 0, "face centred")
    assert 0.9 < np.sqrt((face[:, :2] ** 2).sum(1).mean()) <= 1 + 2e-4, f"{name}: face RMS radius"
    close(body[[11, 12], 0], [0.5, -0.5], "shoulders at +-0.5 shoulder widths")
    close(body[11, :2] + body[12, :2], 0, "origin between the shoulders")
    close(arm[0, 0], 0.5, "resting arm starts at the shoulder")
    assert arm[0, 1] < arm[1, 1] < arm[2, 1], f"{name}: resting arm hangs down (shoulder, elbow, wrist)"
    close(hand[[0, 9]], [[0, 0, 0], [0, -1, 0]], "hand: wrist at 0, middle-finger base at (0, -1, 0)")
    assert hand[5, 0] < 0 < hand[17, 0], f"{name}: index base at -x, little-finger base at +x"
    close(hand[5, 2], hand[17, 2], "palm facing the camera")
    s = {k: np.asarray(v) for k, v in t["stats"].items()}
    assert all((v > 0).all() for k, v in s.items() if k.endswith("_std")), name
    assert ((0 < s["mid_mean"]) & (s["mid_mean"] < 1)).all(), name          # image coordinates
    for key in ("shoulder_width_mean", "face_scale_mean", "hand_length_mean"):
        assert 0 < s[key] < 1, (name, key)
    assert s["face_offset_mean"][1] < 0, f"{name}: the face above the shoulders"
    assert 0 < s["upper_arm"] < 2 and 0 < s["forearm"] < 2, name           # in shoulder widths


def test_template_is_derived_from_real_sample():
    """The shipped template is what `derive_template` makes of genuine clips, checked on the 16
    shipped ones: the derived template has the template's form (shapes, finite values, the
    normalisations of `derive_template`, anatomy) and agrees with the shipped one within
    TEMPLATE_TOLERANCE, the spread of a 16-clip derivation from random subsets of the 84 clips (the
    shipped 16 lie within the 95th percentile of that spread in every entry but head_roll_std, at
    the 95th). The shipped template itself says it comes from the 84 clips and has the same form.

    The exact comparison with `derive_template` on the 84 clips (equal to the last digit) is not
    kept: it needs ``../shared/real_sample``, absent from a user's clone, and would be an eighth
    skipped case where issue 17 allows only the 7 that repeat on the 84 clips a check also run on
    the shipped 16. `write_template` writes `derive_template`'s output as it is, so the maintainer's
    ``--write-template`` (README) makes that equality hold when the template is refreshed.
    """
    derived = _benchmark_script().derive_template(SHIPPED)
    shipped = json.loads((synthetic.Path(synthetic.__file__).parent / "data" /
                          synthetic.TEMPLATE_NAME).read_text())
    assert derived.keys() == shipped.keys()
    assert derived["stats"].keys() == shipped["stats"].keys() == TEMPLATE_TOLERANCE.keys() - SHAPES.keys()
    for key in shipped["stats"]:
        assert np.shape(derived["stats"][key]) == np.shape(shipped["stats"][key]), key
    _check_template_form(shipped, "shipped")
    _check_template_form(derived, "derived from the shipped 16 clips")
    assert shipped["n_clips"] == 84 and "derive_template" in shipped["source"]
    assert derived["n_clips"] == 16
    assert derived["n_frames"] == sum(len(load_frames(p)) for p in read_clips(SHIPPED)["path"])
    for key, tol in TEMPLATE_TOLERANCE.items():
        d, s = (np.asarray(t[key] if key in SHAPES else t["stats"][key]) for t in (derived, shipped))
        np.testing.assert_allclose(d, s, rtol=0, atol=tol + 1e-9, err_msg=key)


def test_calibrated_against_real_sample(tmp_path):
    """The synthetic set's statistics per landmark group are those of the 16 genuine clips shipped
    in the package (the bounds hold, with similar margins, against the 84 clips as well)."""
    # Same two signs as the real sample (hello, thankyou), 12 participants.
    d = synthetic.generate(tmp_path / "cal", seed=0, n_signs=2, n_participants=12, clips_per_sign=2)
    real = landmark_stats(read_clips(SHIPPED)).set_index(["group", "dim"])
    syn = landmark_stats(read_clips(d)).set_index(["group", "dim"])
    for group in ("face", "lips", "pose", "left_hand", "right_hand"):
        for dim in ("x", "y"):
            r, s = real.loc[(group, dim)], syn.loc[(group, dim)]
            assert abs(r["mean"] - s["mean"]) < 0.1, (group, dim)
            assert 0.5 < s["std"] / r["std"] < 2.0, (group, dim)
    for group in ("face", "lips", "pose"):
        assert syn.loc[(group, "z"), "mean"] == pytest.approx(real.loc[(group, "z"), "mean"], abs=0.15)
        assert syn.loc[(group, "x"), "missing"] == 0
