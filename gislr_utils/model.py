"""The GISLR transformer (M. Wijkhuizen's Kaggle notebook, as in the seed report), in Keras 3.

Chapter 3 ("attention and embedding design") explains every piece of this module; Chapter 4
(training) compiles and fits the model that :func:`build_model` returns (this module never
compiles a model) and Chapter 6 exports it (``export.py``).

Data flow (shapes for one batch of B clips of T = 64 frames)::

    frames [B,64,66,3] --LandmarkNormalisation--> lips [B,64,80], hand [B,64,42], pose [B,64,10]
        --FrameEmbedding--> [B,64,units] (+ positional embedding from non_empty_frame_idxs)
        --Transformer (num_blocks x TransformerBlock: x + MHA(x); x + MLP(x))--> [B,64,units]
        --MaskedMeanPooling--> [B,units] --Dropout--> --Dense(250, softmax)--> [B,250]
    non_empty_frame_idxs [B,64] --FrameMask--> frame mask [B,64,1] (attention and pooling)

Two attention-mask modes (setting ``attention_mask``):

* ``"seed"`` reproduces the original exactly, quirks included: the frame mask (padding plus a
  random 25% frame drop that also runs at *inference*) has shape [B,64,1]; added as
  ``(1 - mask) * -1e9`` to scores [B,64(query),64(key)] it broadcasts over the *key* axis, so it
  masks whole *query rows* and never masks padded *keys*.
* ``"keys"`` is the fix: padded keys are masked, the random frame drop runs only in training, so
  the content of padded frames cannot change a prediction.

Keras 2 vs Keras 3 ``Softmax`` layer. The original called ``tf.keras.layers.Softmax()(scores,
mask=mask)`` (Keras 2), which computes ``softmax(scores + (1 - mask) * -1e9)``. In float32,
``s - 1e9`` rounds to exactly ``-1e9`` for ``|s| < 32`` (the spacing of float32 near 1e9 is 64),
so a masked query row becomes (practically always exactly) uniform attention over all 64 keys.
Keras 3's ``Softmax`` (3.15) does something else with the same mask: it *replaces* masked scores
by -1e9 (``where``) and afterwards multiplies the output by the mask (``where(mask, out, 0)``),
so masked query rows become all-zero attention. Calling it would silently change the seed's
model; :func:`scaled_dot_product_attention` writes the Keras 2 arithmetic out in TF ops
(``tests/test_model.py`` pins both behaviours).
"""
from __future__ import annotations

import contextlib


import numpy as np

from ._tf import keras, tf
from .config import check_choice, get_preset
from .landmarks import HAND_START, LIPS_START, N_COLS, N_HAND, N_LIPS, N_POSE, POSE_START

PACKAGE = "gislr"
MASK_MODES = ("seed", "keys")
ATTENTION_IMPLS = ("matmul", "per_head")
# Settings of a preset that the model uses (the others are training settings, ignored here).
MODEL_KEYS = ("input_size", "lips_units", "hands_units", "pose_units", "units", "num_blocks",
              "num_heads", "mlp_ratio", "mlp_dropout", "classifier_dropout", "num_classes",
              "attention_mask", "frame_drop")
# Model-only options accepted by build_model on top of the preset's settings.
MODEL_OPTIONS = ("attention_impl", "frame_drop_at_inference", "name")
# The large negative number Keras 2's Softmax layer added to masked positions (float32).
MASK_NEGATIVE = -1e9


def _glorot():
    return keras.initializers.GlorotUniform()


def _he():
    return keras.initializers.HeUniform()


