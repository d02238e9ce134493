"""Tests of gislr_utils.preprocessing against the original notebook's PreprocessLayer.

Three references: `original_layer_call` below is the original TF code verbatim (with
`tf.experimental.numpy.nanmean`), `naive_preprocess` is a straightforward NumPy transcription of
it that materialises the repeated and padded sequence, and a few results are written by hand.
"""
import errno
import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import gislr_utils  # noqa: F401  (environment before TensorFlow)
from gislr_utils import dataset, preprocessing as P
from gislr_utils._tf import keras, tf
from gislr_utils.config import REAL_SAMPLE_DIR, real_sample_dir
from gislr_utils.dataset import GISLRDataError
from gislr_utils.landmarks import (
    HAND_START, LANDMARK_IDXS_LEFT_DOMINANT0, LANDMARK_IDXS_RIGHT_DOMINANT0, LEFT_HAND_IDXS0,
    LIPS_IDXS, N_COLS, N_ROWS, RIGHT_HAND_IDXS0,
)
from gislr_utils.preprocessing import PreprocessLayer, preprocess, preprocess_files

needs_real = pytest.mark.skipif(not (REAL_SAMPLE_DIR / "train.csv").exists(),
                                reason=f"real GISLR sample not found at {REAL_SAMPLE_DIR}")
SHIPPED = real_sample_dir()    # 16 genuine clips shipped in the package: tests on it always run
SAMPLES = [pytest.param(SHIPPED, id="shipped"),
           pytest.param(REAL_SAMPLE_DIR, id="shared84", marks=needs_real)]
TOL = 1e-5


def real_paths(sample=SHIPPED):
    return sorted(str(p) for p in (sample / "train_landmark_files").glob("*/*.parquet"))


# ---------------------------------------------------------------------------------------------
# References

INPUT_SIZE = 64
LIPS_LEN, HAND_LEN, POSE_LEN = 40, 21, 5
_corr = tf.constant([[0] * LIPS_LEN + [0.50] * HAND_LEN + [0.50] * POSE_LEN, [0] * 66, [0] * 66],
                    dtype=tf.float32)
NORMALISATION_CORRECTION = tf.transpose(_corr, [1, 0])


def _pad_edge(t, repeats, side):
    if side == 'LEFT':
        return tf.concat((tf.repeat(t[:1], repeats=repeats, axis=0), t), axis=0)
    elif side == 'RIGHT':
        return tf.concat((t, tf.repeat(t[-1:], repeats=repeats, axis=0)), axis=0)


@tf.function(input_signature=(tf.TensorSpec(shape=[None, N_ROWS, 3], dtype=tf.float32),))
def original_layer_call(data0):
    """M. Wijkhuizen's PreprocessLayer.call, verbatim apart from `self.`."""
    N_FRAMES0 = tf.shape(data0)[0]
    left_hand_sum = tf.math.reduce_sum(tf.where(tf.math.is_nan(tf.gather(data0, LEFT_HAND_IDXS0, axis=1)), 0, 1))
    right_hand_sum = tf.math.reduce_sum(tf.where(tf.math.is_nan(tf.gather(data0, RIGHT_HAND_IDXS0, axis=1)), 0, 1))
    left_dominant = left_hand_sum >= right_hand_sum
    if left_dominant:
        frames_hands_non_nan_sum = tf.math.reduce_sum(tf.where(tf.math.is_nan(tf.gather(data0, LEFT_HAND_IDXS0, axis=1)), 0, 1), axis=[1, 2])  # noqa: E501 (verbatim)
    else:
        frames_hands_non_nan_sum = tf.math.reduce_sum(tf.where(tf.math.is_nan(tf.gather(data0, RIGHT_HAND_IDXS0, axis=1)), 0, 1), axis=[1, 2])  # noqa: E501 (verbatim)
    non_empty_frames_idxs = tf.where(frames_hands_non_nan_sum > 0)
    non_empty_frames_idxs = tf.squeeze(non_empty_frames_idxs, axis=1)
    data = tf.gather(data0, non_empty_frames_idxs, axis=0)
    non_empty_frames_idxs = tf.cast(non_empty_frames_idxs, tf.float32)
    non_empty_frames_idxs -= tf.reduce_min(non_empty_frames_idxs)
    N_FRAMES = tf.shape(data)[0]
    if left_dominant:
        data = tf.gather(data, LANDMARK_IDXS_LEFT_DOMINANT0, axis=1)
    else:
        data = tf.gather(data, LANDMARK_IDXS_RIGHT_DOMINANT0, axis=1)
        data = (NORMALISATION_CORRECTION + ((data - NORMALISATION_CORRECTION) * tf.where(NORMALISATION_CORRECTION != 0, -1.0, 1.0)))  # noqa: E501 (verbatim)
    if N_FRAMES < INPUT_SIZE:
        non_empty_frames_idxs = tf.pad(non_empty_frames_idxs, [[0, INPUT_SIZE - N_FRAMES]], constant_values=-1)
        data = tf.pad(data, [[0, INPUT_SIZE - N_FRAMES], [0, 0], [0, 0]], constant_values=0)
        data = tf.where(tf.math.is_nan(data), 0.0, data)
        return data, non_empty_frames_idxs
    else:
        if N_FRAMES < INPUT_SIZE ** 2:
            repeats = tf.math.floordiv(INPUT_SIZE * INPUT_SIZE, N_FRAMES0)
            data = tf.repeat(data, repeats=repeats, axis=0)
            non_empty_frames_idxs = tf.repeat(non_empty_frames_idxs, repeats=repeats, axis=0)
        pool_size = tf.math.floordiv(len(data), INPUT_SIZE)
        if tf.math.mod(len(data), INPUT_SIZE) > 0:
            pool_size += 1
        if pool_size == 1:
            pad_size = (pool_size * INPUT_SIZE) - len(data)
        else:
            pad_size = (pool_size * INPUT_SIZE) % len(data)
        pad_left = tf.math.floordiv(pad_size, 2) + tf.math.floordiv(INPUT_SIZE, 2)
        pad_right = tf.math.floordiv(pad_size, 2) + tf.math.floordiv(INPUT_SIZE, 2)
        if tf.math.mod(pad_size, 2) > 0:
            pad_right += 1
        data = _pad_edge(data, pad_left, 'LEFT')
        data = _pad_edge(data, pad_right, 'RIGHT')
        non_empty_frames_idxs = _pad_edge(non_empty_frames_idxs, pad_left, 'LEFT')
        non_empty_frames_idxs = _pad_edge(non_empty_frames_idxs, pad_right, 'RIGHT')
        data = tf.reshape(data, [INPUT_SIZE, -1, N_COLS, 3])
        non_empty_frames_idxs = tf.reshape(non_empty_frames_idxs, [INPUT_SIZE, -1])
        data = tf.experimental.numpy.nanmean(data, axis=1)
        non_empty_frames_idxs = tf.experimental.numpy.nanmean(non_empty_frames_idxs, axis=1)
        data = tf.where(tf.math.is_nan(data), 0.0, data)
        return data, non_empty_frames_idxs


