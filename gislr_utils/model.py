"""The GISLR transformer (M. Wijkhuizen's Kaggle notebook, as in the seed report), in Keras 3.

Chapter 3 shows and explains the layers of this module; chapter 4 compiles and fits the model
that :func:`build_model` returns; chapter 6 exports it (``export.py``).

Data flow (shapes for one batch of B clips of T = 64 frames)::

    frames [B,64,66,3] --LandmarkNormalisation--> lips [B,64,80], hand [B,64,42], pose [B,64,10]
        --FrameEmbedding--> [B,64,units] (+ positional embedding from non_empty_frame_idxs)
        --num_blocks x TransformerBlock (x + MHA(x); x + MLP(x))--> [B,64,units]
        --MaskedMeanPooling--> [B,units] --Dropout--> --Dense(250, softmax)--> [B,250]
    non_empty_frame_idxs [B,64] --FrameMask--> frame mask [B,64,1] (attention and pooling)

Two attention-mask modes (setting ``attention_mask``):

* ``"seed"`` reproduces the original exactly, quirks included: the frame mask (padding plus a
  random 25% frame drop that also runs at *inference*) has shape [B,64,1]; added as
  ``(1 - mask) * -1e9`` to scores [B,64(query),64(key)] it broadcasts over the *key* axis, so it
  masks whole *query rows* and never masks padded *keys*.
* ``"keys"`` is the fix: padded keys are masked, the random frame drop runs only in training.

Keras 2 vs Keras 3 ``Softmax`` layer. The original called ``tf.keras.layers.Softmax()(scores,
mask=mask)`` (Keras 2), which computes ``softmax(scores + (1 - mask) * -1e9)``. In float32,
``s - 1e9`` rounds to exactly ``-1e9`` for ``|s| < 32``, so a masked query row becomes uniform
attention over all 64 keys. Keras 3's ``Softmax`` (3.15) *replaces* masked scores by -1e9 and then
zeroes the masked outputs, so masked query rows become all-zero attention: calling it would
silently change the seed's model. :func:`scaled_dot_product_attention` writes the Keras 2
arithmetic out in TF ops (``tests/test_model.py`` pins both behaviours).

TFLite converter note (TF 2.21): the mask's additive term is computed *before* it is transposed
for the "keys" mode on purpose: written the other way round, the converter moves the transpose
behind the subtraction, swaps its operands and puts +1e9 on padded keys (tests/test_export.py).
"""
from __future__ import annotations

import contextlib
import dataclasses

import numpy as np

from ._tf import keras, tf
from . import improved
from .config import RunConfig
from .landmarks import HAND_START, LIPS_START, N_COLS, N_HAND, N_LIPS, N_POSE, POSE_START

PACKAGE = "gislr"
MASK_NEGATIVE = -1e9         # what Keras 2's Softmax added to masked scores
register = keras.saving.register_keras_serializable(package=PACKAGE)


# --------------------------------------------------------------------------------------------
# Attention (chapter 3)
# --------------------------------------------------------------------------------------------
def scaled_dot_product_attention(q, k, v, frame_mask, mask_mode="seed",
                                 key_counts=None):
    """softmax(q k^T / sqrt(d) + mask) v for q, k, v [B, T, d] or [B, H, T, d] (chapter 3).

    `frame_mask` [B, T, 1] is 1 for frames to use, 0 for padded or dropped ones.
    ``mask_mode="seed"`` adds ``(1 - mask) * -1e9`` as it is, [B, T, 1]: against scores
    [B, T(query), T(key)] it covers whole *query rows*, as the original's Keras 2
    ``Softmax()(scores, mask=mask)`` did. ``mask_mode="keys"`` transposes it to [B, 1, T]
    so that padded *keys* get -1e9. `key_counts` is for the exported file only
    (:func:`counted_attention`, chapter 6).
    """
    d = tf.cast(tf.shape(q)[-1], tf.float32)
    scores = tf.matmul(q, k, transpose_b=True) / tf.math.sqrt(d)
    bias = (1.0 - frame_mask) * MASK_NEGATIVE    # [B, T, 1]: rows of padding
    if mask_mode == "keys":
        bias = tf.transpose(bias, [0, 2, 1])     # [B, 1, T]: columns of padding
    if len(q.shape) == 4:
        bias = bias[:, None]                     # the same for every head
    if key_counts is not None:
        return counted_attention(scores + bias, v, key_counts)
    return tf.matmul(tf.nn.softmax(scores + bias, axis=-1), v)


