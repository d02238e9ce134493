"""Training the GISLR transformer: participant split, balanced batches, loss, optimizer, `fit`.

Chapter 4 shows the method of this module as code (`split_rows`, `BalancedSignBatches`,
`compile_model`, `fit`) and calls `train`, which adds what a long run needs: a run folder, a
manifest, a lock, a checkpoint after every epoch (resume), progress lines.

What is reproduced from the seed report (Wijkhuizen's notebook as the course report runs it):

* held-out *participants*: ``GroupShuffleSplit(n_splits=1, test_size=0.10, random_state=42)``,
  which the seed imports from the Kaggle notebook; scored once, with the final model;
* batches of ``n`` clips of every sign (``get_train_batch_all_signs``), ``len(train) // batch`` steps;
* categorical cross-entropy with label smoothing 0.25 (the seed's ``scce_with_ls``: one-hot labels);
* AdamW with clipnorm 1.0; top-1/5/10 accuracy ("acc", "top_5_acc", "top_10_acc");
* the seed's ``model.fit`` passes no callbacks: constant learning rate 1e-3 and weight decay 1e-5
  (schedule "constant"); the Kaggle notebook's per-epoch cosine decay with weight decay
  ``0.05 x lr`` is schedule "cosine".

Weight decay, Keras 3 versus tensorflow-addons: the seed used ``tfa.optimizers.AdamW``, whose decoupled
weight decay shrinks every weight by ``weight_decay`` per step, independent of the learning rate. Keras
3's ``AdamW`` multiplies it by the learning rate (``w -= wd * lr * w``), and its ``weight_decay`` is a
Python float baked into the compiled train step. `keras_weight_decay` converts the seed's meaning:
``1e-5 / 1e-3 = 0.01`` for "constant" and ``wd_ratio = 0.05`` for "cosine" (``0.05 * lr / lr``), so
the per-step decay is exactly the seed's.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from . import runs, statistics
from ._tf import keras, tf
from .config import RunConfig, show_path
from .model import build_model, load_model

METRIC_NAMES = ("acc", "top_5_acc", "top_10_acc")
TRAINING_VERSION = 3     # bump when a change of this module changes what a run produces
STRATEGIES = ("auto", "one", "mirrored", "tpu")


# --------------------------------------------------------------------------------------------------
# The method (chapter 4 shows these as code)
# --------------------------------------------------------------------------------------------------
def split_by_participant(participant_id, test_size=0.10, seed=42):
    """Rows (first, second) with whole participants in the second (chapter 4).

    ``GroupShuffleSplit(test_size=0.10, random_state=42)`` with the participant as group, as
    the Kaggle notebook: on the 21 real participants it holds out ``ceil(2.1) = 3``.
    """
    groups = np.asarray(participant_id)
    if np.unique(groups).size < 2:
        raise ValueError(
            f"cannot hold out participants: all {groups.size} clips come "
            f"from participant(s) {np.unique(groups).tolist()}; at least 2 "
            "are needed")
    gss = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    first, second = next(gss.split(groups, groups=groups))
    return np.sort(first), np.sort(second)


def split_rows(prepared, cfg: RunConfig) -> dict[str, np.ndarray]:
    """Row indices of the training, validation and test clips of a run (chapter 4).

    Test: the held-out participants (`split_by_participant`), scored once at the end. Validation
    (``cfg.validation_split > 0``): participants carved from the *training* participants, so
    the test participants choose nothing. ``handless_clips="drop"`` leaves out clips with no hand
    in any frame. With a single participant there is nothing to hold out: every clip trains.
    """
    pid = np.asarray(prepared.participant_id)
    rows = np.arange(pid.size)
    if cfg.handless_clips == "drop":
        rows = rows[np.asarray(prepared.has_hand)]
    split = {"train": rows, "validation": rows[:0], "test": rows[:0]}
    if np.unique(pid[rows]).size >= 2:
        keep, test = split_by_participant(pid[rows])
        split["train"], split["test"] = rows[keep], rows[test]
    train = split["train"]
    if cfg.validation_split > 0 and np.unique(pid[train]).size >= 2:
        keep, val = split_by_participant(pid[train], cfg.validation_split)
        split["train"], split["validation"] = train[keep], train[val]
    return split


class BalancedSignBatches:
    """Batches of ``n`` clips of every sign: the seed's ``get_train_batch_all_signs`` (chapter 4).

    Batch number ``step`` holds ``n`` clips of each sign present in ``y[rows]``, in sign order,
    drawn with replacement by ``numpy.random.default_rng([seed, step])``: a batch depends only on
    the seed and its number, so a resumed run, or one on several devices, draws the same batches.
    Labels are one-hot over ``num_classes``. An epoch is ``len(rows) // batch_size`` steps, as the
    seed's fit call.
    """

    def __init__(self, X, idxs, y, n=4, rows=None, seed=0, num_classes=250):
        y = np.asarray(y)
        if not len(X) == len(idxs) == len(y):
            raise ValueError(f"X ({len(X)}), idxs ({len(idxs)}) and y "
                             f"({len(y)}) must have the same length")
        rows = np.arange(len(y)) if rows is None else np.asarray(rows)
        if rows.size == 0:
            raise ValueError("no training clips to sample from (rows is empty)")
        if int(n) < 1:
            raise ValueError(f"n (clips per sign and batch) must be >= 1, "
                             f"got {n}")
        labels = y[rows]
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}); "
                             f"got {labels.min()}..{labels.max()}")
        self.X, self.idxs, self.n, self.seed = X, idxs, int(n), seed
        self.signs = np.unique(labels)
        self.rows_of_sign = [rows[labels == s] for s in self.signs]
        self.batch_size = len(self.signs) * self.n
        self.steps_per_epoch = max(1, len(rows) // self.batch_size)
        labels = np.repeat(self.signs, self.n)
        self.onehot = np.eye(num_classes, dtype=np.float32)[labels]

    def sample_rows(self, step: int) -> np.ndarray:
        """Row indices of batch number `step`: ``n`` draws from each sign."""
        rng = np.random.default_rng([self.seed, step])
        return np.concatenate([rng.choice(rows, self.n)
                               for rows in self.rows_of_sign])

    def batch(self, step: int):
        """``(inputs, one-hot labels)`` of batch number `step`."""
        rows = self.sample_rows(step)
        frames = np.asarray(self.X[rows], np.float32)
        idxs = np.asarray(self.idxs[rows], np.float32)
        inputs = {"frames": frames, "non_empty_frame_idxs": idxs}
        # a fresh label array each time: TensorFlow may reuse its memory
        return inputs, self.onehot.copy()


def batch_dataset(batches: BalancedSignBatches, first_step: int = 0):
    """The sampler's batches from number `first_step` on, as a ``tf.data.Dataset`` gathered one
    step ahead of the training step (``prefetch``). Batch k is ``batches.batch(k)`` whoever reads
    the data set: one device, or several that each take their share of every batch."""
    T, C, D = np.shape(batches.X)[1:]
    B, K = batches.onehot.shape

    def load(step):
        inputs, labels = batches.batch(int(step))
        return inputs["frames"], inputs["non_empty_frame_idxs"], labels

    def to_batch(step):
        frames, idxs, labels = tf.numpy_function(load, [step], (tf.float32,) * 3)
        inputs = {"frames": tf.ensure_shape(frames, [B, T, C, D]),
                  "non_empty_frame_idxs": tf.ensure_shape(idxs, [B, T])}
        return inputs, tf.ensure_shape(labels, [B, K])
    steps = tf.data.Dataset.range(first_step, np.iinfo(np.int64).max)
    return steps.map(to_batch).prefetch(2)


def learning_rates(cfg: RunConfig) -> np.ndarray:
    """Learning rate of each epoch: constant (the seed) or the Kaggle notebook's cosine decay
    ``0.5 * (1 + cos(pi * epoch / epochs)) * learning_rate`` (no warm-up)."""
    epoch = np.arange(cfg.epochs)
    if cfg.schedule == "constant":
        return np.full(cfg.epochs, cfg.learning_rate)
    return 0.5 * (1 + np.cos(np.pi * epoch / cfg.epochs)) * cfg.learning_rate


def weight_decays(cfg: RunConfig) -> np.ndarray:
    """Decoupled weight decay per step of each epoch, in the seed's (tensorflow-addons) meaning:
    ``weight_decay`` ("constant") or ``wd_ratio * lr`` of the epoch ("cosine")."""
    if cfg.schedule == "constant":
        return np.full(cfg.epochs, cfg.weight_decay)
    return cfg.wd_ratio * learning_rates(cfg)


def keras_weight_decay(cfg: RunConfig) -> float:
    """Keras 3 AdamW's ``weight_decay`` whose ``wd * lr`` is the seed's per-step decay."""
    if cfg.schedule == "constant":
        return cfg.weight_decay / cfg.learning_rate
    return cfg.wd_ratio


class AdamWAcrossReplicas(keras.optimizers.AdamW):
    """Keras 3's AdamW whose ``clipnorm`` clips as on one device when several devices train.

    Under ``tf.distribute`` (chapter 4's GPU section) Keras 3.15 clips each replica's share of the
    gradient before the shares are summed: not the clipping of one device (measured: weights 1e-4
    apart after three steps). Here the summed gradients are clipped (TensorFlow backend: right after
    Keras' all-reduce). `compile_model` uses it when a run has several replicas; the saved model
    gets Keras' own AdamW (`train`).
    """

    def _clip_gradients(self, grads):
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            return grads                     # clipped once summed, below
        return super()._clip_gradients(grads)

    def _all_reduce_sum_gradients(self, grads_and_vars):
        pairs = super()._all_reduce_sum_gradients(grads_and_vars)
        if tf.distribute.get_strategy().num_replicas_in_sync == 1:
            return pairs
        grads = super()._clip_gradients([g for g, _ in pairs])
        return list(zip(grads, [v for _, v in pairs]))


def compile_model(model, cfg: RunConfig, replicas=1):
    """Compile with the seed's loss, optimizer and metrics (chapter 4)."""
    AdamW = keras.optimizers.AdamW if replicas == 1 else AdamWAcrossReplicas
    optimizer = AdamW(
        learning_rate=learning_rates(cfg)[0],
        weight_decay=keras_weight_decay(cfg),
        clipnorm=cfg.clipnorm)
    loss = keras.losses.CategoricalCrossentropy(
        label_smoothing=cfg.label_smoothing)
    metrics = [keras.metrics.CategoricalAccuracy(name="acc"),
               keras.metrics.TopKCategoricalAccuracy(5, name="top_5_acc"),
               keras.metrics.TopKCategoricalAccuracy(10, name="top_10_acc")]
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics,
                  jit_compile=cfg.jit_compile)
    return model


def fit(model, batches, cfg: RunConfig, validation=None, callbacks=(),
        initial_epoch=0):
    """Fit on the balanced batches, one learning rate per epoch (chapter 4).

    `validation`: ``(inputs, one-hot labels)`` scored after every epoch, or None.
    """
    callbacks = list(callbacks)
    if cfg.schedule != "constant":
        rates = learning_rates(cfg)
        callbacks.insert(0, keras.callbacks.LearningRateScheduler(
            lambda epoch: float(rates[epoch])))
    first_step = initial_epoch * batches.steps_per_epoch
    return model.fit(batch_dataset(batches, first_step),
                     steps_per_epoch=batches.steps_per_epoch,
                     epochs=cfg.epochs, initial_epoch=initial_epoch,
                     validation_data=validation, callbacks=callbacks,
                     shuffle=False, verbose=0)   # the batches' own order


# --------------------------------------------------------------------------------------------------
# Devices (chapter 4's GPU section)
# --------------------------------------------------------------------------------------------------
def get_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy: "one" (the default, one device), "mirrored" (all visible GPUs,
    or the CPU's logical devices: ``GISLR_CPU_REPLICAS``), "tpu", or "auto" (a TPU when one is
    attached, all GPUs when there are several, else one device). RuntimeError when "tpu" is asked
    for and none is attached."""
    gpus = tf.config.list_logical_devices("GPU")
    tpu_hint = os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR")
    if name == "tpu" or (name == "auto" and (tpu_hint or tf.config.list_logical_devices("TPU"))):
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver.connect(tpu=tpu_hint or "local")
        except (ValueError, RuntimeError, tf.errors.OpError) as err:
            raise RuntimeError(f"strategy='tpu': no TPU is attached ({err}); use 'auto' or 'one'") from None
        return tf.distribute.TPUStrategy(resolver)
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


# --------------------------------------------------------------------------------------------------
# Epoch lines, progress, checkpoints (the machinery of a long run)
# --------------------------------------------------------------------------------------------------
def format_duration(seconds: float) -> str:
    """``42 s``, ``3 min 20 s``, ``2 h 05 min``."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def format_epoch_line(row: dict, epochs: int) -> str:
    """``epoch  3/20  loss 3.123 acc 0.512 | val loss 3.201 acc 0.480 | lr 9.8e-04 4.1s`` (top-5 and
    top-10 accuracy are in the history and its figure: the line fits a page)."""
    parts = [f"epoch {int(row['epoch']):>{len(str(epochs))}}/{epochs} "]
    for prefix, label in (("", ""), ("val_", "| val ")):
        if f"{prefix}loss" in row and row[f"{prefix}loss"] == row[f"{prefix}loss"]:
            parts.append(f"{label}loss {row[prefix + 'loss']:.3f} acc {row[prefix + 'acc']:.3f}")
    parts.append(f"| lr {row['learning_rate']:.1e} {row['seconds']:.1f}s")
    return " ".join(parts)


class EpochLog(keras.callbacks.Callback):
    """One line per epoch (no progress bars on the pages); keeps the history rows."""

    def __init__(self, epochs: int, verbose: int, rows=()):
        super().__init__()
        self.epochs, self.verbose, self.rows = epochs, verbose, list(rows)

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        opt = self.model.optimizer
        lr = float(keras.ops.convert_to_numpy(getattr(opt, "inner_optimizer", opt).learning_rate))
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"},
               "learning_rate": lr, "seconds": time.perf_counter() - self._t0}
        self.rows.append(row)
        if self.verbose:
            print(format_epoch_line(row, self.epochs), flush=True)


