"""Tests of gislr_utils.export: the competition's TFLite contract, builtins only, agreement."""
import os

import numpy as np
import pytest

import gislr_utils  # noqa: F401  (environment before TensorFlow)
from gislr_utils._tf import keras
from gislr_utils import config, export
from gislr_utils.model import build_model, frame_drop_at_inference
from gislr_utils.preprocessing import preprocess

TINY = dict(units=32, lips_units=16, hands_units=16, pose_units=16, num_heads=4, num_blocks=1)


def randomise(model, seed=0):
    """Non-zero values in every weight (zero-initialised embeddings included)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign((rng.normal(size=w.shape) * 0.2).astype("float32"))


def synthetic_clips(seed=0):
    """Raw clips [n, 543, 3] with NaN (missing landmarks): short, right-handed and long."""
    rng = np.random.default_rng(seed)
    clips = []
    for n, hand in ((12, "left"), (40, "right"), (150, "left")):
        c = rng.random((n, 543, 3)).astype("float32")
        other = slice(522, 543) if hand == "left" else slice(468, 489)
        c[:, other] = np.nan
        c[::3, 468:489 if hand == "left" else 543] = np.nan   # frames without the hand
        c[:, 10:20] = np.nan
        clips.append(c)
    return clips


def real_clips(n=4):
    """`n` genuine clips of the real sample shipped in the package (always present)."""
    files = sorted(config.real_sample_dir().glob("train_landmark_files/*/*.parquet"))
    assert len(files) == 16
    from gislr_utils.dataset import load_frames
    return [load_frames(f) for f in files[:: max(1, len(files) // n)][:n]]


def keras_predict(model, clips):
    out = []
    for c in clips:
        x, idx = preprocess(c)
        out.append(model([x[None], idx[None]], training=False).numpy()[0])
    return np.stack(out)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny seed-mode model (inference-time drop ON, as the seed preset) with random weights."""
    keras.utils.set_random_seed(0)
    model = build_model("classroom", attention_mask="seed", **TINY)
    randomise(model)
    d = tmp_path_factory.mktemp("tflite")
    path = export.export_tflite(model, d / "model.tflite")
    path16 = export.export_tflite(model, d / "model_fp16.tflite", fp16=True)
    return model, path, path16


def test_signature_names_and_shapes(exported):
    _, path, _ = exported
    it = export.load_interpreter(path)
    assert it.get_signature_list() == {"serving_default": {"inputs": ["inputs"],
                                                          "outputs": ["outputs"]}}
    runner = it.get_signature_runner("serving_default")
    inp = runner.get_input_details()["inputs"]
    out = runner.get_output_details()["outputs"]
    assert list(inp["shape_signature"]) == [-1, 543, 3] and inp["dtype"] == np.float32
    assert list(out["shape"]) == [250] and out["dtype"] == np.float32


def test_builtin_ops_only_and_weights_inside(exported):
    model, path, _ = exported
    ops = export.tflite_op_names(path)
    assert not [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")]
    assert "BATCH_MATMUL" in ops and "GELU" in ops
    # The NaN trap left a file without weights; this one holds every float32 parameter.
    assert os.path.getsize(path) >= 4 * model.count_params()


def test_export_restores_the_models_frame_drop_setting(exported):
    model, _, _ = exported
    assert model.get_layer("frame_mask").frame_drop_at_inference is True


def test_tflite_agrees_with_keras_on_synthetic_clips(exported):
    model, path, path16 = exported
    clips = synthetic_clips()
    with frame_drop_at_inference(model, False):
        ref = keras_predict(model, clips)
    got = export.tflite_predict(path, clips)
    assert got.shape == (3, 250) and np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert ref.std(axis=1).min() > 1e-3          # weights are not trivial: classes differ
    np.testing.assert_allclose(export.tflite_predict(path, clips[1]), got[1], atol=1e-7)
    # Deterministic: the inference-time drop is off in the file.
    np.testing.assert_array_equal(export.tflite_predict(path, clips), got)
    # fp16 weights: about half the size, close predictions
    assert os.path.getsize(path16) < 0.8 * os.path.getsize(path)   # tiny: small tensors stay f32
    got16 = export.tflite_predict(path16, clips)
    np.testing.assert_allclose(got16, ref, atol=2e-3)


def test_tflite_agrees_with_keras_on_real_clips(exported):
    model, path, _ = exported
    clips = real_clips()
    with frame_drop_at_inference(model, False):
        ref = keras_predict(model, clips)
    got = export.tflite_predict(path, clips)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_keys_mode_matmul_and_per_head_models_export(tmp_path):
    for impl in ("matmul", "per_head"):
        model = build_model("classroom", attention_mask="keys", attention_impl=impl, **TINY)
        randomise(model, 1)
        path = export.export_tflite(model, tmp_path / f"{impl}.tflite")
        clips = synthetic_clips(1)[:2]
        np.testing.assert_allclose(export.tflite_predict(path, clips), keras_predict(model, clips),
                                   atol=1e-5)


def test_size_and_latency_report(exported):
    _, path, _ = exported
    r = export.tflite_size_and_latency(path, synthetic_clips()[:2], repeats=2, warmup=1)
    assert r["size_bytes"] == os.path.getsize(path)
    assert r["size_mb"] == pytest.approx(r["size_bytes"] / 2**20)
    assert r["n_calls"] == 4
    assert 0 < r["median_ms"] <= r["p90_ms"]
    assert 0 < r["best_median_ms"] <= r["median_ms"] * 2
    with pytest.raises(ValueError, match="repeats"):
        export.tflite_size_and_latency(path, synthetic_clips()[:1], repeats=0)


def test_bad_inputs_fail_clearly(exported, tmp_path):
    _, path, _ = exported
    with pytest.raises(ValueError, match="543"):
        export.tflite_predict(path, np.zeros((5, 66, 3), np.float32))
    with pytest.raises(ValueError, match="clip 1"):
        export.tflite_size_and_latency(path, [np.zeros((5, 543, 3)), np.zeros((0, 543, 3))])
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        export.tflite_predict(tmp_path / "missing.tflite", np.zeros((5, 543, 3)))
