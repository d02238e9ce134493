"""Tests of gislr_utils.model: exact parameter counts, masking arithmetic, the attention, saving."""
import numpy as np
import pytest

import gislr_utils  # noqa: F401  (environment before TensorFlow)
from gislr_utils._tf import keras, tf
from gislr_utils import config, export
from gislr_utils import model as gm
from gislr_utils.model import build_model, parameter_counts, scaled_dot_product_attention

TINY = dict(units=32, embedding_units=16, num_heads=4, num_blocks=1)


def tiny(stats=None, **kw):
    return build_model(config.resolve("classroom", **{**TINY, **kw}), stats)


def make_batch(seed=0, lengths=(64, 30, 5, 1)):
    """Random frames with `lengths` valid frames per clip; padded frames zero, idx -1."""
    rng = np.random.default_rng(seed)
    b = len(lengths)
    x = rng.normal(0.5, 0.2, (b, 64, 66, 3)).astype("float32")
    idx = np.full((b, 64), -1.0, np.float32)
    for j, n in enumerate(lengths):
        idx[j, :n] = np.sort(rng.choice(200, n, replace=False))
    x[idx == -1] = 0.0
    return x, idx


def np_softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ------------------------------------------------------------------ parameter counts
@pytest.fixture(scope="module")
def seed_model():
    return build_model(config.resolve("seed"))


def test_seed_parameter_count_matches_report_layer_for_layer(seed_model):
    c = parameter_counts(seed_model)
    # Numbers printed by the seed's model.summary(expand_nested=True).
    assert c["total"] == 5_315_965 == seed_model.count_params()
    assert c["embedding"] == 986_243
    assert c["positional_embedding"] == 33_280
    assert c["lips_embedding"] == 178_560
    assert c["left_hand_embedding"] == 163_968
    assert c["pose_embedding"] == 151_680
    assert c["fc"] == 458_752
    assert c["landmark_weights"] == 3
    assert c["transformer"] == 4_201_472
    assert c["block_0_mha"] == c["block_1_mha"] == 1_050_624
    assert c["block_0_mlp"] == c["block_1_mlp"] == 1_050_112
    assert c["classifier"] == 128_250
    assert sum(int(np.prod(w.shape)) for w in seed_model.non_trainable_weights) == 0
    assert {layer.name: layer.count_params() for layer in seed_model.layers} == {
        "frames": 0, "non_empty_frame_idxs": 0, "frame_mask": 0, "normalisation": 0, "embedding": 986_243,
        "block_0": 2_100_736, "block_1": 2_100_736, "pooling": 0, "dropout": 0, "classifier": 128_250}


def test_seed_parameter_count_from_architecture_arithmetic(seed_model):
    c = parameter_counts(seed_model)
    u, e, T = 512, 384, 64
    def group(n):                                  # dense_1 + dense_2 (no bias) + empty vector
        return n * 2 * e + e * e + e
    assert c["lips_embedding"] == group(40)
    assert c["left_hand_embedding"] == group(21)
    assert c["pose_embedding"] == group(5)
    assert c["fc"] == e * u + u * u
    assert c["positional_embedding"] == (T + 1) * u
    mha = 4 * (u * u + u)
    mlp = (u * 2 * u + 2 * u) + (2 * u * u + u)
    assert c["transformer"] == 2 * (mha + mlp)
    assert c["embedding"] == sum(c[k] for k in ("lips_embedding", "left_hand_embedding",
                                                "pose_embedding", "fc", "positional_embedding",
                                                "landmark_weights"))
    assert c["total"] == c["embedding"] + c["transformer"] + c["classifier"]


def per_head_parameters(units, heads):
    """The seed's attention layers: a Dense(units -> depth) with bias per head for each of q, k
    and v, and one Dense(units -> units) for the output."""
    depth = units // heads
    return 3 * heads * (units * depth + depth) + units * units + units


def test_fused_attention_has_the_parameters_of_the_seeds_per_head_layers(seed_model):
    for block in gm.blocks(seed_model):
        assert block.mha.count_params() == per_head_parameters(512, 8) == 1_050_624
    m = tiny(num_blocks=2)
    assert [b.mha.count_params() for b in gm.blocks(m)] == [per_head_parameters(32, 4)] * 2
    mha = gm.blocks(m)[0].mha
    assert [tuple(w.shape) for w in mha.weights] == [(32, 32), (32,)] * 4     # wq, wk, wv, wo


