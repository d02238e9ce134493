"""Tests of gislr_utils.statistics against the original notebook's per-landmark loop."""

import numpy as np
import pytest

import gislr_utils  # noqa: F401
from gislr_utils import statistics as S
from gislr_utils.config import real_sample_dir
from gislr_utils.landmarks import GROUPS, N_COLS
from gislr_utils.statistics import compute_stats, landmark_values, load_stats, normalise, save_stats


def loop_stats(X):
    """The seed's get_lips_mean_std / get_left_right_hand_mean_std / get_pose_mean_std, for all
    66 columns at once (plus the documented mean 0 / std 1 for a landmark never seen)."""
    mean = np.zeros((N_COLS, 2), np.float32)
    std = np.ones((N_COLS, 2), np.float32)
    for col, ll in enumerate(np.transpose(X, [2, 3, 0, 1]).reshape([N_COLS, X.shape[-1], -1])):
        for dim, l in enumerate(ll[:2]):
            v = l[np.nonzero(l)]
            if v.size:
                mean[col, dim] = v.mean()
                std[col, dim] = v.std()
    return mean, std


def random_X(n=40, seed=0, zero_frac=0.3):
    rng = np.random.default_rng(seed)
    X = rng.normal(0.5, 0.2, (n, 64, N_COLS, 3)).astype(np.float32)
    X[rng.random(X.shape) < zero_frac] = 0
    X[:, :, 7] = 0                      # a landmark never seen
    X[:, 40:, :, :] = 0                 # padding frames
    return X


