"""`landmarks.dominant_hand`, the one home of the dominant-hand rule, against a plain count."""
import numpy as np
import pytest

from gislr_utils import landmarks
from gislr_utils._tf import tf


def _by_hand(frames):
    """The rule written out frame by frame and landmark by landmark: more non-NaN values over
    the clip wins, ties go left; the kept frames are those where that hand has any value."""
    counts = {"left": [], "right": []}
    for frame in frames:
        for side, start in (("left", 468), ("right", 522)):
            counts[side].append(sum(not np.isnan(frame[start + i, d]) for i in range(21) for d in range(3)))
    left = sum(counts["left"]) >= sum(counts["right"])
    visible = [c > 0 for c in counts["left" if left else "right"]]
    return left, visible, counts["left"], counts["right"]


def _random_clips(rng, n_clips=12, n_frames=9):
    frames = rng.random((n_clips, n_frames, 543, 3)).astype(np.float32)
    for clip in frames:
        for start in (468, 522):                       # whole hands and single values missing
            clip[rng.random(n_frames) < rng.random(), start:start + 21] = np.nan
            holes = rng.random((n_frames, 21, 3)) < 0.3 * rng.random()
            clip[:, start:start + 21][holes] = np.nan
    frames[0, :, 468:489] = np.nan                     # right only, missing in frame 3
    frames[0, :, 522:543] = 0.5
    frames[0, 3, 522:543] = np.nan
    frames[1, :, 468:489] = np.nan                     # no hand at all: a tie, left "wins"
    frames[1, :, 522:543] = np.nan
    frames[2, :, 522:543] = frames[2, :, 468:489]      # same count: a tie, left wins
    return frames


def test_dominant_hand_matches_a_plain_count_per_clip_and_batched():
    frames = _random_clips(np.random.default_rng(0))
    batch = landmarks.dominant_hand(frames)
    assert batch.left.shape == (12,) and batch.visible.shape == (12, 9)
    sides = set()
    for i, clip in enumerate(frames):
        left, visible, lv, rv = _by_hand(clip)
        one = landmarks.dominant_hand(clip)
        for got in (one, landmarks.DominantHand(*(a[i] for a in batch))):
            assert bool(got.left) == left
            np.testing.assert_array_equal(got.visible, visible)
            np.testing.assert_array_equal(got.left_values, lv)
            np.testing.assert_array_equal(got.right_values, rv)
        sides.add(left)
    assert sides == {True, False}
    assert landmarks.dominant_hand(frames[1]).left and not landmarks.dominant_hand(frames[1]).visible.any()
    assert landmarks.dominant_hand(frames[2]).left
    assert not landmarks.dominant_hand(frames[0]).left
    np.testing.assert_array_equal(landmarks.dominant_hand(frames[0]).visible, np.arange(9) != 3)


def test_dominant_hand_in_a_tensorflow_graph_agrees():
    frames = _random_clips(np.random.default_rng(1))

    @tf.function(input_signature=[tf.TensorSpec([None, 543, 3], tf.float32)])
    def graph(x):
        return tuple(landmarks.dominant_hand(x))

    for clip in frames:
        expected = landmarks.dominant_hand(clip)
        for got, want in zip(graph(tf.constant(clip)), expected):
            np.testing.assert_array_equal(got.numpy(), want)


def test_dominant_hand_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match="543"):
        landmarks.dominant_hand(np.zeros((4, 66, 3)))


def test_middle_hand_frame_is_the_middle_of_the_frames_showing_the_dominant_hand():
    frames = np.full((7, 543, 3), np.nan, np.float32)
    frames[[1, 2, 4, 6], 522:543] = 0.5                # right hand (dominant) in frames 1, 2, 4, 6
    frames[[0, 3], 468:470] = 0.5                      # a little of the left hand elsewhere
    assert landmarks.middle_hand_frame(frames) == 4    # the 3rd of 4 visible frames (index 4 // 2)
    assert landmarks.middle_hand_frame(np.full((5, 543, 3), np.nan, np.float32)) == 2   # no hand: middle