# --------------------------------------------------------------------------------------------
# Attention (Chapter 3: attention and embedding design)
# --------------------------------------------------------------------------------------------
def scaled_dot_product_attention(q, k, v, frame_mask, mask_mode="seed", key_counts=None):
    """softmax(q k^T / sqrt(d) + mask) v for q, k, v [B, T, d] (one head) or [B, H, T, d].

    `frame_mask` [B, T, 1] is 1 for frames to use, 0 for padded or dropped ones.
    ``mask_mode="seed"`` adds ``(1 - mask) * -1e9`` with the mask as it is, [B, T, 1]: against
    scores [B, T(query), T(key)] it covers whole *query rows*, as the original's Keras 2
    ``Softmax()(scores, mask=mask)`` did (Chapter 3).
    ``mask_mode="keys"`` transposes it to [B, 1, T] so that padded *keys* get -1e9.
    (Not ``keras.layers.Softmax``: Keras 3's differs from Keras 2's, see the module docstring.)

    The additive term is computed *before* the transpose on purpose: written the other way
    round (transpose the mask, then ``1 - mask``), TF 2.21's TFLite converter moves the
    transpose behind the subtraction and swaps its operands, so the file computes
    ``mask - 1`` and puts +1e9 on padded keys (measured: it broke the per_head model in
    "keys" mode, which ``tests/test_export.py`` exports and compares with Keras).

    `key_counts` [B, T, 1] (optional) says how many identical frames each key stands for
    (:func:`compact_layout`; 0 = a filler row that stands for none). The weights are then
    ``exp(l - max l) * count / sum(exp(l - max l) * count)`` over the masked scores ``l``:
    the softmax over the keys listed with their multiplicity, *after* the mask. (Adding
    ``log(count)`` to the score instead is the same for unmasked rows, but on a masked row
    float32 rounds ``-1e9 + log(count)`` back to ``-1e9``: Chapter 6.)
    """
    d = tf.cast(tf.shape(q)[-1], tf.float32)
    scores = tf.matmul(q, k, transpose_b=True) / tf.math.sqrt(d)
    bias = (1.0 - frame_mask) * MASK_NEGATIVE          # [B, T, 1]: 0 keep, -1e9 masked
    if mask_mode == "keys":
        bias = tf.transpose(bias, [0, 2, 1])            # [B, 1, T]: over the keys
    if len(q.shape) == 4:
        bias = bias[:, None]                            # heads axis
    if key_counts is None:
        weights = tf.nn.softmax(scores + bias, axis=-1)
    else:
        counts = tf.transpose(key_counts, [0, 2, 1])    # [B, 1, T]: over the keys
        if len(q.shape) == 4:
            counts = counts[:, None]
        logits = scores + bias
        top = tf.reduce_max(tf.where(counts > 0.0, logits, 2.0 * MASK_NEGATIVE), axis=-1,
                            keepdims=True)
        e = tf.exp(tf.minimum(logits - top, 0.0)) * counts
        weights = e / tf.reduce_sum(e, axis=-1, keepdims=True)
    return tf.matmul(weights, v)


def _attention_float32(q, k, v, frame_mask, mask_mode, key_counts=None):
    """`scaled_dot_product_attention` computed in float32 whatever the layer's compute dtype.

    Under mixed precision (``mixed_float16``, `training.train`'s GPU option) q, k and v are float16;
    the -1e9 mask term and the softmax need float32 (float16 ends at 65,504). In float32 the casts
    do nothing, so the model, its numbers and its TFLite file are unchanged.
    """
    f32 = [tf.cast(t, tf.float32) for t in (q, k, v, frame_mask)]
    if key_counts is not None:
        key_counts = tf.cast(key_counts, tf.float32)
    return tf.cast(scaled_dot_product_attention(*f32, mask_mode, key_counts), q.dtype)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head self-attention with the original's masking (Chapter 3).

    ``impl="matmul"`` (default): one Dense(units) each for q, k and v, heads split by
    reshape/transpose, batched ``tf.matmul``; it lowers to builtin TFLite ops (Keras 3's own
    MultiHeadAttention uses einsum, which the TFLite converter rejects without Flex ops).
    ``impl="per_head"``: the seed's formulation, a Dense(depth) per head for q, k and v and a
    concatenation. Both have the same parameters (a Dense(units) kernel is the per-head kernels
    side by side) and compute the same function. The fused q/k/v kernels are initialised with
    the distribution of the seed's per-head Dense(depth) glorot-uniform kernels
    (limit sqrt(6 / (units + depth))), so a fresh model is distributed as the seed's.
    """

    def __init__(self, units, num_heads, mask_mode="seed", impl="matmul", **kwargs):
        super().__init__(**kwargs)
        check_choice("attention_mask", mask_mode, MASK_MODES)
        check_choice("attention_impl", impl, ATTENTION_IMPLS)
        if units % num_heads:
            raise ValueError(f"units={units} is not divisible by num_heads={num_heads}")
        self.units, self.num_heads, self.mask_mode, self.impl = units, num_heads, mask_mode, impl
        self.depth = units // num_heads
        if impl == "matmul":
            # A fresh initializer per Dense: a Keras 3 initializer instance is seeded once, so
            # sharing one would give q, k and v identical kernels.
            self.wq, self.wk, self.wv = (
                keras.layers.Dense(units, kernel_initializer=self._per_head_glorot(), name=n)
                for n in ("wq", "wk", "wv"))
        else:
            self.wq = [keras.layers.Dense(self.depth, name=f"wq_{i}") for i in range(num_heads)]
            self.wk = [keras.layers.Dense(self.depth, name=f"wk_{i}") for i in range(num_heads)]
            self.wv = [keras.layers.Dense(self.depth, name=f"wv_{i}") for i in range(num_heads)]
        self.wo = keras.layers.Dense(units, name="wo")

    def _per_head_glorot(self):
        """glorot_uniform of a Dense(units -> depth), the seed's per-head kernels."""
        return keras.initializers.VarianceScaling(
            scale=2.0 * self.units / (self.units + self.depth), mode="fan_avg",
            distribution="uniform")

    def build(self, input_shape):
        for layer in (self.wq, self.wk, self.wv):
            for dense in (layer if isinstance(layer, list) else [layer]):
                dense.build(input_shape)
        self.wo.build(tuple(input_shape[:-1]) + (self.units,))

    def _split_heads(self, x):
        """[B, T, units] -> [B, H, T, depth]."""
        x = tf.reshape(x, [-1, tf.shape(x)[1], self.num_heads, self.depth])
        return tf.transpose(x, [0, 2, 1, 3])

    def call(self, x, frame_mask, key_counts=None):
        if self.impl == "per_head":
            heads = [_attention_float32(self.wq[i](x), self.wk[i](x), self.wv[i](x),
                                        frame_mask, self.mask_mode, key_counts)
                     for i in range(self.num_heads)]
            return self.wo(tf.concat(heads, axis=-1))
        q, k, v = (self._split_heads(w(x)) for w in (self.wq, self.wk, self.wv))
        z = _attention_float32(q, k, v, frame_mask, self.mask_mode, key_counts)  # [B, H, T, d]
        z = tf.reshape(tf.transpose(z, [0, 2, 1, 3]), [-1, tf.shape(x)[1], self.units])
        return self.wo(z)

    def compute_output_shape(self, input_shape, *args):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, num_heads=self.num_heads, mask_mode=self.mask_mode,
                   impl=self.impl)
        return cfg


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerBlock(keras.layers.Layer):
    """``x = x + MHA(x, mask); x = x + MLP(x)``, no LayerNorm, as in the seed (Chapter 3).

    MLP: Dense(units * mlp_ratio, GELU, glorot) -> Dropout(mlp_dropout) -> Dense(units, he).
    """

    def __init__(self, units, num_heads, mlp_ratio=2, mlp_dropout=0.3, mask_mode="seed",
                 attention_impl="matmul", **kwargs):
        super().__init__(**kwargs)
        self.units, self.num_heads, self.mlp_ratio = units, num_heads, mlp_ratio
        self.mlp_dropout, self.mask_mode, self.attention_impl = mlp_dropout, mask_mode, attention_impl
        self.mha = MultiHeadAttention(units, num_heads, mask_mode, attention_impl,
                                      name="multi_head_attention")
        self.mlp = keras.Sequential([
            keras.layers.Dense(units * mlp_ratio, activation="gelu", kernel_initializer=_glorot()),
            keras.layers.Dropout(mlp_dropout),
            keras.layers.Dense(units, kernel_initializer=_he()),
        ], name="mlp")

    def build(self, input_shape):
        self.mha.build(input_shape)
        self.mlp.build(input_shape)

    def call(self, x, frame_mask, training=None, key_counts=None):
        x = x + self.mha(x, frame_mask, key_counts=key_counts)
        return x + self.mlp(x, training=training)

    def compute_output_shape(self, input_shape, *args):
        return input_shape

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                   mlp_dropout=self.mlp_dropout, mask_mode=self.mask_mode,
                   attention_impl=self.attention_impl)
        return cfg