class Progress(keras.callbacks.Callback):
    """After ``warmup`` steps, times ``measure`` steps and prints the time per step and the projected
    time of an epoch and of the run; in epochs longer than ``every`` seconds, a line every ``every``
    seconds (step, samples/s, time left). Stdout only."""

    def __init__(self, steps, batch_size, epochs, initial_epoch=0, every=30.0, warmup=2, measure=3,
                 verbose=1):
        super().__init__()
        self.steps, self.batch_size, self.left = steps, batch_size, epochs - initial_epoch
        self.every, self.warmup, self.measure, self.verbose = every, warmup, measure, verbose
        self.all_epochs = initial_epoch == 0
        self.seconds_per_step, self._ends = None, []

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._start = epoch, time.perf_counter()
        self._last = self._start

    def on_train_batch_end(self, batch, logs=None):
        if self.seconds_per_step is None and len(self._ends) + 1 in (self.warmup, self.warmup + self.measure):
            float((logs or {}).get("loss", 0.0))       # wait for the device to finish the step
        now = time.perf_counter()
        if self.seconds_per_step is None:
            self._ends.append(now)
            if len(self._ends) == self.warmup + self.measure:
                self.seconds_per_step = (now - self._ends[self.warmup - 1]) / self.measure
                if self.verbose:
                    print(self.projection(), flush=True)
        step = batch + 1
        if (self.verbose and self.seconds_per_step and step < self.steps and now - self._last >= self.every
                and self.seconds_per_step * self.steps > self.every):
            self._last, done = now, now - self._start
            print(f"  epoch {self._epoch + 1}: step {step}/{self.steps}, "
                  f"{step * self.batch_size / done:,.0f} samples/s, "
                  f"{format_duration((self.steps - step) * done / step)} left in this epoch", flush=True)

    def projection(self) -> str:
        """One line: measured time per step, projected time per epoch and for the run."""
        t, left = self.seconds_per_step, self.left
        return (f"measured {t:.3g} s a step ({self.batch_size / t:,.0f} samples/s) after "
                f"{self.warmup} warm-up steps:\n  about {format_duration(t * self.steps)} an epoch "
                f"of {self.steps} steps, {format_duration(t * self.steps * left)} for "
                f"{'the' if self.all_epochs else 'the remaining'} {left} "
                f"epoch{'s' if left != 1 else ''} (without validation)")


