"""The winners' model-side ideas as Keras 3 layers for the seed's model (chapter 7, "Beyond the seed").

Each layer is one switch of the ``improved`` preset and converts to builtin TFLite ops; sources
and defaults are in notes/ch7_sources.md.

* :class:`ReferenceNormalisation`: first place's per-clip normalisation, a drop-in for
  ``model.LandmarkNormalisation``. Its reference is face-mesh landmark 17 (its write-up says "in
  the nose"; 17 is in fact the lower lip's midpoint, one of this model's 40 lips columns), so the
  preprocessing need not change. Third place's shoulders, hips and eyes are not among the 66
  columns: using them would mean new columns in the preprocessing.
* :func:`motion_features` / :class:`MotionEmbedding`: lag-1 and lag-2 differences (first place's
  lags) of the normalised x, y, each with its length (third place's ``(dx, dy, |d|)``), backward
  in time (``p[t] - p[t - k]``, third place's direction; first place's ``p[t + k] - p[t]`` is the
  same sequence shifted by k frames) and 0 where either frame lacks the landmark or is padding. An
  embedding without biases, added to the frame embedding: zero motion adds nothing.
* :class:`LateDropout`: dropout that starts after `start_step` training steps (first place's).
* :class:`Conv1DBlock`: first place's block before each transformer block: Dense (x2, swish) ->
  causal depthwise Conv1D (kernel 17) -> BatchNorm -> ECA -> Dense, drop path, residual. Causal
  padding keeps the valid frames (which come first) blind to the padding after them; BatchNorm
  and ECA average over valid frames only, and padded frames are left unchanged, so the seed's
  masks and the exported file's compact layout (chapter 6) still hold.

Mixed precision: every layer here runs under Keras' ``mixed_float16`` policy; the attention of
``model.MultiHeadAttention`` already runs in float32 (its -1e9 mask would overflow float16).
"""
from __future__ import annotations

from ._tf import keras, tf
from .landmarks import HAND_START, LIPS_IDXS0, LIPS_START, N_COLS, N_HAND, N_LIPS, N_POSE, POSE_START

# model.py's package name: a saved model finds these layers (model.py imports this module, so
# this module does not import model.py).
register = keras.saving.register_keras_serializable(package="gislr")
REFERENCE_LANDMARK = 17                                  # first place's reference (lower lip)
REFERENCE_COL = list(LIPS_IDXS0).index(REFERENCE_LANDMARK)   # its column among the 66: 15


@register
class ReferenceNormalisation(keras.layers.Layer):
    """First place's normalisation per clip (chapter 7): ``xy -> (xy - ref) / std``.

    ``ref``: the mean x, y of landmark 17 over the clip's frames that have it (0.5 if none);
    ``std``: per axis, the root mean square distance of every present landmark of the clip from
    ``ref`` (1 if 0). Missing landmarks stay 0 (padding must be zero frames, as preprocessing
    writes it). Returns the groups of ``model.LandmarkNormalisation``, lips [B,T,80], hand
    [B,T,42], pose [B,T,10], in its place; training statistics are not used.
    """

    def call(self, frames):
        xy = tf.cast(frames[..., :2], tf.float32)
        seen = tf.cast(tf.reduce_any(xy != 0.0, axis=-1, keepdims=True),
                       tf.float32)                              # [B,T,66,1]
        at_ref = seen[:, :, REFERENCE_COL]                          # [B,T,1]
        n_ref = tf.reduce_sum(at_ref, axis=1, keepdims=True)        # [B,1,1]
        ref = tf.reduce_sum(xy[:, :, REFERENCE_COL] * at_ref, axis=1,
                            keepdims=True)
        ref = tf.where(n_ref > 0, ref / tf.maximum(n_ref, 1.0), 0.5)
        ref = ref[:, :, None]                                      # [B,1,1,2]
        n = tf.maximum(tf.reduce_sum(seen, axis=[1, 2], keepdims=True), 1.0)
        var = tf.reduce_sum(tf.square(xy - ref) * seen, axis=[1, 2],
                            keepdims=True) / n
        std = tf.where(var > 0, tf.sqrt(tf.where(var > 0, var, 1.0)), 1.0)
        out, T = tf.where(seen > 0, (xy - ref) / std, 0.0), tf.shape(frames)[1]
        groups = ((LIPS_START, N_LIPS), (HAND_START, N_HAND),
                  (POSE_START, N_POSE))
        return tuple(tf.reshape(out[:, :, s:s + k], [-1, T, 2 * k])
                     for s, k in groups)