def counted_attention(logits, v, key_counts):
    """Attention whose key j stands for ``key_counts[j]`` identical keys (chapter 6).

    `key_counts` [B, T, 1] (`export.compact_layout`: 1 for a valid frame, P for the one padded
    frame that represents P identical ones, 0 for filler rows). The weights are
    ``exp(l - max l) * count / sum(exp(l - max l) * count)`` over the masked scores ``l``: the
    softmax over the keys listed with their multiplicity, *after* the mask. (Adding ``log(count)``
    to the score is the same for unmasked rows, but on a masked row float32 rounds
    ``-1e9 + log(count)`` back to ``-1e9``.)
    """
    counts = tf.transpose(key_counts, [0, 2, 1])                 # [B, 1, T]
    if len(v.shape) == 4:
        counts = counts[:, None]
    top = tf.reduce_max(tf.where(counts > 0.0, logits, 2.0 * MASK_NEGATIVE), axis=-1, keepdims=True)
    e = tf.exp(tf.minimum(logits - top, 0.0)) * counts
    return tf.matmul(e / tf.reduce_sum(e, axis=-1, keepdims=True), v)


@register
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head self-attention with the original's masking (chapter 3).

    One Dense(units) each for q, k and v, split into heads by a reshape: the same function and
    parameters as the seed's list of Dense(depth) layers per head (head i is columns
    ``i*depth:(i+1)*depth``), and it converts to builtin TFLite ops (Keras 3's own
    MultiHeadAttention uses einsum, which the converter rejects). The kernels are initialised
    like the seed's per-head glorot-uniform kernels (limit sqrt(6 / (units + depth))). The
    attention runs in float32 also under mixed precision (the -1e9 mask needs it).
    """

    def __init__(self, units, num_heads, mask_mode="seed", **kwargs):
        super().__init__(**kwargs)
        self.units, self.num_heads = units, num_heads
        self.mask_mode = mask_mode
        self.depth = units // num_heads
        # glorot-uniform of a per-head Dense(units -> depth), as the seed's
        scale = 2.0 * units / (units + self.depth)
        self.wq, self.wk, self.wv = (
            keras.layers.Dense(units, name=name, kernel_initializer=(
                keras.initializers.VarianceScaling(scale, mode="fan_avg",
                                                   distribution="uniform")))
            for name in ("wq", "wk", "wv"))
        self.wo = keras.layers.Dense(units, name="wo")

    def build(self, *shapes):
        pass        # the Dense layers build themselves on the first call

    def split_heads(self, x):
        """[B, T, units] -> [B, heads, T, depth]."""
        x = tf.reshape(x, [-1, tf.shape(x)[1], self.num_heads, self.depth])
        return tf.transpose(x, [0, 2, 1, 3])

    def call(self, x, frame_mask, key_counts=None):
        q, k, v = (self.split_heads(w(x)) for w in (self.wq, self.wk, self.wv))
        # in float32 also under mixed precision: the -1e9 of the mask
        f32 = [tf.cast(t, tf.float32) for t in (q, k, v, frame_mask)]
        if key_counts is not None:
            key_counts = tf.cast(key_counts, tf.float32)
        z = scaled_dot_product_attention(*f32, self.mask_mode, key_counts)
        z = tf.transpose(tf.cast(z, x.dtype), [0, 2, 1, 3])  # [B, T, H, d]
        return self.wo(tf.reshape(z, [-1, tf.shape(x)[1], self.units]))

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "num_heads": self.num_heads, "mask_mode": self.mask_mode}


@register
class TransformerBlock(keras.layers.Layer):
    """``x = x + MHA(x); x = x + MLP(x)``, no LayerNorm, as in the seed (chapter 3).

    MLP: Dense(units * mlp_ratio, GELU) -> Dropout(mlp_dropout) -> Dense(units).
    `key_counts` is passed to the attention by the exported file only (chapter 6).
    """

    def __init__(self, units, num_heads, mlp_ratio=2, mlp_dropout=0.3,
                 mask_mode="seed", **kwargs):
        super().__init__(**kwargs)
        self.args = dict(units=units, num_heads=num_heads, mlp_ratio=mlp_ratio,
                         mlp_dropout=mlp_dropout, mask_mode=mask_mode)
        self.mha = MultiHeadAttention(units, num_heads, mask_mode,
                                      name="multi_head_attention")
        self.mlp = keras.Sequential([
            keras.layers.Dense(units * mlp_ratio, activation="gelu",
                               kernel_initializer="glorot_uniform"),
            keras.layers.Dropout(mlp_dropout),
            keras.layers.Dense(units, kernel_initializer="he_uniform"),
        ], name="mlp")

    def build(self, *shapes):
        pass        # the sublayers build themselves on the first call

    def call(self, x, frame_mask, training=None, key_counts=None):
        x = x + self.mha(x, frame_mask, key_counts=key_counts)
        x = x + self.mlp(x, training=training)
        return x

    def get_config(self):
        return {**super().get_config(), **self.args}


# --------------------------------------------------------------------------------------------
# Embedding (chapter 3)
# --------------------------------------------------------------------------------------------
@register
class LandmarkEmbedding(keras.layers.Layer):
    """Embed one landmark group per frame: Dense(GELU) -> Dense, no biases (chapter 3).

    A frame whose group values sum to 0 (the group is missing: preprocessing wrote zeros) gets
    a learned, zero-initialised ``empty_embedding`` instead, exactly as the seed.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense_1 = keras.layers.Dense(
            units, use_bias=False, activation="gelu",
            kernel_initializer="glorot_uniform")
        self.dense_2 = keras.layers.Dense(units, use_bias=False,
                                          kernel_initializer="he_uniform")

    def build(self, shape):
        self.empty_embedding = self.add_weight(
            shape=(self.units,), initializer="zeros", name="empty_embedding")

    def call(self, x):
        missing = tf.reduce_sum(x, axis=2, keepdims=True) == 0
        return tf.where(missing, self.empty_embedding,
                        self.dense_2(self.dense_1(x)))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@register