class Checkpoint(keras.callbacks.Callback):
    """Everything needed to continue a run, written atomically at the end of every epoch.

    ``checkpoint/epoch-<k>.npz`` (all model variables, the random generators of dropout and frame
    drop included, and all optimizer variables), ``best.weights.h5`` (``epoch_selection="best"``),
    and, last, ``state.json`` (the run's key, finished epochs, history, the best epoch). `train`
    resumes from it (the batches depend only on their number: `BalancedSignBatches`).
    """

    def __init__(self, folder, key, log, best=None):
        super().__init__()
        self.folder, self.key, self.log = Path(folder), key, log
        self.best = best or {"value": -np.inf, "epoch": None}

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        value = (logs or {}).get("val_acc")
        if value is not None and value > self.best["value"]:
            self.best = {"value": float(value), "epoch": epoch + 1}
            with runs.atomic_path(self.folder / "best.weights.h5") as tmp:
                self.model.save_weights(tmp)
        name = f"epoch-{epoch + 1:04d}.npz"
        variables = [*self.model.variables, *self.model.optimizer.variables]
        with runs.atomic_path(self.folder / name) as tmp, open(tmp, "wb") as f:
            np.savez(f, *[keras.ops.convert_to_numpy(v) for v in variables])
        state = {"key": self.key, "epochs_done": epoch + 1, "variables": name, "best": self.best,
                 "history": self.log.rows}
        runs.write_text(self.folder / "state.json", json.dumps(runs.canonical(state)))
        for old in self.folder.glob("epoch-*.npz"):
            if old.name != name:
                old.unlink(missing_ok=True)