def test_stats_do_not_add_parameters():
    rng = np.random.default_rng(0)
    stats = {"mean": rng.random((66, 2)), "std": rng.random((66, 2)) + 0.1}
    assert tiny(stats=stats).count_params() == tiny().count_params()


# ------------------------------------------------------------------ shapes and options
def test_output_shape_softmax_and_dict_inputs():
    m = tiny(attention_mask="keys")
    x, idx = make_batch()
    y = m([x, idx]).numpy()
    assert y.shape == (4, 250)
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-5)
    y2 = m({"frames": x, "non_empty_frame_idxs": idx}).numpy()
    np.testing.assert_array_equal(y, y2)
    assert [i.name for i in m.inputs] == ["frames", "non_empty_frame_idxs"]
    assert not m.compiled  # build_model does not compile


@pytest.mark.parametrize("bad,name", [
    (dict(attention_mask="rows"), "attention_mask"),
    (dict(attention_impl="per_head"), "attention_impl"),        # the per-head formulation is gone
    (dict(attention_mask="keys", frame_drop_at_inference=True), "frame_drop_at_inference"),
    (dict(frame_drop=1.0), "frame_drop"), (dict(unknown_setting=1), "unknown_setting"),
    (dict(units=30, num_heads=4), "num_heads")])
def test_bad_options_fail_clearly(bad, name):
    with pytest.raises(config.ParameterError, match=name):
        tiny(**bad)


def test_bad_stats_fail_clearly():
    with pytest.raises(ValueError, match="shape"):
        tiny(stats={"mean": np.zeros((40, 2)), "std": np.ones((40, 2))})
    with pytest.raises(ValueError, match="std"):
        tiny(stats={"mean": np.zeros((66, 2)), "std": np.zeros((66, 2))})
    with pytest.raises(ValueError, match="'mean' and 'std'"):
        tiny(stats={"mu": 0})


def test_all_padded_clip_gives_finite_output():
    for mode in ("seed", "keys"):
        m = tiny(attention_mask=mode)
        x, idx = make_batch(lengths=(0, 10))
        y = m([x, idx]).numpy()
        assert np.all(np.isfinite(y)), mode


# ------------------------------------------------------------------ preprocessing inside the model
def test_normalisation_matches_numpy():
    rng = np.random.default_rng(1)
    mean, std = rng.random((66, 2)).astype("float32"), (rng.random((66, 2)) + 0.5).astype("float32")
    x = rng.random((2, 64, 66, 3)).astype("float32")
    x[0, 3, 7, 0] = 0.0
    x[1, :, 50:, :] = 0.0
    lips, hand, pose = gm.LandmarkNormalisation(mean, std)(x)
    xy = x[..., :2]
    ref = np.where(xy == 0, 0, (xy - mean) / std)
    np.testing.assert_allclose(lips.numpy(), ref[:, :, :40].reshape(2, 64, 80), rtol=1e-6)
    np.testing.assert_allclose(hand.numpy(), ref[:, :, 40:61].reshape(2, 64, 42), rtol=1e-6)
    np.testing.assert_allclose(pose.numpy(), ref[:, :, 61:].reshape(2, 64, 10), rtol=1e-6)
    assert lips.numpy()[0, 3, 14] == 0.0          # landmark 7, x: zero stays zero


def test_position_index_last_frame_shares_the_padding_row():
    idx = np.full((1, 64), -1.0, np.float32)
    idx[0, :10] = np.arange(10) * 3               # max 27
    pos = gm.position_index(tf.constant(idx)).numpy()[0]
    expected = [int(i / 27 * 64) for i in idx[0, :10]] + [64] * 54
    assert pos.tolist() == expected
    assert pos[9] == 64                           # the quirk: last frame -> padding row


def test_landmark_embedding_uses_empty_vector_for_missing_group():
    layer = gm.LandmarkEmbedding(8)
    x = np.random.default_rng(2).random((1, 4, 6)).astype("float32")
    x[0, 1] = 0.0
    layer(x)
    layer.empty_embedding.assign(np.arange(8, dtype="float32"))
    y = layer(x).numpy()
    np.testing.assert_array_equal(y[0, 1], np.arange(8))
    ref = layer.dense_2(layer.dense_1(x)).numpy()
    np.testing.assert_allclose(y[0, [0, 2, 3]], ref[0, [0, 2, 3]], rtol=1e-6)


