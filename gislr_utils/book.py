"""Chapter plumbing: check a chapter's parameters, then rebuild whatever it needs from `artifacts_dir`.

Every chapter starts with a cell tagged ``parameters`` (papermill) and then calls :func:`setup`,
which checks each parameter and fails at once with a message naming it. The ``get_*`` functions
return what a chapter needs -- the clip table, the prepared arrays, the statistics, a trained
model, its evaluation -- loading it from ``artifacts_dir`` when an earlier chapter made it and
making it when it is missing, so that every chapter also runs alone on a fresh clone.

Layout of ``artifacts_dir`` (default ``config.DEFAULT_ARTIFACTS_DIR``, ``./artifacts``)::

    synthetic_seed<seed>/            the embedded synthetic data set (data_dir=None), generated once
    prepared/<key>/                  preprocessed arrays, keyed by the data (preprocessing.prepare_dataset)
    runs/<data>_<preset>_seed<seed>[_epochs<E>]/
                                     one experiment: stats.npz, model.keras, history.csv, split.npz,
                                     train_config.json, metrics.json, model.tflite, masking/,
                                     checkpoint/ (while a run trains or after it was interrupted)

A run folder is named by the data set, the preset, the seed and the number of epochs (the suffix
only when ``epochs`` differs from the preset's), so runs of different presets, data sets or
lengths never overwrite each other's model, and chapters 4, 5 and 6 given the same parameters
find the same run. Every file in it is an artefact of `runs`: keyed on what it was made from
(a manifest beside it, or the run's ``train_config.json``), written atomically, rebuilt with a
message when its inputs changed. The intro explains how the chapters use this.
"""
from __future__ import annotations

import hashlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import config as _config
from . import runs
from .config import show_path

# tqdm.auto warns "IProgress not found" on import in a kernel without ipywidgets; the chapters
# never show progress bars (pages print plain lines), so that warning would only litter the page.
# Chapters import `book` before the other modules.
warnings.filterwarnings("ignore", message="IProgress not found")


class ParameterError(ValueError):
    """A chapter parameter has a bad value; the message names the parameter and what is allowed."""


# The allowed range of every integer parameter of the chapters (and of `setup`), one table for all:
# `check_int` uses it when no bound is given, and a test checks that every integer parameter of a
# chapter's `parameters` cell has an entry. Bounds are generous; they stop values that would fail
# later with a cryptic error (``epochs=10**20``: "Maximum allowed dimension exceeded" in a plot).
PARAMETER_RANGES: dict[str, tuple[int, int]] = {
    "seed": (0, 2**32 - 1),             # NumPy's and Keras' seeds are 32-bit
    "epochs": (1, 10_000),
    "masking_epochs": (1, 10_000),
    "n_summary": (1, 10_000_000),
    "boxplot_clips": (1, 10_000_000),
    "n_confused": (2, 250),             # signs in a heatmap: there are 250
    "latency_clips": (1, 100_000),
}


