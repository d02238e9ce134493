"""Chapter plumbing: check a chapter's parameters, then make or load what it needs from `artifacts_dir`.

Every chapter starts with a cell tagged ``parameters`` (papermill) and calls :func:`setup`, which
checks each parameter (a `config.ParameterError` naming it) and resolves the run's settings once
(`config.resolve`). The ``get_*`` functions return what a chapter needs -- the clip table, the
prepared arrays, the split, the statistics, a trained model, its evaluation -- loading it from
``artifacts_dir`` when an earlier chapter made it and making it when it is missing, so that every
chapter also runs alone on a fresh clone.

Layout of ``artifacts_dir`` (default `config.default_artifacts_dir`)::

    synthetic_seed<seed>/        the embedded synthetic data set (data_dir=None), generated once
    prepared/<key>/              preprocessed arrays; <key> is the data set's identity
    runs/<data>_<preset>_seed<seed>[_<setting><value>...]/
                                 one run: stats.npz, model.keras, history.csv, split.npz,
                                 train_config.json (its manifest), metrics.json, model.tflite,
                                 side/ (the chapters' exercises), checkpoint/ (while it trains)

A run folder is named by the data set, the preset, the seed and every setting that differs from
the preset's, so chapters 4, 5 and 6 given the same parameters find the same run (or take its
folder by name: ``run``). Every file in it is keyed on what it was made from, written atomically
and rebuilt with a message when its inputs changed (`runs`).
"""
from __future__ import annotations

import ast
import contextlib
import errno
import hashlib
import inspect
import logging
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import config, runs
from .config import ParameterError, RunConfig, check_bool, check_choice, show_path  # noqa: F401

# The range of every integer parameter a chapter has beside the run's settings (a test checks
# that each integer parameter of a chapter has one, here or in `config.INT_RANGES`).
PARAMETER_RANGES: dict[str, tuple[int, int]] = {
    "n_summary": (1, 10_000_000),
    "boxplot_clips": (1, 10_000_000),
    "n_confused": (2, 250),             # signs in a heatmap: there are 250
    "latency_clips": (1, 100_000),
    "masking_epochs": (1, 10_000),
    "masking_seeds": (1, 20),
}


def check_int(name: str, value, minimum=None, maximum=None, allow_none: bool = False):
    """`config.check_int` with the range of `PARAMETER_RANGES` / `config.INT_RANGES` by default."""
    lo, hi = PARAMETER_RANGES.get(name, config.INT_RANGES.get(name, (None, None)))
    return config.check_int(name, value, lo if minimum is None else minimum,
                            hi if maximum is None else maximum, allow_none)


def _check_path(name: str, value) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ParameterError(f"{name}={value!r} must be a path (a non-empty str) or None")
    return Path(value).expanduser().resolve()


def _check_data_dir(data_dir) -> Path:
    if isinstance(data_dir, str) and data_dir == config.REAL_SAMPLE_NAME:
        return config.real_sample_dir()          # the 16 real clips shipped with the package
    path = _check_path("data_dir", data_dir)
    if not path.is_dir():
        raise ParameterError(f"data_dir={str(data_dir)!r} is not a folder; give the folder of the Kaggle "
                             "asl-signs download (train.csv, train_landmark_files/), 'real-sample' or None "
                             "for the embedded synthetic set")
    if not (path / "train.csv").exists():
        raise ParameterError(f"data_dir={str(data_dir)!r} has no train.csv: it is not a GISLR data folder "
                             "(expected train.csv, sign_to_prediction_index_map.json, train_landmark_files/)")
    return path


@dataclass
class Context:
    """A chapter's checked parameters, its run's settings and the folders derived from them."""

    data_dir: Path
    artifacts_dir: Path
    run_dir: Path
    cfg: RunConfig
    synthetic: bool
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def preset(self) -> str:
        return self.cfg.preset

    @property
    def seed(self) -> int:
        return self.cfg.seed

    @property
    def data_label(self) -> str:
        """"synthetic", "real" (the shipped sample or the Kaggle download): for figure titles."""
        return "synthetic" if self.synthetic else "real"

    def table(self) -> pd.DataFrame:
        """The parameters as a two-column table, paths shown relative to the repository."""
        data = (f"synthetic (generated into {show_path(self.data_dir)})" if self.synthetic
                else show_path(self.data_dir))
        rows = [("data", data), ("artifacts_dir", show_path(self.artifacts_dir)),
                ("run folder", show_path(self.run_dir)), ("preset", self.preset), ("seed", self.seed)]
        rows += [(f"{k} (override)", v) for k, v in self.cfg.overrides().items()]
        return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")

    def _repr_html_(self):
        return self.table().to_html()

    def __repr__(self):
        return "Context(" + ", ".join(f"{k}={v}" for k, v in self.table()["value"].items()) + ")"