@keras.saving.register_keras_serializable(package=PACKAGE)
class Transformer(keras.layers.Layer):
    """`num_blocks` TransformerBlocks in a row (the seed's ``transformer`` layer, Chapter 3)."""

    def __init__(self, num_blocks, units, num_heads, mlp_ratio=2, mlp_dropout=0.3,
                 mask_mode="seed", attention_impl="matmul", **kwargs):
        super().__init__(**kwargs)
        self.block_args = dict(units=units, num_heads=num_heads, mlp_ratio=mlp_ratio,
                               mlp_dropout=mlp_dropout, mask_mode=mask_mode,
                               attention_impl=attention_impl)
        self.num_blocks = num_blocks
        self.blocks = [TransformerBlock(**self.block_args, name=f"block_{i}")
                       for i in range(num_blocks)]

    def build(self, input_shape):
        for block in self.blocks:
            block.build(input_shape)

    def call(self, x, frame_mask, training=None, key_counts=None):
        for block in self.blocks:
            x = block(x, frame_mask, training=training, key_counts=key_counts)
        return x

    def compute_output_shape(self, input_shape, *args):
        return input_shape

    def get_config(self):
        cfg = super().get_config()
        cfg.update(num_blocks=self.num_blocks, **self.block_args)
        return cfg