def _restore(model, path: Path) -> None:
    model.optimizer.build(model.trainable_variables)
    variables = [*model.variables, *model.optimizer.variables]
    with np.load(path) as data:
        if len(data.files) != len(variables):
            raise ValueError(f"{path}: {len(data.files)} saved variables, the model has {len(variables)}")
        for i, v in enumerate(variables):
            v.assign(data[f"arr_{i}"])


# --------------------------------------------------------------------------------------------------
# A run: train, save, reuse, resume
# --------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What `train` returns: the kept model and what is needed to evaluate it (chapter 4)."""
    model: keras.Model
    history: pd.DataFrame
    rows: dict
    stats: dict
    cfg: RunConfig
    run_dir: Path
    train_seconds: float = float("nan")
    kept_epoch: int | None = None
    resumed_from: int = 0
    reused: bool = False
    spec: dict = field(default_factory=dict)


RUN_FILES = ("model.keras", "history.csv", "stats.npz", "split.npz", "train_config.json")


def run_spec(prepared, cfg: RunConfig, stats) -> dict:
    """What identifies a run: its settings, the data set's key, the statistics, the code version."""
    return runs.canonical({"settings": cfg.as_dict(), "data": prepared.key,
                           "stats": statistics.fingerprint(stats), "version": TRAINING_VERSION})