def quiet() -> None:
    """Quiet the libraries whose loggers are noisy (TensorFlow, absl, h5py); warnings still show."""
    for name in ("absl", "tensorflow", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _in_kernel() -> bool:
    import sys
    return type(sys.stderr).__module__.startswith("ipykernel")


def native_logs_to_file(path) -> Path | None:
    """In a Jupyter kernel, send what C/C++ libraries write to file descriptor 2 into `path`.

    TensorFlow and LiteRT print log lines from C++ (e.g. "Created TensorFlow Lite XNNPACK delegate
    for CPU") straight to descriptor 2, which the kernel forwards into the page. Python's own
    warnings and tracebacks go through `sys.stderr` and are not affected. Outside a kernel, or when
    `path` cannot be written (a read-only artifacts folder), nothing is changed: returns None.
    """
    if not _in_kernel():
        return None
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        return None
    try:
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    return path


def run_folder_name(data_tag: str, cfg: RunConfig) -> str:
    """``<data>_<preset>_seed<seed>`` and ``_<setting><value>`` for each setting that differs from
    the preset's (a hash when that would be longer than 120 characters)."""
    name = f"{data_tag}_{cfg.preset}_seed{cfg.seed}"
    extra = "".join(f"_{k}{v}" for k, v in cfg.overrides().items())
    if len(name + extra) > 120:
        extra = "_" + runs.key_of(cfg.overrides())[:10]
    return name + extra


def _data_tag(data_dir: Path, synthetic: bool) -> str:
    if synthetic:
        return "synthetic"
    if data_dir == config.real_sample_dir():
        return config.REAL_SAMPLE_NAME
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:6]
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in data_dir.name) or "data"
    return f"{name}-{digest}"


def setup(data_dir=None, artifacts_dir=None, preset: str = "classroom", seed: int = 0, run=None,
          **settings) -> Context:
    """Check a chapter's parameters and return its :class:`Context`; every chapter calls it first.

    ``data_dir``: None (the synthetic set, generated into ``artifacts_dir`` on first use),
    ``"real-sample"`` (the 16 genuine clips shipped with the package) or the Kaggle download;
    ``artifacts_dir``: None (`config.default_artifacts_dir`) or a folder; ``preset`` and ``seed``;
    ``settings``: any setting of `config.RunConfig` (None: the preset's), resolved once by
    `config.resolve`; ``run``: the name of a run folder under ``artifacts_dir/runs`` whose settings
    the chapter takes (chapters 5 and 6). A bad value raises `config.ParameterError` naming the
    parameter before any work is done.
    """
    cfg = config.resolve(preset, seed, **settings)
    artifacts = config.default_artifacts_dir() if artifacts_dir is None else _check_path(
        "artifacts_dir", artifacts_dir)
    if artifacts.exists() and not artifacts.is_dir():
        raise ParameterError(f"artifacts_dir={str(artifacts_dir)!r} is a file, not a folder")
    synthetic = data_dir is None
    data = None if synthetic else _check_data_dir(data_dir)
    if run is not None:
        if not isinstance(run, str) or not run or Path(run).name != run:
            raise ParameterError(f"run={run!r} must be the name of a folder in artifacts_dir/runs, or None")
        manifest = runs.read_manifest(artifacts / "runs" / run / "train_config.json")
        if manifest is None or "spec" not in manifest:
            raise ParameterError(f"run={run!r}: {show_path(artifacts / 'runs' / run)} holds no finished run")
        cfg = RunConfig(**manifest["spec"]["settings"])
    quiet()
    from . import plotting
    plotting.set_style()
    if _in_kernel():
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        set_matplotlib_formats("retina")
    with contextlib.suppress(OSError):
        artifacts.mkdir(parents=True, exist_ok=True)
    native_logs_to_file(artifacts / "logs" / "native-stderr.log")
    if synthetic:
        from . import synthetic as _synthetic
        data = Path(_synthetic.ensure_data_dir(None, artifacts, seed=seed))
    run_dir = artifacts / "runs" / (run or run_folder_name(_data_tag(data, synthetic), cfg))
    return Context(data_dir=data, artifacts_dir=artifacts, run_dir=run_dir, cfg=cfg, synthetic=synthetic)


