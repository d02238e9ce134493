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
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupShuffleSplit

from . import config as _config
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

    def sample_rows(self) -> np.ndarray:
        """Row indices of the next batch: ``n`` draws with replacement from each present sign."""
        return np.concatenate([self.rng.choice(r, self.n) for r in self.rows_of_sign])

    def __iter__(self):
        while True:
            rows = self.sample_rows()
            yield ({"frames": np.asarray(self.X[rows], dtype=np.float32),
                    "non_empty_frame_idxs": np.asarray(self.idxs[rows], dtype=np.float32)},
                   self.labels.copy())


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


def compile_model(model: keras.Model, cfg: dict) -> keras.Model:
    """Compile with the preset's loss, AdamW and metrics (chapter 4); returns the model."""
    model.compile(loss=SparseCategoricalCrossentropyLS(cfg["num_classes"], cfg["label_smoothing"]),
                  optimizer=make_optimizer(cfg), metrics=make_metrics())
    return model


# --------------------------------------------------------------------------------------------------
# Callbacks
# --------------------------------------------------------------------------------------------------
class EpochReport(keras.callbacks.Callback):
    """Adds learning rate and per-step weight decay to the logs, writes history.csv, prints one line.

    One line per epoch (no Keras progress bars, so rendered pages stay readable); ``*`` marks a new
    best validation accuracy (the epoch the checkpoint keeps).
    """

    def __init__(self, epochs: int, history_path=None, verbose: int = 1, monitor: str = "val_acc"):
        super().__init__()
        self.epochs, self.history_path, self.verbose, self.monitor = epochs, history_path, verbose, monitor
        self.rows: list[dict] = []
        self.best = -np.inf

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        opt = self.model.optimizer
        lr = float(keras.ops.convert_to_numpy(opt.learning_rate))
        logs.setdefault("learning_rate", lr)
        logs["weight_decay"] = float(opt.weight_decay or 0.0) * lr        # per-step decay (seed meaning)
        seconds = time.perf_counter() - self._t0
        order = ["loss", *METRIC_NAMES, "val_loss", *(f"val_{m}" for m in METRIC_NAMES)]
        keys = [k for k in order if k in logs] + sorted(k for k in logs if k not in order)
        row = {"epoch": epoch + 1, **{k: float(logs[k]) for k in keys}, "seconds": seconds}
        self.rows.append(row)
        if self.history_path is not None:
            pd.DataFrame(self.rows).to_csv(self.history_path, index=False)
        improved = self.monitor in logs and logs[self.monitor] > self.best
        if improved:
            self.best = logs[self.monitor]
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

    @property
    def has_validation(self) -> bool:
        return len(self.val_idx) > 0


