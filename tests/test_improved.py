"""Tests of gislr_utils.improved (chapter 7): shapes, masking of padding, late dropout, builtin-only
TFLite conversion of a tiny model with every layer, and a few mixed-precision training steps."""
import tempfile

import numpy as np
import pytest

from gislr_utils import dataset
from gislr_utils._tf import keras, tf
from gislr_utils.config import real_sample_dir, resolve
from gislr_utils.improved import (REFERENCE_COL, Conv1DBlock, LateDropout, MotionEmbedding,
                                  ReferenceNormalisation, motion_features)
from gislr_utils.landmarks import LIPS_IDXS0
from gislr_utils.model import (FrameEmbedding, FrameMask, LandmarkNormalisation, MaskedMeanPooling,
                               TransformerBlock, build_model)
from gislr_utils.preprocessing import preprocess

T = 16


@pytest.fixture(scope="module")
def batch():
    paths = sorted((real_sample_dir() / "train_landmark_files").glob("*/*.parquet"))
    X, I = zip(*(preprocess(dataset.load_frames(p), input_size=T) for p in paths))
    return np.stack(X), np.stack(I)


def tiny_model(units=32, conv_blocks=1, motion=True, reference=True, late=(0.5, 2), mask_mode="keys"):
    """The suggested wiring of build_model, small: every chapter 7 layer around the seed's layers."""
    frames = keras.Input([T, 66, 3], name="frames")
    idxs = keras.Input([T], name="non_empty_frame_idxs")
    mask = FrameMask(0.25, name="frame_mask", dtype="float32")(idxs)
    valid = FrameMask(0.0, name="valid_frames", dtype="float32")(idxs)
    norm = ReferenceNormalisation if reference else LandmarkNormalisation
    lips, hand, pose = norm(name="normalisation", dtype="float32")(frames)
    x = FrameEmbedding(units, 16, T, name="embedding")(lips, hand, pose, idxs)
    if motion:
        x = x + MotionEmbedding(units, 16, name="motion_embedding")(lips, hand, pose)
    for i in range(2):
        for j in range(conv_blocks):
            x = Conv1DBlock(units, kernel_size=5, name=f"conv_{i}_{j}")(x, valid)
        x = TransformerBlock(units, 2, 2, 0.3, mask_mode, name=f"block_{i}")(x, mask)
    x = MaskedMeanPooling(name="pooling")(x, mask)
    x = LateDropout(*late, name="dropout")(x) if late else keras.layers.Dropout(0.1, name="dropout")(x)
    out = keras.layers.Dense(250, activation="softmax", name="classifier", dtype="float32")(x)
    return keras.Model([frames, idxs], out)


# ---------------------------------------------------------------------------------------------
# Normalisation and motion, against NumPy

def test_reference_normalisation_is_first_places_per_clip_normalisation(batch):
    X, _ = batch
    assert LIPS_IDXS0[REFERENCE_COL] == 17
    lips, hand, pose = (g.numpy() for g in ReferenceNormalisation()(tf.constant(X)))
    out = np.concatenate([lips.reshape(len(X), T, 40, 2), hand.reshape(len(X), T, 21, 2),
                          pose.reshape(len(X), T, 5, 2)], axis=2)
    for b in range(len(X)):
        xy = X[b, ..., :2].astype(np.float64)
        seen = np.any(xy != 0, -1)
        ref = xy[seen[:, REFERENCE_COL], REFERENCE_COL].mean(0)
        std = np.sqrt(((xy[seen] - ref) ** 2).mean(0))
        want = np.where(seen[..., None], (xy - ref) / std, 0)
        np.testing.assert_allclose(out[b], want, atol=2e-5)


def test_motion_features_are_masked_lag_differences(batch):
    X, I = batch
    groups = LandmarkNormalisation()(tf.constant(X))           # mean 0, std 1: the raw x, y
    got = motion_features(*groups).numpy().reshape(len(X), T, 66, 2, 3)
    xy = X[..., :2]
    seen = np.any(xy != 0, -1)
    for k, lag in enumerate((1, 2)):
        for t in range(T):
            for b in range(len(X)):
                both = seen[b, t] & (seen[b, t - lag] if t >= lag else False)
                d = xy[b, t] - xy[b, t - lag] if t >= lag else np.zeros_like(xy[b, t])
                want = np.where(both[:, None], np.c_[d, np.hypot(d[:, 0], d[:, 1])], 0)
                np.testing.assert_allclose(got[b, t, :, k], want, atol=1e-6)
    assert np.all(got[I == -1] == 0)                          # padding has no motion
    assert np.all(got[:, 0] == 0) and np.all(got[:, 1, :, 1] == 0)


def test_motion_embedding_of_no_motion_is_zero_and_its_gradient_finite():
    emb = MotionEmbedding(8, 4)
    still = tf.ones([2, T, 80]), tf.ones([2, T, 42]), tf.ones([2, T, 10])
    np.testing.assert_array_equal(emb(*still).numpy(), 0)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(emb(*still))
    assert all(np.isfinite(g.numpy()).all() for g in tape.gradient(y, emb.trainable_variables))


# ---------------------------------------------------------------------------------------------
# Late dropout and the conv block

