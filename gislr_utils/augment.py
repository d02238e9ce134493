"""Training-time augmentations in the book's own representation (chapter 7, "Beyond the seed").

The winners of the competition augmented raw clips ``[n, 543, 3]`` (notes/ch7_sources.md has every
default with its source). The book trains on *preprocessed* batches: ``frames [B, 64, 66, 3]``
(0 = missing landmark) and ``non_empty_frame_idxs [B, 64]`` (-1 = padding, valid frames first), in
which every clip was made left-dominant by mirroring its hand and pose columns. So each
augmentation is written here for that representation, in NumPy, and drawn from a
``numpy.random.Generator``: the same generator state gives the same batch.

* **Flip.** :func:`flip_raw` flips a raw clip (x -> 1 - x, hands swapped, pose pairs swapped, every
  face-mesh landmark onto its mirror image, :data:`ROW_MIRROR`). What does that do to the
  preprocessed clip? The flip swaps the hands' counts, so the other hand becomes dominant, and the
  preprocessing mirrors it back: hand and pose columns come back *unchanged*, and only the lips
  (which the preprocessing never mirrors) are flipped, x -> 1 - x with their mirror permutation
  (:data:`COL_MIRROR`). :func:`flip` is that map; the tests check
  ``preprocess(flip_raw(raw)) == flip(preprocess(raw))`` on genuine clips. The exception is a tie
  (both hands in the same number of frames): ties go to the left hand, so the flipped clip keeps
  the *other* physical hand, which the preprocessed clip does not hold.
* **Affine** (:func:`affine_matrices`, :func:`apply_affine`): ``xy -> A (xy - c) + c + t`` with
  ``A = s R(angle) Sh`` (first place's scale, shear on x or y, rotation) around the clip's centre
  ``c`` (the mean of its present landmarks: first place rotated around the image centre, which its
  per-clip normalisation then re-centred; this model standardises with global statistics, so the
  translation is kept apart, in ``t``). Global: one draw per clip (first place); per frame: 1 to 8
  frames of a clip get their own, smaller draw (third place's "time-based augmentation"). z is
  left alone (the model reads x, y); missing landmarks stay exactly 0.
* **Resampling** (:func:`resample`): a speed change of the valid frames, linear between present
  values, keeping the first and the last frame; the indices are resampled alike.
* **Frame masking** zeroes one block of 20-40 % of the valid frames, which keep their index (first
  place set them to NaN, third place "fill with 0.0"): in this model they get the "empty"
  embeddings. **Group masking** zeroes the lips, hand or pose group in 20-40 % of the frames.

:func:`augment_batch` applies them in first place's order (resample, flip, affine, per-frame affine,
frame mask, group mask), each with its probability from the run's settings; a probability left out
or 0 switches it off, and with all off the batch comes back unchanged, bit for bit. Training calls
it on training batches only.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .landmarks import LIPS_IDXS0, N_COLS, N_HAND, N_LIPS, N_POSE

# The 28 face-mesh landmarks on the face's midline: their own mirror images. Every other landmark
# below 248 is the mirror image of one above, in order (the mesh's numbering): derived from the
# book's mean face by a mirrored optimal assignment, checked in tests/test_augment.py.
FACE_MIDLINE = np.array([0, 1, 2, 4, 5, 6, *range(8, 20), 94, 151, 152, 164, 168, 175, 195, 197, 199, 200])


def _mirror_rows() -> np.ndarray:
    side = np.setdiff1d(np.arange(248), FACE_MIDLINE)        # 220 landmarks of one side, in order
    face = np.arange(468)
    face[side], face[248:] = np.arange(248, 468), side
    pose = np.arange(33)          # 0 nose; 1-3 and 4-6 the eyes; then pairs (7, 8) ... (31, 32)
    pose[1:] = np.r_[4:7, 1:4, np.arange(7, 33).reshape(-1, 2)[:, ::-1].ravel()]
    hand = np.arange(21)
    return np.concatenate([face, 522 + hand, 489 + pose, 468 + hand])


# Row i of a flipped raw clip is row ROW_MIRROR[i] of the clip (face, left hand, pose, right hand).
ROW_MIRROR = _mirror_rows()
# Column j of a flipped preprocessed clip is column COL_MIRROR[j]: the lips' mirror permutation.
COL_MIRROR = np.r_[[list(LIPS_IDXS0).index(r) for r in ROW_MIRROR[LIPS_IDXS0]], N_LIPS:N_COLS]
GROUP_OF_COL = np.repeat([0, 1, 2], [N_LIPS, N_HAND, N_POSE])     # lips, hand, pose

# The improved preset's probabilities (0 = off) and the ranges; sources in notes/ch7_sources.md.
PROBABILITIES = dict(
    aug_resample=0.8,       # 1st place: resample, p 0.8
    aug_flip=0.5,           # 1st place: flip_lr, p 0.5
    aug_affine=0.75,        # 1st place: spatial_random_affine, p 0.75
    aug_frame_affine=0.5,   # 3rd place's time-based affine (no probability given: ours)
    aug_frame_mask=0.5,     # 1st place: temporal_mask, p 0.5
    aug_group_mask=0.5,     # ours, in the place of 1st place's spatial cutout (p 0.5)
)
RANGES = dict(
    aug_resample_rate=0.5,            # 1st place: rate in (0.5, 1.5)
    aug_rotate=30.0,                  # 1st place: degrees in (-30, 30)
    aug_scale=0.2,                    # 1st place: scale in (0.8, 1.2)
    aug_shear=0.15,                   # 1st place: shear in (-0.15, 0.15), on x or on y
    aug_shift=0.1,                    # 1st place: shift in (-0.1, 0.1)
    aug_frame_affine_frames=8,        # 3rd place: "random select some frames(1-8)"
    aug_frame_affine_strength=1 / 3,  # ours: per-frame ranges = global ranges / 3 (10 degrees)
    aug_mask_size=(0.2, 0.4),         # 1st place: temporal_mask size (0.2, 0.4)
)


def present(frames) -> np.ndarray:
    """``[..., 66]`` bool: the landmark was seen (the preprocessing writes 0 for a missing one)."""
    frames = np.asarray(frames)
    return (frames[..., 0] != 0) | (frames[..., 1] != 0)


def flip_raw(frames) -> np.ndarray:
    """Horizontal flip of raw frames ``[..., n, 543, 3]``: x -> 1 - x, left and right hands, pose
    pairs and face landmarks swapped with their mirror images; NaN stays NaN (chapter 7)."""
    out = np.asarray(frames)[..., ROW_MIRROR, :]
    out[..., 0] = 1 - out[..., 0]
    return out


def flip(frames) -> np.ndarray:
    """The same flip of preprocessed frames ``[..., 64, 66, 3]``: the lips mirrored (x -> 1 - x,
    mirror permutation), hand and pose unchanged; missing landmarks stay 0 (module docstring)."""
    out = np.array(frames)
    lips = out[..., COL_MIRROR[:N_LIPS], :]
    lips[..., 0] = np.where(present(lips), 1 - lips[..., 0], 0)
    out[..., :N_LIPS, :] = lips
    return out


def affine_matrices(rng, size, rotate=30.0, scale=0.2, shear=0.15) -> np.ndarray:
    """``[*size, 2, 2]`` random ``s R(angle) Sh``: angle uniform in +-`rotate` degrees, s in
    1 +- `scale`, a shear uniform in +-`shear` on x or (50/50) on y (chapter 7)."""
    size = tuple(np.atleast_1d(size))
    angle = np.deg2rad(rng.uniform(-rotate, rotate, size))
    s = rng.uniform(1 - scale, 1 + scale, size)
    k = rng.uniform(-shear, shear, size)
    on_x = rng.random(size) < 0.5
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    one, kx, ky = np.ones(size), np.where(on_x, k, 0.0), np.where(on_x, 0.0, k)
    sh = np.stack([np.stack([one, kx], -1), np.stack([ky, one], -1)], -2)
    return s[..., None, None] * rot @ sh


def clip_centre(frames) -> np.ndarray:
    """``[..., 2]``: mean x, y of a clip's present landmarks (0.5, 0.5 for a clip without any)."""
    frames = np.asarray(frames)
    count = present(frames).sum(axis=(-2, -1))[..., None]
    total = np.stack([frames[..., 0].sum(axis=(-2, -1)), frames[..., 1].sum(axis=(-2, -1))], -1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.5)      # missing values are 0