def motion_features(lips, hand, pose, lags=(1, 2)):
    """``[B, T, 66 * 3 * len(lags)]``: per lag k and landmark ``(dx, dy, |d|)`` with
    ``d = p[t] - p[t - k]``, 0 where either frame lacks the landmark (chapter 7).

    `lips`, `hand`, `pose` are normalised groups ``[B, T, 2 n]`` (0 = missing), as
    ``LandmarkNormalisation`` returns them; any T (the exported file may cut the padding).
    """
    p = tf.concat([tf.cast(g, tf.float32) for g in (lips, hand, pose)], axis=-1)
    T = tf.shape(p)[1]
    p = tf.reshape(p, [-1, T, N_COLS, 2])
    seen = tf.reduce_any(p != 0.0, axis=-1, keepdims=True)
    out = []
    for k in lags:
        prev = tf.pad(p, [[0, 0], [k, 0], [0, 0], [0, 0]])[:, :T]
        both = seen & tf.pad(seen, [[0, 0], [k, 0], [0, 0], [0, 0]])[:, :T]
        d = p - prev
        sq = tf.reduce_sum(tf.square(d), axis=-1, keepdims=True)
        # |d|, without a NaN gradient at 0
        length = tf.where(sq > 0, tf.sqrt(tf.where(sq > 0, sq, 1.0)), 0.0)
        out.append(tf.where(both, tf.concat([d, length], axis=-1), 0.0))
    return tf.reshape(tf.concat(out, axis=-1), [-1, T, N_COLS * 3 * len(lags)])


@register
class MotionEmbedding(keras.layers.Layer):
    """Embed :func:`motion_features`: Dense(hidden, GELU) -> Dense(units), no biases (chapter 7).

    Third place concatenated a motion embedding with the landmark embedding; adding it to the frame
    embedding is the same up to the next layer's weights. Without biases, a frame without motion
    (padding, a first frame, masked frames) gets exactly 0.
    """

    def __init__(self, units, hidden, lags=(1, 2), **kwargs):
        super().__init__(**kwargs)
        self.units, self.hidden, self.lags = units, hidden, tuple(int(k) for k in lags)
        self.dense_1 = keras.layers.Dense(hidden, use_bias=False, activation="gelu")
        self.dense_2 = keras.layers.Dense(units, use_bias=False)

    def build(self, *shapes):
        pass        # the Dense layers build themselves on the first call

    def call(self, lips, hand, pose):
        return self.dense_2(self.dense_1(motion_features(lips, hand, pose, self.lags)))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "hidden": self.hidden, "lags": list(self.lags)}


@register
class LateDropout(keras.layers.Layer):
    """Dropout that is off for the first `start_step` training steps, then on (chapter 7).

    First place's ``LateDropout``: a counter of training calls (a non-trainable weight, saved with
    the model and counted once across replicas) switches ``Dropout(rate)`` on; inference never
    drops. ``model.build_model`` sets ``start_step`` to a fraction of the run's steps.
    """

    def __init__(self, rate, start_step=0, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.start_step = float(rate), int(start_step)
        self.dropout = keras.layers.Dropout(self.rate)

    def build(self, shape):
        self.step = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False,
            aggregation="only_first_replica", name="step")

    def call(self, x, training=None):
        if not training:
            return x
        self.step.assign_add(1)
        dropped = self.dropout(x, training=True)
        return tf.where(self.step > self.start_step, dropped, x)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate,
                "start_step": self.start_step}


@register
class Conv1DBlock(keras.layers.Layer):
    """First place's conv block (chapter 7): ``x + mask * DropPath(Dense(ECA(BN(CausalDWConv(
    Dense_swish(x))))))``; `valid` [B, T, 1] is 1 for valid frames, 0 for padding.

    Depthwise Conv1D (`kernel_size` 17, no bias) after `kernel_size - 1` zero frames in front;
    BatchNorm (momentum 0.95) and ECA (sigmoid of a `eca_kernel`-5 Conv1D across the channels of
    the valid frames' mean) over valid frames only; drop path drops the whole branch per clip.
    """

    def __init__(self, units, kernel_size=17, expand=2, drop_path=0.2,
                 eca_kernel=5, **kwargs):
        super().__init__(**kwargs)
        self.args = dict(units=units, kernel_size=kernel_size, expand=expand,
                         drop_path=drop_path, eca_kernel=eca_kernel)
        self.expand = keras.layers.Dense(units * expand, activation="swish")
        self.dwconv = keras.layers.DepthwiseConv1D(kernel_size, use_bias=False)
        self.bn = keras.layers.BatchNormalization(momentum=0.95)
        self.eca = keras.layers.Conv1D(1, eca_kernel, padding="same",
                                       use_bias=False)
        self.project = keras.layers.Dense(units)
        self.drop = keras.layers.Dropout(drop_path, noise_shape=(None, 1, 1))

    def build(self, *shapes):
        pass        # the sublayers build themselves on the first call

    def call(self, x, valid, training=None):
        mask = tf.cast(valid, x.dtype)
        k = self.args["kernel_size"]
        y = self.dwconv(tf.pad(self.expand(x), [[0, 0], [k - 1, 0], [0, 0]]))
        y = self.bn(y, training=training, mask=valid[..., 0] > 0)
        n = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        mean = tf.reduce_sum(y * mask, axis=1) / n
        y = y * tf.sigmoid(self.eca(mean[:, :, None]))[:, None, :, 0]
        return x + self.drop(self.project(y), training=training) * mask

    def get_config(self):
        return {**super().get_config(), **self.args}