def test_late_dropout_is_off_before_its_start_and_on_after():
    layer = LateDropout(0.5, start_step=3)
    x = tf.ones([8, 200])
    for _ in range(3):
        np.testing.assert_array_equal(layer(x, training=True).numpy(), 1)
    y = layer(x, training=True).numpy()
    assert set(np.unique(y)) == {0.0, 2.0} and int(layer.step.numpy()) == 4
    np.testing.assert_array_equal(layer(x, training=False).numpy(), 1)    # never at inference
    assert int(layer.step.numpy()) == 4


def test_late_dropout_counts_steps_of_fit():
    x = keras.Input([4])
    late = LateDropout(0.99, start_step=5)
    model = keras.Model(x, keras.layers.Dense(1)(late(x)))
    model.compile("sgd", "mse")
    model.fit(np.ones([64, 4]), np.ones([64, 1]), batch_size=8, epochs=1, verbose=0)
    assert int(late.step.numpy()) == 8


def test_conv_block_keeps_valid_frames_blind_to_padding_and_padding_unchanged():
    block = Conv1DBlock(12, kernel_size=5, drop_path=0.0)       # drop path: random per call
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, T, 12)).astype(np.float32)
    valid = np.zeros((3, T, 1), np.float32)
    valid[0, :5], valid[1, :T], valid[2, :1] = 1, 1, 1
    other = x.copy()
    other[valid[..., 0] == 0] = rng.normal(size=other[valid[..., 0] == 0].shape)     # new padding
    for training in (False, True):                            # BatchNorm: moving or batch statistics
        a = block(tf.constant(x), tf.constant(valid), training=training).numpy()
        b = block(tf.constant(other), tf.constant(valid), training=training).numpy()
        np.testing.assert_allclose(a[valid[..., 0] > 0], b[valid[..., 0] > 0], atol=1e-5)
        np.testing.assert_array_equal(a[valid[..., 0] == 0], x[valid[..., 0] == 0])


@pytest.mark.parametrize("reference", [False, True])
def test_tiny_model_shapes_and_padding(batch, reference):
    X, I = batch
    model = tiny_model(reference=reference)
    probs = model([X, I], training=False).numpy()
    assert probs.shape == (len(X), 250) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # padded frames (idx -1) do not reach the prediction ("keys" mask). Their content is free
    # for the seed's standardisation; the per-clip normalisation reads landmarks from the frames'
    # content, so there padding must be zero frames, as the preprocessing writes it.
    noisy = X.copy()
    noisy[I == -1] = 0.0 if reference else 0.3
    noisy[I == -1, :, 2] = 0.7                                  # z is never read
    np.testing.assert_allclose(model([noisy, I], training=False).numpy(), probs, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# TFLite and mixed precision

def test_tiny_model_with_every_layer_converts_to_builtin_tflite_ops(batch):
    X, I = batch
    model = tiny_model(mask_mode="seed")
    model.compile("adam", "categorical_crossentropy")            # BatchNorm statistics move
    model.fit([X, I], np.eye(250, dtype=np.float32)[np.arange(len(X))], epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        specs = [tf.TensorSpec([1, T, 66, 3], tf.float32), tf.TensorSpec([1, T], tf.float32)]
        archive.add_endpoint("serving_default", lambda f, i: {"outputs": model([f, i], training=False)},
                             input_signature=specs)
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serving_default"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        flatbuffer = converter.convert()
    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    runner = interpreter.get_signature_runner("serving_default")
    names = sorted(runner.get_input_details())                  # the endpoint's argument names
    ops = {d["op_name"] for d in interpreter._get_ops_details()}
    assert "DEPTHWISE_CONV_2D" in ops and not any("FLEX" in o or "Custom" in o for o in ops)
    for b in range(3):
        want = model([X[b:b + 1], I[b:b + 1]], training=False).numpy()[0]
        got = runner(**dict(zip(names, (X[b:b + 1], I[b:b + 1]))))["outputs"][0]
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("which", ["improved", "seed"])
def test_mixed_precision_trains_without_nan(batch, which):
    X, I = batch
    y = np.eye(250, dtype=np.float32)[np.arange(len(X)) % 250]
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(0)
        if which == "seed":
            cfg = resolve("classroom", embedding_units=16, units=32, num_heads=2, attention_mask="seed",
                          input_size=T)
            model = build_model(cfg)
        else:
            model = tiny_model(mask_mode="seed", late=(0.8, 2))
        assert model.get_layer("block_0").compute_dtype == "float16"
        model.compile(keras.optimizers.AdamW(1e-3), keras.losses.CategoricalCrossentropy(label_smoothing=0.5))
        history = model.fit([X, I], y, batch_size=8, epochs=3, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert np.isfinite(model.predict([X, I], verbose=0)).all()


def test_a_model_with_every_layer_saves_and_loads(batch, tmp_path):
    X, I = batch
    model = tiny_model(late=(0.5, 1))
    model([X, I], training=True)                        # moves BatchNorm's statistics and the step
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded([X, I], training=False).numpy(), model([X, I], training=False).numpy(),
                               atol=1e-6)
    assert int(loaded.get_layer("dropout").step.numpy()) == int(model.get_layer("dropout").step.numpy()) == 1