# --------------------------------------------------------------------------------------------
# Embedding (Chapter 3: attention and embedding design)
# --------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package=PACKAGE)
class LandmarkEmbedding(keras.layers.Layer):
    """Embed one landmark group per frame: Dense(GELU) -> Dense, no biases (Chapter 3).

    A frame whose group values sum to 0 (the group is missing: preprocessing wrote zeros) gets
    a learned, zero-initialised ``empty_embedding`` instead, exactly as the seed:
    ``where(reduce_sum(x, axis=2, keepdims=True) == 0, empty, dense(x))``.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense_1 = keras.layers.Dense(units, use_bias=False, activation="gelu",
                                          kernel_initializer=_glorot(), name="dense_1")
        self.dense_2 = keras.layers.Dense(units, use_bias=False, kernel_initializer=_he(),
                                          name="dense_2")

    def build(self, input_shape):
        self.empty_embedding = self.add_weight(shape=(self.units,), initializer="zeros",
                                               name="empty_embedding")
        self.dense_1.build(input_shape)
        self.dense_2.build(tuple(input_shape[:-1]) + (self.units,))

    def call(self, x):
        return tf.where(tf.reduce_sum(x, axis=2, keepdims=True) == 0,
                        self.empty_embedding, self.dense_2(self.dense_1(x)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units)
        return cfg


@keras.saving.register_keras_serializable(package=PACKAGE)
class FrameEmbedding(keras.layers.Layer):
    """The seed's ``Embedding`` block: landmark groups + positions -> one vector per frame.

    Three LandmarkEmbeddings (lips, dominant hand, pose) are combined with softmax weights over
    three zero-initialised ``landmark_weights`` (so they start as a plain mean), passed through
    Dense(GELU) -> Dense (no biases), and a learned positional embedding (input_size + 1 rows,
    zeros) is added. Its index is ``int(idx / max(idx) * input_size)`` and ``input_size`` for
    padding (idx == -1) -- so the clip's last frame (idx == max) also lands on row
    ``input_size``, the padding row: a quirk of the original, kept (Chapter 3).
    """

    def __init__(self, units, lips_units, hands_units, pose_units, input_size=64, **kwargs):
        super().__init__(**kwargs)
        self.units, self.input_size = units, input_size
        self.lips_units, self.hands_units, self.pose_units = lips_units, hands_units, pose_units
        self.lips_embedding = LandmarkEmbedding(lips_units, name="lips_embedding")
        self.left_hand_embedding = LandmarkEmbedding(hands_units, name="left_hand_embedding")
        self.pose_embedding = LandmarkEmbedding(pose_units, name="pose_embedding")
        self.fc_1 = keras.layers.Dense(units, use_bias=False, activation="gelu",
                                       kernel_initializer=_glorot(), name="fully_connected_1")
        self.fc_2 = keras.layers.Dense(units, use_bias=False, kernel_initializer=_he(),
                                       name="fully_connected_2")
        self.positional_embedding = keras.layers.Embedding(
            input_size + 1, units, embeddings_initializer="zeros", name="positional_embedding")

    def build(self, lips_shape, hand_shape, pose_shape, non_empty_frame_idxs_shape):
        if len({self.lips_units, self.hands_units, self.pose_units}) != 1:
            raise ValueError("lips_units, hands_units and pose_units must be equal (the group "
                             "embeddings are summed); got "
                             f"{self.lips_units}, {self.hands_units}, {self.pose_units}")
        self.landmark_weights = self.add_weight(shape=(3,), initializer="zeros",
                                                name="landmark_weights")
        self.lips_embedding.build(lips_shape)
        self.left_hand_embedding.build(hand_shape)
        self.pose_embedding.build(pose_shape)
        self.fc_1.build(tuple(lips_shape[:-1]) + (self.lips_units,))
        self.fc_2.build(tuple(lips_shape[:-1]) + (self.units,))
        self.positional_embedding.build(non_empty_frame_idxs_shape)

    def call(self, lips, hand, pose, non_empty_frame_idxs):
        x = tf.stack((self.lips_embedding(lips), self.left_hand_embedding(hand),
                      self.pose_embedding(pose)), axis=3)
        x = tf.reduce_sum(x * tf.nn.softmax(self.landmark_weights), axis=3)
        x = self.fc_2(self.fc_1(x))
        return x + self.positional_embedding(position_index(non_empty_frame_idxs, self.input_size))

    def compute_output_shape(self, lips_shape, *args):
        return tuple(lips_shape[:-1]) + (self.units,)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, lips_units=self.lips_units, hands_units=self.hands_units,
                   pose_units=self.pose_units, input_size=self.input_size)
        return cfg


def position_index(non_empty_frame_idxs, input_size=64):
    """Row of the positional embedding for every frame (Chapter 3), as the seed computes it.

    ``where(idx == -1, input_size, int(idx / clip(max(idx), 1, inf) * input_size))``; the
    last frame of a clip gets ``input_size``, the same row as padding.
    """
    idx = tf.cast(non_empty_frame_idxs, tf.float32)
    max_idx = tf.clip_by_value(tf.reduce_max(idx, axis=1, keepdims=True), 1.0, np.inf)
    return tf.where(idx == -1.0, input_size, tf.cast(idx / max_idx * input_size, tf.int32))


@keras.saving.register_keras_serializable(package=PACKAGE)
class LandmarkNormalisation(keras.layers.Layer):
    """Keep x, y; standardise each landmark with training mean/std; zeros stay zero (Chapter 3).

    ``where(x == 0, 0, (x - mean) / std)`` per value, then split into the flattened groups
    lips [B,T,80], hand [B,T,42], pose [B,T,10]. `mean` and `std` [66, 2] live in the layer's
    config (constants in the graph, not weights: they are not parameters and do not count).
    """

    def __init__(self, mean=None, std=None, **kwargs):
        super().__init__(**kwargs)
        self.mean = _stat_array(mean, 0.0, "mean")
        self.std = _stat_array(std, 1.0, "std")
        if not np.all(self.std > 0):
            raise ValueError("normalisation std must be > 0 everywhere; got zero/negative/NaN "
                             f"std for landmark columns {np.unique(np.where(~(self.std > 0))[0])}")

    def call(self, frames):
        x = frames[..., :2]
        out = []
        for start, n in ((LIPS_START, N_LIPS), (HAND_START, N_HAND), (POSE_START, N_POSE)):
            g = x[:, :, start:start + n]
            g = tf.where(g == 0.0, 0.0, (g - self.mean[start:start + n]) / self.std[start:start + n])
            out.append(tf.reshape(g, [-1, tf.shape(frames)[1], n * 2]))
        return tuple(out)

    def compute_output_shape(self, input_shape):
        return tuple(tuple(input_shape[:2]) + (n * 2,) for n in (N_LIPS, N_HAND, N_POSE))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(mean=self.mean.tolist(), std=self.std.tolist())
        return cfg


def _stat_array(value, default, what):
    if value is None:
        return np.full((N_COLS, 2), default, np.float32)
    arr = np.asarray(value, dtype=np.float32)
    if arr.shape != (N_COLS, 2):
        raise ValueError(f"normalisation {what} must have shape ({N_COLS}, 2) (x, y of the "
                         f"{N_COLS} selected landmarks); got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"normalisation {what} contains NaN/inf")
    return arr


# --------------------------------------------------------------------------------------------
# Masks and pooling (Chapter 3)
# --------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package=PACKAGE)
class FrameMask(keras.layers.Layer):
    """Frame mask [B, T, 1] from ``non_empty_frame_idxs`` [B, T]: 1 = use the frame (Chapter 3).

    ``mask0 = (idx != -1)``; with random frame drop ``mask = where(uniform > frame_drop & mask0,
    1, 0)`` and, where a clip lost all its frames, ``mask0`` again, exactly as the seed.
    The drop runs when ``training`` is true, and also at inference when
    ``frame_drop_at_inference`` is true: the seed's graph did this (its ``tf.random.uniform``
    sat in the model, outside any ``training`` switch), so the seed preset defaults to it.
    Switch it off for deterministic predictions with :func:`set_frame_drop_at_inference`.
    """

    def __init__(self, frame_drop=0.25, frame_drop_at_inference=False, **kwargs):
        super().__init__(**kwargs)
        self.frame_drop = float(frame_drop)
        self.frame_drop_at_inference = bool(frame_drop_at_inference)
        self.seed_generator = keras.random.SeedGenerator(None)

    def call(self, non_empty_frame_idxs, training=None):
        mask0 = tf.expand_dims(tf.cast(non_empty_frame_idxs != -1.0, tf.float32), axis=2)
        if self.frame_drop <= 0 or not (training or self.frame_drop_at_inference):
            return mask0
        u = keras.random.uniform(tf.shape(mask0), seed=self.seed_generator)
        mask = tf.where((u > self.frame_drop) & (mask0 != 0.0), 1.0, 0.0)
        return tf.where(tf.reduce_sum(mask, axis=[1, 2], keepdims=True) == 0.0, mask0, mask)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (1,)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(frame_drop=self.frame_drop, frame_drop_at_inference=self.frame_drop_at_inference)
        return cfg


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedMeanPooling(keras.layers.Layer):
    """Mean over the frames the mask keeps: ``sum(x * mask) / max(sum(mask), 1)`` (Chapter 3).

    The seed divides by ``sum(mask)`` alone, which is NaN for a clip without any valid frame
    (all idx == -1); ``max(., 1)`` makes that clip's pooled vector 0 instead. Identical to the
    seed whenever a clip has at least one frame.
    """

    def call(self, x, frame_mask):
        return tf.reduce_sum(x * frame_mask, axis=1) / tf.maximum(
            tf.reduce_sum(frame_mask, axis=1), 1.0)

    def compute_output_shape(self, input_shape, *args):
        return (input_shape[0], input_shape[-1])


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
def build_model(preset: str = "classroom", stats: dict | None = None, **overrides) -> keras.Model:
    """Build the (uncompiled) GISLR transformer of a preset (Chapter 3; Chapter 4 trains it).

    Args:
        preset: ``"seed"`` (the report's model, 5,315,965 parameters) or ``"classroom"``.
        stats: ``{"mean": [66, 2], "std": [66, 2]}`` from ``statistics.compute_stats``
            (None: mean 0, std 1). Stored as constants in the model's config.
        **overrides: any model setting of the preset (``units``, ``num_blocks``, ``num_heads``,
            ``attention_mask`` "seed"|"keys", ``frame_drop`` ...; training settings of the preset
            are accepted and ignored) and the model-only options
            ``attention_impl`` ("matmul" default, or the seed's "per_head"),
            ``frame_drop_at_inference`` (default True for ``attention_mask="seed"`` -- the
            original's quirk -- and False for "keys") and ``name``.

    Returns:
        keras.Model with inputs ``frames`` [None, T, 66, 3] and ``non_empty_frame_idxs``
        [None, T] (a list, in that order; a dict keyed by those names also works) and a softmax
        output [None, num_classes].
    """
    options = {k: overrides.pop(k) for k in MODEL_OPTIONS if k in overrides}
    cfg = get_preset(preset, **overrides)
    mode = cfg["attention_mask"]
    check_choice("attention_mask", mode, MASK_MODES)
    impl = options.get("attention_impl", "matmul")
    check_choice("attention_impl", impl, ATTENTION_IMPLS)
    drop_at_inference = options.get("frame_drop_at_inference")
    if drop_at_inference is None:
        drop_at_inference = mode == "seed"
    if drop_at_inference and mode == "keys":
        raise ValueError("frame_drop_at_inference=True needs attention_mask='seed' "
                         "('keys' drops frames only in training)")
    if not 0.0 <= cfg["frame_drop"] < 1.0:
        raise ValueError(f"frame_drop={cfg['frame_drop']} must be in [0, 1)")
    stats = stats or {}
    if stats and not {"mean", "std"} <= set(stats):
        raise ValueError(f"stats must be a dict with 'mean' and 'std'; got keys {sorted(stats)}")
    T = cfg["input_size"]

    frames = keras.Input([T, N_COLS, 3], dtype="float32", name="frames")
    idxs = keras.Input([T], dtype="float32", name="non_empty_frame_idxs")
    frame_mask = FrameMask(cfg["frame_drop"], drop_at_inference, name="frame_mask",
                           dtype="float32")(idxs)
    lips, hand, pose = LandmarkNormalisation(stats.get("mean"), stats.get("std"),
                                             name="normalisation", dtype="float32")(frames)
    x = FrameEmbedding(cfg["units"], cfg["lips_units"], cfg["hands_units"], cfg["pose_units"],
                       input_size=T, name="embedding")(lips, hand, pose, idxs)
    x = Transformer(cfg["num_blocks"], cfg["units"], cfg["num_heads"], cfg["mlp_ratio"],
                    cfg["mlp_dropout"], mode, impl, name="transformer")(x, frame_mask)
    x = MaskedMeanPooling(name="pooling")(x, frame_mask)
    x = keras.layers.Dropout(cfg["classifier_dropout"], name="classifier_dropout")(x)
    outputs = keras.layers.Dense(cfg["num_classes"], activation="softmax",
                                 kernel_initializer=_glorot(), name="classifier",
                                 dtype="float32")(x)
    return keras.Model([frames, idxs], outputs, name=options.get("name", f"gislr_{preset}"))


def set_frame_drop_at_inference(model: keras.Model, enabled: bool) -> bool:
    """Switch the seed's inference-time random frame drop on/off in `model` (Chapter 3).

    Returns the previous setting (of the first FrameMask). Cached predict functions are reset so
    that ``model.predict`` sees the change; graphs traced before the call keep the old setting.
    """
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, FrameMask)]
    if not layers:
        raise ValueError(f"model {model.name!r} has no FrameMask layer")
    previous = layers[0].frame_drop_at_inference
    for layer in layers:
        layer.frame_drop_at_inference = bool(enabled)
    model.predict_function = None     # predict() and evaluate() run in inference mode
    model.test_function = None
    return previous


@contextlib.contextmanager
def frame_drop_at_inference(model: keras.Model, enabled: bool):
    """``with frame_drop_at_inference(model, False): ...`` runs the block with the seed's
    inference-time random frame drop of `model` switched to `enabled`, and restores the
    previous setting on the way out, after an error too (chapters 5 and 6). Raises
    `ValueError` for a model without a FrameMask layer, as :func:`set_frame_drop_at_inference`.
    """
    previous = set_frame_drop_at_inference(model, enabled)
    try:
        yield model
    finally:
        set_frame_drop_at_inference(model, previous)


def landmark_group_weights(model: keras.Model) -> dict[str, float]:
    """The embedding's mixing weights of the three landmark groups, as the model applies them:
    ``softmax(landmark_weights)`` of the ``embedding`` layer -> ``{"lips": w, "hand": w,
    "pose": w}``, summing to 1 (1/3 each before training; chapter 5 plots them)."""
    weights = tf.nn.softmax(model.get_layer("embedding").landmark_weights).numpy()
    return dict(zip(("lips", "hand", "pose"), (float(w) for w in weights)))


def attention_weights(model: keras.Model, frames, idxs, block: int = 0,
                      modes=("seed", "keys")) -> dict[str, np.ndarray]:
    """Attention weights ``[heads, T, T]`` (query x key) of one clip in a transformer block (chapter 3).

    `frames` ``[T, 66, 3]`` and `idxs` ``[T]`` are one preprocessed clip. Runs the model's own
    layers up to block `block` (normalisation, embedding, earlier blocks, with the padding mask
    and no random frame drop), computes that block's queries and keys, and passes the identity
    matrix as values to :func:`scaled_dot_product_attention`: since
    ``softmax(q k^T / sqrt(d) + mask) @ I`` is the weight matrix itself, the weights come from the
    very function the model uses. Returns ``{mode: weights}`` for each mask mode in `modes`.
    Raises `ValueError` for a block the model does not have.
    """
    transformer = model.get_layer("transformer")
    if not 0 <= block < len(transformer.blocks):
        raise ValueError(f"block={block} is not valid; the model has {len(transformer.blocks)} blocks")
    frames = tf.constant(np.asarray(frames, np.float32)[None])
    idxs = tf.constant(np.asarray(idxs, np.float32)[None])
    with frame_drop_at_inference(model, False):
        mask = model.get_layer("frame_mask")(idxs, training=False)
        lips, hand, pose = model.get_layer("normalisation")(frames)
        x = model.get_layer("embedding")(lips, hand, pose, idxs)
        for earlier in transformer.blocks[:block]:
            x = earlier(x, mask, training=False)
    mha = transformer.blocks[block].mha
    if isinstance(mha.wq, list):                                   # the seed's per-head Dense layers
        q = tf.stack([w(x) for w in mha.wq], axis=1)
        k = tf.stack([w(x) for w in mha.wk], axis=1)
    else:
        q, k = mha._split_heads(mha.wq(x)), mha._split_heads(mha.wk(x))
    T = int(x.shape[1])
    eye = tf.broadcast_to(tf.eye(T), [1, mha.num_heads, T, T])
    return {mode: scaled_dot_product_attention(q, k, eye, mask, mode).numpy()[0] for mode in modes}


# --------------------------------------------------------------------------------------------
# Inference on the clip's frames only (Chapter 6)
# --------------------------------------------------------------------------------------------
def attention_mask_mode(model: keras.Model) -> str:
    """The ``attention_mask`` ("seed" or "keys") a model from :func:`build_model` was built with."""
    try:
        return model.get_layer("transformer").block_args["mask_mode"]
    except (ValueError, AttributeError, KeyError) as e:
        raise ValueError(f"model {model.name!r} is not a GISLR transformer from build_model "
                         f"(no 'transformer' layer with a mask mode)") from e


def drops_frames_at_inference(model: keras.Model) -> bool:
    """Whether `model` drops frames at random at inference (the seed's quirk; `evaluation.predict`)."""
    return any(layer.frame_drop_at_inference and layer.frame_drop > 0
               for layer in model._flatten_layers() if isinstance(layer, FrameMask))


def compact_layout(non_empty_frame_idxs, mask_mode="seed", input_size=None):
    """Rows to compute for clips whose valid frames come first (Chapter 6).

    `non_empty_frame_idxs` [B, T] as preprocessing writes it: a clip's n valid frames first,
    then T - n padded ones (idx -1); it may be cut after T' < T columns, then `input_size` = T
    says how many frames each clip had (default: its width). Returns ``(length, key_counts)``:

    * ``"keys"``: padded keys get -1e9 and weight exactly 0 (``exp`` underflows), so padded rows
      never reach a valid one: ``length = max(max n, 1)`` rows and ``key_counts = None``.
    * ``"seed"``: padded keys are attended to, but the P = T - n padded frames are identical
      (same empty embedding, same positional row T, and -- masked query rows -- the same
      attention), and stay so through every block. One of them stands for all: ``length =
      max(n + 1 if n < T else T)`` and ``key_counts`` [B, length, 1] is 1 for a valid frame,
      P for the representative padded frame (row n) and 0 for filler rows of shorter clips
      in the batch (see :func:`scaled_dot_product_attention`).

    At least one row is kept, so a clip without any valid frame gives the same output as the
    T-frame graph (its pooled vector is 0).
    """
    idxs = tf.convert_to_tensor(non_empty_frame_idxs, tf.float32)
    total = tf.shape(idxs)[1] if input_size is None else tf.constant(int(input_size))
    n = tf.reduce_sum(tf.cast(idxs != -1.0, tf.int32), axis=1)             # [B]
    if mask_mode == "keys":
        return tf.maximum(tf.reduce_max(n), 1), None
    check_choice("attention_mask", mask_mode, MASK_MODES)
    rows = tf.where(n < total, n + 1, n)
    length = tf.reduce_max(rows)
    pos = tf.range(length)[None, :]                                          # [1, L]
    n = n[:, None]
    counts = tf.where(pos < n, 1, tf.where(pos == n, total - n, 0))          # [B, L]
    return length, tf.cast(counts, tf.float32)[:, :, None]


def compact_forward(model: keras.Model, frames, non_empty_frame_idxs):
    """Class probabilities computed on the clips' valid frames only (Chapter 6).

    The same numbers as ``model([frames, non_empty_frame_idxs], training=False)`` without the
    random frame drop (to float rounding), but the transformer runs on ``length`` rows of
    :func:`compact_layout` instead of T. Needs each clip's valid frames first and its
    padded frames (idx -1, frames 0) after them, as preprocessing writes them; the inputs may
    be cut after fewer than T columns (the padding they leave out is counted all the same).
    """
    mode = attention_mask_mode(model)
    frames = tf.convert_to_tensor(frames, tf.float32)
    idxs = tf.convert_to_tensor(non_empty_frame_idxs, tf.float32)
    length, counts = compact_layout(idxs, mode, model.get_layer("embedding").input_size)
    frames, idxs = frames[:, :length], idxs[:, :length]
    frame_mask = tf.expand_dims(tf.cast(idxs != -1.0, tf.float32), axis=2)
    lips, hand, pose = model.get_layer("normalisation")(frames)
    x = model.get_layer("embedding")(lips, hand, pose, idxs)
    x = model.get_layer("transformer")(x, frame_mask, training=False, key_counts=counts)
    x = model.get_layer("pooling")(x, frame_mask)
    return model.get_layer("classifier")(x)          # classifier dropout: off at inference


def load_model(path) -> keras.Model:
    """Load a ``.keras`` file saved from :func:`build_model` or `training.train`.

    The layers are registered in this module; a trained model's file also names its loss
    (`training.SparseCategoricalCrossentropyLS`), which importing `training` registers, so a
    fresh process that imports only this module can load it, compiled, ready to predict or train on.
    """
    from . import training  # noqa: F401  (registers the training loss for deserialisation)
    return keras.saving.load_model(path)


def copy_attention_weights(src: MultiHeadAttention, dst: MultiHeadAttention) -> None:
    """Copy weights between the "matmul" and "per_head" formulations (either direction).

    Head i of the per-head form is columns ``i*depth:(i+1)*depth`` of the fused q/k/v kernels
    and biases; `wo` is shared as is. Used to show that both compute the same (Chapter 3).
    """
    if (src.units, src.num_heads) != (dst.units, dst.num_heads):
        raise ValueError("attention layers differ in units/num_heads")
    d = src.depth
    for name in ("wq", "wk", "wv"):
        s, t = getattr(src, name), getattr(dst, name)
        if isinstance(s, list) == isinstance(t, list):
            for a, b in zip(s if isinstance(s, list) else [s], t if isinstance(t, list) else [t]):
                b.set_weights(a.get_weights())
        elif isinstance(t, list):           # matmul -> per_head
            kernel, bias = s.get_weights()
            for i, dense in enumerate(t):
                dense.set_weights([kernel[:, i * d:(i + 1) * d], bias[i * d:(i + 1) * d]])
        else:                               # per_head -> matmul
            t.set_weights([np.concatenate([w.get_weights()[0] for w in s], axis=1),
                           np.concatenate([w.get_weights()[1] for w in s], axis=0)])
    dst.wo.set_weights(src.wo.get_weights())


def copy_weights_between_impls(src: keras.Model, dst: keras.Model) -> None:
    """Copy all weights from `src` to `dst` where they differ only in ``attention_impl``."""
    src_mha = [l for l in src._flatten_layers() if isinstance(l, MultiHeadAttention)]
    dst_mha = [l for l in dst._flatten_layers() if isinstance(l, MultiHeadAttention)]
    if len(src_mha) != len(dst_mha):
        raise ValueError("models have different numbers of attention layers")
    skip = {id(w) for l in src_mha for w in l.weights} | {id(w) for l in dst_mha for w in l.weights}
    a = [w for w in src.weights if id(w) not in skip]
    b = [w for w in dst.weights if id(w) not in skip]
    if [tuple(w.shape) for w in a] != [tuple(w.shape) for w in b]:
        raise ValueError("models differ in more than the attention formulation")
    for wa, wb in zip(a, b):
        wb.assign(wa)
    for s, t in zip(src_mha, dst_mha):
        copy_attention_weights(s, t)


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Parameters per part, in the layout of the seed's model summary (Chapter 3)."""
    emb = model.get_layer("embedding")
    tr = model.get_layer("transformer")
    counts = {
        "total": model.count_params(),
        "embedding": emb.count_params(),
        "positional_embedding": emb.positional_embedding.count_params(),
        "lips_embedding": emb.lips_embedding.count_params(),
        "left_hand_embedding": emb.left_hand_embedding.count_params(),
        "pose_embedding": emb.pose_embedding.count_params(),
        "fc": emb.fc_1.count_params() + emb.fc_2.count_params(),
        "landmark_weights": int(np.prod(emb.landmark_weights.shape)),
        "transformer": tr.count_params(),
        "classifier": model.get_layer("classifier").count_params(),
    }
    for i, block in enumerate(tr.blocks):
        counts[f"block_{i}_mha"] = block.mha.count_params()
        counts[f"block_{i}_mlp"] = block.mlp.count_params()
    return counts