class FrameEmbedding(keras.layers.Layer):
    """The seed's ``Embedding`` block: landmark groups + positions -> one vector per frame.

    Three LandmarkEmbeddings (lips, dominant hand, pose) are mixed with softmax weights over three
    zero-initialised ``landmark_weights`` (a plain mean at first), passed through Dense(GELU) ->
    Dense (no biases), and a learned positional embedding (input_size + 1 rows, zeros) is added,
    at the row :func:`position_index` gives (chapter 3).
    """

    def __init__(self, units, group_units, input_size=64, **kwargs):
        super().__init__(**kwargs)
        self.units, self.group_units = units, group_units
        self.input_size = input_size
        self.lips_embedding = LandmarkEmbedding(
            group_units, name="lips_embedding")
        self.left_hand_embedding = LandmarkEmbedding(
            group_units, name="left_hand_embedding")
        self.pose_embedding = LandmarkEmbedding(
            group_units, name="pose_embedding")
        self.fc = keras.Sequential([
            keras.layers.Dense(units, use_bias=False, activation="gelu",
                               kernel_initializer="glorot_uniform"),
            keras.layers.Dense(units, use_bias=False,
                               kernel_initializer="he_uniform"),
        ], name="fully_connected")
        self.positional_embedding = keras.layers.Embedding(
            input_size + 1, units, embeddings_initializer="zeros",
            name="positional_embedding")

    def build(self, *shapes):
        self.landmark_weights = self.add_weight(
            shape=(3,), initializer="zeros", name="landmark_weights")

    def call(self, lips, hand, pose, non_empty_frame_idxs):
        groups = tf.stack([self.lips_embedding(lips),
                           self.left_hand_embedding(hand),
                           self.pose_embedding(pose)], axis=3)
        weights = tf.nn.softmax(self.landmark_weights)        # [3], sum 1
        x = self.fc(tf.reduce_sum(groups * weights, axis=3))
        rows = position_index(non_empty_frame_idxs, self.input_size)
        return x + self.positional_embedding(rows)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "group_units": self.group_units, "input_size": self.input_size}