# ------------------------------------------------------------------ attention masking
def _qkv(seed=3, b=2, t=6, d=4):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=(b, t, d)).astype("float32") for _ in range(3))
    mask = np.ones((b, t, 1), np.float32)
    mask[0, 4:] = 0
    mask[1, 1] = 0
    return q, k, v, mask


def test_seed_mask_arithmetic_matches_numpy_and_masks_query_rows():
    q, k, v, mask = _qkv()
    z = scaled_dot_product_attention(q, k, v, tf.constant(mask), "seed").numpy()
    scores = (q @ k.transpose(0, 2, 1)) / np.float32(np.sqrt(4))
    scores = scores + (1 - mask) * np.float32(-1e9)     # [B,T,1]: whole query rows
    ref = np_softmax(scores.astype("float32")) @ v
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-6)
    # A masked query row becomes uniform attention over ALL keys (padded ones included) ...
    np.testing.assert_allclose(z[0, 4], v[0].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z[1, 1], v[1].mean(0), rtol=1e-5, atol=1e-6)
    # ... and a valid query still attends to masked keys (keys are never masked).
    w = np_softmax(scores)[0, 0]
    assert w[4:].sum() > 1e-3


def test_keys_mask_ignores_masked_keys():
    q, k, v, mask = _qkv()
    z = scaled_dot_product_attention(q, k, v, tf.constant(mask), "keys").numpy()
    for b in range(2):
        keep = mask[b, :, 0] == 1
        s = q[b] @ k[b, keep].T / 2.0
        np.testing.assert_allclose(z[b], np_softmax(s) @ v[b, keep], rtol=1e-5, atol=1e-6)


def test_keras3_softmax_layer_differs_from_the_keras2_original():
    """Documented finding: Keras 3's Softmax zeroes masked positions after the softmax, so a
    masked query row gives 0 instead of the Keras 2 original's uniform row."""
    q, k, v, mask = _qkv()
    scores = tf.matmul(q, k, transpose_b=True) / 2.0
    keras3 = keras.layers.Softmax()(scores, mask=tf.constant(mask)).numpy()
    np.testing.assert_array_equal(keras3[0, 4], 0.0)
    ours = tf.nn.softmax(scores + (1.0 - mask) * -1e9).numpy()
    np.testing.assert_allclose(ours[0, 4], 1 / 6, rtol=1e-6)


def test_frame_mask_padding_drop_and_fallback():
    idx = np.array([[0, 1, 2, 3, -1, -1], [5, -1, -1, -1, -1, -1]], np.float32)
    mask0 = (idx != -1).astype("float32")[..., None]
    np.testing.assert_array_equal(gm.FrameMask(0.25)(idx).numpy(), mask0)            # inference
    keras.utils.set_random_seed(0)
    drops = np.stack([gm.FrameMask(0.5)(np.tile(idx, (50, 1)), training=True).numpy()
                      for _ in range(4)])
    assert np.all(drops <= np.tile(mask0, (50, 1, 1)))  # never adds padded frames
    assert 0.2 < 1 - drops[:, 0::2, :4].mean() < 0.8    # about half of valid frames dropped
    # A clip that lost every frame falls back to its padding mask (seed's correction).
    assert np.all(drops[:, 1::2].sum(axis=(1, 2)) >= 1)
    everything = gm.FrameMask(0.999999)(idx, training=True).numpy()
    np.testing.assert_array_equal(everything, mask0)
    # The seed's inference-time drop.
    keras.utils.set_random_seed(1)
    inf = gm.FrameMask(0.5, frame_drop_at_inference=True)(np.tile(idx, (50, 1))).numpy()
    assert inf.sum() < np.tile(mask0, (50, 1, 1)).sum()


def test_keys_mode_ignores_padded_frame_content():
    m = tiny(attention_mask="keys")
    x, idx = make_batch(lengths=(40, 12, 3))
    junk = x.copy()
    rng = np.random.default_rng(9)
    junk[idx == -1] = rng.normal(size=junk[idx == -1].shape)
    np.testing.assert_allclose(m([x, idx]).numpy(), m([junk, idx]).numpy(), rtol=1e-6, atol=1e-7)
    # The seed's query-row mask lets padded frames leak into valid frames (drop off here).
    s = tiny(attention_mask="seed", frame_drop_at_inference=False)
    for layer in s.get_layer("embedding")._flatten_layers():      # make embeddings non-trivial
        for w in layer.weights:
            if "empty" in w.path or "positional" in w.path:
                w.assign(rng.normal(size=w.shape) * 0.1)
    assert np.abs(s([x, idx]).numpy() - s([junk, idx]).numpy()).max() > 1e-6