def naive_preprocess(frames, size=64, n_for_repeat=None):
    """Straightforward NumPy transcription: materialises repeat and padding, then np.nanmean.
    `n_for_repeat` replaces the frame count that the repeat factor is computed from."""
    n0 = len(frames)
    lnn, rnn = (~np.isnan(frames[:, LEFT_HAND_IDXS0])).sum(), (~np.isnan(frames[:, RIGHT_HAND_IDXS0])).sum()
    left = lnn >= rnn
    hand = frames[:, LEFT_HAND_IDXS0 if left else RIGHT_HAND_IDXS0]
    kept = [i for i in range(n0) if (~np.isnan(hand[i])).sum() > 0]
    data = frames[kept][:, LANDMARK_IDXS_LEFT_DOMINANT0 if left else LANDMARK_IDXS_RIGHT_DOMINANT0].copy()
    idx = np.array(kept, np.float64) - (kept[0] if kept else 0)
    if not left:
        data[:, HAND_START:, 0] = 1 - data[:, HAND_START:, 0]
    if len(kept) < size:
        x = np.zeros((size, N_COLS, 3))
        x[:len(kept)] = np.nan_to_num(data)
        return x, np.concatenate([idx, -np.ones(size - len(kept))])
    if len(kept) < size * size:
        r = (size * size) // (n0 if n_for_repeat is None else n_for_repeat)
        data, idx = np.repeat(data, r, axis=0), np.repeat(idx, r)
    length = len(data)
    pool = -(-length // size)
    pad = pool * size - length
    left_pad, right_pad = pad // 2 + size // 2, pad - pad // 2 + size // 2
    data = np.concatenate([np.repeat(data[:1], left_pad, 0), data, np.repeat(data[-1:], right_pad, 0)])
    idx = np.concatenate([np.repeat(idx[:1], left_pad), idx, np.repeat(idx[-1:], right_pad)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # "Mean of empty slice"
        x = np.nanmean(data.reshape(size, -1, N_COLS, 3).astype(np.float64), axis=1)
    return np.nan_to_num(x), idx.reshape(size, -1).mean(axis=1)


def random_clip(n0, kept=None, right=False, lead=0, seed=0, nan_frac=0.1):
    """[n0, 543, 3] in [0, 1) with random NaNs; the dominant hand appears in `kept` frames
    (all frames from `lead` on by default), the other hand never."""
    rng = np.random.default_rng(seed)
    d = rng.random((n0, N_ROWS, 3), dtype=np.float32)
    d[rng.random((n0, N_ROWS)) < nan_frac] = np.nan
    dom, other = (RIGHT_HAND_IDXS0, LEFT_HAND_IDXS0) if right else (LEFT_HAND_IDXS0, RIGHT_HAND_IDXS0)
    d[:, other] = np.nan
    if kept is None:
        kept = np.arange(lead, n0)
    empty = np.setdiff1d(np.arange(n0), kept)
    d[empty[:, None], dom] = np.nan
    d[kept, dom[0], 0] = 0.5          # at least one value of the hand in every kept frame
    return d


@pytest.fixture(scope="module")
def layer():
    return PreprocessLayer()


# ---------------------------------------------------------------------------------------------
# The two implementations agree, with each other and with the original

@pytest.mark.parametrize("sample", SAMPLES)
def test_numpy_tf_layer_and_original_agree_on_every_real_file(layer, sample):
    paths = real_paths(sample)
    assert len(paths) == len(pd.read_csv(sample / "train.csv")) >= 16
    n_long = n_right = 0
    for path in paths:
        frames = dataset.load_frames(path)
        x, idx = preprocess(frames)
        tx, tidx = (t.numpy() for t in layer(frames))
        ox, oidx = (t.numpy() for t in original_layer_call(frames))
        assert x.shape == (64, 66, 3) and idx.shape == (64,)
        assert x.dtype == np.float32 and idx.dtype == np.float32
        np.testing.assert_allclose(x, tx, rtol=0, atol=TOL, err_msg=path)
        np.testing.assert_allclose(idx, tidx, rtol=0, atol=TOL, err_msg=path)
        np.testing.assert_array_equal(tx, ox, err_msg=path)      # same ops as the original
        np.testing.assert_array_equal(tidx, oidx, err_msg=path)
        assert not np.isnan(x).any()
        n_long += idx[-1] >= 0
        n_right += np.isnan(frames[:, LEFT_HAND_IDXS0]).sum() > np.isnan(frames[:, RIGHT_HAND_IDXS0]).sum()
    assert n_long >= 1 and n_right >= 1        # both branches and both hands were exercised


@pytest.mark.parametrize("n0,n_kept,right,lead", [
    (64, 64, False, 0),        # exactly 64: pooling branch, L = 4096, pool 64
    (65, 65, True, 0),
    (70, 70, False, 0),
    (100, 80, True, 0),        # empty frames inside: repeat factor from 100, not 80
    (90, 70, False, 20),       # leading empty frames
    (250, 240, False, 0),
    (4095, 4095, True, 0),     # largest clip that is repeated (r = 1)
    (4096, 4096, False, 0),    # no repeat from here on
    (4500, 4400, True, 0),     # 4400 kept >= 4096: no repeat, pool_size 69
])
def test_long_clips_agree_with_original_and_naive(layer, n0, n_kept, right, lead):
    rng = np.random.default_rng(n0)
    kept = np.arange(lead, n0) if lead else np.sort(rng.choice(n0, n_kept, replace=False))
    assert len(kept) == n_kept
    frames = random_clip(n0, kept, right=right, seed=n0)
    x, idx = preprocess(frames)
    tx, tidx = (t.numpy() for t in layer(frames))
    ox, oidx = (t.numpy() for t in original_layer_call(frames))
    nx, nidx = naive_preprocess(frames)
    np.testing.assert_allclose(x, tx, rtol=0, atol=TOL)
    np.testing.assert_array_equal(idx, tidx)
    np.testing.assert_allclose(tx, ox, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(tidx, oidx)
    np.testing.assert_allclose(x, nx, rtol=0, atol=TOL)
    np.testing.assert_allclose(idx, nidx, rtol=1e-7, atol=TOL)   # float32 vs float64 at ~4000
    assert idx.min() >= 0 and np.all(np.diff(idx) >= 0)


def test_tflite_conversion_builtins_only_gives_same_numbers(layer, tmp_path):
    fn = layer.call.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], layer)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    model = converter.convert()
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover
        Interpreter = tf.lite.Interpreter
    runner = Interpreter(model_content=model).get_signature_runner()
    clips = [random_clip(30, seed=1), random_clip(100, np.arange(10, 90), right=True, seed=2),
             random_clip(4200, seed=3), random_clip(5, np.array([], int))]
    clips += [dataset.load_frames(p) for p in real_paths()[::3]]
    for frames in clips:
        out = runner(data0=frames)
        lx, lidx = sorted(out.values(), key=lambda a: a.ndim, reverse=True)
        tx, tidx = (t.numpy() for t in layer(frames))
        np.testing.assert_allclose(lx, tx, rtol=0, atol=TOL)
        np.testing.assert_allclose(lidx, tidx, rtol=0, atol=TOL)


def test_layer_in_functional_model_and_config(layer):
    inputs = keras.Input(batch_shape=(None, N_ROWS, 3), name="inputs")
    x, idx = PreprocessLayer(name="prep")(inputs)
    assert tuple(x.shape) == (64, 66, 3) and tuple(idx.shape) == (64,)
    model = keras.Model(inputs, [x, idx])
    frames = random_clip(100, np.arange(10, 90), right=True, seed=5)
    mx, midx = model(frames)
    ex, eidx = preprocess(frames)
    np.testing.assert_allclose(mx.numpy(), ex, rtol=0, atol=TOL)
    np.testing.assert_allclose(midx.numpy(), eidx, rtol=0, atol=TOL)
    clone = PreprocessLayer.from_config(PreprocessLayer(input_size=16, name="p16").get_config())
    assert clone.input_size == 16 and clone.name == "p16"
    cx, cidx = clone(frames)
    np.testing.assert_allclose(cx.numpy(), preprocess(frames, input_size=16)[0], rtol=0, atol=TOL)
    np.testing.assert_allclose(cidx.numpy(), naive_preprocess(frames, size=16)[1], rtol=0, atol=TOL)


# ---------------------------------------------------------------------------------------------
# Each rule on small hand-built clips

def clip_with_hands(n0, left_frames=(), right_frames=(), seed=0):
    rng = np.random.default_rng(seed)
    d = rng.random((n0, N_ROWS, 3), dtype=np.float32)
    d[:, LEFT_HAND_IDXS0] = np.nan
    d[:, RIGHT_HAND_IDXS0] = np.nan
    for f in left_frames:
        d[f, LEFT_HAND_IDXS0] = rng.random((21, 3), dtype=np.float32)
    for f in right_frames:
        d[f, RIGHT_HAND_IDXS0] = rng.random((21, 3), dtype=np.float32)
    return d


def test_tie_goes_to_the_left_hand_and_is_not_mirrored(layer):
    d = clip_with_hands(6, left_frames=[0, 1, 2], right_frames=[3, 4, 5])
    x, idx = preprocess(d)
    np.testing.assert_array_equal(x[:3, HAND_START:61], d[:3, LEFT_HAND_IDXS0])
    np.testing.assert_array_equal(x[:3, LIPS_IDXS], d[:3, LANDMARK_IDXS_LEFT_DOMINANT0[:40]])
    np.testing.assert_array_equal(idx[:4], [0, 1, 2, -1])
    np.testing.assert_array_equal(layer(d)[0].numpy(), x)
    # one more right-hand value tips it to the right hand
    d[0, RIGHT_HAND_IDXS0[0]] = 0.25
    x, idx = preprocess(d)
    np.testing.assert_array_equal(idx[:5], [0, 3, 4, 5, -1])   # frames 0, 3, 4, 5; first is 0
    np.testing.assert_allclose(x[0, HAND_START, 0], 1 - 0.25, atol=1e-7)


def test_right_dominant_mirrors_x_of_hand_and_pose_only(layer):
    d = clip_with_hands(5, right_frames=[0, 1, 2, 3, 4])
    x, idx = preprocess(d)
    raw = d[:, LANDMARK_IDXS_RIGHT_DOMINANT0]
    np.testing.assert_array_equal(x[:5, :40], raw[:, :40])                 # lips untouched
    np.testing.assert_allclose(x[:5, 40:, 0], 1 - raw[:, 40:, 0], atol=1e-7)  # hand + pose x
    np.testing.assert_array_equal(x[:5, 40:, 1:], raw[:, 40:, 1:])          # y, z untouched
    np.testing.assert_array_equal(layer(d)[0].numpy(), x)                  # bit for bit


def test_short_clip_padding_and_nan_to_zero():
    d = clip_with_hands(10, left_frames=range(10))
    d[2, 61] = np.nan                        # lips landmark 61 (column 0) missing in frame 2
    d[4, LEFT_HAND_IDXS0[5]] = np.nan        # one hand landmark missing in frame 4
    x, idx = preprocess(d)
    np.testing.assert_array_equal(idx, np.r_[np.arange(10), -np.ones(54)].astype(np.float32))
    assert not np.isnan(x).any()
    np.testing.assert_array_equal(x[2, 0], [0, 0, 0])
    np.testing.assert_array_equal(x[4, HAND_START + 5], [0, 0, 0])
    np.testing.assert_array_equal(x[10:], 0)
    np.testing.assert_array_equal(x[:10, 1], d[:, LANDMARK_IDXS_LEFT_DOMINANT0[1]])


def test_indices_start_at_zero_after_leading_empty_frames():
    d = clip_with_hands(12, left_frames=[3, 4, 6, 9])
    x, idx = preprocess(d)
    np.testing.assert_array_equal(idx[:5], [0, 1, 3, 6, -1])
    np.testing.assert_array_equal(x[:4, HAND_START:61], d[[3, 4, 6, 9]][:, LEFT_HAND_IDXS0])


def test_pooling_of_70_frames_by_hand():
    """70 of 70 frames kept: repeat 4096 // 70 = 58 -> 4060 frames, pool_size 64, pad 36
    (18 + 32 = 50 edge frames each side) -> 4160 = 64 windows of 65 frames."""
    d = clip_with_hands(70, left_frames=range(70))
    d[:, LANDMARK_IDXS_LEFT_DOMINANT0, :] = (np.arange(70, dtype=np.float32) / 100)[:, None, None]
    x, idx = preprocess(d)
    # window 0: 50 copies of frame 0 + repeated positions 0..14 (frame 0)
    assert idx[0] == 0 and np.allclose(x[0], 0.0)
    # window 1: repeated positions 15..79 -> frame 0 for 15..57 (43), frame 1 for 58..79 (22)
    np.testing.assert_allclose(idx[1], 22 / 65, rtol=1e-7)
    np.testing.assert_allclose(x[1], (43 * 0.00 + 22 * 0.01) / 65, atol=1e-7)
    # window 30: padded positions 1950..2014 -> repeated 1900..1964: frame 32 (1856..1913, 14)
    # and frame 33 (1914..1971, 51)
    np.testing.assert_allclose(idx[30], (14 * 32 + 51 * 33) / 65, rtol=1e-7)
    np.testing.assert_allclose(x[30], (14 * 0.32 + 51 * 0.33) / 65, atol=1e-6)
    # window 63: repeated positions 4045..4059 and 50 copies of the last: frame 69 only
    assert idx[63] == 69 and np.allclose(x[63], 0.69)


def test_repeat_factor_uses_the_unfiltered_frame_count(layer):
    core = clip_with_hands(70, left_frames=range(70), seed=3)
    with_empty = np.concatenate([clip_with_hands(10, seed=4), core])   # 10 frames without hands
    a, aidx = preprocess(core)             # repeat 4096 // 70 = 58
    b, bidx = preprocess(with_empty)       # repeat 4096 // 80 = 51
    assert not np.allclose(aidx, bidx) and not np.allclose(a, b)
    # same kept frames: the only difference is the frame count of the repeat factor
    for got, n in ((a, 70), (b, 80)):
        np.testing.assert_allclose(got, naive_preprocess(core, n_for_repeat=n)[0], atol=TOL)
    np.testing.assert_allclose(bidx, naive_preprocess(core, n_for_repeat=80)[1], atol=TOL)
    np.testing.assert_allclose(b, layer(with_empty)[0].numpy(), atol=TOL)
    # by hand: 70 * 51 = 3570 frames, pool 56, pad 56 * 64 % 3570 = 14 -> 7 + 32 = 39 in front,
    # windows of 57: window 1 = repeated positions 18..74 -> frame 0 x33, frame 1 x24
    np.testing.assert_allclose(bidx[1], 24 / 57, rtol=1e-6)


def test_window_with_a_missing_landmark_becomes_zero():
    d = clip_with_hands(70, left_frames=range(70))
    d[:, 61] = np.nan                     # lips landmark 61 = column 0 never seen
    d[:10, 0] = np.nan                    # lips landmark 0 (column 5) missing in frames 0..9
    x, _ = preprocess(d)
    np.testing.assert_array_equal(x[:, 0], 0)
    col5 = list(LANDMARK_IDXS_LEFT_DOMINANT0).index(0)
    # r = 58, 50 edge frames: windows 0..8 hold repeated positions <= 534 (frames 0..9) only
    assert np.all(x[:9, col5] == 0) and np.all(x[9:, col5] != 0)


def test_clip_without_dominant_hand_is_all_padding(layer):
    d = clip_with_hands(20)
    x, idx = preprocess(d)
    np.testing.assert_array_equal(x, 0)
    np.testing.assert_array_equal(idx, -1)
    tx, tidx = layer(d)
    np.testing.assert_array_equal(tx.numpy(), 0)
    np.testing.assert_array_equal(tidx.numpy(), -1)


def test_quirk3_more_than_4096_frames_few_kept_fails_like_the_original(layer):
    d = clip_with_hands(4200, left_frames=range(100, 200))
    with pytest.raises(GISLRDataError, match="repeat factor 4096 // 4200 is 0"):
        preprocess(d)
    with pytest.raises(tf.errors.InvalidArgumentError, match="division by zero"):
        original_layer_call(d)
    with pytest.raises(tf.errors.InvalidArgumentError, match="division by zero"):
        layer(d)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match=r"\[n_frames, 543, 3\]"):
        preprocess(np.zeros((5, 542, 3), np.float32))
    with pytest.raises(ValueError, match="0 frames"):
        preprocess(np.zeros((0, 543, 3), np.float32))
    with pytest.raises(ValueError, match="input_size"):
        preprocess(np.zeros((5, 543, 3), np.float32), input_size=0)


def test_check_clip_is_one_rule_for_preprocess_and_tflite_predict(tmp_path):
    """Issue 9.9: the same bad clip gets the same error from `preprocess` and
    `export.tflite_predict` (which gave all-NaN probabilities for inf, and "FLOOR_MOD ...
    Division by 0" for quirk 3). The clips are checked before the file is even opened."""
    from gislr_utils import export
    inf = clip_with_hands(10, left_frames=range(10))
    inf[3, 500, 1] = np.inf
    inf[7, 0, 0] = -np.inf
    long = clip_with_hands(5000, left_frames=range(100, 200))
    ok = clip_with_hands(10, left_frames=range(10))
    big = ok.copy()
    big[2, 100, 0] = 1e19                    # issue 19: every probability NaN
    huge = ok.astype(np.float64)
    huge[4, 470, 1] = -1e300                 # float32 would make -inf of it
    never = tmp_path / "never-opened.tflite"
    cases = [(inf, (r"^2 infinite coordinate value\(s\), the first in frame #3, landmark 500 "
                    r"\(pose 11\)")),
             (big, (r"^1 coordinate value\(s\) beyond \+-1000 \(too large\), the first in frame #2, "
                    r"landmark 100 \(face 100\): 1e\+19; coordinates must be finite and within \+-1000")),
             (huge, (r"^1 coordinate value\(s\) beyond \+-1000 \(too large\), the first in frame #4, "
                     r"landmark 470 \(left_hand 2\): -1e\+300; ")),
             (long, (r"^clip has 5000 frames \(> 4096\) but only 100 frames with the dominant "
                     r"hand.* 4096 // 5000 is 0"))]
    for clip, message in cases:
        with pytest.raises(GISLRDataError, match=message) as a:
            preprocess(clip)
        with pytest.raises(GISLRDataError) as b:
            P.check_clip(clip)
        with pytest.raises(GISLRDataError) as c:
            export.tflite_predict(never, clip)
        assert str(a.value) == str(b.value) == str(c.value)
        with pytest.raises(GISLRDataError) as d:
            export.tflite_predict(never, [ok, clip])
        assert str(d.value) == "clip 1: " + str(a.value)
    with pytest.raises(FileNotFoundError, match="never-opened"):   # good clips pass the rule
        export.tflite_predict(never, [ok, clip_with_hands(4097, left_frames=range(4097))])
    np.testing.assert_array_equal(P.check_clip(ok.astype(np.float64)), ok)
    with pytest.raises(ValueError, match=r"clip 2: frames must have shape \[n_frames, 543, 3\]"):
        P.check_clip(ok[:, :66], source="clip 2")


def test_the_bound_is_one_rule_for_files_and_arrays(tmp_path):
    """The same large value gets the same message from a file (load_frames, preprocess_files)
    and from an array (check_clip, preprocess), the file's name in front."""
    path = real_paths()[0]
    frames = dataset.load_frames(path)
    table = pq.read_table(path)
    x = table.column("x").to_numpy(zero_copy_only=False).copy()
    x[[543 + 57, 543 + 58]] = 1e19
    bad = tmp_path / "bad.parquet"
    pq.write_table(table.set_column(4, "x", pa.array(x, from_pandas=True)), bad)
    frames[1, [57, 58], 0] = 1e19
    with pytest.raises(GISLRDataError) as from_array:
        preprocess(frames)
    for read in (dataset.load_frames, lambda p: preprocess_files([p], progress=False)):
        with pytest.raises(GISLRDataError) as from_file:
            read(bad)
        assert str(from_file.value) == f"{bad}: {from_array.value}"
    frames[1, [57, 58], 0] = 1e3                                    # at the bound: fine
    assert np.isfinite(preprocess(frames)[0]).all()


# ---------------------------------------------------------------------------------------------
# Many files

def test_preprocess_files_order_and_values():
    paths = real_paths()
    rng = np.random.default_rng(0)
    order = list(rng.permutation(paths)) + paths[:5]          # shuffled, with repeats
    X, IDX = preprocess_files(order, workers=2, progress=False)
    X1, IDX1 = preprocess_files(order, workers=1, progress=False)
    assert X.shape == (len(order), 64, 66, 3) and IDX.shape == (len(order), 64)
    assert X.dtype == np.float32 and IDX.dtype == np.float32
    np.testing.assert_array_equal(X, X1)
    np.testing.assert_array_equal(IDX, IDX1)
    for i in [0, 7, 17, len(order) - 1]:
        x, idx = preprocess(dataset.load_frames(order[i]))
        np.testing.assert_array_equal(X[i], x)
        np.testing.assert_array_equal(IDX[i], idx)
    X0, IDX0 = preprocess_files([], progress=False)
    assert X0.shape == (0, 64, 66, 3) and IDX0.shape == (0, 64)


def test_preprocess_files_equals_preprocess_exactly_on_every_real_file():
    """preprocess_files skips preprocess's input checks (load_frames made them): bit for bit
    `preprocess(load_frames(path))` on every real file."""
    paths = real_paths()
    X, IDX = preprocess_files(paths, workers=2, progress=False)
    for i, path in enumerate(paths):
        x, idx = preprocess(dataset.load_frames(path))
        np.testing.assert_array_equal(X[i], x)
        np.testing.assert_array_equal(IDX[i], idx)


def test_preprocess_files_progress_bar(capsys):
    paths = real_paths()[:3]
    X, _ = preprocess_files(paths, progress=True)
    assert "preprocessing" in capsys.readouterr().err
    np.testing.assert_array_equal(X[2], preprocess(dataset.load_frames(paths[2]))[0])


def test_preprocess_files_names_the_bad_file(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not a parquet file")
    with pytest.raises(Exception, match="bad.parquet"):
        preprocess_files([bad], progress=False)
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        preprocess_files([tmp_path / "missing.parquet", bad], workers=2, progress=False)
    with pytest.raises(ValueError, match="workers"):
        preprocess_files([bad], workers=0, progress=False)


def test_broken_files_stop_preprocess_files_and_prepare_dataset(tmp_path):
    """Issue 9.2-9.4 on the path every chapter uses: a real file with rows swapped inside a
    frame, with frames out of order, or with an inf value stops the preparation, naming it."""
    data_dir = _copy_data_dir(tmp_path / "data", n=6)
    train = pd.read_csv(data_dir / "train.csv")
    target = data_dir / train["path"].iloc[4]
    original = pq.read_table(target)
    n = original.num_rows
    rows = np.arange(n)
    rows[[10, 11]] = rows[[11, 10]]
    frames = np.arange(n).reshape(-1, 543)[::-1].ravel()
    y = original.column("y").to_numpy(zero_copy_only=False).copy()
    y[2000] = np.inf
    broken = {"rows": (original.take(pa.array(rows)), "landmark_index 11 at row 10"),
              "frames": (original.take(pa.array(frames)), "frames out of order"),
              "inf": (original.set_column(5, "y", pa.array(y, from_pandas=True)),
                      "1 infinite coordinate value")}
    for name, (table, message) in broken.items():
        pq.write_table(table, target)
        for run in (lambda: preprocess_files(train["path"].map(lambda p: data_dir / p),
                                             workers=2, progress=False),
                    lambda: P.prepare_dataset(data_dir, tmp_path / "art", progress=False)):
            with pytest.raises(GISLRDataError, match=message) as err:
                run()
            assert str(target) in str(err.value), name
    pq.write_table(original, target)
    assert len(P.prepare_dataset(data_dir, tmp_path / "art", progress=False).clips) == 6


# ---------------------------------------------------------------------------------------------
# prepare_dataset: the real sample, caching, skipped clips

def _copy_data_dir(dst: Path, n: int | None = None) -> Path:
    """A writable copy of (part of) the shipped real sample in tmp_path (never in the repository)."""
    train = pd.read_csv(SHIPPED / "train.csv")
    if n is not None:
        train = train.iloc[:n]
    for rel in train["path"]:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SHIPPED / rel, dst / rel)
    shutil.copy2(SHIPPED / "sign_to_prediction_index_map.json", dst)
    train.to_csv(dst / "train.csv", index=False)
    return dst


@pytest.mark.parametrize("sample", SAMPLES)
def test_prepare_dataset_real_sample_and_cache(tmp_path, monkeypatch, capsys, sample):
    n = len(pd.read_csv(sample / "train.csv"))
    first = P.prepare_dataset(sample, tmp_path, workers=2, progress=False)
    assert capsys.readouterr().out == ""                                  # prints nothing
    assert len(first.clips) == n and first.has_hand.all()
    assert first.X.shape == (n, 64, 66, 3) and first.idxs.shape == (n, 64)
    assert first.y.dtype == np.int32
    clips = dataset.read_clips(sample)
    X, IDX = preprocess_files(clips["path"], progress=False)
    np.testing.assert_array_equal(first.X, X)
    np.testing.assert_array_equal(first.idxs, IDX)
    np.testing.assert_array_equal(first.y, clips["label"].to_numpy())
    np.testing.assert_array_equal(first.participant_id, clips["participant_id"].to_numpy())
    np.testing.assert_array_equal(first.sequence_id, clips["sequence_id"].to_numpy())
    pd.testing.assert_frame_equal(first.clips, clips)
    assert first.cache_dir == tmp_path / "prepared" / first.key
    assert first.key == P.content_key(X, IDX, clips["label"].to_numpy(np.int32),
                                      clips["participant_id"].to_numpy(), clips["sequence_id"].to_numpy())
    assert f"{n} clips, 0 without a hand" in repr(first)
    assert not first.X.flags.writeable

    def must_not_run(*a, **k):
        raise AssertionError("preprocess_files called although the cache is valid")

    monkeypatch.setattr(P, "preprocess_files", must_not_run)
    monkeypatch.setattr(P, "content_key", must_not_run)             # the stored key: no hashing
    second = P.prepare_dataset(sample, tmp_path, progress=False)
    assert second.cache_dir == first.cache_dir and second.key == first.key
    for name in ("X", "idxs", "y", "participant_id", "sequence_id"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
        assert getattr(second, name).dtype == getattr(first, name).dtype
    pd.testing.assert_frame_equal(second.clips, first.clips)
    mapped = P.prepare_dataset(sample, tmp_path, progress=False, mmap=True)
    assert isinstance(mapped.X, np.memmap) and not mapped.X.flags.writeable
    np.testing.assert_array_equal(mapped.X, first.X)
    assert mapped.key == first.key


def test_key_of_a_prepared_data_built_by_hand_or_replaced(tmp_path):
    """`key` is the content key whichever way the PreparedData was made: hashed lazily for one
    built by hand or with dataclasses.replace, stored for one from the cache."""
    import dataclasses
    prep = P.prepare_dataset(_copy_data_dir(tmp_path / "data", n=5), tmp_path / "art", progress=False)
    arrays = {name: np.array(getattr(prep, name)) for name in ("X", "idxs", "y", "participant_id", "sequence_id")}
    by_hand = P.PreparedData(**arrays, clips=prep.clips)
    assert by_hand.cache_dir is None and "key" not in by_hand.__dict__
    assert by_hand.key == prep.key == P.content_key(*arrays.values())
    X2 = arrays["X"].copy()
    X2[3, 0, 0, 0] += 1e-6
    changed = dataclasses.replace(prep, X=X2)
    assert changed.key != prep.key and changed.key == P.content_key(X2, *list(arrays.values())[1:])
    assert dataclasses.replace(prep, y=arrays["y"][::-1].copy()).key != prep.key
    assert dataclasses.replace(prep, clips=prep.clips.iloc[::-1]).key == prep.key   # arrays only
    with pytest.raises(dataclasses.FrozenInstanceError):            # no stale key: frozen
        prep.X = X2
    assert P.content_key(*arrays.values()) != P.content_key(arrays["X"].reshape(5, 64, 198), *list(arrays.values())[1:])
    # dtype, shape and bytes in the order X, idxs, y, participant_id, sequence_id
    import hashlib
    h = hashlib.sha256()
    for a in arrays.values():
        h.update(f"{a.dtype.str}{a.shape}".encode() + a.tobytes())
    assert prep.key == h.hexdigest()[:16]


def test_prepare_dataset_cache_is_invalidated_by_changed_inputs(tmp_path, monkeypatch):
    data_dir = _copy_data_dir(tmp_path / "data", n=6)
    art = tmp_path / "art"
    calls = []
    real = P.preprocess_files
    monkeypatch.setattr(P, "preprocess_files", lambda *a, **k: calls.append(1) or real(*a, **k))
    a = P.prepare_dataset(data_dir, art, progress=False)
    P.prepare_dataset(data_dir, art, progress=False)
    assert len(calls) == 1
    first_file = data_dir / pd.read_csv(data_dir / "train.csv")["path"].iloc[0]
    st = first_file.stat()
    os.utime(first_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))      # touch
    b = P.prepare_dataset(data_dir, art, progress=False)
    assert len(calls) == 2 and b.key == a.key and b.cache_dir == a.cache_dir   # same arrays: same key
    np.testing.assert_array_equal(a.X, b.X)
    train = pd.read_csv(data_dir / "train.csv").iloc[:5]                     # fewer clips
    train.to_csv(data_dir / "train.csv", index=False)
    c = P.prepare_dataset(data_dir, art, progress=False)
    assert len(calls) == 3 and len(c.clips) == 5 and c.key != a.key
    monkeypatch.setattr(P, "PREPROCESSING_VERSION", P.PREPROCESSING_VERSION + 1)
    P.prepare_dataset(data_dir, art, progress=False)
    assert len(calls) == 4
    # two content folders, the lookup folder with one record per set of inputs; no temporaries
    assert sorted(p.name for p in (art / "prepared").iterdir()) == sorted([a.key, c.key, "inputs"])
    assert len(list((art / "prepared" / "inputs").iterdir())) == 4
    assert json.loads(next((art / "prepared" / "inputs").glob("*.json")).read_text())["key"] in (a.key, c.key)


def test_an_edit_that_keeps_size_and_modification_time_is_seen(tmp_path):
    """Issue 19 case 4: a file edited in place with its size and modification time kept (or
    set back) gave the old arrays; the change time (st_ctime_ns) cannot be set back."""
    data_dir = _copy_data_dir(tmp_path / "data", n=4)
    target = data_dir / pd.read_csv(data_dir / "train.csv")["path"].iloc[1]
    frames = dataset.load_frames(target)
    first = pq.read_table(target).column("frame")[0].as_py()
    dataset.write_landmark_file(target, frames, first_frame=first)         # written as edited below
    art = tmp_path / "art"
    a = P.prepare_dataset(data_dir, art, progress=False)
    st = target.stat()
    for delta in (1e-3, 2e-3, 3e-3, 5e-3):                # an edit that happens to keep the size
        edited = frames.copy()
        edited[0, 0, 0] += delta
        dataset.write_landmark_file(tmp_path / "edited.parquet", edited, first_frame=first)
        if (tmp_path / "edited.parquet").stat().st_size == st.st_size:
            break
    assert (tmp_path / "edited.parquet").stat().st_size == st.st_size
    target.write_bytes((tmp_path / "edited.parquet").read_bytes())
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))                  # modification time set back
    assert target.stat().st_mtime_ns == st.st_mtime_ns and target.stat().st_size == st.st_size
    b = P.prepare_dataset(data_dir, art, progress=False)
    assert b.key != a.key
    np.testing.assert_array_equal(b.X[1], preprocess(edited)[0])
    assert not np.array_equal(b.X[1], a.X[1])