def why_not_reusable(run_dir, spec: dict) -> str | None:
    """None when `run_dir` holds a finished run made exactly as `spec` says; else the reason."""
    run_dir = Path(run_dir)
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        return f"not a finished run (missing {', '.join(missing)})"
    return runs.check_manifest(run_dir / "train_config.json", spec)


def load_trained(run_dir) -> TrainResult:
    """Load what `train` saved in `run_dir` (model, history, statistics, split, settings); a damaged
    file raises `runs.ArtefactError` naming it."""
    run_dir = Path(run_dir)
    manifest = runs.read_manifest(run_dir / "train_config.json")
    if manifest is None or "spec" not in manifest:
        raise runs.ArtefactError(f"{run_dir / 'train_config.json'}: missing, empty or unreadable")

    def read(name, loader):
        try:
            return loader(run_dir / name)
        except Exception as err:  # noqa: BLE001 - any reader's failure: the file is damaged
            raise runs.ArtefactError(f"{run_dir / name}: damaged or unreadable ({err})") from err
    split = read("split.npz", lambda p: dict(np.load(p)))
    return TrainResult(model=read("model.keras", load_model), history=read("history.csv", pd.read_csv),
                       rows={k: split[k] for k in ("train", "validation", "test")},
                       stats=read("stats.npz", statistics.load_stats),
                       cfg=RunConfig(**manifest["spec"]["settings"]), run_dir=run_dir,
                       train_seconds=manifest.get("train_seconds", float("nan")),
                       kept_epoch=manifest.get("kept_epoch"), reused=True, spec=manifest["spec"])