def test_seed_preset_drops_frames_at_inference_until_switched_off():
    assert config.resolve("seed").frame_drop_at_inference         # the original's inference-time drop
    m = tiny(attention_mask="seed", frame_drop_at_inference=True)
    assert m.get_layer("frame_mask").frame_drop_at_inference
    x, idx = make_batch(lengths=(64, 40))
    keras.utils.set_random_seed(0)
    a, b = m.predict([x, idx], verbose=0), m.predict([x, idx], verbose=0)
    assert np.abs(a - b).max() > 0
    with gm.frame_drop_at_inference(m, False):
        a, b = m.predict([x, idx], verbose=0), m.predict([x, idx], verbose=0)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, m([x, idx], training=False).numpy(), rtol=1e-5)
        m.compile(loss="sparse_categorical_crossentropy")
        y = np.array([0, 1])
        assert m.evaluate([x, idx], y, verbose=0) == m.evaluate([x, idx], y, verbose=0)
    assert m.get_layer("frame_mask").frame_drop_at_inference          # restored


def test_keys_mode_drops_frames_only_in_training():
    m = tiny(attention_mask="keys", frame_drop=0.5)
    x, idx = make_batch(lengths=(64, 40))
    np.testing.assert_array_equal(m([x, idx]).numpy(), m([x, idx]).numpy())
    layer = m.get_layer("frame_mask")
    assert not np.array_equal(layer(idx, training=True).numpy(), layer(idx).numpy())


# ------------------------------------------------------------------ the attention layer and saving
def per_head_attention(x, mha, mask, mode):
    """The seed's formulation in NumPy (float32): head i has its own q, k, v projections, the
    columns i*depth:(i+1)*depth of the fused kernels and biases; the heads are concatenated."""
    d = mha.depth
    w = {name: (getattr(mha, name).kernel.numpy(), getattr(mha, name).bias.numpy())
         for name in ("wq", "wk", "wv", "wo")}
    bias = (1 - mask) * np.float32(-1e9)                     # [B, T, 1]: query rows
    if mode == "keys":
        bias = bias.transpose(0, 2, 1)                       # [B, 1, T]: keys
    heads = []
    for i in range(mha.num_heads):
        cols = slice(i * d, (i + 1) * d)
        q, k, v = (x @ w[n][0][:, cols] + w[n][1][cols] for n in ("wq", "wk", "wv"))
        scores = (q @ k.transpose(0, 2, 1) / np.float32(np.sqrt(d)) + bias).astype("float32")
        heads.append(np_softmax(scores) @ v)
    return np.concatenate(heads, axis=-1) @ w["wo"][0] + w["wo"][1]


@pytest.mark.parametrize("mode", ["seed", "keys"])
def test_fused_attention_computes_the_seeds_per_head_attention(mode):
    rng = np.random.default_rng(4)
    a = gm.MultiHeadAttention(32, 4, mode)
    x = rng.normal(size=(3, 64, 32)).astype("float32")
    mask = np.ones((3, 64, 1), np.float32)
    mask[1, 20:] = 0
    mask[2, 3:] = 0
    a(x, mask)
    for w in a.weights:                       # non-zero biases too
        w.assign(rng.normal(size=w.shape).astype("float32") * 0.3)
    za = a(x, mask).numpy()
    assert za.std() > 0.1
    np.testing.assert_allclose(za, per_head_attention(x, a, mask, mode), rtol=1e-5, atol=1e-5)
    # the layers of a whole model, on the frames the model embeds
    m = tiny(attention_mask=mode, num_blocks=2)
    for w in m.weights:
        w.assign(rng.normal(size=w.shape).astype("float32") * 0.3)
    xx, idx = make_batch()
    frame_mask, h = gm.embed(m, xx, idx)
    for block in gm.blocks(m):
        got = block.mha(h, frame_mask).numpy()
        assert got.std() > 0.1
        np.testing.assert_allclose(got, per_head_attention(h.numpy(), block.mha, frame_mask.numpy(), mode),
                                   rtol=1e-4, atol=1e-4)
        h = block(h, frame_mask, training=False)


