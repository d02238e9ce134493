"""TFLite export in the competition's format, and LiteRT inference, size and latency.

Chapter 6 (export and inference) explains this module; the export itself (the Keras export
archive, the converter and its settings, the atomic write) is chapter 6's cell tagged ``export``,
``recipe.export_tflite``. The competition's contract: a TFLite file with signature
``"serving_default"`` taking ``inputs`` float32 ``[n_frames, 543, 3]``, one raw clip as read from
its parquet file (NaN included), and returning ``outputs`` ``[250]``.
Preprocessing (``preprocessing.PreprocessLayer``) therefore runs *inside* the graph, and only
builtin TFLite ops are allowed (no Flex / SELECT_TF_OPS).

Two traps, both measured on TF 2.21 / Keras 3:

* A ``tf.Module`` wrapper does not track Keras 3 variables: the converter then freezes no
  weights, the file is tiny and every output is NaN. Here the preprocessing layer and the model
  are held by a Keras layer (:class:`ServingModel`), whose variables Keras tracks, and the
  graph is exported through ``keras.export.ExportArchive`` (a SavedModel) before conversion.
  The tests check finite outputs and Keras-vs-TFLite agreement.
* The seed preset's random frame drop at inference (see ``model.FrameMask``) would make the
  competition graph non-deterministic, and it does not even convert: Keras 3's
  ``keras.random.uniform`` becomes ``StatelessRandomGetKeyCounter`` + ``StatelessRandomUniformV2``,
  which are not builtin TFLite ops (measured). The export switches it off while the graph is
  traced (``model.frame_drop_at_inference``, restored afterwards), so the file computes the
  model's deterministic inference.

The file computes only the clip's frames (``compact=True``, the default): a typical clip has
10-25 frames with the dominant hand, and the other rows of the model's 64 are padding. With
the "keys" mask the padded rows are dropped; with the seed's query mask one padded row stands
for all of them, its weight as a key counted P times (:func:`compact_forward`; the proof is
in Chapter 6). The probabilities are those of the 64-frame graph (``compact=False``, kept for
comparison) to float rounding; the latency now grows with the clip's length.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ._tf import keras, tf
from .landmarks import N_DIMS, N_ROWS
from .config import check_choice
from .model import attention_mask_mode, embed, run_blocks
from .preprocessing import PreprocessLayer, check_clip

SIGNATURE = "serving_default"
INPUT_NAME = "inputs"
OUTPUT_NAME = "outputs"
INPUT_SPEC = tf.TensorSpec([None, N_ROWS, N_DIMS], tf.float32, name=INPUT_NAME)   # one raw clip


def compact_layout(non_empty_frame_idxs, mask_mode="seed", input_size=None):
    """Rows to compute for clips whose valid frames come first (chapter 6).

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
      in the batch (see `model.counted_attention`).

    At least one row is kept, so a clip without any valid frame gives the same output as the
    T-frame graph (its pooled vector is 0).
    """
    idxs = tf.convert_to_tensor(non_empty_frame_idxs, tf.float32)
    total = tf.shape(idxs)[1] if input_size is None else tf.constant(int(input_size))
    n = tf.reduce_sum(tf.cast(idxs != -1.0, tf.int32), axis=1)             # [B]
    if mask_mode == "keys":
        return tf.maximum(tf.reduce_max(n), 1), None
    check_choice("attention_mask", mask_mode, ("seed", "keys"))
    rows = tf.where(n < total, n + 1, n)
    length = tf.reduce_max(rows)
    pos = tf.range(length)[None, :]                                          # [1, L]
    n = n[:, None]
    counts = tf.where(pos < n, 1, tf.where(pos == n, total - n, 0))          # [B, L]
    return length, tf.cast(counts, tf.float32)[:, :, None]


def compact_forward(model: keras.Model, frames, non_empty_frame_idxs):
    """Class probabilities computed on the clips' valid frames only (chapter 6).

    The same numbers as ``model([frames, non_empty_frame_idxs], training=False)`` without the
    random frame drop (to float rounding), but the transformer runs on ``length`` rows of
    :func:`compact_layout` instead of T. Needs each clip's valid frames first and its padded
    frames (idx -1, frames 0) after them, as preprocessing writes them; the inputs may be cut
    after fewer than T columns (the padding they leave out is counted all the same).
    """
    mode = attention_mask_mode(model)
    frames = tf.convert_to_tensor(frames, tf.float32)
    idxs = tf.convert_to_tensor(non_empty_frame_idxs, tf.float32)
    length, counts = compact_layout(idxs, mode, model.get_layer("embedding").input_size)
    mask, x = embed(model, frames[:, :length], idxs[:, :length])
    x = run_blocks(model, x, mask, key_counts=counts)
    x = model.get_layer("pooling")(x, mask)
    return model.get_layer("classifier")(x)          # the classifier's dropout is off at inference


class ServingModel(keras.layers.Layer):
    """One raw clip ``[n, 543, 3]`` -> class probabilities ``[num_classes]`` (Chapter 6).

    Holds the preprocessing layer and the trained model as attributes, so Keras tracks every
    variable of both (unlike a ``tf.Module``). ``compact=True`` runs the model on the clip's
    frames only (:func:`compact_forward`); ``False`` on all 64 rows, as before.
    """

    def __init__(self, model: keras.Model, compact: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.compact = bool(compact)
        self.preprocess = PreprocessLayer(int(model.inputs[0].shape[1]))
        self.built = True      # no weights of its own; the model is built

    def call(self, inputs):
        frames, idxs = self.preprocess(inputs)
        if self.compact:
            probs = compact_forward(self.model, frames[None], idxs[None])
        else:
            probs = self.model([frames[None], idxs[None]], training=False)
        return probs[0]


def load_interpreter(path, num_threads: int | None = None):
    """A LiteRT interpreter (``ai_edge_litert``) for `path`."""
    from ai_edge_litert.interpreter import Interpreter
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: TFLite file not found")
    return Interpreter(model_path=str(path), num_threads=num_threads)


def _runner(path, num_threads=None):
    interpreter = load_interpreter(path, num_threads)
    signatures = interpreter.get_signature_list()
    if SIGNATURE not in signatures:
        raise ValueError(f"{path}: no {SIGNATURE!r} signature (has {sorted(signatures)})")
    return interpreter.get_signature_runner(SIGNATURE)


def _checked_clips(clips, numbered=True) -> list[np.ndarray]:
    # preprocessing's rule with its message (shape, inf, quirk 3), before any file is opened
    if not len(clips):
        raise ValueError("no clips given (an empty list)")
    return [check_clip(c, source=f"clip {i}" if numbered else None) for i, c in enumerate(clips)]


def tflite_predict(path, frames, num_threads: int | None = None) -> np.ndarray:
    """Run the exported file on raw frames (Chapter 6).

    `frames`: one clip ``[n, 543, 3]`` -> ``[num_classes]``, or a list of clips ->
    ``[len, num_classes]``.
    """
    single = not isinstance(frames, (list, tuple))
    clips = _checked_clips([frames] if single else frames, numbered=not single)
    runner = _runner(path, num_threads)
    out = np.stack([runner(**{INPUT_NAME: c})[OUTPUT_NAME] for c in clips])
    return out[0] if single else out


def tflite_clip_latencies(paths, clips, repeats: int = 3, num_threads: int | None = None) -> np.ndarray:
    """Milliseconds of every call, ``[len(paths), repeats, len(clips)]`` (Chapter 6).

    Each call is timed alone, the way the competition's harness calls the signature runner
    (input resize included). One warm-up call per file and clip, then `repeats` passes over
    the clips; within a pass the files are called one after the other on each clip, so that
    other processes on a shared machine slow them alike. ``np.median(times[f])`` is file f's
    median per clip, ``times.min(axis=1)`` each clip's best of `repeats`, the number least
    disturbed by other work; a file's size is ``os.path.getsize(path)``.
    """
    clips = _checked_clips(clips)
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    runners = [_runner(p, num_threads) for p in paths]
    for c in clips:
        for r in runners:
            r(**{INPUT_NAME: c})
    times = np.zeros((len(runners), repeats, len(clips)))
    for rep in range(repeats):
        for i, c in enumerate(clips):
            for f, r in enumerate(runners):
                t0 = time.perf_counter()
                r(**{INPUT_NAME: c})
                times[f, rep, i] = (time.perf_counter() - t0) * 1e3
    return times


def tflite_op_names(path) -> list[str]:
    """Names of the ops in an exported file, sorted and unique (to show it is builtins only)."""
    return sorted({d["op_name"] for d in load_interpreter(path)._get_ops_details()})
