"""`gislr_utils.book.setup`, what every chapter calls first: parameters checked before any work
(also those papermill injects that the chapter does not have), named runs, run folders, a
renamed data folder, a read-only artifacts folder."""
from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import EPOCHS, REPO, TINY, copy_run, weights_equal
from gislr_utils import book, config, preprocessing, recipe, training
from gislr_utils.config import ParameterError

CHAPTERS = sorted((REPO / "chapters").glob("0*.ipynb"))
KEY = types.SimpleNamespace(key="0123456789abcdef")       # a prepared data set, as run_dir sees it


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _parameters_cell(path: Path) -> str:
    (cell,) = [c for c in _cells(path) if "parameters" in c["metadata"].get("tags", [])]
    return "".join(cell["source"])


def _setup_cell(path: Path) -> str:
    return next("".join(c["source"]) for c in _cells(path) if "book.setup(" in "".join(c["source"]))


# --------------------------------------------------------------------------------------------------
# Bad values
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(preset="nope"), "preset='nope' is not valid; choose one of ['classroom', 'improved', 'seed']"),
    (dict(seed=-1), "seed=-1 must be >= 0"),
    (dict(seed=2**32), "seed=4294967296 must be <= 4294967295"),
    (dict(seed="0"), "seed='0' must be an integer"),
    (dict(seed=True), "seed=True must be an integer"),
    (dict(epochs=0), "epochs=0 must be >= 1"),
    (dict(epochs=10**20), "epochs=100000000000000000000 must be <= 10000"),
    (dict(epochs=2.5), "epochs=2.5 must be an integer"),
    (dict(attention_mask="both"), "attention_mask='both' is not valid"),
    (dict(schedule="step"), "schedule='step' is not valid"),
    (dict(handless_clips="skip"), "handless_clips='skip' is not valid"),
    (dict(mixed_precision="yes"), "mixed_precision='yes' must be True or False"),
    (dict(jit_compile=1), "jit_compile=1 must be True or False"),
    (dict(mlp_dropout=1.0), "mlp_dropout=1.0 must be in [0.0, 1.0)"),
    (dict(label_smoothing=-0.1), "label_smoothing=-0.1 must be in [0.0, 1.0)"),
    (dict(learning_rate=0.0), "learning_rate=0.0 must be in (0.0, 10.0]"),        # issue 26
    (dict(learning_rate=0.0, schedule="constant"), "learning_rate=0.0 must be in (0.0, 10.0]"),
    (dict(learning_rate=float("nan")), "learning_rate=nan must be a number"),
    (dict(learning_rate="fast"), "learning_rate='fast' must be a number"),
    (dict(units=30, num_heads=4), "units=30 must be divisible by num_heads=4"),
    (dict(frame_drop_at_inference=True), "frame_drop_at_inference=True needs attention_mask='seed'"),
    (dict(epoch=1), "unknown setting(s) ['epoch']"),
])
def test_setup_rejects_a_bad_value_naming_the_parameter(tmp_path, kwargs, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        book.setup(None, tmp_path / "art", **kwargs)
    assert not (tmp_path / "art").exists(), "a bad parameter must stop before any work"


def test_setup_rejects_bad_folders(tmp_path):
    for bad in ("", "   "):                      # issue 19: '' was taken as the current folder
        with pytest.raises(ParameterError, match="artifacts_dir="):
            book.setup(None, bad)
    with pytest.raises(ParameterError, match="data_dir=''"):
        book.setup("", tmp_path / "art")
    with pytest.raises(ParameterError, match="data_dir=3 must be a path"):
        book.setup(3, tmp_path / "art")
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "missing", "real_sample"):   # a near miss is a path
        with pytest.raises(ParameterError, match="is not a GISLR data folder \\(no train.csv\\)"):
            book.setup(folder, tmp_path / "art")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match="artifacts_dir=.* is a file"):
        book.setup("real-sample", tmp_path / "file")
    assert not (tmp_path / "art").exists()


def test_none_takes_the_presets_value():
    assert config.resolve("seed", units=None).units == 512 and config.resolve("classroom", units=None).units == 96


def test_paths_on_pages_are_relative_to_the_repository(tmp_path):
    assert book.show_path(config.REPO_ROOT / "artifacts" / "runs" / "x") == "./artifacts/runs/x"
    assert book.show_path(tmp_path / "model.weights.h5") == str(tmp_path / "model.weights.h5")   # outside