def test_a_moved_or_remounted_data_set_gets_the_same_key(tmp_path):
    """Kaggle re-mounts its input every session: the files are prepared again (new paths and
    times), the arrays get the same content key and folder, so runs made from them are found."""
    data_dir = _copy_data_dir(tmp_path / "data", n=4)
    art = tmp_path / "art"
    a = P.prepare_dataset(data_dir, art, progress=False)
    inode = (a.cache_dir / "X.npy").stat().st_ino
    shutil.copytree(data_dir, tmp_path / "mounted")
    b = P.prepare_dataset(tmp_path / "mounted", art, progress=False)
    assert b.key == a.key and b.cache_dir == a.cache_dir
    # the intact copy is kept (a chapter may be reading it), not replaced by the identical new one
    assert (b.cache_dir / "X.npy").stat().st_ino == inode
    assert sorted(p.name for p in (art / "prepared").iterdir()) == sorted([a.key, "inputs"])   # no temporary
    assert b.clips["path"].iloc[0].startswith(str(tmp_path / "mounted"))    # the clips of this mount


@pytest.mark.parametrize("damage", ["delete X", "truncate X", "truncate idxs", "garbage manifest",
                                    "delete folder"])
def test_a_damaged_cache_is_rebuilt_with_a_message(tmp_path, capsys, damage):
    """A prepared folder whose file is missing or not the one its manifest vouches for, whose
    manifest is not readable, or which is gone, is prepared again with one line naming the
    folder and what is wrong; the next call finds it intact and says nothing."""
    data_dir = _copy_data_dir(tmp_path / "data", n=4)
    art = tmp_path / "art"
    a = P.prepare_dataset(data_dir, art, progress=False)
    X = np.array(a.X)
    folder = a.cache_dir
    name = {"delete X": "X.npy", "truncate X": "X.npy", "truncate idxs": "idxs.npy",
            "garbage manifest": "manifest.json", "delete folder": None}[damage]
    if damage == "delete X":
        (folder / name).unlink()
    elif damage.startswith("truncate"):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:len(data) - 1000])
    elif damage == "garbage manifest":
        (folder / name).write_text("{not json")
    else:
        shutil.rmtree(folder)
    for mmap in (True, False):
        capsys.readouterr()
        b = P.prepare_dataset(data_dir, art, progress=False, mmap=mmap)
        out = capsys.readouterr().out
        if mmap:
            assert out.count("\n") == 1 and out.startswith(f"prepare_dataset: {folder}: ")
            assert out.endswith("; preparing the data set again\n")
            assert (f"{name} is unreadable" if damage == "garbage manifest" else name or "missing") in out
        else:
            assert out == ""                                   # rebuilt once: good again
        assert b.key == a.key and b.cache_dir == folder
        np.testing.assert_array_equal(b.X, X)


