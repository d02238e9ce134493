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
      `pool_size * 64 - L` when `pool_size == 1`, else `(pool_size * 64) % L`. **Quirk 2**:
      the two formulas only differ when `L < 64`, which cannot happen here, except for `L = 0`
      (see quirk 3); for every `L >= 64` the modulo equals the difference. Then
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
7. **NaN -> 0** in the frames (never in the indices, which have no NaN). An infinite value is
   refused before step 1 (`check_clip`, the rule `export.tflite_predict` applies too): the
   original's `nan_to_num`-like step would turn it into 3.4e38.

A clip whose dominant hand never appears keeps 0 frames: the original returns an all-padding
sample (zeros, indices all -1), and so does `preprocess`. `prepare_dataset` leaves such clips
out of the training arrays and lists them in `PreparedData.skipped` (reason
``"no hand in any frame"``), printing a one-line report; nothing is dropped silently.
A further quirk, explained with the model in chapter 3: after pooling, the last window's mean
index divided by the largest index times 64 can reach 64, the position used for padding.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import dataset, runs
from ._tf import keras, tf
from .dataset import GISLRDataError
from .landmarks import (
    INPUT_SIZE,
    LANDMARK_IDXS_LEFT_DOMINANT0,
    LANDMARK_IDXS_RIGHT_DOMINANT0,
    MIRROR_COLS,
    N_COLS,
    N_DIMS,
    N_ROWS,
    dominant_hand,
)

# Bump when the preprocessing's output changes: it is part of prepare_dataset's cache key.
PREPROCESSING_VERSION = 1

SKIP_NO_HAND = "no hand in any frame"

_HALF = np.float32(0.5)
_MIRROR_COLS_IDX = np.flatnonzero(MIRROR_COLS)


def _check_input_size(input_size) -> int:
    if int(input_size) != input_size or input_size < 1:
        raise ValueError(f"input_size={input_size!r} must be a positive integer")
    return int(input_size)


