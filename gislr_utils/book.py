"""Chapter plumbing: check a chapter's parameters, then rebuild whatever it needs from `artifacts_dir`.

Every chapter starts with a cell tagged ``parameters`` (papermill) and then calls :func:`setup`,
which checks each parameter and fails at once with a message naming it. The ``get_*`` functions
return what a chapter needs -- the clip table, the prepared arrays, the statistics, a trained
model, its evaluation -- loading it from ``artifacts_dir`` when an earlier chapter made it and
making it when it is missing, so that every chapter also runs alone on a fresh clone.

Layout of ``artifacts_dir`` (default ``config.DEFAULT_ARTIFACTS_DIR``, ``./artifacts``)::

    synthetic_seed<seed>/            the embedded synthetic data set (data_dir=None), generated once
    prepared/<key>/                  preprocessed arrays, keyed by the data (preprocessing.prepare_dataset)
    runs/<data>_<preset>_seed<seed>/ one experiment: stats.npz, model.keras, history.csv, split.npz,
                                     train_config.json, metrics.json, model.tflite, masking/

A run folder is keyed by the data set, the preset and the seed, so runs of different presets or
data sets never overwrite each other's model. The intro explains how the chapters use this.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import config as _config
from .config import show_path

# tqdm.auto warns "IProgress not found" on import in a kernel without ipywidgets; the chapters
# never show progress bars (pages print plain lines), so that warning would only litter the page.
# Chapters import `book` before the other modules.
warnings.filterwarnings("ignore", message="IProgress not found")

CHAPTERS = {
    1: "chapters/01_data_exploration.ipynb",
    2: "chapters/02_landmark_statistics.ipynb",
    3: "chapters/03_attention_and_embedding.ipynb",
    4: "chapters/04_training.ipynb",
    5: "chapters/05_evaluation.ipynb",
    6: "chapters/06_export_and_inference.ipynb",
}


class ParameterError(ValueError):
    """A chapter parameter has a bad value; the message names the parameter and what is allowed."""


# ----------------------------------------------------------------------------------------------
# Parameter checks
# ----------------------------------------------------------------------------------------------
def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool = False):
    """`value` as an int, or ParameterError naming `name` (bools and non-integral floats refused)."""
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


def setup(data_dir=None, artifacts_dir=None, preset: str = "classroom", seed: int = 0,
          epochs=None) -> Context:
    """Check a chapter's parameters and return its :class:`Context`; every chapter calls it first.

    * ``data_dir``: a GISLR data folder (Kaggle layout, with train.csv) or None for the embedded
      synthetic set, generated once into ``artifacts_dir`` (`synthetic.ensure_data_dir`);
    * ``artifacts_dir``: where chapters keep what they make (None: ``./artifacts``);
    * ``preset``: "classroom" (laptop CPU) or "seed" (the report's model, for a GPU);
    * ``seed``: an integer >= 0; it seeds the synthetic set, the batches and the weights;
    * ``epochs``: None (the preset's) or an integer >= 1.

    A bad value raises :class:`ParameterError` naming the parameter, before any work is done.
    Also silences warnings (:func:`quiet`), sets the figure style and, in a notebook kernel, sends
    native C++ log lines to ``<artifacts_dir>/logs/native-stderr.log`` (:func:`native_logs_to_file`).
    """
    check_choice("preset", preset, _config.PRESETS)
    seed = check_int("seed", seed, minimum=0)
    epochs = check_int("epochs", epochs, minimum=1, allow_none=True)
    artifacts = _check_artifacts_dir(artifacts_dir)
    synthetic = data_dir is None
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
    run_dir = artifacts / "runs" / f"{_data_tag(data, synthetic)}_{preset}_seed{seed}"
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


def get_stats(ctx: Context, recompute: bool = False) -> dict:
    """Mean/std of the non-zero x, y of each landmark over the *training* clips (chapter 2).

    Loaded from ``<run folder>/stats.npz`` when it is there, else computed with
    `statistics.compute_stats` on the training participants' clips and saved there
    (`statistics.save_stats`), where chapter 4's training reads the same numbers.
    """
    from . import statistics
    path = stats_path(ctx)
    if path.exists() and not recompute:
        return statistics.load_stats(path)
    prepared = get_prepared(ctx)
    train_idx, _ = get_split(ctx)
    stats = statistics.compute_stats(prepared.X, rows=train_idx)
    statistics.save_stats(stats, path)
    return stats


def train(ctx: Context, epochs=None, verbose: int = 1, **overrides):
    """Train this run's model (chapter 4): `training.train` into the run folder; returns its TrainResult.

    ``epochs`` (None: ``ctx.epochs``, else the preset's) and ``overrides`` (preset settings) are
    passed on. Uses the statistics of :func:`get_stats`, so chapter 2's numbers are the model's.
    """
    from . import training
    epochs = check_int("epochs", epochs if epochs is not None else ctx.epochs, minimum=1, allow_none=True)
    result = training.train(get_prepared(ctx), ctx.preset, ctx.run_dir, seed=ctx.seed, stats=get_stats(ctx),
                            epochs=epochs, verbose=verbose, **overrides)
    ctx._cache["trained"] = result
    ctx._cache.pop("evaluation", None)
    return result


def _saved_run_matches(ctx: Context) -> bool:
    """A complete run in the run folder, made from this data set, preset, settings, seed and statistics.

    The number of epochs may differ (chapter 4 may have been run with ``epochs``): chapters 5 and 6
    evaluate whatever chapter 4 trained, and their tables say how many epochs that was.
    """
    from . import training
    needed = ("model.keras", "history.csv", "stats.npz", "split.npz", "train_config.json")
    if not all((ctx.run_dir / name).exists() for name in needed):
        return False
    saved = json.loads((ctx.run_dir / "train_config.json").read_text())
    cfg, options = training.resolve_settings(ctx.preset)
    key = training.run_key(get_prepared(ctx), ctx.preset, cfg, options, ctx.seed, get_stats(ctx))
    ignore_epochs = lambda settings: {k: v for k, v in (settings or {}).items() if k != "epochs"}  # noqa: E731
    return (all(saved.get(k) == key[k] for k in ("preset", "options", "seed", "data", "stats"))
            and ignore_epochs(saved.get("settings")) == ignore_epochs(key["settings"]))


def get_trained(ctx: Context, verbose: int = 1):
    """The model chapter 4 trained for this data set, preset and seed; trained now if missing.

    Loads ``<run folder>/model.keras`` and its history, statistics and split
    (`training.load_trained`) when they were made from the same data; otherwise trains the preset
    (with ``ctx.epochs`` if given), printing one line per epoch. Returns a `training.TrainResult`.
    """
    if "trained" in ctx._cache:
        return ctx._cache["trained"]
    from . import training
    if _saved_run_matches(ctx):
        result = training.load_trained(ctx.run_dir)
        if verbose:
            epochs = len(result.history)
            print(f"loaded the model trained in chapter 4 ({ctx.preset} preset, seed {ctx.seed}, "
                  f"{epochs} epoch{'s' if epochs != 1 else ''}, best epoch {result.best_epoch}) "
                  f"from {show_path(ctx.run_dir)}")
        ctx._cache["trained"] = result
        return result
    if verbose:
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
    from . import evaluation
    result = result or get_trained(ctx)
    return evaluation.write_metrics(
        metrics_path(ctx), ev.metrics, seed=ctx.seed, preset=ctx.preset,
        data="synthetic" if ctx.synthetic else ctx.data_dir.name,
        epochs=int(len(result.history)), best_epoch=result.best_epoch,
        validation="held-out participants" if len(result.val_idx) else "training clips (one participant)",
        val_participants=sorted(int(p) for p in np.unique(np.asarray(get_prepared(ctx).participant_id)[
            validation_rows(ctx, result)])),
    )


# ----------------------------------------------------------------------------------------------
# Small helpers the chapters share
# ----------------------------------------------------------------------------------------------
def papermill_command(chapter: int, out: str | None = None, **params) -> str:
    """The shell command that reruns `chapter` with papermill and these parameters (for the pages)."""
    if chapter not in CHAPTERS:
        raise ParameterError(f"chapter={chapter!r} is not valid; choose one of {sorted(CHAPTERS)}")
    nb = CHAPTERS[chapter]
    out = out or f"out/{Path(nb).stem}.ipynb"
    args = " ".join(f"-p {k} {v}" for k, v in params.items())
    return f"papermill {nb} {out} {args}".rstrip()


def _dominant_missing(summary: pd.DataFrame) -> np.ndarray:
    return np.where(summary["dominant"] == "left", summary["left_hand_missing"], summary["right_hand_missing"])


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
    good = candidates[1 - _dominant_missing(candidates) >= min_hand_share]
    candidates = good if len(good) else (candidates if len(candidates) else summary)
    target = float(summary["n_frames"].median())
    order = candidates.assign(_d=(candidates["n_frames"] - target).abs()).sort_values(["_d", "sequence_id"])
    return order.drop(columns="_d").iloc[0]


def middle_hand_frame(frames) -> int:
    """Index of the middle frame among those showing the clip's dominant hand (chapter 1's drawing)."""
    from .landmarks import LEFT_HAND_IDXS0, RIGHT_HAND_IDXS0
    frames = np.asarray(frames)
    left = np.isfinite(frames[:, LEFT_HAND_IDXS0])
    right = np.isfinite(frames[:, RIGHT_HAND_IDXS0])
    hand = left if left.sum() >= right.sum() else right
    visible = np.flatnonzero(hand.any(axis=(1, 2)))
    return int(visible[len(visible) // 2]) if visible.size else len(frames) // 2


def attention_weights(model, frames, idxs, block: int = 0, modes=("seed", "keys")) -> dict:
    """Attention weights ``[heads, T, T]`` (query x key) of one clip in a transformer block (chapter 3).

    Runs the model's own layers up to block `block` (normalisation, embedding, earlier blocks, with
    the padding mask and no random frame drop), computes that block's queries and keys, and passes
    the identity matrix as values to `model.scaled_dot_product_attention`: since
    ``softmax(q k^T / sqrt(d) + mask) @ I`` is the weight matrix itself, the weights come from the
    very function the model uses. Returns ``{mode: weights}`` for each mask mode in `modes`.
    """
    from . import model as _model
    from ._tf import tf
    frames = tf.constant(np.asarray(frames, np.float32)[None])
    idxs = tf.constant(np.asarray(idxs, np.float32)[None])
    previous = _model.set_frame_drop_at_inference(model, False)
    try:
        mask = model.get_layer("frame_mask")(idxs, training=False)
        lips, hand, pose = model.get_layer("normalisation")(frames)
        x = model.get_layer("embedding")(lips, hand, pose, idxs)
        transformer = model.get_layer("transformer")
        if not 0 <= block < len(transformer.blocks):
            raise ParameterError(f"block={block} is not valid; the model has {len(transformer.blocks)} blocks")
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
        return {mode: _model.scaled_dot_product_attention(q, k, eye, mask, mode).numpy()[0] for mode in modes}
    finally:
        _model.set_frame_drop_at_inference(model, previous)