def _with_handless_clip(data_dir: Path, at: int) -> Path:
    """Add a clip without any hand (participant 999, sequence 1) as line `at` of train.csv."""
    train = pd.read_csv(data_dir / "train.csv")
    frames = dataset.load_frames(data_dir / train["path"].iloc[0])
    frames[:, LEFT_HAND_IDXS0] = np.nan
    frames[:, RIGHT_HAND_IDXS0] = np.nan
    rel = "train_landmark_files/999/1.parquet"
    (data_dir / rel).parent.mkdir(parents=True)
    dataset.write_landmark_file(data_dir / rel, frames)
    row = pd.DataFrame([dict(path=rel, participant_id=999, sequence_id=1,
                             sign=train["sign"].iloc[0])])
    pd.concat([train.iloc[:at], row, train.iloc[at:]]).to_csv(data_dir / "train.csv", index=False)
    return data_dir


def test_prepare_dataset_keeps_clips_without_hand_as_padding(tmp_path, capsys):
    """Every clip of train.csv is kept, as in the original: a clip with no hand in any frame is an
    all-padding row, marked by has_hand; nothing is printed."""
    data_dir = _with_handless_clip(_copy_data_dir(tmp_path / "data", n=4), at=2)
    prep = P.prepare_dataset(data_dir, tmp_path / "art", progress=False)
    assert capsys.readouterr().out == ""
    assert len(prep.clips) == 5 and prep.X.shape[0] == 5
    assert prep.has_hand.tolist() == [True, True, False, True, True]
    assert prep.participant_id[2] == 999 and prep.sequence_id[2] == 1
    np.testing.assert_array_equal(prep.X[2], 0)
    np.testing.assert_array_equal(prep.idxs[2], -1)
    assert "5 clips, 1 without a hand" in repr(prep)
    X, _ = preprocess_files(prep.clips["path"], progress=False)
    np.testing.assert_array_equal(prep.X, X)
    again = P.prepare_dataset(data_dir, tmp_path / "art", progress=False)   # from the cache
    assert capsys.readouterr().out == "" and again.has_hand.tolist() == prep.has_hand.tolist()


