"""Raw GISLR frames -> the model's input: 64 frames of 66 landmarks, exactly as the original.

Chapter 2 (landmark statistics) explains the steps and their quirks on one clip and uses the
prepared arrays. The specification is `PreprocessLayer` of
M. Wijkhuizen's notebook "GISLR TF Data Processing & Transformer Training", reproduced twice:

* `preprocess` / `preprocess_files` / `prepare_dataset`: a fast NumPy path for whole data sets,
* `PreprocessLayer`: the same computation in TensorFlow ops, for the exported TFLite graph
  (builtin ops only).

The tests check that both agree (<= 1e-5) on every file of the real sample and on long clips.

The steps (raw `[n0, 543, 3]` float32, NaN where MediaPipe saw nothing):

1. **Dominant hand**: the hand (left 468-488 or right 522-542) with more non-NaN values over the
   whole clip; a tie goes to the left hand (so does a clip with no hand at all).
2. **Frame filter**: keep only the frames in which the dominant hand has at least one non-NaN
   value. `non_empty_frame_idxs` are their positions in the file minus the first one, so they
   start at 0 even when the clip starts with empty frames.
3. **Columns**: 40 lips landmarks, the dominant hand's 21, and 5 pose landmarks of the
   dominant arm (`landmarks.LANDMARK_IDXS_*_DOMINANT0`) -> 66 columns.
4. **Mirror**: a right-dominant clip is mirrored, x -> 1 - x for the hand and pose columns
   (`landmarks.MIRROR_COLS`); the lips, and y and z, are untouched. The original computes it as
   `0.5 + (x - 0.5) * -1`, which this module copies to the last bit.
5. **Short clips** (fewer than 64 kept frames): pad at the end with zero frames and with index -1.
6. **Long clips** (64 or more kept frames) are pooled to 64 frames:

   a. *Repeat* (only while fewer than 64 * 64 = 4096 frames are kept): every kept frame is
      repeated `4096 // n0` times. **Quirk 1**: `n0` is the number of frames in the *file*,
      before the frame filter, so a clip with leading/trailing empty frames is repeated fewer
      times than the same clip cut to its hand frames, and the result differs.
   b. *Pad*: with `L` frames now, `pool_size = ceil(L / 64)`; `pad_size` is
      `pool_size * 64 - L` when `pool_size == 1`, else `(pool_size * 64) % L` (the two
      formulas only differ when `L < 64`, which cannot happen here, except for `L = 0`: see
      quirk 3; for every `L >= 64` the modulo equals the difference). Then
      `pad_size // 2 + 32` copies of the first frame are put in front and
      `pad_size // 2 + 32 (+1 if pad_size is odd)` copies of the last frame behind, giving
      `(pool_size + 1) * 64` frames.
   c. *Pool*: the padded sequence is cut into 64 consecutive windows of `pool_size + 1` frames
      and each window is averaged with `nanmean` (so a landmark missing in a whole window is
      NaN); the frame indices are averaged the same way.
      **Quirk 3**: a file with more than 4096 frames of which 64 to 4095 are kept gets a repeat
      factor of 0, an empty sequence and a division by zero; the original graph fails
      (`InvalidArgumentError: Integer division by zero`). `preprocess` raises
      `GISLRDataError` for such clips (no real GISLR clip comes near 4096 frames).
7. **NaN -> 0** in the frames (never in the indices, which have no NaN). An infinite value, or
   one beyond +-1,000 (`dataset.check_coordinates`), is refused before step 1 (`check_clip`, the
   rule `export.tflite_predict` applies too): the original's `nan_to_num`-like step would turn
   inf into 3.4e38, and x = 1e19 makes every probability of the model NaN.

A clip whose dominant hand never appears keeps 0 frames: the original returns an all-padding
sample (zeros, indices all -1), and so do `preprocess` and `prepare_dataset`, which keeps every
clip of train.csv as the original pipeline does; `PreparedData.has_hand` marks the clips with a
hand, so that training can choose to leave the others out (and say how many).
**Quirk 2** (chapter 2; the model's `position_index`, chapter 3): the model's position of a
frame is `int(idx / max(idx) * 64)`, so the last kept frame (or the last pooled window) gets
position 64, the one used for padding.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import dataset, runs
from ._tf import keras, tf
from .dataset import GISLRDataError
from .landmarks import (INPUT_SIZE, LANDMARK_IDXS_LEFT_DOMINANT0, LANDMARK_IDXS_RIGHT_DOMINANT0, MIRROR_COLS,
                        N_COLS, N_DIMS, N_ROWS, dominant_hand)

# Bump when the preprocessing's output changes: it is part of prepare_dataset's cache key.
PREPROCESSING_VERSION = 1
_MIRROR_COLS_IDX = np.flatnonzero(MIRROR_COLS)


def _check_input_size(input_size) -> int:
    if int(input_size) != input_size or input_size < 1:
        raise ValueError(f"input_size={input_size!r} must be a positive integer")
    return int(input_size)


def check_clip(frames, input_size: int = INPUT_SIZE, source=None) -> np.ndarray:
    """The rule for a raw clip, shared by `preprocess` and `export.tflite_predict`: returns
    `frames` as a float32 `[n0, 543, 3]` array, or raises.

    * `ValueError`: not `[n0 > 0, 543, 3]`, or a wrong `input_size`;
    * `GISLRDataError`: an infinite coordinate or one beyond +-1,000 (`dataset.check_coordinates`,
      the rule of the files too: NaN marks a missing landmark; inf would become 3.4e38 in step 7,
      x = 1e19 NaN probabilities), or quirk 3 (more than `input_size ** 2` frames of
      which `input_size` to `input_size ** 2 - 1` have the dominant hand: the original's repeat
      factor `input_size ** 2 // n0` is 0 and it fails with an integer division by zero, the
      TFLite file with "FLOOR_MOD ... Division by 0").

    `source` (a file name, or e.g. ``"clip 3"``) starts the message. The same input gets the
    same message from both callers (`preprocess_files` adds the file's name).
    """
    size = _check_input_size(input_size)
    frames = np.asarray(frames)
    where = f"{source}: " if source is not None else ""
    if frames.ndim != 3 or frames.shape[1:] != (N_ROWS, N_DIMS):
        raise ValueError(f"{where}frames must have shape [n_frames, {N_ROWS}, {N_DIMS}], "
                         f"got {list(frames.shape)}")
    n0 = frames.shape[0]
    if n0 == 0:
        raise ValueError(f"{where}frames has 0 frames")
    dataset.check_coordinates(source, frames.reshape(-1, N_DIMS))      # in its dtype: 1e300 is no inf
    frames = frames.astype(np.float32, copy=False)
    if n0 > size * size:      # rare: only such clips can meet quirk 3
        n = int(dominant_hand(frames).visible.sum())
        if size <= n < size * size:
            raise GISLRDataError(
                f"{where}clip has {n0} frames (> {size * size}) but only {n} frames with the dominant "
                f"hand: the original preprocessing's repeat factor {size * size} // {n0} is 0 and it "
                "fails with an integer division by zero")
    return frames


def preprocess(frames,
               input_size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One clip -> `(x [64, 66, 3] float32, non_empty_frame_idxs [64] float32)`.

    A NumPy reproduction of the original `PreprocessLayer` (steps and quirks in the module
    docstring; chapter 2 shows this code and explains it). `frames` is a raw `[n0, 543, 3]`
    array, NaN where a landmark is missing (as `dataset.load_frames` returns it). `input_size`
    is the number of output frames (64 in the original; other values are for experiments and
    tests). Bad input (wrong shape, infinite or too large values, quirk 3) is refused by
    `check_clip` first, with the same message `export.tflite_predict` gives.

    Pooling (step 6) is computed without materialising the repeated and padded sequence: window
    sums come from cumulative sums over the kept frames (`window_sums`), so the 4096-frame
    intermediate costs nothing; sums are in float64, the mean is rounded to float32.
    The body's lines are at most 80 characters: chapter 2 prints it.
    """
    frames = check_clip(frames, input_size)   # shape, values, quirk 3
    size = int(input_size)                    # 64 output frames
    n0 = frames.shape[0]                      # frames in the file
    # 1. dominant hand: more non-NaN values over the clip; ties -> left
    hands = dominant_hand(frames)
    left_dominant = bool(hands.left)
    # 2. keep the n frames in which the dominant hand has a non-NaN value;
    #    their indices start at 0.
    kept = np.flatnonzero(hands.visible)
    n = kept.size                             # kept frames
    idxs = kept.astype(np.float32)
    if n:
        idxs -= idxs[0]
    # 3. 66 columns of the dominant side.
    cols = (LANDMARK_IDXS_LEFT_DOMINANT0 if left_dominant
            else LANDMARK_IDXS_RIGHT_DOMINANT0)
    data = frames[kept[:, None], cols[None, :]]                # [n, 66, 3]
    # 4. mirror right-dominant clips: x -> 0.5 + (x - 0.5) * -1 for the
    #    hand and pose columns.
    if not left_dominant:
        half = np.float32(0.5)
        x = data[:, _MIRROR_COLS_IDX, 0]
        data[:, _MIRROR_COLS_IDX, 0] = half + (x - half) * np.float32(-1.0)

    # 5. short clips: pad with zeros / -1 at the end.
    if n < size:
        out = np.zeros((size, N_COLS, N_DIMS), np.float32)
        out[:n] = np.nan_to_num(data, nan=0.0)
        out_idxs = np.full(size, -1.0, np.float32)
        out_idxs[:n] = idxs
        return out, out_idxs

    # 6a. repeat factor from n0, the frames in the FILE, not from the n
    #     kept frames (quirk 1); no repeat from 4096 kept frames on.
    #     (Quirk 3, n0 > 4096 with n < 4096: a factor of 0, refused by
    #     check_clip; the original divides by zero.)
    repeats = size * size // n0 if n < size * size else 1
    length = n * repeats
    # 6b. padding arithmetic of the original.
    pool_size = -(-length // size)                       # ceil(length / size)
    if pool_size == 1:
        pad_size = pool_size * size - length
    else:
        pad_size = (pool_size * size) % length
    pad_left = pad_size // 2 + size // 2
    window = pool_size + 1
    # 6c. window w covers positions [w * window - pad_left,
    #     (w + 1) * window - pad_left) of the repeated sequence; positions
    #     < 0 are copies of the first kept frame, >= length of the last.
    start = np.arange(size) * window - pad_left
    n_first = np.clip(-start, 0, window)                 # left edge copies
    n_last = np.clip(start + window - length, 0, window)  # right edge copies
    lo = np.clip(start, 0, length)
    hi = np.clip(start + window, 0, length)
    flat = data.reshape(n, N_COLS * N_DIMS)
    finite = ~np.isnan(flat)
    c = flat.shape[1]
    stacked = np.empty((n, 2 * c + 1))          # values | non-NaN | index
    stacked[:, :c] = np.where(finite, flat, np.float32(0.0))
    stacked[:, c:2 * c] = finite
    stacked[:, -1] = idxs
    sums = window_sums(stacked, n_first, n_last, lo, hi, repeats)
    # nanmean of each window; 0 / 0 -> 0 (7. NaN -> 0)
    out = np.zeros((size, c), np.float32)
    np.divide(sums[:, :c], sums[:, c:2 * c], out=out,
              where=sums[:, c:2 * c] > 0, casting="unsafe")
    # indices are integers: their window sums are exact in float32, as in
    # the original
    out_idxs = sums[:, -1].astype(np.float32) / np.float32(window)
    return out.reshape(size, N_COLS, N_DIMS), out_idxs.astype(np.float32)


def window_sums(values, n_first, n_last, lo, hi, repeats):
    """Sums over the pooling windows of the repeated, edge-padded sequence, without building it
    (step 6c of `preprocess`; chapter 2 shows it).

    `values [n, c]` (float64) are the kept frames; each window holds `n_first` copies of the
    first frame, positions `[lo, hi)` of the sequence in which every frame is repeated `repeats`
    times, and `n_last` copies of the last frame. Sums over `[0, q)` of the repeated sequence are
    `repeats * cumsum[q // repeats] + (q % repeats) * values[q // repeats]` (float64 cumsum).
    """
    n = len(values)
    csum = np.zeros((n + 1, values.shape[1]))
    np.cumsum(values, axis=0, out=csum[1:])

    def prefix(q):
        k = q // repeats
        last = values[np.minimum(k, n - 1)]
        return repeats * csum[k] + (q % repeats)[:, None] * last

    return (n_first[:, None] * values[0] + n_last[:, None] * values[-1]
            + prefix(hi) - prefix(lo))


@keras.saving.register_keras_serializable(package="gislr")
class PreprocessLayer(keras.layers.Layer):
    """The original preprocessing as a Keras 3 layer of TensorFlow ops (for the TFLite graph).

    `call` is a `tf.function` with input signature `[None, 543, 3]` float32 and returns
    `(x [64, 66, 3], non_empty_frame_idxs [64])`, like `preprocess` (steps and quirks in the
    module docstring; chapter 6 exports it). It differs from the original code in two ways that
    do not change any value: `tf.experimental.numpy.nanmean`, which the TFLite converter cannot
    lower to builtin ops, is written out as (sum of non-NaN values) / (count of non-NaN values)
    - exactly what nanmean computes, 0 / 0 = NaN for an all-NaN window included, which step 7
    turns into 0 - and the outputs get their static shapes. It converts to TFLite with
    `TFLITE_BUILTINS` only::

        layer = PreprocessLayer()
        fn = layer.call.get_concrete_function()
        tf.lite.TFLiteConverter.from_concrete_functions([fn], layer)
    """

    def __init__(self, input_size: int = INPUT_SIZE, **kwargs):
        super().__init__(**kwargs)
        self.input_size = _check_input_size(input_size)
        # x of hand and pose columns is mirrored around 0.5 (step 4), as the original's
        # `normalisation_correction` constant [66, 3].
        correction = np.zeros((N_COLS, N_DIMS), np.float32)
        correction[MIRROR_COLS, 0] = 0.5
        self._correction = tf.constant(correction)
        self._mirror_sign = tf.constant(np.where(correction != 0, -1.0, 1.0).astype(np.float32))

    def get_config(self):
        return {**super().get_config(), "input_size": self.input_size}

    def compute_output_spec(self, inputs):
        return (keras.KerasTensor((self.input_size, N_COLS, N_DIMS), dtype="float32"),
                keras.KerasTensor((self.input_size,), dtype="float32"))

    @tf.function(input_signature=(tf.TensorSpec(shape=[None, N_ROWS, N_DIMS], dtype=tf.float32),))
    def call(self, data0):
        size = self.input_size
        n_frames0 = tf.shape(data0)[0]
        # 1. dominant hand, 2. the frames in which it is visible (landmarks.dominant_hand)
        hands = dominant_hand(data0)
        left_dominant = hands.left
        idxs = tf.squeeze(tf.where(hands.visible), axis=1)
        data = tf.gather(data0, idxs, axis=0)
        idxs = tf.cast(idxs, tf.float32)
        idxs -= tf.reduce_min(idxs)
        n_frames = tf.shape(data)[0]
        # 3.-4. columns, mirror
        if left_dominant:
            data = tf.gather(data, LANDMARK_IDXS_LEFT_DOMINANT0, axis=1)
        else:
            data = tf.gather(data, LANDMARK_IDXS_RIGHT_DOMINANT0, axis=1)
            data = self._correction + (data - self._correction) * self._mirror_sign
        if n_frames < size:
            # 5. pad short clips
            idxs = tf.pad(idxs, [[0, size - n_frames]], constant_values=-1)
            data = tf.pad(data, [[0, size - n_frames], [0, 0], [0, 0]], constant_values=0)
            data = tf.where(tf.math.is_nan(data), 0.0, data)
        else:
            # 6a. repeat with the unfiltered frame count (quirk 1)
            if n_frames < size * size:
                repeats = tf.math.floordiv(size * size, n_frames0)
                data = tf.repeat(data, repeats=repeats, axis=0)
                idxs = tf.repeat(idxs, repeats=repeats, axis=0)
            # 6b. padding arithmetic of the original
            length = tf.shape(data)[0]
            pool_size = tf.math.floordiv(length + size - 1, size)              # ceil(length / size)
            if pool_size == 1:
                pad_size = (pool_size * size) - length
            else:
                pad_size = tf.math.floormod(pool_size * size, length)
            pad_left = tf.math.floordiv(pad_size, 2) + size // 2
            pad_right = pad_left + tf.math.floormod(pad_size, 2)         # one more when pad_size is odd
            # copies of the first frame in front, of the last frame behind (the original's _pad_edge)
            data, idxs = (tf.concat((tf.repeat(t[:1], pad_left, axis=0), t, tf.repeat(t[-1:], pad_right, axis=0)),
                                    axis=0) for t in (data, idxs))
            # 6c. nanmean over 64 windows, written with builtin ops
            data = tf.reshape(data, [size, -1, N_COLS, N_DIMS])
            idxs = tf.reshape(idxs, [size, -1])
            data_nan = tf.math.is_nan(data)
            data = tf.math.divide(
                tf.math.reduce_sum(tf.where(data_nan, 0.0, data), axis=1),
                tf.math.reduce_sum(tf.cast(tf.math.logical_not(data_nan), tf.float32), axis=1))
            idxs = tf.math.divide(tf.math.reduce_sum(idxs, axis=1), tf.math.reduce_sum(tf.ones_like(idxs), axis=1))
            # 7. NaN -> 0
            data = tf.where(tf.math.is_nan(data), 0.0, data)
        return tf.reshape(data, [size, N_COLS, N_DIMS]), tf.reshape(idxs, [size])


# ----------------------------------------------------------------------------------------------
# Many files


def _preprocess_path(path, input_size):
    try:
        return preprocess(dataset.load_frames(path), input_size)
    except (GISLRDataError, FileNotFoundError) as e:
        if str(path) in str(e):
            raise
        raise type(e)(f"{path}: {e}") from e
    except Exception as e:  # pragma: no cover - unexpected failures still name the file
        raise GISLRDataError(f"{path}: preprocessing failed: {e}") from e


def preprocess_files(paths, workers: int | None = None, progress: bool = True,
                     input_size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Read and preprocess many landmark files -> `(X [n, 64, 66, 3] f32, IDX [n, 64] f32)`.

    Row `i` is `preprocess(dataset.load_frames(paths[i]))`, in the order of `paths`, whatever
    the number of workers. Files are read and preprocessed by a pool of `workers` threads
    (None: `os.cpu_count()`): pyarrow decodes parquet without holding the GIL, which is most of
    the time spent, and threads need no process start-up nor copies of the results
    (`benchmarks/preprocess.py` compares this with the original one-file-at-a-time path).
    Every file goes through `dataset.load_frames`, so every check of the data path applies
    (columns, row count, layout and frame order, coordinates; `check_clip`'s rule, quirk 3
    included): the first bad file stops the run with a `GISLRDataError` naming it.
    `progress` shows a tqdm bar. `prepare_dataset` calls it.
    """
    paths = [str(p) for p in paths]
    size = _check_input_size(input_size)
    n = len(paths)
    X = np.zeros((n, size, N_COLS, N_DIMS), np.float32)
    IDX = np.zeros((n, size), np.float32)
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1 (or None for all cores)")

    def work(chunk):                 # threads write disjoint rows of the shared arrays
        for i in chunk:
            X[i], IDX[i] = _preprocess_path(paths[i], size)
        return len(chunk)

    step = max(1, min(64, n // (8 * workers)))     # tasks of up to 64 files: less pool overhead a file
    ex = ThreadPoolExecutor(max_workers=workers)
    try:
        with tqdm(total=n, desc="preprocessing", unit="file", disable=not progress or n == 0) as bar:
            for done in ex.map(work, [range(i, min(i + step, n)) for i in range(0, n, step)]):
                bar.update(done)                # in order: the first bad file stops the run
    finally:  # on an error (or Ctrl-C) do not wait for the files still queued
        ex.shutdown(wait=True, cancel_futures=True)
    return X, IDX


# ----------------------------------------------------------------------------------------------
# A whole data set, cached

_ARRAYS = ("X", "idxs", "y", "participant_id", "sequence_id")


def _feed(h, a) -> None:
    """Hash an array's dtype, shape and bytes into `h`, 16 MB at a time (no copy of a memory map)."""
    a = np.asarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    step = max(1, (1 << 24) // max(1, a[:1].nbytes))
    for i in range(0, len(a), step):
        h.update(np.ascontiguousarray(a[i:i + step]))


def content_key(X, idxs, y, participant_id, sequence_id) -> str:
    """16 hex digits of the SHA-256 of the five arrays' dtype, shape and bytes, in this order:
    the identity of a prepared data set (`PreparedData.key`)."""
    h = hashlib.sha256()
    for a in (X, idxs, y, participant_id, sequence_id):
        _feed(h, a)
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class PreparedData:
    """A preprocessed data set (see `prepare_dataset`); chapters 2-5 use it.

    `X [n, 64, 66, 3]` float32, `idxs [n, 64]` float32 (non_empty_frame_idxs), `y [n]` int32
    labels, `participant_id` and `sequence_id [n]` int64, `clips` (`dataset.read_clips`'s table,
    in the order of the arrays: every clip of train.csv) and `cache_dir` (where the arrays are
    stored; None for one built by hand). Frozen (`dataclasses.replace` makes a changed copy);
    arrays from the cache are read-only.

    `key` is the data set's identity: `content_key` of the five arrays. Arrays prepared again
    from the same files (touched, moved, re-mounted) have the same key; training and the run
    manifests use it. It is stored with the cache (no hashing); for a PreparedData built by hand
    or with `dataclasses.replace` it is hashed on first use. `has_hand` (bool [n]) is False for
    the clips whose dominant hand never appears (all padding, first index -1).
    """

    X: np.ndarray
    idxs: np.ndarray
    y: np.ndarray
    participant_id: np.ndarray
    sequence_id: np.ndarray
    clips: pd.DataFrame
    cache_dir: Path | None = None

    @functools.cached_property
    def key(self) -> str:
        return content_key(*(getattr(self, name) for name in _ARRAYS))

    @property
    def has_hand(self) -> np.ndarray:
        return np.asarray(self.idxs[:, 0]) != -1

    def __repr__(self) -> str:
        return f"PreparedData({len(self.y)} clips, {int((~self.has_hand).sum())} without a hand, in {self.cache_dir})"


def _inputs_key(data_dir: Path, clips: pd.DataFrame, input_size: int) -> str:
    """Hash of what the arrays are made from (see `prepare_dataset`)."""
    h = hashlib.sha256(f"preprocessing v{PREPROCESSING_VERSION} input_size {input_size}\n".encode())
    for name in ("train.csv", dataset.SIGN_MAP_NAME):
        h.update(name.encode() + b"\n" + (data_dir / name).read_bytes() + b"\n")
    for path in clips["path"]:
        st = os.stat(path)
        h.update(f"{path}\t{st.st_size}\t{st.st_mtime_ns}\t{st.st_ctime_ns}\n".encode())
    return h.hexdigest()[:16]


def _spec(key: str, n_clips: int, input_size: int) -> dict:
    return {"artefact": "prepared arrays", "key": key, "n_clips": n_clips, "input_size": input_size,
            "preprocessing_version": PREPROCESSING_VERSION}


def _load(folder: Path, clips: pd.DataFrame, mmap: bool) -> PreparedData:
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None) for name in _ARRAYS}
    for a in arrays.values():
        a.flags.writeable = False
    data = PreparedData(**arrays, clips=clips, cache_dir=folder)
    data.__dict__["key"] = folder.name        # `key` (a cached_property) as stored: no hashing
    return data


# Clips preprocessed per chunk by prepare_dataset (4,096 clips: about 200 MB of float32).
PREPARE_CHUNK = 4096
_FILES = [f"{name}.npy" for name in _ARRAYS] + ["clips.csv"]


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"


def _write_arrays(folder: Path, clips: pd.DataFrame, size: int, workers, progress) -> str:
    """Preprocess every clip into `folder` (.npy files and clips.csv); returns the content key,
    hashed from the chunks as they are written (no second pass over X).

    `PREPARE_CHUNK` clips at a time (`preprocess_files`), each chunk written into X.npy through a
    memory map of the file: memory for one chunk, whatever the size of the data set (4.8 GB for
    GISLR). The disk space is checked, then reserved, first: a full disk is an error naming the
    folder and the space needed, not a crash of the process writing through the memory map."""
    n = len(clips)
    need = n * size * N_COLS * N_DIMS * 4 + n * (size * 4 + 24) + (1 << 20)
    what = f"{folder.parent}: preparing {n:,} clips needs {_size(need)} of free disk space"
    free = shutil.disk_usage(folder).free
    if free < need:
        raise OSError(errno.ENOSPC, f"{what}, {_size(free)} are free")
    X = np.lib.format.open_memmap(folder / "X.npy", "w+", np.float32, (n, size, N_COLS, N_DIMS))
    if hasattr(os, "posix_fallocate"):
        with open(folder / "X.npy", "r+b") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
            except OSError as err:       # e.g. another writer filled the disk meanwhile
                raise OSError(err.errno, f"{what}; reserving it failed ({err.strerror})") from err
    h = hashlib.sha256(f"{X.dtype.str}{X.shape}".encode())    # = content_key's order
    del X
    idxs = np.empty((n, size), np.float32)
    with tqdm(total=n, desc="preprocessing", unit="file", disable=not progress) as bar:
        for start in range(0, n, PREPARE_CHUNK):
            xc, idxs[start:start + PREPARE_CHUNK] = preprocess_files(
                clips["path"].iloc[start:start + PREPARE_CHUNK], workers=workers, progress=False,
                input_size=size)
            np.load(folder / "X.npy", mmap_mode="r+")[start:start + len(xc)] = xc   # mapped, then closed
            h.update(xc)
            bar.update(len(xc))
    arrays = {"idxs": idxs, "y": clips["label"].to_numpy(np.int32),
              "participant_id": clips["participant_id"].to_numpy(np.int64),
              "sequence_id": clips["sequence_id"].to_numpy(np.int64)}
    for name, a in arrays.items():
        np.save(folder / f"{name}.npy", a)
        _feed(h, a)
    clips.to_csv(folder / "clips.csv", index=False)
    return h.hexdigest()[:16]


def prepare_dataset(data_dir, artifacts_dir=None, workers: int | None = None,
                    progress: bool = True, input_size: int = INPUT_SIZE,
                    mmap: bool = False) -> PreparedData:
    """Preprocess every clip of a GISLR data directory, cached; returns a `PreparedData`.

    The clip table is `dataset.read_clips(data_dir)`; the arrays come from `preprocess_files`,
    one row per line of train.csv: a clip whose dominant hand never appears is an all-padding
    row (zeros, indices -1) as in the original, marked by `PreparedData.has_hand`.
    `progress=True` shows a tqdm bar.

    Cache (the arrays are made once per content and found again from their inputs): they are
    stored under `<artifacts_dir>/prepared/<key>/` (X.npy, idxs.npy, y.npy, participant_id.npy,
    sequence_id.npy, clips.csv and, written last, manifest.json: `runs`' record with each file's
    checksum), `<key>` being `PreparedData.key`, the hash of the arrays' contents;
    `<artifacts_dir>/prepared/inputs/<inputs key>.json` points to it from a hash of the inputs:
    `PREPROCESSING_VERSION`, `input_size`, the bytes of train.csv and the sign map and every
    listed file's path, size, modification time and change time (``st_ctime_ns``, which no user
    can set back: an edit that keeps size and modification time is still seen). A touched,
    edited, moved or re-mounted input is prepared again; identical arrays get the same key, and
    the runs made from them are still found. A damaged or edited cache is prepared again, with
    one line naming the file. The folder is written under a temporary name and renamed when
    complete; an intact copy of the same key is kept for its readers.

    `artifacts_dir=None` means `config.default_artifacts_dir()`. `mmap=True` opens the arrays as
    read-only memory maps (the full competition set is about 4.8 GB). Chapters 2-7 use it.
    """
    from .config import default_artifacts_dir, show_path

    size = _check_input_size(input_size)
    data_dir = Path(data_dir)
    root = Path(default_artifacts_dir() if artifacts_dir is None else artifacts_dir) / "prepared"
    clips = dataset.read_clips(data_dir)
    lookup = root / "inputs" / f"{_inputs_key(data_dir, clips, size)}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        folder = root / str(json.loads(lookup.read_text())["key"])
        why = runs.check(folder, _spec(folder.name, len(clips), size))
        if why is None:
            return _load(folder, clips, mmap)
        print(f"prepare_dataset: {show_path(folder)}: {why}; preparing the data set again")
    runs.clean_stale(root)
    tmp = root / f".new.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(parents=True)
    try:
        key = _write_arrays(tmp, clips, size, workers, progress)
        spec = _spec(key, len(clips), size)
        runs.write_manifest(tmp, spec, files=_FILES)
        folder = root / key
        if runs.check(folder, spec) is not None:      # an intact copy is kept for its readers
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    runs.write_text(lookup, json.dumps({"key": key}))
    return _load(folder, clips, mmap)


def real_clip():
    """A typical one of the 16 genuine clips shipped with the package (`dataset.pick_example`),
    preprocessed (chapters 3 and 4): ``(its clip_summary row, x [64, 66, 3], idxs [64])``."""
    from .config import real_sample_dir
    clip = dataset.pick_example(dataset.clip_summary(dataset.read_clips(real_sample_dir())))
    return (clip, *preprocess(dataset.load_frames(clip.path)))