def apply_affine(frames, matrices, shift, centre) -> np.ndarray:
    """``xy -> A (xy - centre) + centre + shift`` for every present landmark of ``[..., T, 66, 3]``
    frames; `matrices` ``[..., T, 2, 2]``, `shift` and `centre` ``[..., T, 2]`` (broadcast);
    missing landmarks stay 0, z is unchanged (chapter 7)."""
    frames = np.asarray(frames)
    m = np.asarray(matrices, np.float32)[..., None]          # [..., T, 2, 2, 1]
    c, t = (np.asarray(v, np.float32)[..., None]
            for v in (centre, shift))                          # [..., T, 2, 1]
    dx, dy = frames[..., 0] - c[..., 0, :], frames[..., 1] - c[..., 1, :]
    seen, out = present(frames), frames.copy()
    for i in range(2):
        new = m[..., i, 0, :] * dx + m[..., i, 1, :] * dy + c[..., i, :]
        out[..., i] = np.where(seen, new + t[..., i, :], 0)
    return out


def resample(frames, idxs, rate: float):
    """One clip's valid frames (``frames [T, 66, 3]``, ``idxs [T]``, valid first) resampled to
    ``round(n * rate)`` frames (2 to T): linear between present values, else the nearer frame's;
    the first and last frame are kept, the indices resampled alike, padding stays padding."""
    frames, idxs = np.asarray(frames), np.asarray(idxs)
    n, T = int((idxs != -1).sum()), len(idxs)
    if n < 2:
        return frames.copy(), idxs.copy()
    pos = np.linspace(0, n - 1, int(np.clip(round(n * rate), 2, T)))
    lo = np.floor(pos).astype(int)
    hi, w = np.minimum(lo + 1, n - 1), pos - lo
    a, b, wf = frames[lo], frames[hi], w[:, None, None]
    both = (present(a) & present(b))[..., None]
    new = np.where(both, a + (b - a) * wf, np.where(wf < 0.5, a, b))
    out, out_idxs = np.zeros_like(frames), np.full_like(idxs, -1)
    out[:len(pos)] = new
    out_idxs[:len(pos)] = idxs[lo] + (idxs[hi] - idxs[lo]) * w
    return out, out_idxs