def position_index(non_empty_frame_idxs, input_size=64):
    """Row of the positional embedding for every frame, as the seed computes it (chapter 3).

    ``where(idx == -1, input_size, int(idx / clip(max(idx), 1, inf) * input_size))``: relative
    time in the clip; the last frame (idx == max) gets ``input_size``, the padding row (a quirk).
    """
    idx = tf.cast(non_empty_frame_idxs, tf.float32)
    top = tf.clip_by_value(tf.reduce_max(idx, axis=1, keepdims=True), 1.0, np.inf)
    rows = tf.cast(idx / top * input_size, tf.int32)
    return tf.where(idx == -1.0, input_size, rows)


@register
class LandmarkNormalisation(keras.layers.Layer):
    """Keep x, y; standardise each landmark with training mean/std; zeros stay zero (chapter 3).

    ``where(x == 0, 0, (x - mean) / std)`` per value, then split into the flattened groups
    lips [B,T,80], hand [B,T,42], pose [B,T,10]. `mean` and `std` [66, 2] live in the layer's
    config (constants in the graph, not weights: they are not parameters and do not count).
    """

    def __init__(self, mean=None, std=None, **kwargs):
        super().__init__(**kwargs)
        self.mean = _stat_array(mean, 0.0, "mean")
        self.std = _stat_array(std, 1.0, "std")

    def call(self, frames):
        x = frames[..., :2]
        out = []
        for start, n in ((LIPS_START, N_LIPS), (HAND_START, N_HAND),
                         (POSE_START, N_POSE)):
            g = x[:, :, start:start + n]
            mean, std = self.mean[start:start + n], self.std[start:start + n]
            g = tf.where(g == 0.0, 0.0, (g - mean) / std)
            out.append(tf.reshape(g, [-1, tf.shape(frames)[1], n * 2]))
        return tuple(out)

    def compute_output_shape(self, input_shape):
        return tuple(tuple(input_shape[:2]) + (n * 2,)
                     for n in (N_LIPS, N_HAND, N_POSE))

    def get_config(self):
        return {**super().get_config(), "mean": self.mean.tolist(),
                "std": self.std.tolist()}


def _stat_array(value, default, what):
    """`mean` or `std` as float32 [66, 2] (None: `default` everywhere): finite, a std > 0."""
    if value is None:
        return np.full((N_COLS, 2), default, np.float32)
    arr = np.asarray(value, dtype=np.float32)
    if arr.shape != (N_COLS, 2):
        raise ValueError(f"normalisation {what} must have shape ({N_COLS}, 2) (x, y of the "
                         f"{N_COLS} selected landmarks); got {arr.shape}")
    bad = ~np.isfinite(arr) | ((arr <= 0) if what == "std" else False)
    if bad.any():
        raise ValueError(f"normalisation {what} must be finite{' and > 0' * (what == 'std')}; it is not "
                         f"for landmark columns {np.unique(np.where(bad)[0])}")
    return arr


