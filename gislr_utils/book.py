"""Setting a chapter up: its parameters checked, the page's style, the data folder and run folders.

Every chapter starts with a cell tagged ``parameters`` (papermill) and calls :func:`setup`, which
checks each parameter (a `config.ParameterError` naming it, also for a parameter the chapter does
not have), resolves the run's settings once (`config.resolve`) and makes the synthetic data set
when ``data_dir`` is None. What a chapter then does -- prepare the data, train, evaluate, export
-- it runs in its own cells. Layout of ``artifacts_dir`` (default `config.default_artifacts_dir`)::

    synthetic_seed<seed>/        the embedded synthetic data set (data_dir=None)
    prepared/<key>/              preprocessed arrays; <key> is the data set's identity
    runs/<data>-<key>_<preset>_seed<seed>[_<setting><value>...]/
                                 one run (chapter 4): model.weights.h5, stats.npz, split.npz,
                                 history.csv, manifest.json; the chapters' exports beside them
"""
from __future__ import annotations

import ast
import contextlib
import inspect
import os
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from . import config, runs
from .config import ParameterError, RunConfig, check_bool, check_choice, check_int, show_path  # noqa: F401

def _path(name: str, value) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ParameterError(f"{name}={value!r} must be a path (a non-empty str) or None")
    return Path(value).expanduser().resolve()


@dataclass
class Context:
    """A chapter's checked parameters and the folders derived from them."""
    data_dir: Path
    artifacts_dir: Path
    cfg: RunConfig
    synthetic: bool
    run: str | None = None          # a named run (chapters 5 to 7): read, never trained

    @property
    def data_label(self) -> str:
        """"synthetic" or "real" (the shipped sample or the Kaggle download): for figure titles."""
        return "synthetic" if self.synthetic else "real"

    def run_dir(self, prepared, cfg: RunConfig | None = None) -> Path:
        """The run folder of `cfg` (default: this chapter's) on `prepared`: named by the data set's
        key, the preset, the seed and each setting that differs from the preset's; or the named run."""
        if self.run is not None and cfg is None:
            return self.artifacts_dir / "runs" / self.run
        cfg = cfg or self.cfg
        extra = "".join(f"_{k}{v}" for k, v in cfg.overrides().items())
        name = f"{self.data_label}-{prepared.key[:8]}_{cfg.preset}_seed{cfg.seed}"
        return self.artifacts_dir / "runs" / (name + (extra if len(extra) < 80 else "_" + runs.key_of(extra)))

    def _repr_html_(self):
        rows = {"data": f"{self.data_label}: {show_path(self.data_dir)}", "artifacts_dir": show_path(
            self.artifacts_dir), "preset": self.cfg.preset, "seed": self.cfg.seed, "run": self.run,
                **{f"{k} (set)": v for k, v in self.cfg.overrides().items()}}
        return "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows.items() if v is not None
                       ).join(("<table>", "</table>"))