def test_compute_stats_matches_the_loop_definition():
    X = random_X()
    stats = compute_stats(X)
    mean, std = loop_stats(X)
    assert stats["mean"].shape == (N_COLS, 2) and stats["std"].shape == (N_COLS, 2)
    assert stats["mean"].dtype == np.float32 and stats["std"].dtype == np.float32
    np.testing.assert_allclose(stats["mean"], mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats["std"], std, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(stats["mean"][7], 0)
    np.testing.assert_array_equal(stats["std"][7], 1)
    # z does not matter; only x and y are used
    X2 = X.copy()
    X2[..., 2] = 123.0
    np.testing.assert_array_equal(compute_stats(X2)["mean"], stats["mean"])


def test_compute_stats_independent_of_chunking_and_shape(monkeypatch):
    X = random_X(n=23, seed=1)
    full = compute_stats(X)
    monkeypatch.setattr(S, "_CHUNK", 4)
    chunked = compute_stats(X)
    flat = compute_stats(X.reshape(-1, N_COLS, 3))          # [frames, 66, 3] works as well
    for k in ("mean", "std"):
        np.testing.assert_allclose(chunked[k], full[k], rtol=1e-6)
        np.testing.assert_allclose(flat[k], full[k], rtol=1e-6)


def test_compute_stats_rows_equal_the_copied_rows(monkeypatch, tmp_path):
    """compute_stats(X, rows) reads the clips a chunk at a time (also from a memory map) and
    equals compute_stats(X[rows]) exactly, and the loop definition on those clips."""
    X = random_X(n=30, seed=2)
    X[3, :5, 10, 0] = 9.0               # an outlier in a clip left out
    rows = np.array([0, 2, 5, 6, 7, 11, 12, 20, 21, 29, 17])
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    monkeypatch.setattr(S, "_CHUNK", 4)
    expected = compute_stats(X[rows])
    mean, std = loop_stats(X[rows])
    for source in (X, mapped):
        got = compute_stats(source, rows=rows)
        for k in ("mean", "std"):
            np.testing.assert_array_equal(got[k], expected[k])
        np.testing.assert_allclose(got["mean"], mean, rtol=1e-5)
        np.testing.assert_allclose(got["std"], std, rtol=1e-4)
    assert not np.array_equal(compute_stats(X)["mean"], expected["mean"])
    flat = X.reshape(-1, N_COLS, 3)                         # other shapes: rows of the first axis
    np.testing.assert_array_equal(compute_stats(flat, rows=rows)["std"],
                                  compute_stats(flat[rows])["std"])
    with pytest.raises(ValueError, match="rows"):
        compute_stats(X, rows=np.array([0.5, 1.0]))


def test_constant_landmark_gets_std_one():
    X = random_X(n=5)
    X[:, :10, 3, :] = 0.25
    X[:, 10:, 3, :] = 0
    stats = compute_stats(X)
    np.testing.assert_allclose(stats["mean"][3], 0.25)
    np.testing.assert_array_equal(stats["std"][3], 1)


def test_compute_stats_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        compute_stats(np.zeros((2, 64, 65, 3), np.float32))
    X = random_X(n=2)
    X[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        compute_stats(X)


def test_save_and_load_roundtrip(tmp_path):
    stats = compute_stats(random_X(n=5))
    path = save_stats(stats, tmp_path / "stats.npz")
    back = load_stats(path)
    for k in ("mean", "std"):
        np.testing.assert_array_equal(back[k], stats[k])
        assert back[k].dtype == np.float32


def test_save_and_load_errors(tmp_path):
    stats = compute_stats(random_X(n=2))
    with pytest.raises(ValueError, match="shape"):
        save_stats({"mean": np.zeros((66, 3)), "std": np.ones((66, 3))}, tmp_path / "s.npz")
    with pytest.raises(FileNotFoundError):
        load_stats(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=stats["mean"])
    with pytest.raises(ValueError, match="bad.npz.*'std'"):
        load_stats(bad)


def test_landmark_values_are_the_non_zero_values_per_landmark():
    X = random_X(n=6)
    for group, cols in GROUPS.items():
        for dim, d in (("x", 0), (1, 1), ("z", 2)):
            values = landmark_values(X, group, dim)
            assert len(values) == len(cols)
            for col, v in zip(cols, values):
                l = X[:, :, col, d].ravel()
                np.testing.assert_array_equal(v, l[np.nonzero(l)])
    assert landmark_values(X, "lips", "x")[7].size == 0
    # exactly the values the statistics average
    stats = compute_stats(X)
    hand_y = landmark_values(X, "hand", "y")
    np.testing.assert_allclose([v.mean() for v in hand_y], stats["mean"][GROUPS["hand"], 1], rtol=1e-5)
    with pytest.raises(ValueError, match="group"):
        landmark_values(X, "face", "x")
    with pytest.raises(ValueError, match="dim"):
        landmark_values(X, "lips", "w")


def test_normalise_standardises_non_zero_values_and_keeps_zeros():
    X = random_X(n=8)
    stats = compute_stats(X)
    N = normalise(X, stats)
    assert N.shape == X.shape[:-1] + (2,) and N.dtype == np.float32
    zeros = X[..., :2] == 0
    np.testing.assert_array_equal(N[zeros], 0)
    expected = (X[..., :2] - stats["mean"]) / stats["std"]
    np.testing.assert_allclose(N[~zeros], expected[~zeros], rtol=1e-6, atol=1e-6)
    # after normalisation the non-zero values of each seen landmark have mean 0 and std 1
    again = compute_stats(np.concatenate([N, np.zeros_like(N[..., :1])], axis=-1))
    seen = np.arange(N_COLS) != 7
    np.testing.assert_allclose(again["mean"][seen], 0, atol=1e-5)
    np.testing.assert_allclose(again["std"][seen], 1, atol=1e-5)


def test_normalise_agrees_with_the_model_layer():
    model = pytest.importorskip("gislr_utils.model")
    if not hasattr(model, "LandmarkNormalisation"):
        pytest.skip("gislr_utils.model has no LandmarkNormalisation")
    from gislr_utils.landmarks import HAND_START, N_HAND, N_LIPS, N_POSE, POSE_START
    X = random_X(n=3)
    stats = compute_stats(X)
    lips, hand, pose = (t.numpy() for t in model.LandmarkNormalisation(stats["mean"], stats["std"])(X))
    N = normalise(X, stats)
    np.testing.assert_allclose(lips, N[:, :, :N_LIPS].reshape(3, 64, -1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(hand, N[:, :, HAND_START:HAND_START + N_HAND].reshape(3, 64, -1),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pose, N[:, :, POSE_START:POSE_START + N_POSE].reshape(3, 64, -1),
                               rtol=1e-6, atol=1e-6)


def test_stats_of_the_real_sample_match_the_loop():
    """On the 16 genuine clips shipped in the package (always present): every one of the 66 columns
    is seen (so no column falls back to mean 0 / std 1) and the statistics equal the seed's loop."""
    from gislr_utils.preprocessing import preprocess_files
    paths = sorted((real_sample_dir() / "train_landmark_files").glob("*/*.parquet"))
    assert len(paths) == 16
    X, _ = preprocess_files(paths, progress=False)
    assert (X[..., :2] != 0).any(axis=(0, 1)).all()
    stats = compute_stats(X)
    mean, std = loop_stats(X)
    np.testing.assert_allclose(stats["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(stats["std"], std, rtol=1e-5)
    assert np.all(stats["std"] > 0) and np.all(stats["std"] < 1)