# --------------------------------------------------------------------------------------------
# Masks and pooling (chapter 3)
# --------------------------------------------------------------------------------------------
@register
class FrameMask(keras.layers.Layer):
    """Frame mask [B, T, 1] from ``non_empty_frame_idxs`` [B, T]: 1 = use the frame (chapter 3).

    ``mask0 = (idx != -1)``; with random frame drop ``mask = where(uniform > frame_drop & mask0,
    1, 0)`` and, where a clip lost all its frames, ``mask0`` again, exactly as the seed. The drop
    runs in training, and also at inference when ``frame_drop_at_inference`` is true: the seed's
    graph did this (its ``tf.random.uniform`` sat outside any ``training`` switch).
    """

    def __init__(self, frame_drop=0.25, frame_drop_at_inference=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.frame_drop = float(frame_drop)
        self.frame_drop_at_inference = bool(frame_drop_at_inference)
        self.seed_generator = keras.random.SeedGenerator(None)

    def call(self, non_empty_frame_idxs, training=None):
        mask0 = tf.cast(non_empty_frame_idxs != -1.0, tf.float32)[:, :, None]
        active = training or self.frame_drop_at_inference
        if self.frame_drop <= 0 or not active:
            return mask0
        u = keras.random.uniform(tf.shape(mask0), seed=self.seed_generator)
        mask = tf.where((u > self.frame_drop) & (mask0 != 0.0), 1.0, 0.0)
        lost_all = tf.reduce_sum(mask, axis=[1, 2], keepdims=True) == 0.0
        return tf.where(lost_all, mask0, mask)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (1,)

    def get_config(self):
        return {**super().get_config(), "frame_drop": self.frame_drop,
                "frame_drop_at_inference": self.frame_drop_at_inference}


@register
class MaskedMeanPooling(keras.layers.Layer):
    """Mean over the frames the mask keeps: ``sum(x * mask) / max(sum(mask), 1)`` (chapter 3).

    The seed divides by ``sum(mask)`` alone, which is NaN for a clip without any valid frame;
    ``max(., 1)`` makes that clip's pooled vector 0 instead (identical otherwise).
    """

    def call(self, x, frame_mask):
        total = tf.reduce_sum(x * frame_mask, axis=1)
        return total / tf.maximum(tf.reduce_sum(frame_mask, axis=1), 1.0)

    def compute_output_shape(self, input_shape, *args):
        return (input_shape[0], input_shape[-1])


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
def build_model(cfg: RunConfig, stats: dict | None = None,
                steps_per_epoch: int = 1) -> keras.Model:
    """The (uncompiled) GISLR transformer of a run's settings (chapter 3; chapter 4 trains it).

    `cfg` is a `config.RunConfig` (``config.resolve("seed")`` is the report's model, 5,315,965
    parameters); `stats` ``{"mean": [66, 2], "std": [66, 2]}`` from `statistics.compute_stats`
    (None: mean 0, std 1). Inputs ``frames`` [None, T, 66, 3] and ``non_empty_frame_idxs``
    [None, T] (a list in that order, or a dict by name); output softmax [None, num_classes].
    ``cfg.mixed_precision``: built under Keras' ``mixed_float16`` policy. The winners' changes
    of chapter 7 (`improved`): ``normalisation="reference"``, ``motion_lags``, ``conv_blocks``
    and ``late_dropout``, which starts after ``late_dropout_start`` of the run's training steps
    (``epochs`` of `steps_per_epoch`).
    """
    if cfg.mixed_precision:  # float16 compute, float32 weights and output
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_float16")
        try:
            cfg = dataclasses.replace(cfg, mixed_precision=False)
            return build_model(cfg, stats, steps_per_epoch)
        finally:
            keras.config.set_dtype_policy(previous)
    stats = stats or {}
    if stats and not {"mean", "std"} <= set(stats):
        raise ValueError("stats must be a dict with 'mean' and 'std'; "
                         f"got keys {sorted(stats)}")
    T = cfg.input_size
    frames = keras.Input([T, N_COLS, 3], name="frames")
    idxs = keras.Input([T], name="non_empty_frame_idxs")
    mask = FrameMask(cfg.frame_drop, cfg.frame_drop_at_inference,
                     name="frame_mask", dtype="float32")(idxs)
    if cfg.normalisation == "reference":           # chapter 7: per clip
        norm = improved.ReferenceNormalisation(name="normalisation",
                                               dtype="float32")
    else:
        norm = LandmarkNormalisation(stats.get("mean"), stats.get("std"),
                                     name="normalisation", dtype="float32")
    lips, hand, pose = norm(frames)
    x = FrameEmbedding(cfg.units, cfg.embedding_units, T,
                       name="embedding")(lips, hand, pose, idxs)
    if cfg.motion_lags:                            # chapter 7: motion
        x = x + improved.MotionEmbedding(
            cfg.units, cfg.embedding_units, range(1, cfg.motion_lags + 1),
            name="motion_embedding")(lips, hand, pose)
    if cfg.conv_blocks:                            # chapter 7: 1st place's
        valid = FrameMask(0.0, name="valid_frames", dtype="float32")(idxs)
    for i in range(cfg.num_blocks):
        for j in range(cfg.conv_blocks):
            x = improved.Conv1DBlock(cfg.units, name=f"conv_{i}_{j}")(x, valid)
        x = TransformerBlock(cfg.units, cfg.num_heads, cfg.mlp_ratio,
                             cfg.mlp_dropout, cfg.attention_mask,
                             name=f"block_{i}")(x, mask)
    x = MaskedMeanPooling(name="pooling")(x, mask)
    x = keras.layers.Dropout(cfg.classifier_dropout, name="dropout")(x)
    if cfg.late_dropout:                           # chapter 7: late dropout
        start = int(cfg.late_dropout_start * cfg.epochs * steps_per_epoch)
        x = improved.LateDropout(cfg.late_dropout, start,
                                 name="late_dropout")(x)
    outputs = keras.layers.Dense(cfg.num_classes, activation="softmax",
                                 name="classifier", dtype="float32")(x)
    return keras.Model([frames, idxs], outputs, name=f"gislr_{cfg.preset}")


# --------------------------------------------------------------------------------------------
# Looking inside a model (chapters 3-6)
# --------------------------------------------------------------------------------------------
def blocks(model: keras.Model) -> list:
    """The model's transformer blocks, in order."""
    return [layer for layer in model.layers if isinstance(layer, TransformerBlock)]


def attention_mask_mode(model: keras.Model) -> str:
    """The ``attention_mask`` ("seed" or "keys") a model from :func:`build_model` was built with."""
    if not blocks(model):
        raise ValueError(f"model {model.name!r} is not a GISLR transformer from build_model (no transformer block)")
    return blocks(model)[0].args["mask_mode"]


@contextlib.contextmanager
def frame_drop_at_inference(model: keras.Model, enabled: bool):
    """``with frame_drop_at_inference(model, False): ...`` runs the block with the model's
    inference-time frame drop switched to `enabled` and restores it afterwards, after an error
    too (chapters 5 and 6). Cached predict functions are reset so that ``predict`` sees it."""
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, FrameMask)]
    if not layers:
        raise ValueError(f"model {model.name!r} has no FrameMask layer")
    previous = layers[0].frame_drop_at_inference
    try:
        for layer in layers:
            layer.frame_drop_at_inference = bool(enabled)
        model.predict_function = model.test_function = None
        yield model
    finally:
        for layer in layers:
            layer.frame_drop_at_inference = previous
        model.predict_function = model.test_function = None