def train(prepared, cfg: RunConfig, run_dir, stats=None, restart=False, strategy="one", verbose=1,
          progress_every=30.0, callbacks=()) -> TrainResult:
    """Train a run into `run_dir`: the method of chapter 4 plus what a long run needs.

    1. `split_rows`; statistics of the *training* rows (`statistics.compute_stats`) unless given;
    2. ``keras.utils.set_random_seed(cfg.seed)`` and TensorFlow op determinism (not with XLA), so
       one seed gives identical weights on CPU;
    3. `build_model` and `compile_model` in the `get_strategy` scope (batches keep their global
       size, split across replicas), `fit` on `BalancedSignBatches`, validating on the validation
       rows when there are any; `Progress` prints the projected times, `EpochLog` one line an epoch;
    4. a `Checkpoint` after every epoch: a rerun continues from the last finished epoch with the
       weights an uninterrupted run would have; ``restart=True`` starts over;
    5. the model kept (the final epoch, or the best validation epoch), ``history.csv``,
       ``stats.npz``, ``split.npz`` and, last, ``train_config.json`` (the manifest: `run_spec`),
       all written atomically. A finished run of the same spec is loaded instead of trained.

    `run_dir` is locked while the run trains: a second run there stops with `runs.FolderInUseError`.
    """
    run_dir = Path(run_dir)
    rows = split_rows(prepared, cfg)
    if not rows["test"].size and verbose:
        print(f"a single participant: all {rows['train'].size} clips train, no held-out participants")
    stats = statistics.compute_stats(prepared.X, rows=rows["train"]) if stats is None else stats
    spec = run_spec(prepared, cfg, stats)
    with runs.FolderLock(run_dir, what="this run"):
        if not restart:
            why = why_not_reusable(run_dir, spec)
            if why is None:
                try:
                    result = load_trained(run_dir)
                except runs.ArtefactError as err:       # a damaged file: train the run again
                    why = f"damaged: {err}"
            if why is None:
                if verbose:
                    print(f"reusing the finished run in {show_path(run_dir)}\n(same settings, data and "
                          f"statistics); its {len(result.history)} epochs:")
                    for row in result.history.to_dict("records"):
                        print(format_epoch_line(row, cfg.epochs))
                return result
            if verbose and (run_dir / "train_config.json").exists():
                print(f"the run in {show_path(run_dir)} is {why}: training anew")
        if restart:
            shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)
        (run_dir / "train_config.json").unlink(missing_ok=True)   # not finished until written again
        return _train(prepared, cfg, run_dir, stats, rows, spec, strategy, verbose, progress_every,
                      list(callbacks))


def build_compiled(cfg: RunConfig, stats=None, strategy="one"):
    """The run's model, built and compiled as `train` does: seeded (``cfg.seed``), TensorFlow op
    determinism on (not with XLA), in the `get_strategy` scope and, with ``cfg.mixed_precision``,
    under Keras' ``mixed_float16`` policy (restored afterwards). Returns ``(model, strategy)``;
    `train` and ``benchmarks/train_step.py`` use it."""
    keras.utils.set_random_seed(cfg.seed)
    if cfg.jit_compile:
        from tensorflow.python.framework.config import is_op_determinism_enabled
        if is_op_determinism_enabled():
            raise RuntimeError("jit_compile=True: TensorFlow op determinism is on in this process (an earlier "
                               "training switched it on; it cannot be switched off) and XLA does not run "
                               "with it: train in a fresh process")
    else:
        tf.config.experimental.enable_op_determinism()
    distribution = get_strategy(strategy)
    previous = keras.mixed_precision.global_policy()
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with distribution.scope():
            model = compile_model(build_model(cfg, stats), cfg, distribution.num_replicas_in_sync)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return model, distribution