def settings_table(cfg: RunConfig) -> pd.DataFrame:
    """Every setting of the seed report, of the classroom preset and of the run `cfg`, with why the
    classroom preset differs (chapter 4's table)."""
    table = pd.DataFrame({"seed report": config.SEED, "classroom": config.CLASSROOM,
                          "this run": cfg.as_dict()}).drop(index=["preset", "seed"], errors="ignore")
    table["why classroom differs"] = pd.Series(config.CLASSROOM_REASONS).reindex(table.index).fillna("")
    return table.astype({"seed report": str, "classroom": str, "this run": str})


# ----------------------------------------------------------------------------------------------
# What chapters need, made when missing
# ----------------------------------------------------------------------------------------------
def _cached(ctx: Context, name: str, make):
    if name not in ctx._cache:
        ctx._cache[name] = make()
    return ctx._cache[name]


def get_clips(ctx: Context) -> pd.DataFrame:
    """The clip table of the data set (`dataset.read_clips`)."""
    from . import dataset
    return _cached(ctx, "clips", lambda: dataset.read_clips(ctx.data_dir))


def get_prepared(ctx: Context):
    """The preprocessed data set (`preprocessing.prepare_dataset`, cached under ``artifacts_dir/prepared``;
    read-only memory maps: the full data set's X is 4.8 GB)."""
    from . import preprocessing
    return _cached(ctx, "prepared", lambda: preprocessing.prepare_dataset(
        ctx.data_dir, ctx.artifacts_dir, progress=False, mmap=True))


def get_split(ctx: Context) -> dict[str, np.ndarray]:
    """Rows of the training, validation and test clips of this run (`training.split_rows`)."""
    from . import training
    return _cached(ctx, "split", lambda: training.split_rows(get_prepared(ctx), ctx.cfg))


def get_stats(ctx: Context, verbose: int = 1) -> dict:
    """Mean/std of the non-zero x, y of each landmark over the *training* clips (chapter 2).

    Loaded from ``<run folder>/stats.npz`` when its manifest says it was made from this data set
    and these training rows, else computed (`statistics.compute_stats`) and saved there, where
    chapter 4's training reads the same numbers.
    """
    from . import statistics
    if "stats" in ctx._cache:
        return ctx._cache["stats"]
    path = ctx.run_dir / "stats.npz"
    spec = {"artefact": "statistics", "data": get_prepared(ctx).key,
            "train_rows": runs.hash_arrays(np.asarray(get_split(ctx)["train"], np.int64)), "version": 2}
    why = runs.check_manifest(runs.manifest_path(path), spec) if path.exists() else "missing"
    if why is None:
        try:
            stats = statistics.load_stats(path)
        except (OSError, ValueError) as err:
            why = f"unreadable ({err})"
    if why is not None:
        if why != "missing" and verbose:
            print(f"the statistics in {show_path(path)} are {why}: computing them anew")
        stats = statistics.compute_stats(get_prepared(ctx).X, rows=get_split(ctx)["train"])
        with contextlib.suppress(OSError):          # a read-only folder: keep them in memory
            with runs.atomic_path(path) as tmp:
                statistics.save_stats(stats, tmp)
            runs.write_manifest(runs.manifest_path(path), spec)
    ctx._cache["stats"] = stats
    return stats


def train(ctx: Context, restart: bool = False, strategy: str = "one", verbose: int = 1):
    """Train this run (chapter 4): `training.train` into the run folder, with the statistics of
    :func:`get_stats`; a finished run of the same settings and data is loaded, an interrupted one
    continues. Returns its `training.TrainResult`."""
    from . import training
    check_bool("restart", restart)
    check_choice("strategy", strategy, training.STRATEGIES)
    result = training.train(get_prepared(ctx), ctx.cfg, ctx.run_dir, stats=get_stats(ctx), restart=restart,
                            strategy=strategy, verbose=verbose)
    ctx._cache["trained"] = result
    ctx._cache.pop("evaluation", None)
    return result