def landmark_group_weights(model: keras.Model) -> dict[str, float]:
    """``softmax(landmark_weights)`` of the embedding: ``{"lips": w, "hand": w, "pose": w}``,
    summing to 1 (1/3 each before training; chapter 4 shows what training chose)."""
    weights = tf.nn.softmax(model.get_layer("embedding").landmark_weights).numpy()
    return dict(zip(("lips", "hand", "pose"), (float(w) for w in weights)))


def embed(model: keras.Model, frames, idxs):
    """The frame mask (no random drop) and the embedded frames of a batch, by the model's layers."""
    mask = tf.cast(tf.convert_to_tensor(idxs, tf.float32) != -1.0, tf.float32)[:, :, None]
    lips, hand, pose = model.get_layer("normalisation")(tf.convert_to_tensor(frames, tf.float32))
    x = model.get_layer("embedding")(lips, hand, pose, idxs)
    if "motion_embedding" in [layer.name for layer in model.layers]:
        x = x + model.get_layer("motion_embedding")(lips, hand, pose)
    return mask, x


def run_blocks(model: keras.Model, x, mask, upto=None, key_counts=None):
    """The model's blocks at inference on embedded frames `x`: before each transformer block its
    Conv1D blocks (chapter 7), up to transformer block `upto` (None: all; the Conv1D blocks before
    it included). `key_counts`: the exported file's compact layout (chapter 6)."""
    for i, block in enumerate(blocks(model)):
        for conv in [layer for layer in model.layers if layer.name.startswith(f"conv_{i}_")]:
            x = conv(x, mask, training=False)
        if i == upto:
            return x
        x = block(x, mask, training=False, key_counts=key_counts)
    return x