def data_fingerprint(prepared) -> str:
    """Short hash telling whether saved artifacts were made from `prepared`.

    Covers the clips' participants, sequence ids and labels, the array shapes, and the contents of
    up to 64 evenly spaced clips (``X`` and ``idxs``), so that a change of preprocessing shows too
    without reading a large data set in full.
    """
    h = hashlib.sha256()
    for arr in (prepared.participant_id, prepared.sequence_id, prepared.y):
        h.update(np.ascontiguousarray(np.asarray(arr, dtype=np.int64)).tobytes())
    X, idxs = prepared.X, prepared.idxs
    h.update(str((tuple(X.shape), tuple(idxs.shape))).encode())
    step = max(1, len(X) // 64)
    for arr in (X[::step], idxs[::step]):
        h.update(np.ascontiguousarray(np.asarray(arr, dtype=np.float32)).tobytes())
    return h.hexdigest()[:16]


def _artifact_paths(artifacts_dir: Path) -> dict:
    return {"model": artifacts_dir / "model.keras", "history": artifacts_dir / "history.csv",
            "stats": artifacts_dir / "stats.npz", "split": artifacts_dir / "split.npz",
            "config": artifacts_dir / "train_config.json"}


def _stats_io():
    from . import statistics
    return statistics


def train(prepared, preset: str = "classroom", artifacts_dir=None, seed: int = 0, stats=None,
          epochs: int | None = None, verbose: int = 1, reuse: bool = False, deterministic: bool = True,
          **overrides) -> TrainResult:
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
    4. `model.build_model`, compiled by `compile_model`; fit on `BalancedSignBatches`, validating on the
       held-out participants every epoch; "cosine" adds the per-epoch learning-rate callback;
    5. writes ``model.keras`` (best validation accuracy, ModelCheckpoint), ``history.csv``,
       ``stats.npz``, ``split.npz`` and ``train_config.json`` into ``artifacts_dir`` and returns the
       model with the best checkpoint's weights.

    ``reuse=True`` loads the saved model instead of training when ``train_config.json`` in
    ``artifacts_dir`` records the same resolved settings, model options, seed, data and statistics.
    ``verbose``: 0 silent, 1 or 2 one line per epoch.
    """
    cfg, options = resolve_settings(preset, epochs, **overrides)
    artifacts_dir = Path(artifacts_dir if artifacts_dir is not None else _config.DEFAULT_ARTIFACTS_DIR)
    paths = _artifact_paths(artifacts_dir)

    X, idxs, y = prepared.X, prepared.idxs, np.asarray(prepared.y)
    pid = np.asarray(prepared.participant_id)
    train_idx, val_idx, stats = _split_and_stats(prepared, stats, verbose)
    statistics = _stats_io()
    key = run_key(prepared, preset, cfg, options, seed, stats)

    if reuse:
        loaded = _load_if_matching(artifacts_dir, key)
        if loaded is not None:
            if verbose:
                print(f"reusing the trained model in {show_path(paths['model'])} (same settings, seed, data and statistics)")
            return loaded

    artifacts_dir.mkdir(parents=True, exist_ok=True)
    paths["config"].unlink(missing_ok=True)       # a run that stops half-way must not look complete
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if verbose:
        held = np.unique(pid[val_idx]).tolist()
        print(f"{len(train_idx)} training clips ({np.unique(pid[train_idx]).size} participants, "
              f"{np.unique(y[train_idx]).size} signs), {len(val_idx)} validation clips "
              f"(participants {held})")

    from .model import build_model
    model = build_model(preset, stats, **overrides)
    compile_model(model, cfg)

    sampler = BalancedSignBatches(X, idxs, y, n=cfg["batch_all_signs_n"], rows=train_idx, seed=int(seed),
                                  num_classes=cfg["num_classes"])
    n_epochs = int(cfg["epochs"])
    has_val = len(val_idx) > 0
    callbacks = []
    if cfg["schedule"] != "constant":
        lrs = lr_schedule(n_epochs, cfg["schedule"], cfg["learning_rate"])
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda e: float(lrs[e]), verbose=0))
    callbacks.append(EpochReport(n_epochs, paths["history"], verbose=verbose,
                                 monitor="val_acc" if has_val else "acc"))
    callbacks.append(keras.callbacks.ModelCheckpoint(
        paths["model"], monitor="val_acc" if has_val else "loss", mode="max" if has_val else "min",
        save_best_only=has_val, verbose=0))
    val_data = None
    if has_val:
        val_data = ({"frames": X[val_idx], "non_empty_frame_idxs": idxs[val_idx]}, y[val_idx].astype(np.int32))
    if verbose:
        print(f"{n_epochs} epochs x {sampler.steps_per_epoch} steps of {sampler.batch_size} clips "
              f"({sampler.n} of each of {len(sampler.signs)} signs), schedule {cfg['schedule']}")

    t0 = time.perf_counter()
    model.fit(iter(sampler), steps_per_epoch=sampler.steps_per_epoch, epochs=n_epochs,
              validation_data=val_data, validation_batch_size=256, callbacks=callbacks, shuffle=False, verbose=0)
    train_seconds = time.perf_counter() - t0

    model.load_weights(paths["model"])          # the best checkpoint's weights
    history = pd.read_csv(paths["history"])
    monitor = "val_acc" if has_val else None
    best_epoch = int(history.loc[history[monitor].idxmax(), "epoch"]) if monitor else int(history["epoch"].iloc[-1])
    if verbose:
        best = f", best val_acc {history[monitor].max():.3f} at epoch {best_epoch}" if monitor else ""
        print(f"trained in {train_seconds:.1f}s{best}; saved {show_path(paths['model'])}")

    statistics.save_stats(stats, paths["stats"])
    with open(paths["split"], "wb") as f:
        np.savez(f, train_idx=train_idx, val_idx=val_idx, val_participants=np.unique(pid[val_idx]))
    record = {**key, "overrides": {k: overrides[k] for k in sorted(overrides)}, "train_seconds": train_seconds,
              "best_epoch": best_epoch, "n_train": int(len(train_idx)), "n_val": int(len(val_idx))}
    paths["config"].write_text(json.dumps(record, indent=2, default=_json_default))
    return TrainResult(model=model, history=history, train_idx=train_idx, val_idx=val_idx, stats=stats,
                       config=cfg, preset=preset, seed=int(seed), paths=paths, train_seconds=train_seconds,
                       best_epoch=best_epoch)


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


def run_key(prepared, preset: str, cfg: dict, options: dict, seed: int, stats) -> dict:
    """What identifies a training run: preset, resolved settings, model options, seed, data, statistics."""
    key = {"preset": preset, "settings": cfg, "options": options, "seed": int(seed),
           "data": data_fingerprint(prepared), "stats": stats_fingerprint(stats)}
    return json.loads(json.dumps(key, default=_json_default))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _load_if_matching(artifacts_dir: Path, key: dict) -> TrainResult | None:
    paths = _artifact_paths(Path(artifacts_dir))
    if not all(p.exists() for p in paths.values()):
        return None
    saved = json.loads(paths["config"].read_text())
    if {k: saved.get(k) for k in key} != key:
        return None
    return load_trained(artifacts_dir)


def load_trained(artifacts_dir) -> TrainResult:
    """Load what `train` saved in ``artifacts_dir`` (model, history, stats, split, settings); chapter 5."""
    artifacts_dir = Path(artifacts_dir)
    paths = _artifact_paths(artifacts_dir)
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"{artifacts_dir}: no complete training run; missing {missing}")
    from .model import load_model
    saved = json.loads(paths["config"].read_text())
    with np.load(paths["split"]) as split:
        train_idx, val_idx = split["train_idx"], split["val_idx"]
    return TrainResult(model=load_model(paths["model"]), history=pd.read_csv(paths["history"]),
                       train_idx=train_idx, val_idx=val_idx, stats=_stats_io().load_stats(paths["stats"]),
                       config=saved["settings"], preset=saved["preset"], seed=saved["seed"], paths=paths,
                       train_seconds=saved.get("train_seconds", float("nan")),
                       best_epoch=saved.get("best_epoch"), reused=True)


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
    from .model import set_frame_drop_at_inference

    if np.unique(np.asarray(prepared.participant_id)).size < 2:
        raise ValueError("compare_masking needs held-out participants: the data set has a single participant")
    artifacts_dir = Path(artifacts_dir if artifacts_dir is not None else _config.DEFAULT_ARTIFACTS_DIR)
    out_dir = artifacts_dir / "masking"
    overrides = {k: v for k, v in overrides.items() if k != "attention_mask"}
    _, _, stats = _split_and_stats(prepared, stats, verbose=0)
    rows = []
    for mode in ("seed", "keys"):
        cfg, options = resolve_settings(preset, epochs, attention_mask=mode, **overrides)
        res = _load_if_matching(artifacts_dir, run_key(prepared, preset, cfg, options, seed, stats))
        if res is not None:
            if verbose:
                print(f"attention_mask={mode!r}: the trained model in {show_path(artifacts_dir)} has these settings; using it")
        else:
            if verbose:
                print(f"--- attention_mask={mode!r}")
            res = train(prepared, preset, out_dir / mode, seed=seed, stats=stats, epochs=epochs, verbose=verbose,
                        reuse=True, attention_mask=mode, **overrides)
        X, idxs, y = prepared.X[res.val_idx], prepared.idxs[res.val_idx], np.asarray(prepared.y)[res.val_idx]
        for drop in ([True, False] if mode == "seed" else [False]):
            if mode == "seed":
                set_frame_drop_at_inference(res.model, drop)
            m = evaluation.summary_metrics(y, evaluation.predict(res.model, X, idxs, seed=seed))
            rows.append({"attention_mask": mode, "frame_drop_at_inference": drop,
                         **{k: m[k] for k in ("accuracy", "top5", "top10", "macro_f1", "n_val")},
                         "train_seconds": res.train_seconds, "best_epoch": res.best_epoch,
                         "epochs": int(res.config["epochs"])})
        if mode == "seed":
            set_frame_drop_at_inference(res.model, True)
    table = pd.DataFrame(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "masking_comparison.csv", index=False)
    return table