def _injected_parameters() -> tuple[set, set] | None:
    """In a notebook run by papermill: the names of the chapter's ``parameters`` cell and those
    papermill injected after it (from IPython's input history); None elsewhere."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    history = list(getattr(shell, "user_ns", {}).get("In", []))
    starts = [i for i, cell in enumerate(history) if i and cell.lstrip().startswith("# Parameters")]
    names = [{t.id for n in ast.walk(ast.parse(history[i])) if isinstance(n, ast.Assign) for t in n.targets
              if isinstance(t, ast.Name)} for i in (starts[-1] - 1, starts[-1])] if starts else None
    return tuple(names) if names else None


def setup(data_dir=None, artifacts_dir=None, preset: str = "classroom", seed: int = 0, run=None,
          **settings) -> Context:
    """Check a chapter's parameters and return its :class:`Context`; every chapter calls it first.

    ``data_dir``: None (the synthetic set, generated into ``artifacts_dir`` on first use),
    ``"real-sample"`` (the 16 genuine clips shipped with the package) or the Kaggle download;
    ``preset``, ``seed`` and ``settings`` (any setting of `config.RunConfig`; None: the preset's)
    resolve the run's settings once; ``run``: the name of a finished run folder under
    ``artifacts_dir/runs`` whose settings the chapter takes instead (chapters 5 to 7). A bad
    value, or a parameter papermill passed that the chapter does not have, raises
    `config.ParameterError` naming it before any work is done.
    """
    injected = _injected_parameters()
    if injected and injected[1] - injected[0]:
        raise ParameterError(f"unknown parameter(s) {sorted(injected[1] - injected[0])}; this chapter's "
                             f"parameters are {sorted(injected[0])}")
    cfg = config.resolve(preset, seed, **settings)
    artifacts = config.default_artifacts_dir() if artifacts_dir is None else _path("artifacts_dir", artifacts_dir)
    if artifacts.exists() and not artifacts.is_dir():
        raise ParameterError(f"artifacts_dir={str(artifacts_dir)!r} is a file, not a folder")
    if data_dir == config.REAL_SAMPLE_NAME:
        data_dir = config.real_sample_dir()          # the 16 genuine clips shipped with the package
    elif data_dir is not None and not (_path("data_dir", data_dir) / "train.csv").is_file():
        raise ParameterError(f"data_dir={str(data_dir)!r} is not a GISLR data folder (no train.csv): give the "
                             "Kaggle asl-signs folder, 'real-sample' or None for the synthetic set")
    if run is not None:
        cfg = _named_run(artifacts, run, {**settings, "preset": preset, "seed": seed}, injected)
    from . import plotting, synthetic
    plotting.set_style()
    _native_logs_to(artifacts / "logs" / "native-stderr.log")
    if data_dir is None:
        return Context(synthetic.ensure_data_dir(artifacts, seed=cfg.seed), artifacts, cfg, True, run)
    return Context(_path("data_dir", data_dir), artifacts, cfg, False, run)


def _named_run(artifacts: Path, run, settings: dict, injected) -> RunConfig:
    """The settings of the finished run folder `run` (read only: it is never trained again)."""
    if not isinstance(run, str) or not run or Path(run).name != run:
        raise ParameterError(f"run={run!r} must be the name of a folder in artifacts_dir/runs, or None")
    defaults = {"preset": "classroom", "seed": 0}             # setup's: a value of the caller's
    given = sorted({k for k, v in settings.items() if v is not None and v != defaults.get(k)}
                   | ((injected[1] & {"preset", "seed", *RunConfig.__dataclass_fields__}) if injected else set()))
    if given:
        raise ParameterError(f"run={run!r} takes its settings from the run; do not also pass {given}")
    record = runs.read_manifest(artifacts / "runs" / run)
    if record is None or "settings" not in record.get("spec", {}):
        raise ParameterError(f"run={run!r}: {show_path(artifacts / 'runs' / run)} holds no finished run")
    try:
        return RunConfig(**record["spec"]["settings"])
    except TypeError as err:
        raise ParameterError(f"run={run!r}: {show_path(artifacts / 'runs' / run / runs.MANIFEST)} was "
                             f"written by another version of the book ({err})") from None


def _native_logs_to(path: Path) -> None:
    """In a Jupyter kernel, send what C/C++ libraries write to file descriptor 2 (TensorFlow's and
    LiteRT's log lines) into `path` instead of the page; Python's warnings and tracebacks are not
    affected. Outside a kernel, or in a read-only folder, nothing changes."""
    if type(sys.stderr).__module__.startswith("ipykernel"):
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 2)
            os.close(fd)


def source(obj) -> str:
    """The source of a function or class of the package without its docstrings."""
    text = textwrap.dedent(inspect.getsource(obj))
    docstrings = {i for node in ast.walk(ast.parse(text)) if isinstance(node, (ast.FunctionDef, ast.ClassDef))
                  and ast.get_docstring(node) is not None
                  for i in range(node.body[0].lineno, node.body[0].end_lineno + 1)}
    return "\n".join(line for i, line in enumerate(text.splitlines(), 1) if i not in docstrings)


def show_code(*objs):
    """Display the package's own code of `objs`, highlighted, without docstrings: the layers and
    building blocks the chapters explain, as the code that runs."""
    from IPython.display import Code
    return Code("\n\n\n".join(source(o) for o in objs), language="python")