def _train(prepared, cfg, run_dir, stats, rows, spec, strategy, verbose, progress_every, extra):
    model, distribution = build_compiled(cfg, stats, strategy)
    replicas = distribution.num_replicas_in_sync
    X, idxs, y = prepared.X, prepared.idxs, np.asarray(prepared.y)
    batches = BalancedSignBatches(X, idxs, y, cfg.batch_all_signs_n, rows["train"], cfg.seed, cfg.num_classes)
    ckpt = run_dir / "checkpoint"
    key = runs.key_of(spec)
    state = runs.read_manifest(ckpt / "state.json")
    if state is not None and (state.get("key") != key or not (ckpt / state["variables"]).is_file()):
        if verbose:
            print(f"the checkpoint in {show_path(ckpt)} belongs to other settings: starting over")
        state = None
    initial = 0
    if state is not None:
        with distribution.scope():
            _restore(model, ckpt / state["variables"])
        initial = int(state["epochs_done"])
        if verbose:
            print(f"resuming the interrupted run: {initial} of {cfg.epochs} epochs done "
                  f"({show_path(ckpt)}; restart=True starts over)")
    log = EpochLog(cfg.epochs, verbose, state["history"] if state else ())
    checkpoint = Checkpoint(ckpt, key, log, state["best"] if state else None)
    progress = Progress(batches.steps_per_epoch, batches.batch_size, cfg.epochs, initial,
                        every=progress_every, verbose=verbose)
    val = rows["validation"]
    validation = None
    if val.size:
        validation = ({"frames": X[val], "non_empty_frame_idxs": idxs[val]},
                      np.eye(cfg.num_classes, dtype=np.float32)[y[val]])
    if verbose:
        print(f"{len(rows['train'])} training clips, {len(val)} validation clips, {len(rows['test'])} "
              f"held-out test clips;\n{cfg.epochs} epochs x {batches.steps_per_epoch} steps of "
              f"{batches.batch_size} clips ({batches.n} of each of {len(batches.signs)} signs)"
              + (f"; {replicas} replicas" if replicas > 1 else ""))
    if initial < cfg.epochs:
        fit(model, batches, cfg, validation, [progress, log, checkpoint, *extra], initial)
    kept = cfg.epochs
    if cfg.epoch_selection == "best" and checkpoint.best["epoch"] is not None:
        kept = checkpoint.best["epoch"]
        model.load_weights(ckpt / "best.weights.h5")
    if cfg.mixed_precision or replicas > 1:   # save a plain float32 model on one device
        plain = compile_model(build_model(cfg, stats), cfg)
        plain.set_weights(model.get_weights())
        plain.optimizer.build(plain.trainable_variables)
        model = plain
    history = pd.DataFrame(log.rows)
    seconds = float(history["seconds"].sum())
    if verbose:
        print(f"trained in {format_duration(seconds)}; kept epoch {kept} ({cfg.epoch_selection})\n"
              f"saved {show_path(run_dir / 'model.keras')}")
    with runs.atomic_path(run_dir / "model.keras") as tmp:
        model.save(tmp)
    runs.write_text(run_dir / "history.csv", history.to_csv(index=False))
    with runs.atomic_path(run_dir / "stats.npz") as tmp:
        statistics.save_stats(stats, tmp)
    with runs.atomic_path(run_dir / "split.npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **rows)
    runs.write_manifest(run_dir / "train_config.json", spec, train_seconds=seconds, kept_epoch=kept,
                        resumed_from=initial)
    shutil.rmtree(ckpt, ignore_errors=True)
    return TrainResult(model=model, history=history, rows=rows, stats=stats, cfg=cfg, run_dir=run_dir,
                       train_seconds=seconds, kept_epoch=kept, resumed_from=initial, spec=spec)