def test_prepare_dataset_chunked_assembly_equals_in_memory(tmp_path, monkeypatch):
    """Chunks of 2 clips written to the cache files, a no-hand clip inside a chunk: the arrays
    (and .npy files) equal preprocessing all clips in memory, and the key hashed while writing
    equals the key of the arrays."""
    data_dir = _with_handless_clip(_copy_data_dir(tmp_path / "data", n=6), at=3)

    clips = dataset.read_clips(data_dir)
    X_all, I_all = preprocess_files(clips["path"], progress=False)
    monkeypatch.setattr(P, "PREPARE_CHUNK", 2)
    for mmap in (False, True):
        prep = P.prepare_dataset(data_dir, tmp_path / f"art{mmap}", progress=False, mmap=mmap)
        np.testing.assert_array_equal(prep.X, X_all)
        np.testing.assert_array_equal(prep.idxs, I_all)
        assert prep.X.dtype == np.float32 and prep.X.shape == (7, 64, 66, 3)
        assert isinstance(prep.X, np.memmap) == mmap
        np.testing.assert_array_equal(prep.y, clips["label"].to_numpy())
        np.testing.assert_array_equal(prep.sequence_id, clips["sequence_id"].to_numpy())
        assert list(np.flatnonzero(~prep.has_hand)) == [3]
        assert prep.key == P.content_key(X_all, I_all, clips["label"].to_numpy(np.int32),
                                         clips["participant_id"].to_numpy(), clips["sequence_id"].to_numpy())
    for name, expected in (("X", X_all), ("idxs", I_all)):
        ref = tmp_path / f"ref_{name}.npy"
        np.save(ref, expected)
        assert (prep.cache_dir / f"{name}.npy").read_bytes() == ref.read_bytes()