def check_clip(frames, input_size: int = INPUT_SIZE, source=None) -> np.ndarray:
    """The rule for a raw clip, shared by `preprocess` and `export.tflite_predict`: returns
    `frames` as a float32 `[n0, 543, 3]` array, or raises.

    * `ValueError`: not `[n0 > 0, 543, 3]`, or a wrong `input_size`;
    * `GISLRDataError`: an infinite coordinate (NaN marks a missing landmark; inf would become
      3.4e38 in step 7 and NaN in the model), or quirk 3 (more than `input_size ** 2` frames of
      which `input_size` to `input_size ** 2 - 1` have the dominant hand: the original fails
      with an integer division by zero, the TFLite file with "FLOOR_MOD ... Division by 0").

    `source` (a file name, or e.g. ``"clip 3"``) starts the message. The same input gets the
    same message from both callers (`preprocess_files` adds the file's name).
    """
    size = _check_input_size(input_size)
    frames = np.asarray(frames)
    where = f"{source}: " if source is not None else ""
    if frames.ndim != 3 or frames.shape[1:] != (N_ROWS, N_DIMS):
        raise ValueError(f"{where}frames must have shape [n_frames, {N_ROWS}, {N_DIMS}], "
                         f"got {list(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError(f"{where}frames has 0 frames")
    if frames.dtype != np.float32:
        frames = frames.astype(np.float32)
    dataset.check_finite(source, frames.reshape(-1, N_DIMS))
    if frames.shape[0] > size * size:      # rare: only such clips can meet quirk 3
        try:
            _preprocess(frames, size)
        except GISLRDataError as err:
            raise GISLRDataError(f"{where}{err}") from None
    return frames


def preprocess(frames, input_size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One clip -> `(x [64, 66, 3] float32, non_empty_frame_idxs [64] float32)`.

    A NumPy reproduction of the original `PreprocessLayer` (steps and quirks in the module
    docstring; chapter 2 explains them). `frames` is a raw `[n0, 543, 3]` array, NaN where a
    landmark is missing (as `dataset.load_frames` returns it). `input_size` is the number of
    output frames (64 in the original; other values are for experiments and tests).

    Pooling (step 6) is computed without materialising the repeated and padded sequence: window
    sums come from cumulative sums over the kept frames (`_window_sums`), so the 4096-frame
    intermediate costs nothing; sums are in float64, the mean is rounded to float32.
    Bad input (wrong shape, infinite values, quirk 3) is refused by `check_clip` first, with the
    same message `export.tflite_predict` gives.
    """
    frames = check_clip(frames, input_size)
    return _preprocess(frames, _check_input_size(input_size))



def _preprocess(frames: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """`preprocess` without the input checks: `frames` float32 `[n0 > 0, 543, 3]`, no inf."""
    n0 = frames.shape[0]
    # 1. dominant hand (landmarks.dominant_hand: more non-NaN values over the clip; ties -> left)
    hands = dominant_hand(frames)
    left_dominant = bool(hands.left)
    # 2. keep frames where the dominant hand has any non-NaN value; indices start at 0.
    kept = np.flatnonzero(hands.visible)
    n = kept.size
    idxs = kept.astype(np.float32)
    if n:
        idxs -= idxs[0]
    # 3. 66 columns of the dominant side.
    cols = LANDMARK_IDXS_LEFT_DOMINANT0 if left_dominant else LANDMARK_IDXS_RIGHT_DOMINANT0
    data = frames[kept[:, None], cols[None, :]]                      # [n, 66, 3]
    # 4. mirror right-dominant clips: x -> 0.5 + (x - 0.5) * -1 for hand and pose.
    if not left_dominant:
        x = data[:, _MIRROR_COLS_IDX, 0]
        data[:, _MIRROR_COLS_IDX, 0] = _HALF + (x - _HALF) * np.float32(-1.0)

    # 5. short clips: pad with zeros / -1 at the end.
    if n < size:
        out = np.zeros((size, N_COLS, N_DIMS), np.float32)
        out[:n] = np.nan_to_num(data, nan=0.0)
        out_idxs = np.full(size, -1.0, np.float32)
        out_idxs[:n] = idxs
        return out, out_idxs

    # 6a. repeat factor from the UNFILTERED frame count n0 (quirk 1); skipped from 4096 kept on.
    repeats = size * size // n0 if n < size * size else 1
    length = n * repeats
    if length == 0:  # quirk 3: the original divides by zero here
        raise GISLRDataError(
            f"clip has {n0} frames (> {size * size}) but only {n} frames with the dominant hand: "
            f"the original preprocessing's repeat factor {size * size} // {n0} is 0 and it fails "
            "with an integer division by zero"
        )
    # 6b. padding arithmetic of the original.
    pool_size = length // size + (1 if length % size > 0 else 0)
    pad_size = pool_size * size - length if pool_size == 1 else (pool_size * size) % length
    pad_left = pad_size // 2 + size // 2
    window = pool_size + 1
    # 6c. window w covers positions [w * window - pad_left, (w + 1) * window - pad_left) of the
    # repeated sequence; positions < 0 are copies of the first kept frame, >= length of the last.
    start = np.arange(size) * window - pad_left
    n_first = np.clip(-start, 0, window)                             # left edge copies
    n_last = np.clip(start + window - length, 0, window)             # right edge copies
    lo = np.clip(start, 0, length)
    hi = np.clip(start + window, 0, length)
    flat = data.reshape(n, N_COLS * N_DIMS)
    finite = ~np.isnan(flat)
    c = flat.shape[1]
    stacked = np.empty((n, 2 * c + 1))                               # values | non-NaN | index
    stacked[:, :c] = np.where(finite, flat, np.float32(0.0))
    stacked[:, c:2 * c] = finite
    stacked[:, -1] = idxs
    sums = _window_sums(stacked, n_first, n_last, lo, hi, repeats)
    out = np.zeros((size, c), np.float32)
    np.divide(sums[:, :c], sums[:, c:2 * c], out=out, where=sums[:, c:2 * c] > 0,
              casting="unsafe")                                      # nanmean; 0/0 -> 0 (7.)
    # indices are integers: their window sums are exact in float32, as in the original
    out_idxs = sums[:, -1].astype(np.float32) / np.float32(window)
    return out.reshape(size, N_COLS, N_DIMS), out_idxs.astype(np.float32)


def _window_sums(values, n_first, n_last, lo, hi, repeats):
    """Sums over the pooling windows of the repeated, edge-padded sequence, without building it.

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
        return repeats * csum[k] + (q % repeats)[:, None] * values[np.minimum(k, n - 1)]

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
        config = super().get_config()
        config.update(input_size=self.input_size)
        return config

    def compute_output_spec(self, inputs):
        return (keras.KerasTensor((self.input_size, N_COLS, N_DIMS), dtype="float32"),
                keras.KerasTensor((self.input_size,), dtype="float32"))

    @staticmethod
    def _pad_edge(t, repeats, side):
        if side == "LEFT":
            return tf.concat((tf.repeat(t[:1], repeats=repeats, axis=0), t), axis=0)
        return tf.concat((t, tf.repeat(t[-1:], repeats=repeats, axis=0)), axis=0)

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
            pool_size = tf.math.floordiv(length, size)
            if tf.math.floormod(length, size) > 0:
                pool_size += 1
            if pool_size == 1:
                pad_size = (pool_size * size) - length
            else:
                pad_size = tf.math.floormod(pool_size * size, length)
            pad_left = tf.math.floordiv(pad_size, 2) + size // 2
            pad_right = tf.math.floordiv(pad_size, 2) + size // 2
            if tf.math.floormod(pad_size, 2) > 0:
                pad_right += 1
            data = self._pad_edge(data, pad_left, "LEFT")
            data = self._pad_edge(data, pad_right, "RIGHT")
            idxs = self._pad_edge(idxs, pad_left, "LEFT")
            idxs = self._pad_edge(idxs, pad_right, "RIGHT")
            # 6c. nanmean over 64 windows, written with builtin ops
            data = tf.reshape(data, [size, -1, N_COLS, N_DIMS])
            idxs = tf.reshape(idxs, [size, -1])
            data_nan = tf.math.is_nan(data)
            data = tf.math.divide(
                tf.math.reduce_sum(tf.where(data_nan, 0.0, data), axis=1),
                tf.math.reduce_sum(tf.cast(tf.math.logical_not(data_nan), tf.float32), axis=1))
            idxs = tf.math.divide(
                tf.math.reduce_sum(idxs, axis=1),
                tf.math.reduce_sum(tf.ones_like(idxs), axis=1))
            # 7. NaN -> 0
            data = tf.where(tf.math.is_nan(data), 0.0, data)
        return tf.reshape(data, [size, N_COLS, N_DIMS]), tf.reshape(idxs, [size])


# ----------------------------------------------------------------------------------------------
# Many files


def _preprocess_path(path, input_size):
    try:
        # = preprocess(dataset.load_frames(path)): check_clip's rule is met, load_frames
        # checked the shape and finiteness, and _preprocess raises quirk 3 itself.
        return _preprocess(dataset.load_frames(path), input_size)
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
    (columns, row count, layout and frame order, finite values; `check_clip`'s rule, quirk 3
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
    bar = tqdm(total=n, desc="preprocessing", unit="file", disable=not progress or n == 0)

    def work(chunk):                 # threads write disjoint rows of the shared arrays
        for i in chunk:
            X[i], IDX[i] = _preprocess_path(paths[i], size)
        return len(chunk)

    step = max(1, min(64, n // (8 * workers)))
    chunks = [range(i, min(i + step, n)) for i in range(0, n, step)]
    try:
        if workers == 1 or len(chunks) <= 1:
            for chunk in chunks:
                bar.update(work(chunk))
        else:
            ex = ThreadPoolExecutor(max_workers=min(workers, len(chunks)))
            try:
                for done in ex.map(work, chunks):
                    bar.update(done)
            finally:  # on an error (or Ctrl-C) do not wait for the files still queued
                ex.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
    return X, IDX


# ----------------------------------------------------------------------------------------------
# A whole data set, cached


@dataclass
class PreparedData:
    """A preprocessed data set (see `prepare_dataset`); chapters 2-5 use it.

    `X [n, 64, 66, 3]`, `idxs [n, 64]` (non_empty_frame_idxs), `y [n]` int32 labels,
    `participant_id` and `sequence_id [n]`, `clips` (the kept clips' rows of `read_clips`, in
    the order of the arrays), `skipped` (the clips left out, with a `reason` column) and
    `cache_dir` (where the arrays are stored).
    """

    X: np.ndarray
    idxs: np.ndarray
    y: np.ndarray
    participant_id: np.ndarray
    sequence_id: np.ndarray
    clips: pd.DataFrame
    skipped: pd.DataFrame
    cache_dir: Path

    def summary(self) -> str:
        """One line: clips kept, clips skipped and why, where the arrays are cached."""
        text = f"{len(self.clips)} clips kept, {len(self.skipped)} skipped"
        if len(self.skipped):
            reasons = self.skipped["reason"].value_counts()
            text += " (" + ", ".join(f"{reason}: {count}" for reason, count in reasons.items()) + ")"
        return text + f"; X {list(self.X.shape)}; cache {self.cache_dir}"

    def __repr__(self) -> str:
        return f"PreparedData({self.summary()})"


def _cache_key(data_dir: Path, clips: pd.DataFrame, input_size: int) -> str:
    """Hash of everything the prepared arrays depend on (see `prepare_dataset`)."""
    h = hashlib.sha256()
    h.update(f"preprocessing v{PREPROCESSING_VERSION} input_size {input_size}\n".encode())
    for name in ("train.csv", "sign_to_prediction_index_map.json"):
        p = data_dir / name
        h.update(name.encode() + b"\n" + (p.read_bytes() if p.exists() else b"<absent>") + b"\n")
    for path in clips["path"]:
        st = os.stat(path)
        h.update(f"{path}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


_ARRAYS = ("X", "idxs", "y", "participant_id", "sequence_id")


def _load_cache(cache_dir: Path, mmap: bool = False) -> PreparedData | None:
    if not (cache_dir / "meta.json").exists():
        return None
    arrays = {name: np.load(cache_dir / f"{name}.npy", mmap_mode="r" if mmap else None)
              for name in _ARRAYS}
    clips = pd.read_csv(cache_dir / "clips.csv")
    skipped = pd.read_csv(cache_dir / "skipped.csv")
    return PreparedData(**arrays, clips=clips, skipped=skipped, cache_dir=cache_dir)


def _report_skipped(skipped: pd.DataFrame) -> None:
    if len(skipped):
        first = ", ".join(Path(p).name for p in skipped["path"].head(3))
        more = ", ..." if len(skipped) > 3 else ""
        print(f"prepare_dataset: skipped {len(skipped)} of the clips, {SKIP_NO_HAND!r} "
              f"({first}{more}); see PreparedData.skipped")


def prepare_dataset(data_dir, artifacts_dir=None, workers: int | None = None,
                    progress: bool = True, input_size: int = INPUT_SIZE,
                    mmap: bool = False) -> PreparedData:
    """Preprocess every clip of a GISLR data directory, cached; returns a `PreparedData`.

    The clip table is `dataset.read_clips(data_dir)`; the arrays come from `preprocess_files`.
    Clips whose dominant hand never appears (all-padding samples, see the module docstring) are
    left out of the arrays and listed in `skipped` with reason ``"no hand in any frame"``; a
    one-line report is printed when there are any.

    The result is stored under `<artifacts_dir>/prepared/<key>/` (X.npy, idxs.npy, y.npy,
    participant_id.npy, sequence_id.npy, clips.csv, skipped.csv, meta.json) and loaded from
    there while `<key>` is unchanged. The key hashes train.csv and the sign map (their bytes),
    the size and modification time of every listed file, `input_size` and
    `PREPROCESSING_VERSION`: editing, replacing or touching any input prepares the set anew.
    `artifacts_dir=None` means `config.DEFAULT_ARTIFACTS_DIR`. `mmap=True` opens cached arrays as
    read-only memory maps (the full competition set is about 4.8 GB). Chapters 2-5 use it.

    Memory: the arrays are assembled `PREPARE_CHUNK` clips at a time and written straight into
    the cache files (`_assemble_arrays`), then loaded from there (in full, or mapped with
    `mmap=True`), so preparing needs one chunk's memory (about 200 MB) beyond the result.
    """
    from .config import DEFAULT_ARTIFACTS_DIR

    size = _check_input_size(input_size)
    data_dir = Path(data_dir)
    artifacts_dir = Path(DEFAULT_ARTIFACTS_DIR if artifacts_dir is None else artifacts_dir)
    clips = dataset.read_clips(data_dir).reset_index(drop=True)
    key = _cache_key(data_dir, clips, size)
    cache_dir = artifacts_dir / "prepared" / key
    cached = _load_cache(cache_dir, mmap)
    if cached is not None:
        _report_skipped(cached.skipped)
        return cached

    # The arrays are written to .npy files in a temporary folder PREPARE_CHUNK clips at a time
    # (memory: one chunk, whatever the size of the data set), then the folder is renamed: an
    # interrupted run leaves no half cache; what killed runs left behind is removed first.
    runs.clean_stale_temporaries(cache_dir.parent)
    tmp = runs.temp_path(cache_dir)
    tmp.mkdir(parents=True)
    try:
        keep = _assemble_arrays(clips["path"], tmp, workers=workers, progress=progress,
                                input_size=size)
        skipped = clips[~keep].assign(reason=SKIP_NO_HAND).reset_index(drop=True)
        kept = clips[keep].reset_index(drop=True)
        np.save(tmp / "y.npy", kept["label"].to_numpy(np.int32))
        np.save(tmp / "participant_id.npy", kept["participant_id"].to_numpy(np.int64))
        np.save(tmp / "sequence_id.npy", kept["sequence_id"].to_numpy(np.int64))
        kept.to_csv(tmp / "clips.csv", index=False)
        skipped.to_csv(tmp / "skipped.csv", index=False)
        meta = dict(key=key, data_dir=str(data_dir), n_clips=len(clips), n_kept=len(kept),
                    n_skipped=len(skipped), input_size=size,
                    preprocessing_version=PREPROCESSING_VERSION)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            tmp.rename(cache_dir)
        except OSError:          # another process prepared the same key meanwhile: keep theirs
            if not (cache_dir / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = _load_cache(cache_dir, mmap)
    _report_skipped(result.skipped)
    return result


# Clips preprocessed per chunk by prepare_dataset (4,096 clips: about 200 MB of float32).
PREPARE_CHUNK = 4096


def _assemble_arrays(paths, out_dir: Path, workers=None, progress=True,
                     input_size: int = INPUT_SIZE) -> np.ndarray:
    """Preprocess `paths` into ``out_dir/X.npy`` and ``out_dir/idxs.npy``; returns `keep` [n].

    `PREPARE_CHUNK` clips at a time (`preprocess_files`); each chunk's clips with a hand are
    appended to the .npy files (headers written first for all `n` clips), clips with no hand in
    any frame (first index -1) are left out (`keep` is False for them) and the headers are set
    to the kept rows at the end (`_truncate_npy`). The files are identical to ``np.save`` of
    the kept rows. Memory: one chunk's arrays, not the whole set's (4.8 GB for GISLR), and no
    memory map whose written pages would count as the process's memory.
    """
    paths = [str(p) for p in paths]
    n = len(paths)
    files = {}
    for name, shape in (("X", (n, input_size, N_COLS, N_DIMS)), ("idxs", (n, input_size))):
        files[name] = f = open(out_dir / f"{name}.npy", "wb")
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                "fortran_order": False, "shape": shape})
    keep = np.zeros(n, dtype=bool)
    bar = tqdm(total=n, desc="preprocessing", unit="file", disable=not progress or n == 0)
    try:
        for start in range(0, n, PREPARE_CHUNK):
            xc, ic = preprocess_files(paths[start:start + PREPARE_CHUNK], workers=workers,
                                      progress=False, input_size=input_size)
            ok = ic[:, 0] >= 0   # no kept frame <=> the first index is padding (-1)
            files["X"].write(np.ascontiguousarray(xc[ok] if not ok.all() else xc).data)
            files["idxs"].write(np.ascontiguousarray(ic[ok] if not ok.all() else ic).data)
            keep[start:start + len(ok)] = ok
            bar.update(len(ok))
    finally:
        bar.close()
        for f in files.values():
            f.close()
    n_kept = int(keep.sum())
    if n_kept < n:
        _truncate_npy(out_dir / "X.npy", n_kept)
        _truncate_npy(out_dir / "idxs.npy", n_kept)
    return keep


def _truncate_npy(path: Path, n_rows: int) -> None:
    """Keep the first `n_rows` rows of a C-ordered .npy file in place (header and size)."""
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        offset = f.tell()
        if fortran or not 0 <= n_rows <= shape[0]:
            raise ValueError(f"{path}: cannot cut a {list(shape)} array to {n_rows} rows")
        new_shape = (n_rows, *shape[1:])
        text = ("{'descr': %r, 'fortran_order': False, 'shape': %r, }"
                % (np.lib.format.dtype_to_descr(dtype), new_shape))
        size_fmt = "<H" if version == (1, 0) else "<I"
        room = offset - len(np.lib.format.magic(*version)) - struct.calcsize(size_fmt)
        header = text.ljust(room - 1).encode("latin1") + b"\n"  # same length as before
        buf = io.BytesIO()
        buf.write(np.lib.format.magic(*version))
        buf.write(struct.pack(size_fmt, room))
        buf.write(header)
        assert len(buf.getvalue()) == offset
        f.seek(0)
        f.write(buf.getvalue())
        f.truncate(offset + n_rows * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize)
