"""Tests of gislr_utils.augment (chapter 7): every augmentation against an independent computation,
determinism for a seed, and "off" settings that give the batch back bit for bit. Fast: no training."""
import json
import types

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from gislr_utils import augment as A
from gislr_utils import dataset
from gislr_utils.config import REAL_SAMPLE_DIR, real_sample_dir
from gislr_utils.landmarks import (GROUPS, LEFT_HAND_IDXS0, LEFT_POSE_IDXS0, LIPS_IDXS0, N_LIPS,
                                   RIGHT_HAND_IDXS0, RIGHT_POSE_IDXS0, TYPE_STARTS, dominant_hand)
from gislr_utils.preprocessing import preprocess

SHIPPED = real_sample_dir()
SAMPLES = [pytest.param(SHIPPED, id="shipped"),
           pytest.param(REAL_SAMPLE_DIR, id="shared84", marks=pytest.mark.skipif(
               not (REAL_SAMPLE_DIR / "train.csv").exists(), reason="84-clip sample not found"))]
ALL_ON = {**A.PROBABILITIES, **{k: 1.0 for k in A.PROBABILITIES}}


def raw_clips(sample=SHIPPED):
    return [dataset.load_frames(p) for p in sorted((sample / "train_landmark_files").glob("*/*.parquet"))]


def raw_clip(name):
    return dataset.load_frames(SHIPPED / "train_landmark_files" / name)


@pytest.fixture(scope="module")
def batch():
    X, I = zip(*(preprocess(c) for c in raw_clips()))
    return np.stack(X), np.stack(I)


# ---------------------------------------------------------------------------------------------
# The mirror permutation

def test_face_mirror_agrees_with_an_independent_derivation_from_the_mean_face():
    face = np.array(json.loads((SHIPPED.parent / "synthetic_template.json").read_text())["face"])
    moved = face * [-1, 1, 1]                      # mirror x, then re-align rigidly (ICP + Hungarian)
    for _ in range(10):
        perm = linear_sum_assignment(cdist(moved, face))[1]
        P, Q = moved - moved.mean(0), face[perm] - face[perm].mean(0)
        U, _, Vt = np.linalg.svd(P.T @ Q)
        D = np.diag([1, 1, np.sign(np.linalg.det(Vt.T @ U.T))])
        moved = P @ (Vt.T @ D @ U.T).T + face[perm].mean(0)
    np.testing.assert_array_equal(A.ROW_MIRROR[:468], perm)


def test_mirror_rows_are_an_involution_and_keep_the_known_pairs():
    m = A.ROW_MIRROR
    np.testing.assert_array_equal(m[m], np.arange(543))
    assert set(m[LIPS_IDXS0]) == set(LIPS_IDXS0)                  # the lips map onto the lips
    assert m[61] == 291 and m[0] == 0 and m[78] == 308 and m[13] == 13 and m[17] == 17
    # first place's hand-written pairs (lips, eyes, nose)
    left = [84, 181, 91, 146, 61, 185, 40, 39, 37, 87, 178, 88, 95, 78, 191, 80, 81, 82, 33, 7, 163, 144,
            145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173, 98]
    right = [314, 405, 321, 375, 291, 409, 270, 269, 267, 317, 402, 318, 324, 308, 415, 310, 311, 312, 263,
             249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398, 327]
    np.testing.assert_array_equal(m[left], right)
    np.testing.assert_array_equal(m[LEFT_HAND_IDXS0], RIGHT_HAND_IDXS0)
    np.testing.assert_array_equal(m[LEFT_POSE_IDXS0], RIGHT_POSE_IDXS0)
    pose = TYPE_STARTS["pose"]
    assert m[pose] == pose and m[pose + 11] == pose + 12 and m[pose + 1] == pose + 4   # nose, shoulders, eyes
    np.testing.assert_array_equal(A.COL_MIRROR[A.COL_MIRROR], np.arange(66))
    np.testing.assert_array_equal(LIPS_IDXS0[A.COL_MIRROR[:N_LIPS]], m[LIPS_IDXS0])


# ---------------------------------------------------------------------------------------------
# Flip

def test_flip_raw_maps_each_left_hand_landmark_to_the_right_hands_with_x_mirrored():
    clip = raw_clip("29302/1921145287.parquet")          # both hands seen
    out = A.flip_raw(clip)
    seen = 0
    for f in range(len(clip)):
        for k in range(21):
            lx, ly, lz = clip[f, LEFT_HAND_IDXS0[k]]
            rx, ry, rz = out[f, RIGHT_HAND_IDXS0[k]]
            assert (np.isnan(lx) and np.isnan(rx)) or rx == np.float32(1) - lx
            seen += not np.isnan(lx)
            np.testing.assert_array_equal([ry, rz], [ly, lz])
    assert seen > 100 and np.array_equal(np.isnan(out), np.isnan(clip[:, A.ROW_MIRROR]))  # NaN stays NaN
    np.testing.assert_allclose(A.flip_raw(out), clip, atol=1e-7)            # an involution