@pytest.mark.parametrize("where", ["free space", "reservation"])
def test_a_full_disk_names_the_folder_and_the_space_and_leaves_nothing(tmp_path, monkeypatch, where):
    """Issue 26: a full disk while preparing killed the kernel with SIGBUS (writing through a
    memory map). Too little free space, or a reservation the disk refuses, is now an OSError
    (ENOSPC) naming the prepared folder and the space needed, at least what the arrays then take
    on disk; no file is left behind, and the next call prepares the data set."""
    data_dir = _copy_data_dir(tmp_path / "data", n=4)
    art = tmp_path / "art"
    with monkeypatch.context() as m:
        if where == "free space":
            usage = shutil.disk_usage(tmp_path)
            m.setattr(shutil, "disk_usage", lambda path: usage._replace(free=2000))
        else:
            def refuse(fd, offset, length):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            m.setattr(os, "posix_fallocate", refuse, raising=False)
        with pytest.raises(OSError) as err:
            P.prepare_dataset(data_dir, art, progress=False)
    message = err.value.strerror                                  # str(): "[Errno 28] " + this
    assert err.value.errno == errno.ENOSPC
    assert message.startswith(f"{art / 'prepared'}: preparing 4 clips needs "), message
    assert message.endswith("of free disk space, 0.0 MB are free" if where == "free space"
                            else "of free disk space; reserving it failed (No space left on device)")
    assert [p for p in art.rglob("*") if not p.is_dir()] == []
    needed, unit = re.search(r"needs ([\d.]+) (MB|GB)", message).groups()
    prepared = P.prepare_dataset(data_dir, art, progress=False)
    on_disk = sum((prepared.cache_dir / f).stat().st_size for f in P._FILES)
    assert on_disk <= float(needed) * (1e6 if unit == "MB" else 1e9)