# ----------------------------------------------------------------------------------------------
# Parameter checks
# ----------------------------------------------------------------------------------------------
def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool = False):
    """`value` as an int, or ParameterError naming `name` (bools and non-integral floats refused).

    A bound not given comes from `PARAMETER_RANGES` when `name` is there.
    """
    lo, hi = PARAMETER_RANGES.get(name, (None, None))
    minimum = lo if minimum is None else minimum
    maximum = hi if maximum is None else maximum
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if isinstance(value, float) and value.is_integer():
        ok, value = True, int(value)
    if not ok:
        none = " or None" if allow_none else ""
        raise ParameterError(f"{name}={value!r} must be an integer{none}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ParameterError(f"{name}={value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ParameterError(f"{name}={value} must be <= {maximum}")
    return value


def check_bool(name: str, value) -> bool:
    """`value` if it is True or False, else ParameterError naming `name`."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name}={value!r} must be True or False")
    return bool(value)


def check_choice(name: str, value, choices):
    """`value` if it is one of `choices`, else ParameterError naming `name` and the choices."""
    try:
        _config.check_choice(name, value, choices)
    except ValueError as e:
        raise ParameterError(str(e)) from None
    return value


def _check_data_dir(data_dir) -> Path:
    if not isinstance(data_dir, (str, os.PathLike)):
        raise ParameterError(f"data_dir={data_dir!r} must be a path (str) or None for the synthetic set")
    path = Path(data_dir).expanduser().resolve()
    if not path.exists():
        raise ParameterError(f"data_dir={str(data_dir)!r} does not exist; give the folder of the Kaggle "
                             "asl-signs download (train.csv, train_landmark_files/) or None for the "
                             "embedded synthetic set")
    if not path.is_dir():
        raise ParameterError(f"data_dir={str(data_dir)!r} is a file, not a folder")
    if not (path / "train.csv").exists():
        raise ParameterError(f"data_dir={str(data_dir)!r} has no train.csv: it is not a GISLR data folder "
                             "(expected train.csv, sign_to_prediction_index_map.json, train_landmark_files/)")
    return path


def _check_artifacts_dir(artifacts_dir) -> Path:
    if artifacts_dir is None:
        return Path(_config.DEFAULT_ARTIFACTS_DIR)
    if not isinstance(artifacts_dir, (str, os.PathLike)):
        raise ParameterError(f"artifacts_dir={artifacts_dir!r} must be a path (str) or None")
    path = Path(artifacts_dir).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ParameterError(f"artifacts_dir={str(artifacts_dir)!r} is a file, not a folder")
    return path


# ----------------------------------------------------------------------------------------------
# Context
# ----------------------------------------------------------------------------------------------
@dataclass
class Context:
    """A chapter's checked parameters and the paths derived from them (see :func:`setup`)."""

    data_dir: Path
    artifacts_dir: Path
    run_dir: Path
    preset: str
    settings: dict
    seed: int
    synthetic: bool
    epochs: int | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def table(self) -> pd.DataFrame:
        """The parameters as a two-column table, paths shown relative to the repository."""
        data = (f"synthetic (generated into {show_path(self.data_dir)})" if self.synthetic
                else show_path(self.data_dir))
        rows = [("data", data), ("artifacts_dir", show_path(self.artifacts_dir)),
                ("run folder", show_path(self.run_dir)), ("preset", self.preset), ("seed", self.seed)]
        if self.epochs is not None:
            rows.append(("epochs (override)", self.epochs))
        return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")

    def _repr_html_(self):
        return self.table().to_html()

    def __repr__(self):
        return "Context(" + ", ".join(f"{k}={v}" for k, v in self.table()["value"].items()) + ")"


def quiet() -> None:
    """Silence Python warnings and library loggers that would otherwise print into the pages."""
    warnings.filterwarnings("ignore")
    for name in ("absl", "tensorflow", "h5py", "matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import absl.logging
        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover
        pass


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (ipykernel's stream objects replace sys.stderr)."""
    import sys
    return type(sys.stderr).__module__.startswith("ipykernel")


def native_logs_to_file(path) -> Path | None:
    """In a Jupyter kernel, send what C/C++ libraries write to file descriptor 2 into `path`.

    TensorFlow and LiteRT print log lines from C++ (e.g. LiteRT's "Created TensorFlow Lite XNNPACK
    delegate for CPU") straight to descriptor 2, which the kernel forwards into the page. Python's
    own warnings and tracebacks go through `sys.stderr`, the kernel's stream object, and are not
    affected; nothing is lost either, the lines are appended to `path` (a crash message included).
    Outside a kernel (plain Python, where `sys.stderr` *is* descriptor 2) nothing is changed and
    None is returned.
    """
    if not _in_kernel():
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    return path


def _sharp_figures() -> None:
    """In a notebook kernel, render figures at twice the resolution ("retina"), shown at their size."""
    if not _in_kernel():
        return
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # pragma: no cover - ipykernel depends on matplotlib-inline
        return
    set_matplotlib_formats("retina")


def _data_tag(data_dir: Path, synthetic: bool) -> str:
    if synthetic:
        return "synthetic"
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:6]
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in data_dir.name) or "data"
    return f"{name}-{digest}"


def run_folder_name(data_tag: str, preset: str, seed: int, epochs: int | None = None) -> str:
    """``<data>_<preset>_seed<seed>``, plus ``_epochs<E>`` when `epochs` differs from the preset's."""
    name = f"{data_tag}_{preset}_seed{seed}"
    if epochs is not None and int(epochs) != _config.PRESETS[preset]["epochs"]:
        name += f"_epochs{int(epochs)}"
    return name


def setup(data_dir=None, artifacts_dir=None, preset: str = "classroom", seed: int = 0,
          epochs=None) -> Context:
    """Check a chapter's parameters and return its :class:`Context`; every chapter calls it first.

    * ``data_dir``: a GISLR data folder (Kaggle layout, with train.csv), None for the embedded
      synthetic set, generated once into ``artifacts_dir`` (`synthetic.ensure_data_dir`), or
      ``"real-sample"`` for the 16 genuine clips shipped with the package (`config.real_sample_dir`);
    * ``artifacts_dir``: where chapters keep what they make (None: ``./artifacts``);
    * ``preset``: "classroom" (laptop CPU) or "seed" (the report's model, for a GPU);
    * ``seed``: an integer in [0, 2**32 - 1]; it seeds the synthetic set, the batches and the weights;
    * ``epochs``: None (the preset's) or an integer in [1, 10000]; part of the run's identity: the
      run folder is ``runs/<data>_<preset>_seed<seed>`` plus ``_epochs<E>`` when it differs from
      the preset's (`run_folder_name`), so chapters 4-6 given the same ``epochs`` use one run.

    A bad value raises :class:`ParameterError` naming the parameter, before any work is done.
    Also silences warnings (:func:`quiet`), sets the figure style and, in a notebook kernel, sends
    native C++ log lines to ``<artifacts_dir>/logs/native-stderr.log`` (:func:`native_logs_to_file`).
    """
    check_choice("preset", preset, _config.PRESETS)
    seed = check_int("seed", seed)
    epochs = check_int("epochs", epochs, allow_none=True)
    artifacts = _check_artifacts_dir(artifacts_dir)
    synthetic = data_dir is None
    if isinstance(data_dir, str) and data_dir == _config.REAL_SAMPLE_NAME:
        data_dir = _config.real_sample_dir()          # the 16 real clips shipped with the package
    data = None if synthetic else _check_data_dir(data_dir)
    quiet()
    from . import plotting
    plotting.set_style()
    _sharp_figures()
    artifacts.mkdir(parents=True, exist_ok=True)
    native_logs_to_file(artifacts / "logs" / "native-stderr.log")
    if synthetic:
        from . import synthetic as _synthetic
        data = Path(_synthetic.ensure_data_dir(None, artifacts, seed=seed))
    settings = _config.get_preset(preset)
    if epochs is not None:
        settings["epochs"] = epochs
    run_dir = artifacts / "runs" / run_folder_name(_data_tag(data, synthetic), preset, seed, epochs)
    return Context(data_dir=data, artifacts_dir=artifacts, run_dir=run_dir, preset=preset,
                   settings=settings, seed=seed, synthetic=synthetic, epochs=epochs)


# ----------------------------------------------------------------------------------------------
# What chapters need, rebuilt when missing
# ----------------------------------------------------------------------------------------------
def get_clips(ctx: Context) -> pd.DataFrame:
    """The clip table of the data set (`dataset.read_clips`): path, participant_id, sequence_id, sign, label."""
    if "clips" not in ctx._cache:
        from . import dataset
        ctx._cache["clips"] = dataset.read_clips(ctx.data_dir)
    return ctx._cache["clips"]


def get_prepared(ctx: Context):
    """The preprocessed data set (`preprocessing.prepare_dataset`, cached under ``artifacts_dir/prepared``).

    The arrays are read-only memory maps of the cache files: on the full data set X is 4.8 GB,
    which then need not fit in memory beside the seed preset's training step (about 7 GB at
    batch 1,000; `benchmarks/full_scale.py`); the kernel keeps the pages in use cached."""
    if "prepared" not in ctx._cache:
        from . import preprocessing
        ctx._cache["prepared"] = preprocessing.prepare_dataset(ctx.data_dir, ctx.artifacts_dir, progress=False,
                                                               mmap=True)
    return ctx._cache["prepared"]


def get_split(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, validation) of the prepared clips: whole participants held out (chapter 4).

    With a single participant there is nothing to hold out: every clip is a training clip and the
    validation set is empty (`training.train` says so too).
    """
    if "split" not in ctx._cache:
        from . import training
        pid = np.asarray(get_prepared(ctx).participant_id)
        if np.unique(pid).size >= 2:
            ctx._cache["split"] = training.split_by_participant(pid)
        else:
            ctx._cache["split"] = (np.arange(pid.size, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return ctx._cache["split"]


def stats_path(ctx: Context) -> Path:
    """Where the normalisation statistics of this run live (``<run folder>/stats.npz``)."""
    return ctx.run_dir / "stats.npz"


def stats_spec(ctx: Context) -> dict:
    """What the run's statistics are made from: the data (`training.data_fingerprint`) and the
    training rows (`runs.hash_arrays`); the manifest beside ``stats.npz`` records it."""
    from . import training
    train_idx, _ = get_split(ctx)
    return {"artefact": "statistics", "data": training.data_fingerprint(get_prepared(ctx)),
            "train_rows": runs.hash_arrays(np.asarray(train_idx, np.int64)), "version": 1}


def get_stats(ctx: Context, recompute: bool = False, verbose: int = 1) -> dict:
    """Mean/std of the non-zero x, y of each landmark over the *training* clips (chapter 2).

    Loaded from ``<run folder>/stats.npz`` when its manifest (``stats.npz.manifest.json``) says it
    was made from this data set and these training clips, else computed with
    `statistics.compute_stats` on the training participants' clips and saved there atomically
    (`statistics.save_stats`), where chapter 4's training reads the same numbers. Statistics of
    other data (a landmark file or train.csv changed since) are recomputed, with a message.
    """
    from . import statistics, training
    if "stats" in ctx._cache and not recompute:
        return ctx._cache["stats"]
    path = stats_path(ctx)
    spec = stats_spec(ctx)
    manifest = runs.manifest_path(path)
    if path.exists() and not recompute:
        why = runs.check_manifest(manifest, spec)
        if why is None:
            stats = statistics.load_stats(path)
            if runs.read_manifest(manifest).get("fingerprint") == training.stats_fingerprint(stats):
                ctx._cache["stats"] = stats
                return stats
            why = "changed since its manifest was written"
        if verbose:
            print(f"the statistics in {show_path(path)} are {why}: recomputing them")
    prepared = get_prepared(ctx)
    train_idx, _ = get_split(ctx)
    stats = statistics.compute_stats(prepared.X, rows=train_idx)
    with runs.atomic_path(path) as tmp:
        statistics.save_stats(stats, tmp)
    runs.write_manifest(manifest, spec, fingerprint=training.stats_fingerprint(stats))
    ctx._cache["stats"] = stats
    return stats


def train(ctx: Context, restart=False, mixed_precision=False, jit_compile=False, verbose: int = 1,
          **overrides):
    """Train this run's model (chapter 4): `training.train` into the run folder; returns its TrainResult.

    The epochs are ``ctx.epochs`` (None: the preset's); ``overrides`` (preset settings or model
    options) are passed on. Uses the statistics of :func:`get_stats`, so the numbers the book
    shows are the model's. A finished run of the same identity (chapter 3 may have trained it already
    through :func:`get_trained`) is reused, an interrupted one continues from its last finished
    epoch; ``restart=True`` trains from scratch. ``mixed_precision`` and ``jit_compile`` are the
    GPU options of `training.train` (off by default).
    """
    from . import training
    restart = check_bool("restart", restart)
    mixed_precision = check_bool("mixed_precision", mixed_precision)
    jit_compile = check_bool("jit_compile", jit_compile)
    cached = ctx._cache.get("trained")
    if (cached is not None and not restart and not overrides
            and cached.spec.get("execution") == {"mixed_precision": mixed_precision,
                                                 "jit_compile": jit_compile}):
        if verbose:
            print(f"reusing the model trained above ({show_path(ctx.run_dir)})")
        return cached
    result = training.train(get_prepared(ctx), ctx.preset, ctx.run_dir, seed=ctx.seed, stats=get_stats(ctx),
                            epochs=ctx.epochs, verbose=verbose, restart=restart,
                            mixed_precision=mixed_precision, jit_compile=jit_compile, **overrides)
    ctx._cache["trained"] = result
    ctx._cache.pop("evaluation", None)
    return result


def run_spec(ctx: Context) -> dict:
    """The identity (`training.run_key`) of the run this context's parameters ask for."""
    from . import training
    cfg, options = training.resolve_settings(ctx.preset, ctx.epochs)
    return training.run_key(get_prepared(ctx), ctx.preset, cfg, options, ctx.seed, get_stats(ctx))


def get_trained(ctx: Context, verbose: int = 1):
    """The trained model of this data set, preset and seed (chapters 5 and 6); trained now if missing.

    Loads ``<run folder>/model.keras`` and its history, statistics and split
    (`training.load_trained`) when the run's manifest records the same identity (data, preset,
    settings with ``ctx.epochs``, seed, statistics: `run_spec`); otherwise trains the preset,
    printing one line per epoch (and what changed, when an older run was there). Returns a
    `training.TrainResult`.
    """
    if "trained" in ctx._cache:
        return ctx._cache["trained"]
    from . import training
    # the GPU options (mixed precision, XLA) change how a run trained, not what it is: a chapter
    # that evaluates accepts either (its tables say which)
    why = training.why_not_reusable(ctx.run_dir, run_spec(ctx), ignore=("execution",))
    if why is None:
        result = training.load_trained(ctx.run_dir)
        if verbose:
            epochs = len(result.history)
            print(f"loaded the model trained in chapter 4 ({ctx.preset} preset, seed {ctx.seed}, "
                  f"{epochs} epoch{'s' if epochs != 1 else ''}, best epoch {result.best_epoch}) "
                  f"from {show_path(ctx.run_dir)}")
        ctx._cache["trained"] = result
        return result
    if verbose:
        if (ctx.run_dir / "train_config.json").exists():
            print(f"the run in {show_path(ctx.run_dir)} is {why}: training the {ctx.preset} preset "
                  "anew, as chapter 4 does")
        else:
            print(f"no trained model in {show_path(ctx.run_dir)} yet: training the {ctx.preset} preset "
                  "now, as chapter 4 does")
    return train(ctx, verbose=verbose)


def validation_rows(ctx: Context, result=None) -> np.ndarray:
    """Rows of the prepared arrays to evaluate on: the held-out participants (all clips if there are none)."""
    result = result or get_trained(ctx)
    val = np.asarray(result.val_idx)
    return val if val.size else np.asarray(result.train_idx)


def get_evaluation(ctx: Context, result=None):
    """`evaluation.evaluate` of the trained model on the held-out participants' clips (chapter 5).

    The prediction is seeded with the run's seed (`evaluation.predict`), so the seed preset's
    random frame drop at inference gives the same numbers on every run.
    """
    if "evaluation" in ctx._cache:
        return ctx._cache["evaluation"]
    from . import evaluation
    result = result or get_trained(ctx)
    prepared = get_prepared(ctx)
    rows = validation_rows(ctx, result)
    ev = evaluation.evaluate(result.model, prepared.X[rows], prepared.idxs[rows], np.asarray(prepared.y)[rows],
                             participant_id=np.asarray(prepared.participant_id)[rows], seed=ctx.seed)
    ctx._cache["evaluation"] = ev
    return ev


def metrics_path(ctx: Context) -> Path:
    """``<run folder>/metrics.json``, written by chapter 5."""
    return ctx.run_dir / "metrics.json"


def write_metrics(ctx: Context, ev, result=None) -> Path:
    """Write chapter 5's metrics.json into the run folder (`evaluation.write_metrics`) and return its path."""
    result = result or get_trained(ctx)
    path = metrics_path(ctx)
    with runs.atomic_path(path) as tmp:
        _write_metrics(tmp, ctx, ev, result)
    runs.write_manifest(runs.manifest_path(path), {"artefact": "metrics", "run": _run_key_of(result),
                                                   "seed": ctx.seed, "rows": runs.hash_arrays(
                                                       validation_rows(ctx, result))})
    return path


def _run_key_of(result) -> str:
    return runs.key_of(result.spec) if result.spec else "unknown"


def export_tflite(ctx: Context, result=None, fp16: bool = False) -> Path:
    """The run's TFLite file (`export.export_tflite`), cached: ``model.tflite`` or
    ``model_fp16.tflite`` in the run folder, with a manifest naming the model it was exported
    from; exported again (atomically) when that model changed (chapter 6)."""
    from . import export
    result = result or get_trained(ctx)
    path = ctx.run_dir / ("model_fp16.tflite" if fp16 else "model.tflite")
    spec = {"artefact": "tflite", "run": _run_key_of(result), "fp16": bool(fp16), "version": 1}
    manifest = runs.manifest_path(path)
    if path.exists() and result.spec and runs.check_manifest(manifest, spec) is None:
        return path
    with runs.atomic_path(path) as tmp:
        export.export_tflite(result.model, tmp, fp16=fp16)
    runs.write_manifest(manifest, spec)
    return path


def _write_metrics(path, ctx, ev, result):
    from . import evaluation
    return evaluation.write_metrics(
        path, ev.metrics, seed=ctx.seed, preset=ctx.preset,
        data="synthetic" if ctx.synthetic else ctx.data_dir.name,
        epochs=int(len(result.history)), best_epoch=result.best_epoch,
        validation="held-out participants" if len(result.val_idx) else "training clips (one participant)",
        val_participants=sorted(int(p) for p in np.unique(np.asarray(get_prepared(ctx).participant_id)[
            validation_rows(ctx, result)])),
    )


# ----------------------------------------------------------------------------------------------
# Small helpers the chapters share
# ----------------------------------------------------------------------------------------------
def pick_example(summary: pd.DataFrame, min_hand_share: float = 0.6, dominant: str | None = None):
    """A typical clip to draw (chapters 1 and 2): its dominant hand visible in at least
    `min_hand_share` of its frames, its length closest to the median; ties by sequence_id.

    `summary` is `dataset.clip_summary`'s table; `dominant` ("left"/"right") restricts the choice
    to clips of that dominant hand when there are any. Returns the summary row (a Series).
    """
    if len(summary) == 0:
        raise ValueError("summary is empty: no clip to pick")
    candidates = summary[~summary["no_hand"]] if "no_hand" in summary else summary
    if dominant is not None:
        check_choice("dominant", dominant, ("left", "right"))
        same = candidates[candidates["dominant"] == dominant]
        candidates = same if len(same) else candidates
    good = candidates[candidates["n_hand_frames"] >= min_hand_share * candidates["n_frames"]]
    candidates = good if len(good) else (candidates if len(candidates) else summary)
    target = float(summary["n_frames"].median())
    order = candidates.assign(_d=(candidates["n_frames"] - target).abs()).sort_values(["_d", "sequence_id"])
    return order.drop(columns="_d").iloc[0]


def middle_hand_frame(frames) -> int:
    """Index of the middle frame among those showing the clip's dominant hand (chapter 1's drawing)."""
    from .landmarks import dominant_hand
    frames = np.asarray(frames)
    visible = np.flatnonzero(dominant_hand(frames).visible)
    return int(visible[len(visible) // 2]) if visible.size else len(frames) // 2