@pytest.mark.parametrize("sample", SAMPLES)
def test_preprocessing_a_flipped_clip_is_flip_of_the_preprocessed_clip(sample):
    checked = 0
    for clip in raw_clips(sample):
        hands = dominant_hand(clip)
        if hands.left_values.sum() == hands.right_values.sum():
            continue                                # a tie: see the next test
        X, I = preprocess(clip)
        Xf, If = preprocess(A.flip_raw(clip))
        np.testing.assert_array_equal(If, I)
        np.testing.assert_allclose(Xf, A.flip(X), rtol=0, atol=1e-6)
        checked += 1
    assert checked >= 16 and any(dominant_hand(c).left for c in raw_clips(sample))


def test_a_tie_keeps_the_other_hand_after_a_flip():
    clip = raw_clip("16069/298163977.parquet")         # left hand only; give it a right hand too
    clip[:, RIGHT_HAND_IDXS0] = clip[:, LEFT_HAND_IDXS0] + [0.3, 0, 0]
    hands = dominant_hand(clip)
    assert hands.left_values.sum() == hands.right_values.sum() and hands.left
    Xf, _ = preprocess(A.flip_raw(clip))
    X, _ = preprocess(clip)
    hand = GROUPS["hand"]
    assert np.abs(Xf[:, hand] - A.flip(X)[:, hand]).max() > 0.2    # the flipped clip's hand is the other one


def test_flip_keeps_missing_landmarks_missing(batch):
    X, _ = batch
    F = A.flip(X)
    np.testing.assert_array_equal(A.present(F), A.present(X)[..., A.COL_MIRROR])
    np.testing.assert_allclose(A.flip(F), X, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Affine

def test_apply_affine_is_the_matrix_applied_point_by_point():
    rng = np.random.default_rng(1)
    frames = rng.uniform(0.1, 0.9, (2, 3, 66, 3)).astype(np.float32)
    frames[0, 1, 5] = 0                                          # a missing landmark
    M, t, c = rng.normal(size=(2, 3, 2, 2)), rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 3, 2))
    out = A.apply_affine(frames, M, t, c)
    for b in range(2):
        for f in range(3):
            for k in range(66):
                x, y, z = (float(v) for v in frames[b, f, k])
                if x == 0 and y == 0:
                    want = (0, 0)
                else:
                    dx, dy = x - c[b, f, 0], y - c[b, f, 1]
                    want = (M[b, f, 0, 0] * dx + M[b, f, 0, 1] * dy + c[b, f, 0] + t[b, f, 0],
                            M[b, f, 1, 0] * dx + M[b, f, 1, 1] * dy + c[b, f, 1] + t[b, f, 1])
                np.testing.assert_allclose(out[b, f, k, :2], want, rtol=1e-6, atol=1e-6)
                assert out[b, f, k, 2] == z


def test_affine_matrices_have_the_winners_ranges():
    M = A.affine_matrices(np.random.default_rng(0), 2000)
    det = np.linalg.det(M)                                # = s^2: rotation and shear keep areas
    assert 0.64 <= det.min() and det.max() <= 1.44 and det.max() > 1.35
    off = M[:, 0, 1] * M[:, 1, 0]
    assert np.isfinite(M).all() and off.min() < 0                       # rotations of both signs
    R = A.affine_matrices(np.random.default_rng(0), 500, rotate=30, scale=0, shear=0)
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(2), R.shape), atol=1e-12)
    angles = np.degrees(np.arctan2(R[:, 1, 0], R[:, 0, 0]))
    assert -30 <= angles.min() < -25 and 25 < angles.max() <= 30


def test_global_affine_moves_every_frame_of_a_clip_by_one_affine_map(batch):
    X, I = batch
    out, out_idxs = A.augment_batch(X, I, np.random.default_rng(3), {"aug_affine": 1.0})
    np.testing.assert_array_equal(out_idxs, I)
    np.testing.assert_array_equal(A.present(out), A.present(X))         # missing stays exactly 0
    assert np.all(out[~A.present(X)] == 0) and np.array_equal(out[..., 2], X[..., 2])
    for b in range(len(X)):
        seen = A.present(X[b])
        if seen.sum() < 3:
            continue
        src, dst = X[b][seen][:, :2].astype(np.float64), out[b][seen][:, :2]
        design = np.c_[src, np.ones(len(src))]
        fit, *_ = np.linalg.lstsq(design, dst, rcond=None)
        np.testing.assert_allclose(design @ fit, dst, atol=1e-5)      # one affine map for the clip
        assert 0.64 - 1e-4 <= np.linalg.det(fit[:2]) <= 1.44 + 1e-4


def test_rotation_alone_keeps_distances_and_the_clip_centre(batch):
    X, I = batch
    settings = {"aug_affine": 1.0, "aug_scale": 0.0, "aug_shear": 0.0, "aug_shift": 0.0}
    out, _ = A.augment_batch(X, I, np.random.default_rng(4), settings)
    np.testing.assert_allclose(A.clip_centre(out), A.clip_centre(X), atol=1e-5)
    b, f = 1, 0
    seen = A.present(X[b, f])
    np.testing.assert_allclose(cdist(out[b, f, seen, :2], out[b, f, seen, :2]),
                               cdist(X[b, f, seen, :2], X[b, f, seen, :2]), atol=1e-5)