def test_check_helpers():
    assert book.check_int("n_summary", 3.0) == 3
    assert book.check_int("n_summary", None, allow_none=True) is None
    with pytest.raises(ParameterError, match="n_summary=None must be an integer"):
        book.check_int("n_summary", None)
    with pytest.raises(ParameterError, match="n_confused=251 must be <= 250"):
        book.check_int("n_confused", 251)
    assert book.check_bool("restart", np.bool_(True)) is True
    with pytest.raises(ParameterError, match="restart='yes' must be True or False"):
        book.check_bool("restart", "yes")
    with pytest.raises(ParameterError, match=re.escape("strategy='two' is not valid; choose one of")):
        book.check_choice("strategy", "two", training.STRATEGIES)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_parameter_has_a_type_and_every_integer_a_range(path):
    """``papermill --help-notebook`` lists each parameter with its type and help; an integer
    parameter without a range, or one the chapter never checks, fails."""
    import papermill
    params = papermill.inspect_notebook(str(path))
    assert list(params) == [line.split("=")[0].strip() for line in _parameters_cell(path).splitlines()]
    code = "\n".join("".join(c["source"]) for c in _cells(path) if c["cell_type"] == "code")
    ranges = config.INT_RANGES
    for name, p in params.items():
        assert p["inferred_type_name"] not in ("None", "") and p["help"], f"{path.name}: {name} has no type/help"
        if "int" in p["inferred_type_name"]:
            assert name in ranges, f"{path.name}: integer parameter {name} has no range"
            assert name in config.INT_RANGES or f'check_int("{name}"' in code, f"{path.name}: {name} never checked"
            lo, hi = ranges[name]
            with pytest.raises(ParameterError, match=f"{name}={hi + 1} must be <= {hi}"):
                book.check_int(name, hi + 1)


# --------------------------------------------------------------------------------------------------
# Parameters papermill injected (issue 26: `-p epoch 1` trained the preset's 10 epochs silently)
# --------------------------------------------------------------------------------------------------
def _as_papermill(monkeypatch, chapter: str, injected: str):
    """IPython's input history as papermill leaves it in a kernel: the chapter's parameters cell,
    the cell papermill injected after it, then the chapter's set-up cell (running)."""
    path = REPO / "chapters" / chapter
    history = ["", _parameters_cell(path), "# Parameters\n" + injected, _setup_cell(path)]
    shell = types.SimpleNamespace(user_ns={"In": history})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


@pytest.mark.parametrize("chapter, injected, unknown, known", [
    ("04_training.ipynb", "epoch = 1\n", "epoch", "epochs"),
    ("04_training.ipynb", 'data_dir = "real-sample"\nlearningrate = 0.1\n', "learningrate", "learning_rate"),
    ("05_evaluation.ipynb", "units = 128\n", "units", "run"),          # chapter 5 ignored -p units 128
    ("05_evaluation.ipynb", "units = 128\nnum_heads = 8\n", "num_heads", "run"),
])
def test_a_parameter_the_chapter_does_not_have_is_refused(tmp_path, monkeypatch, chapter, injected, unknown, known):
    _as_papermill(monkeypatch, chapter, injected)
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) \[.*'" + unknown + r"'.*this chapter's "
                       r"parameters are \[.*'" + known + "'"):
        book.setup(None, tmp_path / "art", "classroom", 0)
    assert not (tmp_path / "art").exists()


def test_the_parameters_a_chapter_has_pass(tmp_path, monkeypatch):
    _as_papermill(monkeypatch, "04_training.ipynb", 'data_dir = "real-sample"\nepochs = 1\nunits = 32\n')
    ctx = book.setup("real-sample", tmp_path, "classroom", 0, epochs=1, units=32)
    assert ctx.cfg.epochs == 1 and ctx.cfg.units == 32