def get_trained(ctx: Context, verbose: int = 1):
    """The trained model of this run (chapters 5 and 6): loaded when the run folder holds it,
    trained now (as `train` does) when it does not."""
    from . import training
    if "trained" in ctx._cache:
        return ctx._cache["trained"]
    spec = training.run_spec(get_prepared(ctx), ctx.cfg, get_stats(ctx, verbose=0))
    why = training.why_not_reusable(ctx.run_dir, spec)
    if why is None:
        try:
            result = training.load_trained(ctx.run_dir)
        except (OSError, ValueError, runs.ArtefactError) as err:
            why = f"damaged ({err})"
        else:
            if verbose:
                print(f"loaded the run trained in chapter 4 ({len(result.history)} epochs, kept epoch "
                      f"{result.kept_epoch}):\n  {show_path(ctx.run_dir)}")
            ctx._cache["trained"] = result
            return result
    if verbose:
        print(f"the run in {show_path(ctx.run_dir)} is {why}: training it now, as chapter 4 does")
    return train(ctx, verbose=verbose)


def test_rows(ctx: Context, result=None) -> np.ndarray:
    """Rows to evaluate on: the held-out participants (all training clips if there are none)."""
    rows = (result or get_trained(ctx)).rows
    return rows["test"] if rows["test"].size else rows["train"]


def get_evaluation(ctx: Context, result=None):
    """`evaluation.evaluate` of the run's model on the held-out participants' clips (chapter 5),
    seeded with the run's seed (the seed preset's random frame drop gives the same numbers)."""
    from . import evaluation

    def make():
        res = result or get_trained(ctx)
        prepared, rows = get_prepared(ctx), test_rows(ctx, res)
        return evaluation.evaluate(res.model, prepared.X[rows], prepared.idxs[rows], np.asarray(prepared.y)[rows],
                                   participant_id=np.asarray(prepared.participant_id)[rows], seed=ctx.seed)
    return _cached(ctx, "evaluation", make)


def write_metrics(ctx: Context, ev, result=None) -> Path | None:
    """Write chapter 5's ``metrics.json`` into the run folder; None (with a line) when it is read-only."""
    from . import evaluation
    result = result or get_trained(ctx)
    path = ctx.run_dir / "metrics.json"
    rows = test_rows(ctx, result)
    try:
        with runs.atomic_path(path) as tmp:
            evaluation.write_metrics(
                tmp, ev.metrics, seed=ctx.seed, preset=ctx.preset, data=ctx.data_label,
                epochs=int(len(result.history)), kept_epoch=result.kept_epoch,
                evaluated_on="held-out participants" if result.rows["test"].size else "training clips",
                participants=sorted(int(p) for p in np.unique(np.asarray(get_prepared(ctx).participant_id)[rows])))
        runs.write_manifest(runs.manifest_path(path), {"artefact": "metrics", "run": runs.key_of(result.spec),
                                                       "rows": runs.hash_arrays(rows)})
    except OSError as err:
        if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        print(f"{show_path(ctx.run_dir)} is read-only: metrics.json not written")
        return None
    return path


def export_tflite(ctx: Context, result=None, fp16: bool = False) -> Path:
    """The run's TFLite file (`export.export_tflite`), cached beside the model with a manifest of
    everything its bytes depend on (the run, fp16, the preprocessing and export code versions);
    exported again when one changed, into a temporary folder when the run folder is read-only."""
    from . import export, preprocessing
    result = result or get_trained(ctx)
    path = ctx.run_dir / ("model_fp16.tflite" if fp16 else "model.tflite")
    spec = {"artefact": "tflite", "run": runs.key_of(result.spec), "fp16": bool(fp16),
            "preprocessing": preprocessing.PREPROCESSING_VERSION, "export": export.EXPORT_VERSION}
    if path.exists() and runs.check_manifest(runs.manifest_path(path), spec) is None:
        return path
    if not os.access(ctx.run_dir, os.W_OK):
        import tempfile
        path = Path(tempfile.mkdtemp(prefix="gislr-export-")) / path.name
        print(f"{show_path(ctx.run_dir)} is read-only: exporting to {path}")
    with runs.atomic_path(path) as tmp:
        export.export_tflite(result.model, tmp, fp16=fp16)
    runs.write_manifest(runs.manifest_path(path), spec)
    return path