def test_per_frame_affine_moves_one_to_eight_valid_frames(batch):
    X, I = batch
    out, _ = A.augment_batch(X, I, np.random.default_rng(5), {"aug_frame_affine": 1.0})
    moved = np.any(out != X, axis=(2, 3))
    assert np.all(moved.sum(1) <= 8) and np.all(moved.sum(1) >= 1)
    assert not np.any(moved & (I == -1))                                 # never a padded frame
    np.testing.assert_array_equal(A.present(out), A.present(X))


# ---------------------------------------------------------------------------------------------
# Resampling and masking

@pytest.mark.parametrize("rate", [0.5, 0.77, 1.0, 1.5, 3.0])
def test_resample_keeps_first_and_last_frame_and_padding(batch, rate):
    X, I = batch
    for b in range(len(X)):
        n = int((I[b] != -1).sum())
        out, idx = A.resample(X[b], I[b], rate)
        m = int((idx != -1).sum())
        if n < 2:
            np.testing.assert_array_equal(out, X[b])
            continue
        assert m == min(max(round(n * rate), 2), 64)
        np.testing.assert_array_equal(out[0], X[b, 0])
        np.testing.assert_array_equal(out[m - 1], X[b, n - 1])
        assert idx[0] == I[b, 0] and idx[m - 1] == I[b, n - 1] and np.all(np.diff(idx[:m]) > 0)
        assert np.all(out[m:] == 0) and np.all(idx[m:] == -1)
        # independent: np.interp on landmarks seen in every valid frame
        always = A.present(X[b, :n]).all(0)
        pos = np.linspace(0, n - 1, m)
        for k in np.flatnonzero(always)[:5]:
            np.testing.assert_allclose(out[:m, k, 0], np.interp(pos, np.arange(n), X[b, :n, k, 0]), atol=1e-6)
        np.testing.assert_allclose(idx[:m], np.interp(pos, np.arange(n), I[b, :n]), atol=1e-4)


def test_frame_mask_zeroes_one_block_of_valid_frames(batch):
    X, I = batch
    out, out_idxs = A.augment_batch(X, I, np.random.default_rng(6), {"aug_frame_mask": 1.0})
    np.testing.assert_array_equal(out_idxs, I)
    for b in range(len(X)):
        n = int((I[b] != -1).sum())
        hit = np.flatnonzero(np.any(out[b] != X[b], axis=(1, 2)))
        assert np.all(out[b, hit] == 0) and np.all(hit < n)
        assert len(hit) <= int(0.4 * n) and (len(hit) == 0 or np.all(np.diff(hit) == 1))


def test_group_mask_zeroes_one_group_in_some_frames(batch):
    X, I = batch
    out, _ = A.augment_batch(X, I, np.random.default_rng(7), {"aug_group_mask": 1.0})
    for b in range(len(X)):
        changed = np.any(out[b] != X[b], axis=(0, 2))                    # columns touched
        groups = {g for g, cols in GROUPS.items() if changed[cols].any()}
        assert len(groups) <= 1 and not changed[[c for g in GROUPS if g not in groups for c in GROUPS[g]]].any()
        assert np.all(out[b][out[b] != X[b]] == 0) and not np.any(out[b][I[b] == -1])


# ---------------------------------------------------------------------------------------------
# The entry point

def test_off_settings_give_the_batch_back_bit_for_bit(batch):
    X, I = batch
    for settings in ({}, {k: 0.0 for k in A.PROBABILITIES}, types.SimpleNamespace(aug_flip=0.0)):
        out, idx = A.augment_batch(X, I, np.random.default_rng(0), settings)
        assert out.tobytes() == X.tobytes() and idx.tobytes() == I.tobytes()


def test_augment_batch_is_deterministic_for_a_seed_and_leaves_its_input_alone(batch):
    X, I = batch
    X0, I0 = X.copy(), I.copy()
    a = A.augment_batch(X, I, np.random.default_rng(11), ALL_ON)
    b = A.augment_batch(X, I, np.random.default_rng(11), types.SimpleNamespace(**ALL_ON))
    c = A.augment_batch(X, I, np.random.default_rng(12), ALL_ON)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    assert a[0].tobytes() != c[0].tobytes()
    assert X.tobytes() == X0.tobytes() and I.tobytes() == I0.tobytes()
    assert a[0].dtype == np.float32 and np.isfinite(a[0]).all()
    assert np.all(a[0][a[1] == -1] == 0)                                  # padding stays padding


def test_augment_batch_refuses_bad_input(batch):
    X, I = batch
    with pytest.raises(ValueError, match="probabilities"):
        A.augment_batch(X, I, np.random.default_rng(0), {"aug_flip": 1.5})
    with pytest.raises(ValueError, match="must be"):
        A.augment_batch(X[:, :, :10], I, np.random.default_rng(0), {})
