"""Training the GISLR transformer: participant split, balanced batches, loss, optimizer (chapter 4).

Chapter 4's cells hold the recipe (exported to `recipe.train_run`): seed, statistics of the
training clips, `model.build_model`, `compile_model`, ``fit`` with Keras' own callbacks
(``BackupAndRestore``, ``CSVLogger``, ``TerminateOnNaN``) and the two small ones below, the save.
This module holds the pieces the recipe calls.

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
3's ``AdamW`` multiplies it by the learning rate (``w -= wd * lr * w``). `keras_weight_decay` converts
the seed's meaning: ``1e-5 / 1e-3 = 0.01`` for "constant" and ``wd_ratio = 0.05`` for "cosine"
(``0.05 * lr / lr``), so the per-step decay is exactly the seed's.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from . import augment, runs, statistics
from ._tf import keras, tf
from .config import ParameterError, RunConfig, show_path
from .model import build_model, reseed_random_layers

VERSION = 4           # bump when a change of the recipe or this module changes what a run produces
STRATEGIES = ("auto", "one", "mirrored", "tpu")
RUN_FILES = ("model.weights.h5", "stats.npz", "split.npz", "history.csv")


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


class BalancedSignBatches(keras.utils.PyDataset):
    """One epoch of batches of ``n`` clips of every sign, the seed's ``get_train_batch_all_signs``
    (chapter 4), as a Keras ``PyDataset``.

    Batch ``step`` of epoch ``epoch`` holds ``n = cfg.batch_all_signs_n`` clips of each sign of
    ``y[rows]``, in sign order, drawn with replacement by ``numpy.random.default_rng([seed,
    epoch, step])``: it depends only on the seed, the epoch and its number, so a resumed run,
    or one on several devices, draws the same batches (`EpochSeed` sets ``epoch``). Labels are
    one-hot over ``cfg.num_classes``. An epoch is ``len(rows) // batch_size`` steps, as the
    seed's fit call. With ``cfg.augmentation`` (chapter 7), each batch is augmented by
    `augment.augment_batch` (the winners' probabilities, `augment.PROBABILITIES`), drawn from
    ``(seed, epoch, step)`` too: training batches only.
    """

    def __init__(self, prepared, rows, cfg: RunConfig):
        super().__init__()
        y, rows = np.asarray(prepared.y), np.asarray(rows)
        if rows.size == 0:
            raise ValueError("no training clips to sample from (rows is empty)")
        labels = y[rows]
        if labels.min() < 0 or labels.max() >= cfg.num_classes:
            raise ValueError(f"labels must lie in [0, {cfg.num_classes}); "
                             f"got {labels.min()}..{labels.max()}")
        self.X, self.idxs, self.y = prepared.X, prepared.idxs, y
        self.n, self.seed = cfg.batch_all_signs_n, cfg.seed
        self.signs = np.unique(labels)
        self.rows_of_sign = [rows[labels == s] for s in self.signs]
        self.batch_size = len(self.signs) * self.n
        self.steps_per_epoch = max(1, len(rows) // self.batch_size)
        eye = np.eye(cfg.num_classes, dtype=np.float32)
        self.onehot = eye[np.repeat(self.signs, self.n)]
        self.epoch, self.augmentation = 0, cfg.augmentation

    def __len__(self):
        return self.steps_per_epoch

    def sample_rows(self, epoch: int, step: int) -> np.ndarray:
        """Row indices of batch `step` of `epoch`: ``n`` draws from each sign."""
        rng = np.random.default_rng([self.seed, epoch, step])
        return np.concatenate([rng.choice(rows, self.n)
                               for rows in self.rows_of_sign])

    def __getitem__(self, step):
        rows = self.sample_rows(self.epoch, step)
        frames = np.asarray(self.X[rows], np.float32)
        idxs = np.asarray(self.idxs[rows], np.float32)
        if self.augmentation:            # chapter 7: training batches only
            rng = np.random.default_rng([self.seed, self.epoch, step, 1])
            frames, idxs = augment.augment_batch(frames, idxs, rng,
                                                 augment.PROBABILITIES)
        inputs = {"frames": frames, "non_empty_frame_idxs": idxs}
        return inputs, self.onehot.copy()  # new: TF may reuse its memory


class EpochSeed(keras.callbacks.Callback):
    """At the start of epoch ``e``: the batches of epoch ``e`` and new states of the model's random
    generators (dropout, frame drop), all drawn from ``(seed, e)`` (chapter 4).

    So an epoch's batches and random draws do not depend on what ran before it, and a run resumed
    by ``BackupAndRestore`` (which restores weights and optimizer, not the generators) continues
    with exactly the numbers of an uninterrupted run. It also checks that the optimizer has taken
    ``e`` epochs of steps: a backup whose weights and epoch disagree is an error, not a silently
    different run.
    """

    def __init__(self, batches: BalancedSignBatches, seed: int):
        super().__init__()
        self.batches, self.seed = batches, seed

    def on_epoch_begin(self, epoch, logs=None):
        done = keras.ops.convert_to_numpy(self.model.optimizer.iterations)
        if done != epoch * len(self.batches):
            raise runs.ArtefactError(
                f"the backup restored {done} optimizer steps for epoch "
                f"{epoch + 1}, not {epoch * len(self.batches)}: restart=True "
                "starts over")
        self.batches.epoch = epoch
        reseed_random_layers(self.model, [self.seed, epoch])


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

    Under ``tf.distribute`` Keras 3.15 clips each replica's share of the gradient before the shares
    are summed: not the clipping of one device (measured: weights 1e-4 apart after three steps).
    Here the summed gradients are clipped, right after Keras' all-reduce. `compile_model` uses it
    only when a run has several replicas (chapter 4's GPU section).
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


def compile_model(model, cfg: RunConfig):
    """Compile with the seed's loss, optimizer and metrics (chapter 4); returns the model."""
    several = tf.distribute.get_strategy().num_replicas_in_sync > 1
    AdamW = AdamWAcrossReplicas if several else keras.optimizers.AdamW
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
    optimizer.build(model.trainable_variables)  # now: fit traces its step once
    return model


_COMPILED: dict = {}          # compile_model's models of this process, by what their step depends on


def compiled(net, cfg: RunConfig):
    """`compile_model(net, cfg)`; or, when this process compiled a model of the same layers and
    training settings before (another seed of the comparisons of chapters 6 and 7), that model
    with `net`'s weights and its optimizer as new: Keras then does not trace (and XLA compile)
    its training step again, which takes seconds a run. The run is the same, bit for bit."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1 and cfg.jit_compile and not tf.config.list_logical_devices("GPU"):
        raise ParameterError("jit_compile=True does not run on several CPU devices (XLA); set jit_compile=False")
    key = runs.key_of({"layers": [layer.get_config() for layer in net.layers],
                       "settings": {**cfg.as_dict(), "seed": 0, "epochs": 0, "augmentation": False},
                       "replicas": replicas,
                       "compile": compile_model})        # an edited compile_model: compiled anew
    if key not in _COMPILED:
        compile_model(net, cfg)
        _COMPILED[key] = net, [keras.ops.convert_to_numpy(v) for v in net.optimizer.variables]
        return net
    twin, start = _COMPILED[key]
    twin.set_weights(net.get_weights())
    for variable, value in zip(twin.optimizer.variables, start):
        variable.assign(value)
    twin._initial_epoch = None            # what BackupAndRestore set on a resumed run
    return twin


def get_strategy(name: str = "one") -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy: "one" (one device), "mirrored" (all visible GPUs, or the CPU's
    logical devices: ``GISLR_CPU_REPLICAS``), "tpu", or "auto" (a TPU when one is attached, all
    GPUs when there are several, else one device). RuntimeError when "tpu" is asked for and none
    is attached (chapter 4)."""
    gpus = tf.config.list_logical_devices("GPU")
    tpu_hint = os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR")
    if name not in STRATEGIES:
        raise ParameterError(f"strategy={name!r} is not valid; choose one of {sorted(STRATEGIES)}")
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


def validation_data(prepared, rows, num_classes: int = 250):
    """``(inputs, one-hot labels)`` of the validation clips for ``fit``, or None without any."""
    if len(rows) == 0:
        return None
    inputs = {"frames": prepared.X[rows], "non_empty_frame_idxs": prepared.idxs[rows]}
    return inputs, np.eye(num_classes, dtype=np.float32)[np.asarray(prepared.y)[rows]]


# --------------------------------------------------------------------------------------------------
# What the pages print while a run trains
# --------------------------------------------------------------------------------------------------
def format_duration(seconds: float) -> str:
    """``42 s``, ``3.3 min``, ``2.1 h``."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s" if np.isfinite(seconds) else "?"


def format_epoch_line(row: dict, epochs: int) -> str:
    """``epoch  3/20  loss 3.123 acc 0.512 | val loss 3.201 acc 0.480 | lr 9.8e-04 4.1s``."""
    parts = [f"epoch {int(row['epoch']):>{len(str(epochs))}}/{epochs} "]
    for prefix, label in (("", ""), ("val_", "| val ")):
        if f"{prefix}loss" in row and not pd.isna(row.get(f"{prefix}acc")):
            parts.append(f"{label}loss {row[prefix + 'loss']:.3f} acc {row[prefix + 'acc']:.3f}")
    parts.append(f"| lr {row.get('learning_rate', np.nan):.1e} {row.get('seconds', np.nan):.1f}s")
    return " ".join(parts)


class EpochLog(keras.callbacks.Callback):
    """What a run prints (chapter 4): after ``warmup + measure`` steps the measured time per step
    with the projected time of an epoch and of the run, then one line per epoch. It adds the
    epoch's ``learning_rate`` and ``seconds`` to the logs (``CSVLogger``, after it in the list,
    writes them)."""

    def __init__(self, batches: BalancedSignBatches, epochs: int, verbose: int = 1, warmup=2, measure=3):
        super().__init__()
        self.batches, self.epochs, self.verbose = batches, epochs, verbose
        self.warmup, self.measure, self._ends, self._first = warmup, measure, [], True

    def _say(self, text):
        if self.verbose:
            print(text, flush=True)

    def on_epoch_begin(self, epoch, logs=None):
        if self._first and epoch:
            self._say(f"continuing the interrupted run after epoch {epoch} (Keras' BackupAndRestore)")
        self._first, self._epoch, self._start = False, epoch, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if len(self._ends) >= self.warmup + self.measure:
            return
        if len(self._ends) + 1 in (self.warmup, self.warmup + self.measure):
            float((logs or {}).get("loss", 0.0))       # wait for the device to finish the step
        self._ends.append(time.perf_counter())
        if len(self._ends) == self.warmup + self.measure:
            t, b, steps = (self._ends[-1] - self._ends[self.warmup - 1]) / self.measure, self.batches, len(self.batches)
            left = self.epochs - self._epoch
            self._say(f"measured {t:.3g} s a step ({b.batch_size / t:,.0f} clips/s) after {self.warmup} "
                      f"warm-up steps:\n  about {format_duration(t * steps)} an epoch of {steps} steps, "
                      f"{format_duration(t * steps * left)} for {left} epoch(s) (without validation)")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(getattr(opt, "inner_optimizer", opt).learning_rate))
        logs["seconds"] = time.perf_counter() - self._start
        self._say(format_epoch_line({**logs, "epoch": epoch + 1}, self.epochs))


def read_history(path) -> pd.DataFrame:
    """The ``CSVLogger`` file of a run, one row per epoch (an epoch repeated after a resume: the
    last row), ``epoch`` counted from 1 (Keras counts from 0)."""
    history = pd.read_csv(path).drop_duplicates("epoch", keep="last").sort_values("epoch")
    return history.assign(epoch=history["epoch"] + 1).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# A finished run
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Run:
    """A finished run, as `load_run` reads it from its folder (chapters 4 to 7)."""
    model: keras.Model
    history: pd.DataFrame
    split: dict
    stats: dict
    cfg: RunConfig
    run_dir: Path
    spec: dict


def load_run(run_dir, prepared=None, verbose: int = 0) -> Run:
    """The finished run in `run_dir`: its float32 model on one device (`model.build_model` of its
    settings and statistics, with its weights), history, split and statistics.

    Read only. Every file is checked against the manifest's checksums; a missing, damaged or
    foreign file, a run of another version of the book, or (with `prepared`) a run made from
    another data set raises `runs.ArtefactError` naming the file and the reason.
    """
    run_dir = Path(run_dir)
    record, where = runs.read_manifest(run_dir) or {}, show_path(run_dir / runs.MANIFEST)
    spec = record.get("spec", {})
    if "settings" not in spec:
        why = "no finished run here (manifest missing or unreadable)"
    elif spec.get("version") != VERSION:
        why = f"made by another version of the book (training version {spec.get('version')}, this one {VERSION})"
    elif prepared is not None and spec.get("data") != prepared.key:
        why = f"made from another data set (key {spec.get('data')}, this data set's {prepared.key})"
    else:
        why = runs.check_files(run_dir, record)
    if why:
        raise runs.ArtefactError(f"{where}: {why}")
    try:
        cfg = RunConfig(**spec["settings"])
    except TypeError as err:
        raise runs.ArtefactError(f"{where}: settings of another version of the book ({err})") from None
    stats = statistics.load_stats(run_dir / "stats.npz")
    net = build_model(dataclasses.replace(cfg, mixed_precision=False), stats)
    net.load_weights(run_dir / "model.weights.h5")
    with np.load(run_dir / "split.npz") as f:
        split = {k: f[k] for k in ("train", "validation", "test")}
    history = pd.read_csv(run_dir / "history.csv")
    if verbose:
        print(f"loaded the finished run in {show_path(run_dir)}\n(same settings and data); "
              f"its {len(history)} epochs:")
        for row in history.to_dict("records"):
            print(format_epoch_line(row, cfg.epochs))
    return Run(net, history, split, stats, cfg, run_dir, spec)