def side_run_dir(ctx: Context, name: str) -> Path:
    """``<run folder>/side/<name>``: a chapter's side run (an exercise) belongs to its run."""
    return ctx.run_dir / "side" / name


def masking_comparison(ctx: Context, seeds=(0,), epochs: int | None = None, verbose: int = 1) -> pd.DataFrame:
    """Held-out accuracy of the run's settings with the seed's attention mask and with the key
    mask, trained the same way for each seed in `seeds` (chapter 6).

    Each variant is a run of its own (its folder is named by its settings, so it is trained once
    and reused). Rows: mask "seed" with the frame drop at inference on and off (the same weights),
    mask "keys"; columns seed, attention_mask, frame_drop_at_inference, accuracy, top5, macro_f1,
    n_test. Needs held-out participants (ValueError otherwise).
    """
    from . import evaluation, training
    from .model import frame_drop_at_inference
    prepared = get_prepared(ctx)
    if np.unique(np.asarray(prepared.participant_id)).size < 2:
        raise ValueError("masking_comparison needs held-out participants: the data set has one participant")
    rows = []
    base = {**ctx.cfg.overrides(), **({"epochs": epochs} if epochs else {})}
    for seed in seeds:
        for mode in ("seed", "keys"):
            cfg = config.resolve(ctx.preset, seed, **{**base, "attention_mask": mode,
                                                       "frame_drop_at_inference": mode == "seed"})
            run_dir = ctx.artifacts_dir / "runs" / run_folder_name(_data_tag(ctx.data_dir, ctx.synthetic), cfg)
            res = training.train(prepared, cfg, run_dir, stats=get_stats(ctx, verbose=0), verbose=0)
            test = res.rows["test"]
            X, idxs, y = prepared.X[test], prepared.idxs[test], np.asarray(prepared.y)[test]
            for drop in ([True, False] if mode == "seed" else [False]):
                with frame_drop_at_inference(res.model, drop):
                    m = evaluation.summary_metrics(y, evaluation.predict(res.model, X, idxs, seed=seed))
                rows.append({"seed": seed, "attention_mask": mode, "frame_drop_at_inference": drop,
                             **{k: m[k] for k in ("accuracy", "top5", "macro_f1")}, "n_test": m["n_val"]})
            if verbose:
                print(f"seed {seed}, mask {mode!r}: {'reused' if res.reused else 'trained'}")
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# Small helpers the chapters share
# ----------------------------------------------------------------------------------------------
def source(obj) -> str:
    """The source of a function or class of the package without its docstrings (what
    :func:`show_code` displays; a test checks it is the live code)."""
    text = textwrap.dedent(inspect.getsource(obj))
    docstrings = set()
    for node in ast.walk(ast.parse(text)):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            docstrings.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = [line for i, line in enumerate(text.splitlines(), 1) if i not in docstrings]
    return "\n".join(lines)


def show_code(*objs):
    """Display the package's own code of `objs` on the page, syntax-highlighted, without
    docstrings (chapters 2-4 show the method this way: the code a student reads runs)."""
    from IPython.display import Code
    return Code("\n\n\n".join(source(o) for o in objs), language="python")


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


def real_clip():
    """A typical one of the 16 genuine clips shipped with the package (`pick_example`), preprocessed
    (chapters 3 and 4): ``(its clip_summary row, x [64, 66, 3], non_empty_frame_idxs [64])``."""
    from . import dataset, preprocessing
    clip = pick_example(dataset.clip_summary(dataset.read_clips(config.real_sample_dir())))
    return (clip, *preprocessing.preprocess(dataset.load_frames(clip.path)))


def middle_hand_frame(frames) -> int:
    """Index of the middle frame among those showing the clip's dominant hand (chapter 1's drawing)."""
    from .landmarks import dominant_hand
    visible = np.flatnonzero(dominant_hand(np.asarray(frames)).visible)
    return int(visible[len(visible) // 2]) if visible.size else len(frames) // 2