_TINY_NOTEBOOK = {
    "cells": [
        {"id": "parameters", "cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None,
         "outputs": [],
         "source": 'data_dir = "real-sample"\nartifacts_dir = None\nepochs = None\n'},
        {"id": "setup", "cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "from gislr_utils import book\nctx = book.setup(data_dir, artifacts_dir, epochs=epochs)"},
        {"id": "show", "cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": 'print("epochs", ctx.cfg.epochs)'},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5}


def test_papermill_stops_a_notebook_given_an_unknown_parameter(tmp_path, monkeypatch):
    """The mechanism in a real kernel: `-p epoch 1` stops the notebook, `-p epochs 1` reaches it."""
    import papermill
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    source = tmp_path / "tiny.ipynb"
    source.write_text(json.dumps(_TINY_NOTEBOOK))
    art = tmp_path / "art"
    with pytest.raises(papermill.PapermillExecutionError) as err:
        papermill.execute_notebook(str(source), str(tmp_path / "bad.ipynb"), kernel_name="python3",
                                   parameters={"epoch": 1, "artifacts_dir": str(art)}, progress_bar=False)
    assert err.value.ename == "ParameterError" and "'epoch'" in err.value.evalue and "'epochs'" in err.value.evalue
    papermill.execute_notebook(str(source), str(tmp_path / "good.ipynb"), kernel_name="python3",
                               parameters={"epochs": 1, "artifacts_dir": str(art)}, progress_bar=False)
    outputs = json.loads((tmp_path / "good.ipynb").read_text())["cells"][-1]["outputs"]
    assert "".join(outputs[0]["text"]).strip() == "epochs 1"


# --------------------------------------------------------------------------------------------------
# A named run (chapters 5 to 7): read, never trained; its settings, nobody else's
# --------------------------------------------------------------------------------------------------
def test_a_named_run_gives_its_settings_and_folder(finished_run, real_dir, shared_artifacts, real_prepared):
    name = finished_run.run.run_dir.name
    ctx = book.setup(real_dir, shared_artifacts, run=name)
    assert ctx.run == name and ctx.cfg == finished_run.cfg
    assert ctx.run_dir(real_prepared) == finished_run.run.run_dir
    other = config.resolve("classroom", 1)
    assert ctx.run_dir(real_prepared, other).name == f"real-{real_prepared.key[:8]}_classroom_seed1"


def test_a_named_run_with_settings_is_refused(finished_run, real_dir, shared_artifacts, monkeypatch):
    """Issue 26: `-p run X -p epochs 5 -p seed 3` ignored both silently."""
    name = finished_run.run.run_dir.name
    with pytest.raises(ParameterError, match=re.escape(f"run={name!r} takes its settings from the run; do not "
                                                        "also pass ['epochs', 'units']")):
        book.setup(real_dir, shared_artifacts, run=name, epochs=5, units=32)
    _as_papermill(monkeypatch, "05_evaluation.ipynb", f"run = {name!r}\nseed = 3\n")
    with pytest.raises(ParameterError, match=r"do not also pass \['seed'\]"):
        book.setup(real_dir, shared_artifacts, "classroom", 3, run=name)


def test_a_named_run_must_be_a_finished_run_of_this_version(finished_run, real_dir, tmp_path):
    art = tmp_path / "art"
    (art / "runs" / "half" / "unfinished-0123").mkdir(parents=True)      # a killed run's folder
    for run in ("nothing", "half"):
        with pytest.raises(ParameterError, match=f"run='{run}': .* holds no finished run"):
            book.setup(real_dir, art, run=run)
    for run in ("../runs", "a/b", "", 3):
        with pytest.raises(ParameterError, match="must be the name of a folder in artifacts_dir/runs"):
            book.setup(real_dir, art, run=run)
    folder = copy_run(finished_run.run.run_dir, art / "runs" / "old")
    record = json.loads((folder / "manifest.json").read_text())
    record["spec"]["settings"]["warmup_epochs"] = 2                      # issue 26: a TypeError before
    (folder / "manifest.json").write_text(json.dumps(record))
    with pytest.raises(ParameterError, match=r"run='old': .*manifest.json was written by another version"):
        book.setup(real_dir, art, run="old")


# --------------------------------------------------------------------------------------------------
# Run folders
# --------------------------------------------------------------------------------------------------
def test_run_folders_are_named_by_data_preset_seed_and_each_changed_setting(tmp_path):
    ctx = book.setup("real-sample", tmp_path, "classroom", 0)
    assert ctx.data_dir == config.real_sample_dir().resolve() and not ctx.synthetic and ctx.data_label == "real"
    runs_dir = tmp_path.resolve() / "runs"
    assert ctx.run_dir(KEY) == runs_dir / "real-01234567_classroom_seed0"
    same = book.setup("real-sample", tmp_path, "classroom", 0, epochs=config.CLASSROOM["epochs"])
    assert same.run_dir(KEY) == ctx.run_dir(KEY)                    # the preset's value: the preset's run
    other = book.setup("real-sample", tmp_path, "classroom", 2, num_heads=8, units=128, epochs=3)
    assert other.run_dir(KEY).name == "real-01234567_classroom_seed2_units128_num_heads8_epochs3"
    assert ctx.run_dir(types.SimpleNamespace(key="fedcba9876543210")).name.startswith("real-fedcba98_")
    many = book.setup("real-sample", tmp_path, "seed", 0, **TINY, epochs=1, mlp_dropout=0.0, frame_drop=0.0,
                      classifier_dropout=0.0, learning_rate=0.002)
    assert len(many.run_dir(KEY).name) < 80 and many.run_dir(KEY) != ctx.run_dir(KEY)
    assert not any(tmp_path.iterdir()), "setup on a given data folder writes nothing"


def test_no_data_dir_means_the_synthetic_set_of_the_seed(tmp_path, monkeypatch):
    from gislr_utils import synthetic
    calls = []

    def ensure(artifacts, seed=0):
        calls.append((artifacts, seed))
        return artifacts / f"synthetic_seed{seed}"
    monkeypatch.setattr(synthetic, "ensure_data_dir", ensure)
    ctx = book.setup(None, tmp_path, "classroom", 3)
    assert calls == [(tmp_path.resolve(), 3)] and ctx.data_dir == tmp_path.resolve() / "synthetic_seed3"
    assert ctx.synthetic and ctx.run_dir(KEY).name == "synthetic-01234567_classroom_seed3"


def test_a_renamed_data_folder_finds_its_runs(finished_run, real_dir, shared_artifacts, no_training):
    """Issue 26: a renamed data folder was not recognised by its runs (they are keyed by the arrays'
    content, not by the folder's path)."""
    renamed = real_dir.with_name("renamed")
    real_dir.rename(renamed)
    try:
        ctx = book.setup(renamed, shared_artifacts, **TINY, epochs=EPOCHS)
        prepared = preprocessing.prepare_dataset(ctx.data_dir, ctx.artifacts_dir, progress=False, mmap=True)
        assert prepared.clips["path"].str.startswith(str(renamed)).all()
        assert ctx.run_dir(prepared) == finished_run.run.run_dir
        run = recipe.train_run(prepared, ctx.cfg, ctx.run_dir(prepared), verbose=0)    # fit would raise
        assert weights_equal(run.model, finished_run.run.model)
    finally:
        renamed.rename(real_dir)


# --------------------------------------------------------------------------------------------------
# A read-only artifacts folder (issue 26: a class's shared copy)
# --------------------------------------------------------------------------------------------------
def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.is_dir(), p.stat().st_size if p.is_file() else 0, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def _read_only(monkeypatch, folder: Path):
    """Every write, creation, rename or removal under `folder` fails as on a read-only file system
    (chmod cannot show it to root, who runs the tests)."""
    import builtins
    root = str(folder.resolve())

    def inside(p) -> bool:
        return not isinstance(p, int) and str(Path(os.fsdecode(p)).resolve()).startswith(root)

    def refuse(p):
        raise OSError(errno.EROFS, "Read-only file system", str(p))
    real_open, real_os_open = builtins.open, os.open

    def fake_open(file, mode="r", *a, **k):
        if not isinstance(file, int) and inside(file) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *a, **k)

    def fake_os_open(path, flags, *a, **k):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC):
            refuse(path)
        return real_os_open(path, flags, *a, **k)

    def guard(real):
        def fake(path, *a, **k):
            if inside(path):
                refuse(path)
            return real(path, *a, **k)
        return fake
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    for name in ("mkdir", "replace", "rename", "unlink", "remove", "rmdir", "utime"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))