def attention_weights(model: keras.Model, frames, idxs, block: int = 0,
                      modes=("seed", "keys")) -> dict[str, np.ndarray]:
    """Attention weights ``[heads, T, T]`` (query x key) of one clip in a block (chapters 3, 4).

    `frames` ``[T, 66, 3]`` and `idxs` ``[T]`` are one preprocessed clip. Runs the model's own
    layers up to block `block` (without the random frame drop), computes that block's queries and
    keys, and passes the identity matrix as values to :func:`scaled_dot_product_attention`:
    ``softmax(q k^T / sqrt(d) + mask) @ I`` is the weight matrix itself. Returns ``{mode:
    weights}`` for each mask mode in `modes`; ValueError for a block the model does not have.
    """
    layers = blocks(model)
    if not 0 <= block < len(layers):
        raise ValueError(f"block={block} is not valid; the model has {len(layers)} blocks")
    idxs = tf.constant(np.asarray(idxs, np.float32)[None])
    mask, x = embed(model, np.asarray(frames, np.float32)[None], idxs)
    x = run_blocks(model, x, mask, upto=block)
    mha = layers[block].mha
    q, k = mha.split_heads(mha.wq(x)), mha.split_heads(mha.wk(x))
    T = int(x.shape[1])
    eye = tf.broadcast_to(tf.eye(T), [1, mha.num_heads, T, T])
    return {mode: scaled_dot_product_attention(q, k, eye, mask, mode).numpy()[0] for mode in modes}


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Parameters per part, in the layout of the seed's model summary (chapter 3)."""
    emb = model.get_layer("embedding")
    parts = ("positional_embedding", "lips_embedding", "left_hand_embedding", "pose_embedding", "fc")
    counts = {"total": model.count_params(), "embedding": emb.count_params(),
              **{name: getattr(emb, name).count_params() for name in parts},
              "landmark_weights": int(np.prod(emb.landmark_weights.shape)),
              "transformer": sum(b.count_params() for b in blocks(model)),
              "classifier": model.get_layer("classifier").count_params()}
    for i, block in enumerate(blocks(model)):
        counts[f"block_{i}_mha"] = block.mha.count_params()
        counts[f"block_{i}_mlp"] = block.mlp.count_params()
    return counts


def reseed_random_layers(model: keras.Model, seed) -> int:
    """Give every random generator of `model` (Dropout, `FrameMask`) a new state drawn from
    ``numpy.random.default_rng(seed)`` (an int or a list such as ``[seed, epoch]``); returns their
    number. Keras does not save these states with the weights: training reseeds them every epoch
    (`training.EpochSeed`), prediction with a seed before it predicts (chapters 4 and 5)."""
    gens = [layer.seed_generator for layer in model._flatten_layers()
            if isinstance(getattr(layer, "seed_generator", None), keras.random.SeedGenerator)]
    states = np.random.default_rng(seed).integers(0, 2**31 - 1, size=(len(gens), 2))
    for gen, state in zip(gens, states):
        gen.state.assign(state.astype(gen.state.dtype))
    return len(gens)