def test_fused_kernels_initialised_like_seed_per_head_kernels():
    a = gm.MultiHeadAttention(512, 8)
    a(np.zeros((1, 4, 512), np.float32), np.ones((1, 4, 1), np.float32))
    k = a.wq.kernel.numpy()
    limit = np.sqrt(6 / (512 + 64))                  # glorot_uniform of a Dense(512 -> 64)
    assert np.abs(k).max() <= limit
    assert np.abs(k).max() > 0.99 * limit
    # the same distribution as the kernel of a seed's per-head layer, Keras' Dense(64) on 512 inputs
    keras.utils.set_random_seed(0)
    head = keras.layers.Dense(64)
    head.build((None, 512))
    h = head.kernel.numpy()
    assert 0.99 * limit < np.abs(h).max() <= limit
    for w in (a.wq, a.wk, a.wv):
        assert w.kernel.numpy().std() == pytest.approx(h.std(), rel=0.02)
        assert not np.any(w.bias.numpy())
    wo_limit = np.float32(np.sqrt(6 / (512 + 512)))           # glorot of the seed's output Dense(512)
    assert 0.99 * wo_limit < np.abs(a.wo.kernel.numpy()).max() <= wo_limit
    # every kernel is drawn separately (a shared Keras 3 initializer would repeat its values)
    kernels = [w.numpy() for w in a.weights if w.path.endswith("kernel")]
    assert len(kernels) == 4
    assert all(not np.array_equal(kernels[i], kernels[j]) for i in range(4) for j in range(i))


@pytest.mark.parametrize("mode", ["seed", "keys"])
def test_saved_weights_in_a_freshly_built_model_give_the_same_probabilities(tmp_path, mode):
    """What `training.load_run` does with a run's model.weights.h5: a model built again from the
    run's settings and statistics (other initial weights) with the saved weights loaded computes
    the same probabilities; the statistics live in the layer's config, not in the weights."""
    rng = np.random.default_rng(5)
    stats = {"mean": rng.random((66, 2)), "std": rng.random((66, 2)) + 0.5}
    settings = dict(attention_mask=mode, frame_drop_at_inference=False, stats=stats)
    keras.utils.set_random_seed(1)
    m = tiny(**settings)
    m.save_weights(tmp_path / "model.weights.h5")
    keras.utils.set_random_seed(2)
    fresh = tiny(**settings)
    x, idx = make_batch()
    assert not np.array_equal(m([x, idx]).numpy(), fresh([x, idx]).numpy())
    fresh.load_weights(tmp_path / "model.weights.h5")
    np.testing.assert_array_equal(m([x, idx]).numpy(), fresh([x, idx]).numpy())
    np.testing.assert_array_equal(fresh.get_layer("normalisation").std, np.float32(stats["std"]))
    assert gm.attention_mask_mode(fresh) == mode