class _KernelStderr(io.StringIO):
    """sys.stderr as in a Jupyter kernel (`book.setup` then sends native logs to a file)."""


_KernelStderr.__module__ = "ipykernel.iostream"


def test_a_finished_run_in_a_read_only_folder_is_read_without_writing(finished_run, real_dir, shared_artifacts,
                                                                       real_prepared, monkeypatch, no_training):
    before, fd2 = _snapshot(shared_artifacts), os.fstat(2).st_ino
    _read_only(monkeypatch, shared_artifacts)
    with pytest.raises(OSError):
        (shared_artifacts / "probe.txt").write_text("x")                  # the fake works
    with pytest.raises(OSError):
        (shared_artifacts / "logs").mkdir()
    monkeypatch.setattr(sys, "stderr", _KernelStderr())
    ctx = book.setup(real_dir, shared_artifacts, **TINY, epochs=EPOCHS)          # chapter 4's set-up
    prepared = preprocessing.prepare_dataset(ctx.data_dir, ctx.artifacts_dir, progress=False, mmap=True)
    assert prepared.key == real_prepared.key
    run = recipe.train_run(prepared, ctx.cfg, ctx.run_dir(prepared), verbose=0)
    assert weights_equal(run.model, finished_run.run.model)
    named = book.setup(real_dir, shared_artifacts, run=finished_run.run.run_dir.name)   # chapter 5's
    assert weights_equal(training.load_run(named.run_dir(prepared), prepared).model, finished_run.run.model)
    monkeypatch.undo()
    assert os.fstat(2).st_ino == fd2, "native logs were redirected"
    assert _snapshot(shared_artifacts) == before
    shutil.rmtree(shared_artifacts / "logs", ignore_errors=True)