def _setting(settings, name, default):
    value = settings.get(name) if isinstance(settings, Mapping) else getattr(settings, name, None)
    return default if value is None else value


def augment_batch(frames, idxs, rng: np.random.Generator, settings):
    """Augment one *training* batch ``frames [B, T, 66, 3]``, ``idxs [B, T]`` (chapter 7).

    `settings` (a mapping or an object with attributes, e.g. the run's config) gives each
    augmentation's probability per clip, :data:`PROBABILITIES`' names; a missing or 0 one is off.
    Ranges come from the same names as :data:`RANGES`, or its values. Returns new float32 arrays;
    the same `rng` state gives the same result.
    """
    frames = np.array(frames, np.float32)
    idxs = np.array(idxs, np.float32)
    B, T = idxs.shape
    if frames.shape != (B, T, N_COLS, 3):
        raise ValueError(f"frames {frames.shape} and idxs {idxs.shape} must be [B, T, {N_COLS}, 3] and [B, T]")
    p = {k: float(_setting(settings, k, 0.0)) for k in PROBABILITIES}
    if any(not 0 <= v <= 1 for v in p.values()):
        raise ValueError(f"augmentation probabilities must lie in [0, 1]: {p}")
    r = {k: _setting(settings, k, v) for k, v in RANGES.items()}
    draw = {k: np.flatnonzero(rng.random(B) < v) if v > 0 else np.arange(0) for k, v in p.items()}
    for i in draw["aug_resample"]:
        rate = rng.uniform(1 - r["aug_resample_rate"], 1 + r["aug_resample_rate"])
        frames[i], idxs[i] = resample(frames[i], idxs[i], rate)
    on = draw["aug_flip"]
    frames[on] = flip(frames[on])
    on = draw["aug_affine"]
    if on.size:
        A = affine_matrices(rng, on.size, r["aug_rotate"], r["aug_scale"], r["aug_shear"])
        t = rng.uniform(-r["aug_shift"], r["aug_shift"], (on.size, 1, 2))
        frames[on] = apply_affine(frames[on], A[:, None], t, clip_centre(frames[on])[:, None])
    on = draw["aug_frame_affine"]
    if on.size:
        k = r["aug_frame_affine_strength"]
        A = affine_matrices(rng, (on.size, T), k * r["aug_rotate"], k * r["aug_scale"], k * r["aug_shear"])
        t = rng.uniform(-k * r["aug_shift"], k * r["aug_shift"], (on.size, T, 2))
        count = rng.integers(1, int(r["aug_frame_affine_frames"]) + 1, on.size)
        rank = np.where(idxs[on] != -1, rng.random((on.size, T)), 2.0).argsort(1).argsort(1)
        moved = apply_affine(frames[on], A, t, clip_centre(frames[on])[:, None])
        chosen = (rank < count[:, None]) & (idxs[on] != -1)
        frames[on] = np.where(chosen[..., None, None], moved, frames[on])
    lo, hi = r["aug_mask_size"]
    t = np.arange(T)
    on = draw["aug_frame_mask"]
    if on.size:
        n = (idxs[on] != -1).sum(1)
        size = (rng.uniform(lo, hi, on.size) * n).astype(int)
        start = (rng.random(on.size) * np.maximum(n - size, 1)).astype(int)
        hit = (t >= start[:, None]) & (t < (start + size)[:, None])
        frames[on] = np.where(hit[..., None, None], 0, frames[on])
    on = draw["aug_group_mask"]
    if on.size:
        group, frac = rng.integers(0, 3, on.size), rng.uniform(lo, hi, on.size)
        hit = (rng.random((on.size, T)) < frac[:, None]) & (idxs[on] != -1)
        cols = GROUP_OF_COL == group[:, None]
        frames[on] = np.where((hit[:, :, None] & cols[:, None, :])[..., None], 0, frames[on])
    return frames, idxs