def test_model_trains():
    m = tiny(attention_mask="keys")
    m.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    x, idx = make_batch()
    x[0, 10:20] = 0.0            # valid frames with every group missing: empty vectors are used
    y = np.array([0, 1, 2, 3])
    before = [w.numpy().copy() for w in m.trainable_weights]
    h = m.fit([x, idx], y, epochs=3, batch_size=4, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    changed = [not np.array_equal(b, w.numpy()) for b, w in zip(before, m.trainable_weights)]
    assert all(changed)


# ------------------------------------------------------------------ internals for the chapters
def test_frame_drop_context_switches_and_restores_even_after_an_error():
    m = tiny(attention_mask="seed", frame_drop_at_inference=True)
    layer = m.get_layer("frame_mask")
    x, idx = make_batch(lengths=(64, 40))
    with gm.frame_drop_at_inference(m, False):
        assert layer.frame_drop_at_inference is False
        a, b = m.predict([x, idx], verbose=0), m.predict([x, idx], verbose=0)
        np.testing.assert_array_equal(a, b)
    assert layer.frame_drop_at_inference is True
    with pytest.raises(RuntimeError, match="inside"):
        with gm.frame_drop_at_inference(m, False):
            raise RuntimeError("inside")
    assert layer.frame_drop_at_inference is True
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no FrameMask"):
        with gm.frame_drop_at_inference(plain, False):
            pass


def test_landmark_group_weights_are_the_softmax_of_the_layer_weights():
    m = tiny()
    assert gm.landmark_group_weights(m) == pytest.approx({"lips": 1 / 3, "hand": 1 / 3, "pose": 1 / 3})
    m.get_layer("embedding").landmark_weights.assign(np.log([1.0, 2.0, 3.0]).astype("float32"))
    assert gm.landmark_group_weights(m) == pytest.approx({"lips": 1 / 6, "hand": 2 / 6, "pose": 3 / 6})


def test_attention_weights_match_a_numpy_recomputation():
    keras.utils.set_random_seed(0)
    m = tiny(attention_mask="seed", frame_drop_at_inference=True, num_blocks=2)
    x, idx = make_batch(lengths=(64, 40))
    n = 40
    got = gm.attention_weights(m, x[1], idx[1])
    # Independent: the block's input from the functional graph, q and k from the Dense kernels.
    emb = keras.Model(m.inputs, m.get_layer("embedding").output)([x[1:2], idx[1:2]]).numpy()[0]
    mha = m.get_layer("block_0").mha
    heads, depth = mha.num_heads, mha.depth

    def project(dense):
        out = emb @ dense.kernel.numpy() + dense.bias.numpy()
        return out.reshape(64, heads, depth).transpose(1, 0, 2)

    scores = project(mha.wq) @ project(mha.wk).transpose(0, 2, 1) / np.sqrt(depth)
    valid = np.arange(64) < n
    keys = np_softmax(np.where(valid[None, None, :], scores, -1e9))
    seed = np_softmax(scores)
    seed[:, ~valid, :] = 1 / 64                      # masked query rows: -1e9 everywhere, uniform
    assert got["keys"].shape == got["seed"].shape == (heads, 64, 64)
    np.testing.assert_allclose(got["keys"], keys, atol=1e-5)
    np.testing.assert_allclose(got["seed"], seed, atol=1e-5)
    assert m.get_layer("frame_mask").frame_drop_at_inference is True   # restored
    second = gm.attention_weights(m, x[1], idx[1], block=1, modes=("keys",))
    assert set(second) == {"keys"} and np.allclose(second["keys"].sum(-1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="block=2"):
        gm.attention_weights(m, x[1], idx[1], block=2)


# ------------------------------------------------------------------ inference on valid frames only
def _padded_qkv(n=5, total=12, d=4, seed=3, scale=1.0):
    """One clip: n distinct valid rows, then total - n identical padded rows (as in the model)."""
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(0, scale, (1, total, d)).astype("float32") for _ in range(3))
    for a in (q, k, v):
        a[0, n:] = a[0, n]
    mask = np.zeros((1, total, 1), np.float32)
    mask[0, :n] = 1.0
    return q, k, v, mask


def test_compact_layout_rows_and_counts():
    idx = np.full((3, 64), -1.0, np.float32)
    idx[0, :5] = np.arange(5)
    idx[1, :] = np.arange(64)
    length, counts = export.compact_layout(idx, "seed")             # clip 2 has no valid frame
    assert int(length) == 64 and counts.shape == (3, 64, 1)
    c = counts.numpy()[:, :, 0]
    np.testing.assert_array_equal(c[0, :7], [1, 1, 1, 1, 1, 59, 0])
    assert c[0, 6:].sum() == 0 and c[1].sum() == 64 and np.all(c[1] == 1)
    np.testing.assert_array_equal(c[2, :2], [64, 0])
    assert np.all(c.sum(1) == 64)                                # every clip: 64 frames
    length, counts = export.compact_layout(idx[[0]], "keys")
    assert int(length) == 5 and counts is None
    assert int(export.compact_layout(idx[[2]], "keys")[0]) == 1      # at least one row
    assert int(export.compact_layout(idx[[0]], "seed")[0]) == 6      # + the padded representative
    length, counts = export.compact_layout(idx[[0], :8], "seed", input_size=64)   # cut columns
    assert int(length) == 6
    np.testing.assert_array_equal(counts.numpy()[0, :, 0], [1, 1, 1, 1, 1, 59])


def test_one_padded_key_counted_p_times_is_exact_for_every_row():
    """The seed mask: 7 identical padded rows -> 1 row whose key weight counts 7 times."""
    n, total = 5, 12
    for scale in (1.0, 6.0):          # 6.0: some scores beyond +-32, where -1e9 is not flat
        q, k, v, mask = _padded_qkv(n, total, scale=scale)
        full = scaled_dot_product_attention(q, k, v, tf.constant(mask), "seed").numpy()
        counts = np.array([[1] * n + [total - n]], np.float32)[:, :, None]
        small = scaled_dot_product_attention(q[:, :n + 1], k[:, :n + 1], v[:, :n + 1],
                                             tf.constant(mask[:, :n + 1]), "seed",
                                             tf.constant(counts)).numpy()
        np.testing.assert_allclose(small[0], full[0, :n + 1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(full[0, n:], np.repeat(full[0, n:n + 1], total - n, 0),
                                   rtol=1e-6)      # the padded rows stay identical
        if scale > 1:
            assert np.abs(q[0, n] @ k[0].T / 2.0).max() > 64


def test_log_p_on_the_score_is_exact_for_valid_rows_but_swallowed_by_the_mask():
    """Why the count multiplies exp() after the mask instead of adding log(P) to the score."""
    n, total = 5, 12
    q, k, v, mask = _padded_qkv(n, total)
    full = scaled_dot_product_attention(q, k, v, tf.constant(mask), "seed").numpy()[0]
    s = (q[0, :n + 1] @ k[0, :n + 1].T / np.float32(2.0)).astype("float32")
    s[:, n] += np.float32(np.log(total - n))                       # representative key: + log P
    s = s + (1 - mask[0, :n + 1]) * np.float32(-1e9)               # the seed's query mask
    naive = np_softmax(s.astype("float32")) @ v[0, :n + 1]
    np.testing.assert_allclose(naive[:n], full[:n], rtol=1e-5, atol=1e-6)   # valid rows: exact
    # The masked row: -1e9 + log(P) rounds to -1e9 (float32 spacing there is 64), so it
    # averages 6 rows with equal weight instead of 12 frames (P of them padded) ...
    assert np.float32(-1e9) + np.float32(np.log(total - n)) == np.float32(-1e9)
    np.testing.assert_allclose(naive[n], v[0, :n + 1].mean(0), rtol=1e-5, atol=1e-6)
    assert np.abs(naive[n] - full[n]).max() > 1e-2
    # ... while the 12-frame graph's masked row is the average of all 12 value rows.
    np.testing.assert_allclose(full[n], v[0].mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["seed", "keys"])
def test_compact_forward_matches_the_64_frame_graph(mode):
    m = tiny(attention_mask=mode, num_blocks=2, frame_drop_at_inference=False)
    rng = np.random.default_rng(5)
    for w in m.weights:
        w.assign((rng.normal(size=w.shape) * 0.15).astype("float32"))
    x, idx = make_batch(lengths=(30, 5, 1, 0, 63, 64))
    ref = m([x, idx], training=False).numpy()
    assert ref.std(axis=1).min() > 1e-4                      # the classes differ
    np.testing.assert_allclose(export.compact_forward(m, x, idx).numpy(), ref, atol=1e-6)
    for i in range(len(x)):                                   # one clip at a time, as in TFLite
        got = export.compact_forward(m, x[i:i + 1], idx[i:i + 1]).numpy()
        np.testing.assert_allclose(got, ref[i:i + 1], atol=1e-6)


def test_seed_compact_without_counts_would_be_wrong():
    """The counts matter: one padded row counted once changes the valid rows (2 blocks)."""
    m = tiny(attention_mask="seed", num_blocks=2, frame_drop_at_inference=False)
    rng = np.random.default_rng(5)
    for w in m.weights:
        w.assign((rng.normal(size=w.shape) * 0.15).astype("float32"))
    x, idx = make_batch(lengths=(5,))
    ref = m([x, idx], training=False).numpy()

    def pooled(x, idx, counts):
        mask = tf.cast(idx != -1, tf.float32)[..., None]
        h = m.get_layer("embedding")(*m.get_layer("normalisation")(x), idx)
        for block in gm.blocks(m):
            h = block(h, mask, training=False, key_counts=counts)
        return m.get_layer("classifier")(m.get_layer("pooling")(h, mask)).numpy()

    counts = np.array([[1] * 5 + [59]], np.float32)[:, :, None]
    np.testing.assert_allclose(pooled(x[:, :6], idx[:, :6], counts), ref, atol=1e-6)
    wrong = pooled(x[:, :6], idx[:, :6], np.ones_like(counts))    # 1 padded frame, not 59
    assert np.abs(wrong - ref).max() > 1e-4


def test_compact_forward_needs_a_gislr_model():
    inp = keras.Input([4])
    with pytest.raises(ValueError, match="not a GISLR transformer"):
        export.compact_forward(keras.Model(inp, inp), np.zeros((1, 64, 66, 3)), np.zeros((1, 64)))
