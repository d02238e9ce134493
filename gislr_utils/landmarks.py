"""Landmark index constants of the GISLR format and of the model's 66 selected columns.

Raw GISLR frames hold 543 landmarks in a fixed order (face 0-467, left hand 468-488,
pose 489-521, right hand 522-542). The model sees 66 of them: 40 lips landmarks, the dominant
hand's 21 and 5 pose landmarks of the dominant arm (chapter 2 draws them).
"""
from typing import Any, NamedTuple

import numpy as np

N_ROWS = 543          # landmarks per frame in a raw GISLR file
N_DIMS = 3            # x, y, z
DIM_NAMES = ("x", "y", "z")
INPUT_SIZE = 64       # frames the model sees
NUM_CLASSES = 250     # signs in the competition

# Landmark types in file order, with their first index and their count.
TYPE_ORDER = ("face", "left_hand", "pose", "right_hand")
TYPE_COUNTS = {"face": 468, "left_hand": 21, "pose": 33, "right_hand": 21}
TYPE_STARTS = {"face": 0, "left_hand": 468, "pose": 489, "right_hand": 522}

# Raw indices (suffix 0 as in the original notebook).
LIPS_IDXS0 = np.array([
    61, 185, 40, 39, 37, 0, 267, 269, 270, 409,
    291, 146, 91, 181, 84, 17, 314, 405, 321, 375,
    78, 191, 80, 81, 82, 13, 312, 311, 310, 415,
    95, 88, 178, 87, 14, 317, 402, 318, 324, 308,
])
LEFT_HAND_IDXS0 = np.arange(468, 489)
RIGHT_HAND_IDXS0 = np.arange(522, 543)
_LEFT_HAND = slice(LEFT_HAND_IDXS0[0], LEFT_HAND_IDXS0[-1] + 1)       # the same rows as slices
_RIGHT_HAND = slice(RIGHT_HAND_IDXS0[0], RIGHT_HAND_IDXS0[-1] + 1)    # (views, no copy)
LEFT_POSE_IDXS0 = np.array([502, 504, 506, 508, 510])
RIGHT_POSE_IDXS0 = np.array([503, 505, 507, 509, 511])
LANDMARK_IDXS_LEFT_DOMINANT0 = np.concatenate((LIPS_IDXS0, LEFT_HAND_IDXS0, LEFT_POSE_IDXS0))
LANDMARK_IDXS_RIGHT_DOMINANT0 = np.concatenate((LIPS_IDXS0, RIGHT_HAND_IDXS0, RIGHT_POSE_IDXS0))
N_COLS = LANDMARK_IDXS_LEFT_DOMINANT0.size  # 66

# Column ranges inside the 66 selected columns.
N_LIPS, N_HAND, N_POSE = 40, 21, 5
LIPS_START, HAND_START, POSE_START = 0, 40, 61
LIPS_IDXS = np.arange(LIPS_START, LIPS_START + N_LIPS)
HAND_IDXS = np.arange(HAND_START, HAND_START + N_HAND)
POSE_IDXS = np.arange(POSE_START, POSE_START + N_POSE)
GROUPS = {"lips": LIPS_IDXS, "hand": HAND_IDXS, "pose": POSE_IDXS}

# Columns whose x is mirrored (x -> 1 - x) for right-dominant clips: hand and pose, not lips.
MIRROR_COLS = np.zeros(N_COLS, dtype=bool)
MIRROR_COLS[HAND_START:] = True


class DominantHand(NamedTuple):
    """What :func:`dominant_hand` returns (NumPy arrays, or tensors for a tensor input)."""

    left: Any            # [...] bool: the left hand (MediaPipe's ``left_hand``) is dominant
    visible: Any         # [..., n] bool: frames in which the dominant hand has a non-NaN value
    left_values: Any     # [..., n] int: non-NaN values of the left hand in each frame
    right_values: Any    # [..., n] int: the same for the right hand


def dominant_hand(frames) -> DominantHand:
    """The dominant-hand rule of the preprocessing; every other module and chapter calls this.

    The dominant hand of a clip is the hand with more non-NaN landmark values over the whole
    clip; ties go to the left hand. It is *visible* in a frame where it has at least one non-NaN
    value: the frames preprocessing keeps (chapters 1 and 2 explain the rule).

    `frames` are raw frames ``[..., n, 543, 3]``, NaN where a landmark is missing: one clip
    ``[n, 543, 3]`` or a batch ``[b, n, 543, 3]`` (frames of padding all NaN), as a NumPy array
    or as a TensorFlow tensor (`preprocessing.PreprocessLayer` calls it inside its graph).
    Returns a :class:`DominantHand` of arrays of the same kind.
    """
    if not isinstance(frames, np.ndarray) and type(frames).__module__.startswith("tensorflow"):
        from ._tf import tf
        left = tf.reduce_sum(tf.cast(~tf.math.is_nan(tf.gather(frames, LEFT_HAND_IDXS0, axis=-2)),
                                     tf.int32), axis=[-2, -1])
        right = tf.reduce_sum(tf.cast(~tf.math.is_nan(tf.gather(frames, RIGHT_HAND_IDXS0, axis=-2)),
                                      tf.int32), axis=[-2, -1])
        is_left = tf.reduce_sum(left, axis=-1) >= tf.reduce_sum(right, axis=-1)
        visible = tf.where(is_left[..., None], left, right) > 0
        return DominantHand(is_left, visible, left, right)
    frames = np.asarray(frames)
    if frames.ndim < 3 or frames.shape[-2:] != (N_ROWS, N_DIMS):
        raise ValueError(f"frames must have shape [..., n_frames, {N_ROWS}, {N_DIMS}], got {list(frames.shape)}")
    left = np.count_nonzero(~np.isnan(frames[..., _LEFT_HAND, :]), axis=(-2, -1))
    right = np.count_nonzero(~np.isnan(frames[..., _RIGHT_HAND, :]), axis=(-2, -1))
    is_left = left.sum(axis=-1) >= right.sum(axis=-1)
    visible = np.where(is_left[..., None], left, right) > 0
    return DominantHand(is_left, visible, left, right)


def middle_hand_frame(frames) -> int:
    """Index of the middle frame among those showing the clip's dominant hand (chapters 1, 2)."""
    visible = np.flatnonzero(dominant_hand(np.asarray(frames)).visible)
    return int(visible[len(visible) // 2]) if visible.size else len(frames) // 2
