"""Training the GISLR transformer: participant split, balanced sign batches, schedules, loss and `train`.

Chapter 4 (training) explains every function here; chapter 3 builds the model that `train` fits,
chapter 5 evaluates the checkpoint it writes and chapter 6 shows `compare_masking`.

What is reproduced from the seed report (Wijkhuizen's notebook as the course report runs it):

* validation on held-out *participants*: ``GroupShuffleSplit(n_splits=1, test_size=0.10, random_state=42)``;
* batches of ``n`` clips of every sign (``get_train_batch_all_signs``), ``len(train) // batch`` steps an epoch;
* categorical cross-entropy with label smoothing 0.25 on one-hot labels (``scce_with_ls``);
* AdamW with clipnorm 1.0 and top-1/5/10 accuracy ("acc", "top_5_acc", "top_10_acc");
* the seed's ``model.fit`` passes no callbacks: constant learning rate 1e-3 and weight decay 1e-5
  (schedule "constant"); the original Kaggle notebook's per-epoch cosine decay with weight decay
  ``0.05 x lr`` is schedule "cosine".

Weight decay, Keras 3 versus tensorflow-addons: the seed used ``tfa.optimizers.AdamW``, whose decoupled
weight decay shrinks every weight by ``weight_decay`` per step (``w -= wd * w``), independent of the
learning rate. Keras 3's ``AdamW`` multiplies by the learning rate (``w -= wd * lr * w``), and its
``weight_decay`` is a Python float that is baked into the compiled train step (setting it in a callback
later has no effect). The presets and `weight_decay_schedule` keep the seed's meaning (decay per step);
`keras_weight_decay` converts it: ``1e-5 / 1e-3 = 0.01`` for "constant" and ``wd_ratio = 0.05`` for
"cosine" (``0.05 * lr / lr``), constant in both cases, so the per-step decay is exactly the seed's.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from . import config as _config
from . import runs
from .config import show_path
from ._tf import keras, tf

SCHEDULES = ("constant", "cosine")
METRIC_NAMES = ("acc", "top_5_acc", "top_10_acc")


# --------------------------------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------------------------------
def split_by_participant(participant_id, test_size: float = 0.10, seed: int = 42):
    """Hold out whole participants for validation, as the seed does (chapter 4).

    ``GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)`` with the participant as
    group: a participant's clips are all in train or all in validation. With the real data's 21
    participants and ``test_size=0.10`` it holds out ``ceil(2.1) = 3`` participants.

    Returns ``(train_idx, val_idx)``, sorted int64 row indices. Raises ValueError with fewer than
    two participants (no split possible).
    """
    groups = np.asarray(participant_id)
    if groups.ndim != 1 or groups.size == 0:
        raise ValueError(f"participant_id must be a non-empty 1-D array, got shape {groups.shape}")
    n_groups = np.unique(groups).size
    if n_groups < 2:
        raise ValueError(
            f"cannot hold out participants for validation: all {groups.size} clips come from "
            f"{n_groups} participant ({np.unique(groups).tolist()}); at least 2 are needed"
        )
    gss = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train_idx, val_idx = next(gss.split(np.zeros(groups.size), groups=groups))
    return np.sort(train_idx).astype(np.int64), np.sort(val_idx).astype(np.int64)


# --------------------------------------------------------------------------------------------------
# Balanced batches
# --------------------------------------------------------------------------------------------------
class BalancedSignBatches:
    """Endless batches holding ``n`` clips of every sign present: the seed's ``get_train_batch_all_signs``.

    A batch has ``n_signs_present * n`` clips, labels in sign order (``n`` x the smallest label, then
    the next, ...), the clips of each sign drawn with replacement (``choice(rows_of_sign, n)``).
    Signs absent from ``y[rows]`` get no samples; labels stay indices into the 250-sign map.
    ``steps_per_epoch = len(rows) // batch_size`` (at least 1), as the seed's fit call.

    Draws come from ``numpy.random.default_rng(seed)``, so the sequence of batches is a function of
    the seed. Iterate it (``next(iter(sampler))``) or pass ``iter(sampler)`` to ``model.fit`` with
    ``steps_per_epoch``; Keras keeps one iterator over all epochs, so batches are consumed in order.

    Differences from the seed's generator (no effect on the batches' distribution): each batch is a
    fresh array (the seed refilled and re-yielded the same buffers), and a sign with a single clip
    works (the seed's ``np.argwhere(...).squeeze()`` turns it into a 0-d array that ``np.random.choice``
    would read as ``range(k)``).
    """

    def __init__(self, X, idxs, y, n: int = 4, rows=None, seed: int = 0,
                 num_classes: int = _config.PRESETS["seed"]["num_classes"]):
        y = np.asarray(y)
        if len(X) != len(y) or len(idxs) != len(y):
            raise ValueError(f"X ({len(X)}), idxs ({len(idxs)}) and y ({len(y)}) must have the same length")
        if int(n) < 1:
            raise ValueError(f"n (clips per sign and batch) must be >= 1, got {n}")
        rows = np.arange(len(y)) if rows is None else np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            raise ValueError("no training clips to sample from (rows is empty)")
        labels = y[rows].astype(np.int64)
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}); got {labels.min()}..{labels.max()}")
        self.X, self.idxs, self.n = X, idxs, int(n)
        self.signs = np.unique(labels)                                 # present signs, sorted
        self.rows_of_sign = [rows[labels == s] for s in self.signs]
        self.batch_size = len(self.signs) * self.n
        self.labels = np.repeat(self.signs, self.n).astype(np.int32)   # sign order, n each
        self.steps_per_epoch = max(1, len(rows) // self.batch_size)
        self.rng = np.random.default_rng(seed)
        self.drawn = 0                       # batches drawn so far (continued by `set_state`)
        self._marks: dict[int, dict] = {}    # generator state at epoch boundaries, for checkpoints
        self._lock = threading.Lock()        # batches may be drawn ahead, in tf.data's thread

    def sample_rows(self) -> np.ndarray:
        """Row indices of the next batch: ``n`` draws with replacement from each present sign."""
        with self._lock:
            if self.drawn % self.steps_per_epoch == 0:          # an epoch starts with this batch
                self._marks[self.drawn] = self.rng.bit_generator.state
                for old in [k for k in self._marks if k < self.drawn - 4 * self.steps_per_epoch]:
                    del self._marks[old]
            rows = np.concatenate([self.rng.choice(r, self.n) for r in self.rows_of_sign])
            self.drawn += 1
            return rows

    def get_state(self, at_batch: int | None = None) -> dict:
        """The generator's state (JSON-able) before batch `at_batch` (default: the next batch).

        Batches may already have been drawn ahead (`batch_dataset` prefetches them); the states at
        the start of recent epochs are kept, so a checkpoint taken at the end of an epoch records
        the state from which the next epoch's batches are drawn, whatever was prefetched.
        """
        with self._lock:
            n = self.drawn if at_batch is None else int(at_batch)
            if n == self.drawn:
                return {"drawn": n, "bit_generator": self.rng.bit_generator.state}
            if n in self._marks:
                return {"drawn": n, "bit_generator": self._marks[n]}
            raise ValueError(f"the sampler's state before batch {n} is no longer known "
                             f"({self.drawn} batches drawn)")

    def set_state(self, state: dict) -> None:
        """Continue from a state of `get_state` (a resumed run draws the same batches)."""
        with self._lock:
            self.rng.bit_generator.state = state["bit_generator"]
            self.drawn = int(state["drawn"])
            self._marks = {}

    def __iter__(self):
        while True:
            rows = self.sample_rows()
            yield ({"frames": np.asarray(self.X[rows], dtype=np.float32),
                    "non_empty_frame_idxs": np.asarray(self.idxs[rows], dtype=np.float32)},
                   self.labels.copy())


def batch_dataset(sampler: BalancedSignBatches, prefetch: int = 2):
    """The sampler's batches as a ``tf.data.Dataset``, drawn ahead of the training step.

    ``from_generator`` over one iterator of `sampler` (so the batches and their order are those of
    ``iter(sampler)``: deterministic for a seed), then ``prefetch(prefetch)``: while the model runs
    step k, a background thread gathers batch k+1 (and up to `prefetch` batches), so a GPU does
    not wait for NumPy's fancy indexing. `train` feeds the model with it; benchmarks time it.
    """
    if int(prefetch) < 0:
        raise ValueError(f"prefetch must be >= 0, got {prefetch}")
    B = sampler.batch_size
    T, C, D = (int(d) for d in np.shape(sampler.X)[1:])
    signature = ({"frames": tf.TensorSpec([B, T, C, D], tf.float32),
                  "non_empty_frame_idxs": tf.TensorSpec([B, T], tf.float32)},
                 tf.TensorSpec([B], tf.int32))
    ds = tf.data.Dataset.from_generator(lambda: iter(sampler), output_signature=signature)
    return ds.prefetch(int(prefetch)) if int(prefetch) else ds


# --------------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------------
def lrfn(epoch: int, n_epochs: int, lr_max: float, n_warmup: int = 0, warmup_method: str = "log",
         num_cycles: float = 0.50) -> float:
    """The original Kaggle notebook's per-epoch learning rate (its ``lrfn``), chapter 4.

    Warm-up epochs (none in the notebook): ``lr_max * 0.1 ** (n_warmup - epoch)`` ("log") or
    ``lr_max * 2 ** -(n_warmup - epoch)``; then cosine decay
    ``0.5 * (1 + cos(pi * num_cycles * 2 * progress)) * lr_max`` with
    ``progress = (epoch - n_warmup) / max(1, n_epochs - n_warmup)``; without warm-up and with
    ``num_cycles = 0.5`` that is ``0.5 * (1 + cos(pi * epoch / n_epochs)) * lr_max``.
    """
    if epoch < n_warmup:
        if warmup_method == "log":
            return lr_max * 0.10 ** (n_warmup - epoch)
        return lr_max * 2.0 ** -(n_warmup - epoch)
    progress = float(epoch - n_warmup) / float(max(1, n_epochs - n_warmup))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))) * lr_max


def lr_schedule(epochs: int, schedule: str = "cosine", lr_max: float = 1e-3, n_warmup: int = 0) -> np.ndarray:
    """Learning rate of each epoch (float64 ``[epochs]``): "constant" (the seed) or "cosine" (`lrfn`)."""
    _config.check_choice("schedule", schedule, SCHEDULES)
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if schedule == "constant":
        return np.full(int(epochs), float(lr_max))
    return np.array([lrfn(e, int(epochs), lr_max, n_warmup=n_warmup) for e in range(int(epochs))])


def weight_decay_schedule(epochs: int, schedule: str = "cosine", lr_max: float = 1e-3,
                          weight_decay: float = 1e-5, wd_ratio: float = 0.05) -> np.ndarray:
    """Decoupled weight decay per step of each epoch, in the seed's (tensorflow-addons) meaning.

    "constant": ``weight_decay`` every epoch (the seed's 1e-5); "cosine": ``wd_ratio * lr`` of the epoch
    (the Kaggle notebook's ``WeightDecayCallback``). Each weight shrinks by this fraction every step.
    """
    if schedule == "constant":
        return np.full(int(epochs), float(weight_decay))
    return wd_ratio * lr_schedule(epochs, schedule, lr_max)


def keras_weight_decay(schedule: str, learning_rate: float, weight_decay: float, wd_ratio: float) -> float:
    """The ``weight_decay`` to give Keras 3's AdamW so that its ``wd * lr`` equals the seed's per-step decay.

    "constant": ``weight_decay / learning_rate``; "cosine": ``wd_ratio`` (see the module docstring).
    """
    _config.check_choice("schedule", schedule, SCHEDULES)
    if schedule == "constant":
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        return float(weight_decay) / float(learning_rate)
    return float(wd_ratio)


def make_optimizer(cfg: dict) -> keras.optimizers.Optimizer:
    """Keras 3 AdamW with the preset's clipnorm, first learning rate and converted weight decay."""
    lr0 = float(lr_schedule(max(1, int(cfg["epochs"])), cfg["schedule"], cfg["learning_rate"])[0])
    wd = keras_weight_decay(cfg["schedule"], cfg["learning_rate"], cfg["weight_decay"], cfg["wd_ratio"])
    return keras.optimizers.AdamW(learning_rate=lr0, weight_decay=wd, clipnorm=cfg["clipnorm"])


# --------------------------------------------------------------------------------------------------
# Loss and metrics
# --------------------------------------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="gislr_utils")
class SparseCategoricalCrossentropyLS(keras.losses.Loss):
    """Categorical cross-entropy with label smoothing on one-hot integer labels: the seed's ``scce_with_ls``.

    ``y_true`` holds sign indices (shape ``[batch]`` or ``[batch, 1]``); they are one-hot encoded over
    ``num_classes`` and smoothed to ``(1 - ls) * onehot + ls / num_classes`` (chapter 4).
    """

    def __init__(self, num_classes: int = 250, label_smoothing: float = 0.25, name: str = "scce_with_ls",
                 reduction: str = "sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        onehot = keras.ops.one_hot(y_true, self.num_classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(onehot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {"num_classes": self.num_classes, "label_smoothing": self.label_smoothing,
                "name": self.name, "reduction": self.reduction}


def make_metrics():
    """Top-1, top-5 and top-10 accuracy on integer labels, named as in the seed."""
    return [keras.metrics.SparseCategoricalAccuracy(name="acc"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top_5_acc"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=10, name="top_10_acc")]


def compile_model(model: keras.Model, cfg: dict, jit_compile: bool = False) -> keras.Model:
    """Compile with the preset's loss, AdamW and metrics (chapter 4); returns the model.

    ``jit_compile=True`` compiles the train step with XLA (faster on most GPUs). A model built
    under the ``mixed_float16`` policy gets Keras 3's ``LossScaleOptimizer`` around AdamW
    (``compile`` does that by itself).
    """
    model.compile(loss=SparseCategoricalCrossentropyLS(cfg["num_classes"], cfg["label_smoothing"]),
                  optimizer=make_optimizer(cfg), metrics=make_metrics(), jit_compile=bool(jit_compile))
    return model


def _base_optimizer(opt):
    """AdamW itself, also when a LossScaleOptimizer wraps it (mixed precision)."""
    return getattr(opt, "inner_optimizer", opt)


# --------------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------------
class EpochReport(keras.callbacks.Callback):
    """Adds learning rate and per-step weight decay to the logs, writes history.csv, prints one line.

    One line per epoch (no Keras progress bars, so rendered pages stay readable); ``*`` marks a new
    best validation accuracy (the epoch the checkpoint keeps).
    """

    def __init__(self, epochs: int, history_path=None, verbose: int = 1, monitor: str = "val_acc",
                 rows=None, best: float = -np.inf):
        super().__init__()
        self.epochs, self.history_path, self.verbose, self.monitor = epochs, history_path, verbose, monitor
        self.rows: list[dict] = list(rows or [])          # a resumed run starts with its history
        self.best = best
        self.improved = False

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = _base_optimizer(self.model.optimizer)
        lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
        logs.setdefault("learning_rate", lr)
        logs["weight_decay"] = float(opt.weight_decay or 0.0) * lr        # per-step decay (seed meaning)
        seconds = time.perf_counter() - self._t0
        order = ["loss", *METRIC_NAMES, "val_loss", *(f"val_{m}" for m in METRIC_NAMES)]
        keys = [k for k in order if k in logs] + sorted(k for k in logs if k not in order)
        row = {"epoch": epoch + 1, **{k: float(logs[k]) for k in keys}, "seconds": seconds}
        self.rows.append(row)
        if self.history_path is not None:
            runs.write_text(self.history_path, pd.DataFrame(self.rows).to_csv(index=False))
        improved = self.monitor in logs and logs[self.monitor] > self.best
        if improved:
            self.best = float(logs[self.monitor])
        self.improved = bool(improved)
        if self.verbose:
            print(format_epoch_line(row, self.epochs) + (" *" if improved else ""), flush=True)


def format_epoch_line(row: dict, epochs: int) -> str:
    """``epoch  3/20  loss 3.1234  acc 0.512 ... val_acc 0.480 ...  lr 9.8e-04  4.1s`` for one history row."""
    parts = [f"epoch {int(row['epoch']):>{len(str(epochs))}}/{epochs}"]
    for key in ("loss", *METRIC_NAMES, "val_loss", *(f"val_{m}" for m in METRIC_NAMES)):
        if key in row:
            parts.append(f"{key} {row[key]:.4f}" if key.endswith("loss") else f"{key} {row[key]:.3f}")
    if "learning_rate" in row:
        parts.append(f"lr {row['learning_rate']:.1e}")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)


def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``2 h 05 min``: durations in progress messages."""
    seconds = float(seconds)
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class Progress(keras.callbacks.Callback):
    """Time per step measured after a warm-up, the projected time of an epoch and of the run, and
    progress lines inside long epochs (chapter 4). Everything goes to stdout.

    After ``warmup`` steps (tracing, memory allocation) it times the next ``measure`` steps and
    prints once: seconds a step, samples/s, projected time of an epoch and of the remaining epochs
    (training steps only; validation adds a little). When an epoch is projected to take longer
    than ``every`` seconds, a line every ``every`` seconds tells the step, samples/s and the time
    left in the epoch; short epochs (the classroom preset) print nothing more than the epoch lines.
    """

    def __init__(self, steps: int, batch_size: int, epochs: int, initial_epoch: int = 0,
                 every: float = 30.0, warmup: int = 2, measure: int = 3, verbose: int = 1):
        super().__init__()
        self.steps, self.batch_size, self.epochs = int(steps), int(batch_size), int(epochs)
        self.initial_epoch, self.every, self.verbose = int(initial_epoch), float(every), verbose
        self.warmup, self.measure = int(warmup), int(measure)
        self.seconds_per_step: float | None = None
        self._n = 0                        # steps run in this session

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._t_epoch = epoch, time.perf_counter()
        self._last_line = self._t_epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self._n == self.warmup:
            self._t_measure = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._n += 1
        now = time.perf_counter()
        if self.seconds_per_step is None and self._n >= self.warmup + self.measure:
            self.seconds_per_step = (now - self._t_measure) / (self._n - self.warmup)
            if self.verbose:
                print(self.projection(), flush=True)
        step = batch + 1
        if (self.verbose and self.seconds_per_step is not None and step < self.steps
                and self.seconds_per_step * self.steps > self.every and now - self._last_line >= self.every):
            self._last_line = now
            done = now - self._t_epoch
            rate = step * self.batch_size / done
            left = (self.steps - step) * done / step
            print(f"  epoch {self._epoch + 1}: step {step}/{self.steps}, {rate:,.0f} samples/s, "
                  f"{format_duration(left)} left in this epoch", flush=True)

    def projection(self) -> str:
        """One line: measured time per step and the projected time per epoch and for the run."""
        t = self.seconds_per_step
        remaining = self.epochs - self.initial_epoch
        return (f"measured {t:.3g} s a step ({self.batch_size / t:,.0f} samples/s) after "
                f"{self.warmup} warm-up steps: about {format_duration(t * self.steps)} an epoch "
                f"of {self.steps} steps, {format_duration(t * self.steps * remaining)} for "
                f"{'the' if remaining == self.epochs else 'the remaining'} {remaining} "
                f"epoch{'s' if remaining != 1 else ''} (validation not included)")


class Checkpoint(keras.callbacks.Callback):
    """Everything needed to continue a run, written at the end of every epoch (chapter 4).

    ``<run folder>/checkpoint/``: ``epoch-<k>.npz`` (the values of all model variables, the
    random generators of dropout and frame drop included, and of all optimizer variables: step
    count, learning rate, Adam moments), ``best.weights.h5`` (the best epoch so far) and, written
    last and atomically, ``state.json`` (the run's key, the number of finished epochs, the
    history, the best value and epoch, and the batch sampler's random state at the start of the
    next epoch). A run killed at any moment resumes from the last ``state.json`` (`train`).
    """

    def __init__(self, folder, spec: dict, report: "EpochReport", sampler: BalancedSignBatches,
                 has_val: bool, best_epoch: int | None = None):
        super().__init__()
        self.folder, self.spec, self.report, self.sampler = Path(folder), spec, report, sampler
        self.has_val, self.best_epoch = has_val, best_epoch

    @property
    def best_path(self) -> Path:
        return self.folder / "best.weights.h5"

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.report.improved or not self.has_val:
            with runs.atomic_path(self.best_path) as tmp:
                self.model.save_weights(tmp)
            self.best_epoch = epoch + 1
        name = f"epoch-{epoch + 1:04d}.npz"
        with runs.atomic_path(self.folder / name) as tmp, open(tmp, "wb") as f:
            np.savez(f, **_variable_values(self.model))
        state = {"key": runs.key_of(self.spec), "epochs_done": epoch + 1, "variables": name,
                 "best": self.report.best, "best_epoch": self.best_epoch, "history": self.report.rows,
                 "sampler": self.sampler.get_state((epoch + 1) * self.sampler.steps_per_epoch)}
        runs.write_text(self.folder / "state.json", json.dumps(runs.canonical(state)))
        for old in self.folder.glob("epoch-*.npz"):
            if old.name != name:
                old.unlink(missing_ok=True)


def _variable_values(model) -> dict:
    values = {f"m{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.variables)}
    values.update({f"o{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.optimizer.variables)})
    return values


def _restore_variables(model, path: Path) -> None:
    """Assign the values `Checkpoint` saved to the model's and the (built) optimizer's variables."""
    model.optimizer.build(model.trainable_variables)
    with np.load(path) as data:
        pairs = [(v, data[f"m{i}"]) for i, v in enumerate(model.variables)]
        pairs += [(v, data[f"o{i}"]) for i, v in enumerate(model.optimizer.variables)]
        if len(pairs) != len(data.files):
            raise ValueError(f"{path}: {len(data.files)} saved variables, the model has {len(pairs)}")
        for v, value in pairs:
            if tuple(v.shape) != value.shape:
                raise ValueError(f"{path}: variable {v.path} has shape {tuple(v.shape)}, saved {value.shape}")
        for v, value in pairs:
            v.assign(value)


def _load_checkpoint(folder: Path, spec: dict, verbose: int) -> dict | None:
    """The state of an unfinished run of the same key in `folder`, or None (starting over)."""
    state = runs.read_manifest(folder / "state.json")
    if state is None:
        return None
    if state.get("key") != runs.key_of(spec) or not (folder / state.get("variables", "")).is_file():
        if verbose:
            print(f"the checkpoint in {show_path(folder)} belongs to other settings: starting over")
        return None
    return state


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What `train` returns (chapter 4): the best-checkpoint model and everything needed to evaluate it."""
    model: keras.Model
    history: pd.DataFrame
    train_idx: np.ndarray
    val_idx: np.ndarray
    stats: dict
    config: dict
    preset: str
    seed: int
    paths: dict = field(default_factory=dict)
    train_seconds: float = float("nan")
    best_epoch: int | None = None
    reused: bool = False
    resumed_from: int = 0
    spec: dict = field(default_factory=dict)

    @property
    def has_validation(self) -> bool:
        return len(self.val_idx) > 0


def data_fingerprint(prepared) -> str:
    """Short hash telling whether saved artifacts were made from `prepared` (one rule for all of them).

    Covers the clips' participants, sequence ids and labels, the array shapes and *all* of the
    arrays' contents (``X`` and ``idxs``), so a change of any clip changes it, and nothing else
    does: arrays prepared again from the same files (moved, re-mounted, touched) give the same
    fingerprint, and a run made from them is still reused or resumed. For a
    `preprocessing.PreparedData` from `prepare_dataset`, the hash of the contents is computed
    once and kept beside the cached arrays (``fingerprint.json``; the folder's arrays never
    change under its key).
    """
    arrays = [np.asarray(a, dtype=np.int64) for a in (prepared.participant_id, prepared.sequence_id, prepared.y)]
    X, idxs = prepared.X, prepared.idxs
    parts = {"clips": runs.hash_arrays(*arrays), "shapes": [list(X.shape), list(idxs.shape)],
             "contents": _contents_hash(prepared)}
    return runs.key_of(parts)


def _contents_hash(prepared) -> str:
    X, idxs = prepared.X, prepared.idxs
    cache_dir = getattr(prepared, "cache_dir", None)
    meta = runs.read_manifest(Path(cache_dir) / "meta.json") if cache_dir is not None else None
    if meta is None or meta.get("key") != Path(cache_dir).name:
        return runs.hash_arrays(X, idxs)
    step = max(1, len(X) // 64)            # a cheap check that `prepared` holds the cached arrays
    sample = runs.hash_arrays(np.asarray(X[::step], np.float32), np.asarray(idxs[::step], np.float32))
    sidecar = Path(cache_dir) / "fingerprint.json"
    saved = runs.read_manifest(sidecar)
    if saved and saved.get("key") == meta["key"] and saved.get("sample") == sample:
        return saved["contents"]
    contents = runs.hash_arrays(X, idxs)
    if saved is None:
        try:
            runs.write_text(sidecar, json.dumps({"key": meta["key"], "sample": sample, "contents": contents}))
        except OSError:                    # a read-only cache: hash again next time
            pass
    return contents


def _artifact_paths(artifacts_dir: Path) -> dict:
    return {"model": artifacts_dir / "model.keras", "history": artifacts_dir / "history.csv",
            "stats": artifacts_dir / "stats.npz", "split": artifacts_dir / "split.npz",
            "config": artifacts_dir / "train_config.json"}


def _stats_io():
    from . import statistics
    return statistics


def train(prepared, preset: str = "classroom", artifacts_dir=None, seed: int = 0, stats=None,
          epochs: int | None = None, verbose: int = 1, reuse: bool = True, restart: bool = False,
          deterministic: bool = True, mixed_precision: bool = False, jit_compile: bool = False,
          progress_every: float = 30.0, callbacks=(), **overrides) -> TrainResult:
    """Train the transformer on held-out-participant splits and keep the best checkpoint (chapter 4).

    ``prepared``: `preprocessing.prepare_dataset`'s result (X, idxs, y, participant_id, sequence_id).
    ``preset`` and ``overrides`` (any preset setting, e.g. ``units=64``, or a model option of
    `model.build_model` such as ``attention_impl``) select model and training settings; ``epochs``
    overrides the preset's epoch count. Steps:

    1. `split_by_participant` (10% of participants held out); with a single participant there is no
       validation set: a message says so and the last epoch is kept;
    2. normalisation statistics from the *training* clips only (`statistics.compute_stats`), unless
       ``stats`` is given;
    3. ``keras.utils.set_random_seed(seed)`` and (``deterministic=True``) TensorFlow op determinism, so
       one seed gives identical weights on CPU. Op determinism stays on for the rest of the process
       (TensorFlow cannot switch it off); on a GPU an op without a deterministic kernel then raises, in
       which case pass ``deterministic=False`` in a fresh process;
    4. `model.build_model`, compiled by `compile_model`; fit on `BalancedSignBatches` (fed ahead of
       the step by `batch_dataset`), validating on the held-out participants every epoch; "cosine"
       adds the per-epoch learning-rate callback; `Progress` prints the measured time per step and
       the projected time of an epoch and of the run, and progress inside long epochs;
    5. after every epoch a `Checkpoint` in ``artifacts_dir/checkpoint/``; at the end ``model.keras``
       (best validation accuracy), ``history.csv``, ``stats.npz``, ``split.npz`` and, last,
       ``train_config.json`` (the run's manifest: `run_key` and its hash), all written atomically;
       returns the model with the best epoch's weights.

    The run's identity is `run_key`: preset, resolved settings (``epochs`` included), model
    options, seed, data (`data_fingerprint`), statistics and the two GPU options. With
    ``reuse=True`` (default) a finished run of the same identity in ``artifacts_dir`` is loaded
    instead of trained, and an interrupted one *continues* from its last finished epoch (weights,
    optimizer state, random generators, history, best epoch): the final weights are those of an
    uninterrupted run. ``restart=True`` (or ``reuse=False``) discards both and trains from scratch.
    A run of other settings in the folder is replaced, with a message saying what changed.
    ``artifacts_dir`` is locked while the run trains: a second run there stops at once with
    `runs.FolderInUseError`.

    GPU options, off by default (the seed's numbers are float32): ``mixed_precision=True`` trains
    the model under Keras' ``mixed_float16`` policy (float32 softmax output, attention and
    normalisation, loss scaling by Keras 3's LossScaleOptimizer; the global policy is restored
    afterwards) and saves the plain float32 model with the trained (float32 master) weights, so
    the file loads and exports as any other; ``jit_compile=True``
    compiles the train step with XLA, which does not run with op determinism (so the
    ``deterministic`` switch is ignored then, and a process where it is already on gets a clear
    error). ``verbose``: 0 silent, 1 or 2 one line per epoch;
    ``progress_every``: seconds between progress lines inside long epochs; ``callbacks``: extra
    Keras callbacks, run after the checkpoint.
    """
    cfg, options = resolve_settings(preset, epochs, **overrides)
    for name, value in (("reuse", reuse), ("restart", restart), ("mixed_precision", mixed_precision),
                        ("jit_compile", jit_compile), ("deterministic", deterministic)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name}={value!r} must be True or False")
    restart = bool(restart) or not reuse
    artifacts_dir = Path(artifacts_dir if artifacts_dir is not None else _config.DEFAULT_ARTIFACTS_DIR)
    paths = _artifact_paths(artifacts_dir)
    train_idx, val_idx, stats = _split_and_stats(prepared, stats, verbose)
    spec = run_key(prepared, preset, cfg, options, seed, stats, mixed_precision=bool(mixed_precision),
                   jit_compile=bool(jit_compile))
    with runs.FolderLock(artifacts_dir, what="this run"):
        if not restart:
            why = why_not_reusable(artifacts_dir, spec)
            if why is None:
                if verbose:
                    print(f"reusing the trained model in {show_path(paths['model'])} (same settings, seed, "
                          "data and statistics)")
                return load_trained(artifacts_dir)
            if verbose and paths["config"].exists():
                print(f"the run in {show_path(artifacts_dir)} is {why}: training anew")
        ckpt_dir = artifacts_dir / "checkpoint"
        if restart:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        paths["config"].unlink(missing_ok=True)       # a run that stops half-way must not look complete
        return _fit(prepared, preset, cfg, overrides, spec, seed, stats, train_idx, val_idx, paths, ckpt_dir,
                    deterministic, bool(mixed_precision), bool(jit_compile), verbose, progress_every,
                    list(callbacks))


def _build(preset, stats, overrides, cfg, mixed_precision, jit_compile):
    """Build and compile the model; under ``mixed_float16`` only while building (no policy leaks)."""
    from .model import build_model
    previous = keras.mixed_precision.global_policy()
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model(preset, stats, **overrides)
        compile_model(model, cfg, jit_compile=jit_compile)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return model


def _fit(prepared, preset, cfg, overrides, spec, seed, stats, train_idx, val_idx, paths, ckpt_dir,
         deterministic, mixed_precision, jit_compile, verbose, progress_every, extra_callbacks):
    X, idxs, y = prepared.X, prepared.idxs, np.asarray(prepared.y)
    pid = np.asarray(prepared.participant_id)
    keras.utils.set_random_seed(int(seed))
    if jit_compile:
        # Keras silently drops XLA when op determinism is on, and TensorFlow cannot switch it off
        from tensorflow.python.framework.config import is_op_determinism_enabled
        if is_op_determinism_enabled():
            raise RuntimeError("jit_compile=True: TensorFlow op determinism is on in this process (an "
                               "earlier deterministic training switched it on; it cannot be switched "
                               "off), and XLA does not run with it: train in a fresh process")
        if verbose and deterministic:
            print("XLA: TensorFlow op determinism stays off (XLA does not run with it)")
    elif deterministic:
        tf.config.experimental.enable_op_determinism()
    if verbose:
        held = np.unique(pid[val_idx]).tolist()
        print(f"{len(train_idx)} training clips ({np.unique(pid[train_idx]).size} participants, "
              f"{np.unique(y[train_idx]).size} signs), {len(val_idx)} validation clips "
              f"(participants {held})")
    model = _build(preset, stats, overrides, cfg, mixed_precision, jit_compile)
    sampler = BalancedSignBatches(X, idxs, y, n=cfg["batch_all_signs_n"], rows=train_idx, seed=int(seed),
                                  num_classes=cfg["num_classes"])
    n_epochs = int(cfg["epochs"])
    has_val = len(val_idx) > 0
    monitor = "val_acc" if has_val else "acc"

    state = _load_checkpoint(ckpt_dir, spec, verbose)
    initial_epoch, rows, best, best_epoch = 0, [], -np.inf, None
    if state is not None:
        _restore_variables(model, ckpt_dir / state["variables"])
        sampler.set_state(state["sampler"])
        initial_epoch, rows = int(state["epochs_done"]), state["history"]
        best, best_epoch = float(state["best"]), state["best_epoch"]
        if verbose:
            print(f"resuming the interrupted run from its checkpoint: {initial_epoch} of {n_epochs} epochs "
                  f"done ({show_path(ckpt_dir)}; restart=True starts over)")
    callbacks = []
    if cfg["schedule"] != "constant":
        lrs = lr_schedule(n_epochs, cfg["schedule"], cfg["learning_rate"])
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda e: float(lrs[e]), verbose=0))
    progress = Progress(sampler.steps_per_epoch, sampler.batch_size, n_epochs, initial_epoch,
                        every=progress_every, verbose=verbose)
    report = EpochReport(n_epochs, ckpt_dir / "history.csv", verbose=verbose, monitor=monitor, rows=rows,
                         best=best)
    checkpoint = Checkpoint(ckpt_dir, spec, report, sampler, has_val, best_epoch)
    callbacks += [progress, report, checkpoint, *extra_callbacks]
    val_data = None
    if has_val:
        val_data = ({"frames": X[val_idx], "non_empty_frame_idxs": idxs[val_idx]}, y[val_idx].astype(np.int32))
    if verbose:
        options = [name for name, on in (("mixed precision", mixed_precision), ("XLA", jit_compile)) if on]
        print(f"{n_epochs} epochs x {sampler.steps_per_epoch} steps of {sampler.batch_size} clips "
              f"({sampler.n} of each of {len(sampler.signs)} signs), schedule {cfg['schedule']}"
              + (f", {' and '.join(options)}" if options else ""))
    if initial_epoch < n_epochs:
        model.fit(batch_dataset(sampler), steps_per_epoch=sampler.steps_per_epoch, epochs=n_epochs,
                  initial_epoch=initial_epoch, validation_data=val_data, validation_batch_size=256,
                  callbacks=callbacks, shuffle=False, verbose=0)

    model.load_weights(checkpoint.best_path)          # the best epoch's weights
    if mixed_precision:
        # mixed precision keeps float32 master weights: the saved model is the plain float32 model
        # with them (it loads, predicts and exports as any other; float16 was for the train step)
        plain = _build(preset, stats, overrides, cfg, False, False)
        plain.set_weights(model.get_weights())
        plain.optimizer.build(plain.trainable_variables)
        model = plain
    history = pd.DataFrame(report.rows)
    train_seconds = float(history["seconds"].sum())
    best_epoch = int(checkpoint.best_epoch)
    if verbose:
        best_text = f", best val_acc {history['val_acc'].max():.3f} at epoch {best_epoch}" if has_val else ""
        print(f"trained in {train_seconds:.1f}s{best_text}; saved {show_path(paths['model'])}")

    with runs.atomic_path(paths["model"]) as tmp:
        model.save(tmp)
    runs.write_text(paths["history"], history.to_csv(index=False))
    with runs.atomic_path(paths["stats"]) as tmp:
        _stats_io().save_stats(stats, tmp)
    with runs.atomic_path(paths["split"]) as tmp, open(tmp, "wb") as f:
        np.savez(f, train_idx=train_idx, val_idx=val_idx, val_participants=np.unique(pid[val_idx]))
    runs.write_manifest(paths["config"], spec, overrides={k: overrides[k] for k in sorted(overrides)},
                        train_seconds=train_seconds, best_epoch=best_epoch, n_train=int(len(train_idx)),
                        n_val=int(len(val_idx)), resumed_from=initial_epoch)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return TrainResult(model=model, history=history, train_idx=train_idx, val_idx=val_idx, stats=stats,
                       config=cfg, preset=preset, seed=int(seed), paths=paths, train_seconds=train_seconds,
                       best_epoch=best_epoch, resumed_from=initial_epoch, spec=spec)


def _split_and_stats(prepared, stats=None, verbose: int = 1):
    """Participant split (or all clips for training when there is one participant) and training statistics."""
    y = np.asarray(prepared.y)
    pid = np.asarray(prepared.participant_id)
    n_participants = np.unique(pid).size
    if n_participants >= 2:
        train_idx, val_idx = split_by_participant(pid)
    else:
        train_idx, val_idx = np.arange(len(y), dtype=np.int64), np.zeros(0, dtype=np.int64)
        msg = (f"no validation split possible: all {len(y)} clips come from {n_participants} participant; "
               "training on all clips without validation, and the last epoch is kept")
        warnings.warn(msg, stacklevel=3)
        if verbose:
            print(msg)
    if stats is None:
        stats = _stats_io().compute_stats(prepared.X, rows=train_idx)   # no copy of the clips
    return train_idx, val_idx, stats


def resolve_settings(preset: str = "classroom", epochs: int | None = None, **overrides) -> tuple[dict, dict]:
    """(preset settings with overrides and ``epochs`` applied, model-only options) for `train`; checks them."""
    _config.check_choice("preset", preset, _config.PRESETS)
    # preset settings (model and training) go to get_preset; model-only options (e.g. attention_impl,
    # frame_drop_at_inference) only to build_model, which checks them
    cfg = _config.get_preset(preset, **{k: v for k, v in overrides.items() if k in _config.PRESETS[preset]})
    options = {k: v for k, v in sorted(overrides.items()) if k not in _config.PRESETS[preset]}
    if epochs is not None:
        cfg["epochs"] = epochs
    if not isinstance(cfg["epochs"], (int, np.integer)) or cfg["epochs"] < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {cfg['epochs']!r}")
    cfg["epochs"] = int(cfg["epochs"])
    _config.check_choice("schedule", cfg["schedule"], SCHEDULES)
    return cfg, options


def stats_fingerprint(stats) -> str:
    """Short hash of normalisation statistics (their float32 mean and std)."""
    h = hashlib.sha256()
    for name in ("mean", "std"):
        h.update(np.ascontiguousarray(np.asarray(stats[name], dtype=np.float32)).tobytes())
    return h.hexdigest()[:16]


TRAINING_VERSION = 2     # bump when a change of this module changes what a run produces


def run_key(prepared, preset: str, cfg: dict, options: dict, seed: int, stats,
            mixed_precision: bool = False, jit_compile: bool = False) -> dict:
    """What identifies a training run (its spec; `runs.key_of` hashes it): preset, resolved settings
    (``epochs`` included), model options, seed, data (`data_fingerprint`), statistics
    (`stats_fingerprint`), the GPU options and the version of the training code."""
    return runs.canonical({"preset": preset, "settings": cfg, "options": options, "seed": int(seed),
                           "data": data_fingerprint(prepared), "stats": stats_fingerprint(stats),
                           "execution": {"mixed_precision": bool(mixed_precision),
                                         "jit_compile": bool(jit_compile)},
                           "version": TRAINING_VERSION})


def why_not_reusable(artifacts_dir, spec: dict, ignore=()) -> str | None:
    """None when ``artifacts_dir`` holds a finished run made exactly as `spec` says; else the reason.

    The run's manifest is ``train_config.json``, written last; `ignore` lists top-level entries of
    the spec not to compare (e.g. ``("execution",)``: a chapter that only evaluates accepts a model
    trained with mixed precision or XLA).
    """
    paths = _artifact_paths(Path(artifacts_dir))
    missing = [p.name for p in paths.values() if not p.exists()]
    if missing:
        return f"not a finished run (missing {', '.join(missing)})"
    saved = runs.read_manifest(paths["config"])
    if saved is None or "spec" not in saved:
        return "a run of an older version of the package"
    if ignore:
        spec = {k: v for k, v in spec.items() if k not in ignore}
        saved_spec = {k: v for k, v in saved["spec"].items() if k not in ignore}
        changed = runs.differences(saved_spec, runs.canonical(spec))
        return None if not changed else "made from other inputs (" + "; ".join(changed) + ")"
    return runs.check_manifest(paths["config"], spec)


def load_trained(artifacts_dir) -> TrainResult:
    """Load what `train` saved in ``artifacts_dir`` (model, history, stats, split, settings); chapter 5.

    Takes a shared lock on the folder while reading, so it never reads a run being written.
    """
    artifacts_dir = Path(artifacts_dir)
    paths = _artifact_paths(artifacts_dir)
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{artifacts_dir}: no complete training run; missing {missing}")
    from .model import load_model
    with runs.FolderLock(artifacts_dir, shared=True, what="this chapter"):
        saved = json.loads(paths["config"].read_text())
        spec = saved.get("spec", saved)
        with np.load(paths["split"]) as split:
            train_idx, val_idx = split["train_idx"], split["val_idx"]
        return TrainResult(model=load_model(paths["model"]), history=pd.read_csv(paths["history"]),
                           train_idx=train_idx, val_idx=val_idx, stats=_stats_io().load_stats(paths["stats"]),
                           config=spec["settings"], preset=spec["preset"], seed=spec["seed"], paths=paths,
                           train_seconds=saved.get("train_seconds", float("nan")),
                           best_epoch=saved.get("best_epoch"), reused=True, spec=spec)


# --------------------------------------------------------------------------------------------------
# Masking comparison (chapter 3 explains the two masks; chapter 6 shows these numbers)
# --------------------------------------------------------------------------------------------------
def compare_masking(prepared, preset: str = "classroom", seed: int = 0, artifacts_dir=None,
                    epochs: int | None = None, stats=None, verbose: int = 1, **overrides) -> pd.DataFrame:
    """Train the preset with the seed's attention mask and with the key mask; held-out accuracy of each.

    Two trainings that differ only in ``attention_mask`` (same seed, split, statistics, batches and
    settings). A run already in ``artifacts_dir`` itself with exactly these settings (the chapter's
    main model) is used as it is; otherwise the variant is trained into
    ``<artifacts_dir>/masking/<mode>/`` and reused from there on later calls. Rows:

    * ``seed``, frame drop at inference on: the original (25% of frames dropped at random even when
      predicting, padded query rows masked instead of padded keys);
    * ``seed``, frame drop at inference off: the same weights, predictions made without the drop;
    * ``keys``: padded keys masked, frames dropped only in training.

    The random "seed"/drop-on row is predicted with the layers' random generators re-seeded with
    ``seed`` (`evaluation.predict`), so it is the same whether the models were just trained or
    reused from disk.
    Columns: attention_mask, frame_drop_at_inference, accuracy, top5, top10, macro_f1, n_val,
    train_seconds, best_epoch, epochs. The table is also written to
    ``<artifacts_dir>/masking/masking_comparison.csv``.
    """
    from . import evaluation
    from .model import frame_drop_at_inference

    if np.unique(np.asarray(prepared.participant_id)).size < 2:
        raise ValueError("compare_masking needs held-out participants: the data set has a single participant")
    artifacts_dir = Path(artifacts_dir if artifacts_dir is not None else _config.DEFAULT_ARTIFACTS_DIR)
    out_dir = artifacts_dir / "masking"
    overrides = {k: v for k, v in overrides.items() if k != "attention_mask"}
    _, _, stats = _split_and_stats(prepared, stats, verbose=0)
    rows = []
    for mode in ("seed", "keys"):
        cfg, options = resolve_settings(preset, epochs, attention_mask=mode, **overrides)
        res = None
        if why_not_reusable(artifacts_dir, run_key(prepared, preset, cfg, options, seed, stats)) is None:
            res = load_trained(artifacts_dir)
        if res is not None:
            if verbose:
                print(f"attention_mask={mode!r}: the trained model in {show_path(artifacts_dir)} "
                      "has these settings; using it")
        else:
            if verbose:
                print(f"--- attention_mask={mode!r}")
            res = train(prepared, preset, out_dir / mode, seed=seed, stats=stats, epochs=epochs, verbose=verbose,
                        reuse=True, attention_mask=mode, **overrides)
        X, idxs, y = prepared.X[res.val_idx], prepared.idxs[res.val_idx], np.asarray(prepared.y)[res.val_idx]
        for drop in ([True, False] if mode == "seed" else [False]):
            with frame_drop_at_inference(res.model, drop):
                m = evaluation.summary_metrics(y, evaluation.predict(res.model, X, idxs, seed=seed))
            rows.append({"attention_mask": mode, "frame_drop_at_inference": drop,
                         **{k: m[k] for k in ("accuracy", "top5", "top10", "macro_f1", "n_val")},
                         "train_seconds": res.train_seconds, "best_epoch": res.best_epoch,
                         "epochs": int(res.config["epochs"])})
    table = pd.DataFrame(rows)
    runs.write_text(out_dir / "masking_comparison.csv", table.to_csv(index=False))
    return table
