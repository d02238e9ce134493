"""Chapter 4's training recipe (`gislr_utils.recipe.train_run`, generated from the chapter's cell
tagged ``export``): what it saves, what it loads instead of training, how it resumes, how it stops.

The runs are tiny (`conftest.TINY`) on the 16 genuine clips shipped with the package; the run of
`conftest.finished_run` is trained once and shared.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import (EPOCHS, REPO, TrainingStarted, copy_run, copy_sample, tiny_cfg,
                      weights_equal)
from gislr_utils import model as gm
from gislr_utils import preprocessing, recipe, runs, statistics, training
from gislr_utils._tf import keras


def spec_of(prepared, cfg) -> dict:
    """What a run depends on, as chapter 4's recipe writes it into the manifest."""
    return {"settings": cfg.as_dict(), "data": prepared.key, "version": training.VERSION}


def same_history(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Two runs' histories agree in every column but the measured seconds."""
    cols = [c for c in a.columns if c != "seconds"]
    assert sorted(cols) == sorted(c for c in b.columns if c != "seconds")
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))


# --------------------------------------------------------------------------------------------------
# The recipe's one home: chapter 4's cell
# --------------------------------------------------------------------------------------------------
def test_the_package_recipe_is_what_the_chapters_export_cells_generate():
    spec = importlib.util.spec_from_file_location("recipes", REPO / "_ext" / "recipes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.recipe_source()
    assert "def train_run(" in generated and "def export_tflite(" in generated
    assert (REPO / "gislr_utils" / "recipe.py").read_text(encoding="utf-8") == generated, \
        "gislr_utils/recipe.py differs from the chapters' cells tagged export: run make recipe"


def test_chapter_4_trains_with_the_fit_call_of_its_own_cell():
    """Issue 24: the ``fit(`` that runs is in a cell of chapter 4, and the chapter calls the
    function of that cell (not the package's copy, not a book helper)."""
    nb = json.loads((REPO / "chapters" / "04_training.ipynb").read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    exported = [c for c in code if "export" in c["metadata"].get("tags", [])]
    assert len(exported) == 1
    tree = ast.parse("".join(exported[0]["source"]))
    defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert defs == ["train_run"]
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    assert {"fit", "compiled", "build_model", "compute_stats", "write_manifest"} <= calls
    later = "\n".join("".join(c["source"]) for c in code[code.index(exported[0]) + 1:])
    calls_later = [n for n in ast.walk(ast.parse(later)) if isinstance(n, ast.Call)]
    assert any(isinstance(n.func, ast.Name) and n.func.id == "train_run" for n in calls_later)
    everything = "\n".join("".join(c["source"]) for c in code)
    assert "book.train" not in everything and "recipe.train_run" not in everything


# --------------------------------------------------------------------------------------------------
# A finished run: saved, then loaded instead of trained
# --------------------------------------------------------------------------------------------------
def test_train_run_saves_the_run_it_trained(finished_run, real_prepared):
    run, cfg = finished_run.run, finished_run.cfg
    folder = run.run_dir
    assert sorted(p.name for p in folder.iterdir()) == sorted([*training.RUN_FILES, runs.MANIFEST])
    record = runs.read_manifest(folder)
    assert record["spec"] == runs.canonical(spec_of(real_prepared, cfg))
    assert runs.check(folder, spec_of(real_prepared, cfg)) is None
    # the split and the statistics, computed again here: the training participants' clips only
    split = training.split_rows(real_prepared, cfg)
    for name in ("train", "validation", "test"):
        np.testing.assert_array_equal(run.split[name], split[name])
    expected = statistics.compute_stats(real_prepared.X, rows=split["train"])
    np.testing.assert_array_equal(run.stats["mean"], expected["mean"])
    np.testing.assert_array_equal(run.stats["std"], expected["std"])
    # one history row per epoch, the schedule's learning rates, finite losses
    h = run.history
    assert h["epoch"].tolist() == list(range(1, EPOCHS + 1))
    np.testing.assert_allclose(h["learning_rate"], training.learning_rates(cfg), rtol=1e-6)
    assert np.isfinite(h[["loss", "val_loss"]].to_numpy()).all()
    assert run.model.count_params() == gm.build_model(cfg).count_params()
    # what training printed: plain lines, one per epoch, no Keras progress bar
    printed = finished_run.printed
    assert not any(c in printed for c in ("\x1b[", "\b", "\r"))
    assert len(re.findall(rf"^epoch +\d+/{EPOCHS} ", printed, re.M)) == EPOCHS


def test_a_second_call_loads_the_finished_run_without_training(finished_run, real_prepared, no_training):
    first = finished_run.run
    again = recipe.train_run(real_prepared, finished_run.cfg, first.run_dir, verbose=0)
    assert weights_equal(first.model, again.model)
    pd.testing.assert_frame_equal(first.history, again.history)
    probs = again.model.predict({"frames": real_prepared.X[:4], "non_empty_frame_idxs": real_prepared.idxs[:4]},
                                verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_other_settings_train_anew_naming_what_changed(finished_run, real_prepared, tmp_path, no_training,
                                                       capsys):
    folder = copy_run(finished_run.run.run_dir, tmp_path / "run")
    with pytest.raises(TrainingStarted):
        recipe.train_run(real_prepared, tiny_cfg(epochs=EPOCHS + 1), folder)
    assert f"settings.epochs: {EPOCHS} -> {EPOCHS + 1}" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# Interrupted and resumed
# --------------------------------------------------------------------------------------------------
def test_a_run_killed_in_its_third_epoch_ends_with_the_weights_of_an_uninterrupted_run(
        finished_run, real_prepared, tmp_path, monkeypatch):
    """Issue 24's proof that Keras' BackupAndRestore (with `training.EpochSeed`) resumes exactly."""
    cfg, folder = finished_run.cfg, tmp_path / "killed"
    began, EpochLog = [], training.EpochLog

    class Counting(EpochLog):
        def on_epoch_begin(self, epoch, logs=None):
            began.append(epoch)
            super().on_epoch_begin(epoch, logs)

    class KilledInEpoch3(Counting):
        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            if self._epoch == 2 and batch == 0:         # after the first step of epoch 3
                raise KeyboardInterrupt

    monkeypatch.setattr(training, "EpochLog", KilledInEpoch3)
    with pytest.raises(KeyboardInterrupt):
        recipe.train_run(real_prepared, cfg, folder, verbose=0)
    assert began == [0, 1, 2]
    assert runs.read_manifest(folder) is None and runs.check(folder, spec_of(real_prepared, cfg)) == "missing"
    assert not (folder / "model.weights.h5").exists()
    (work,) = folder.glob("unfinished-*")
    assert len(pd.read_csv(work / "history.csv")) == 2                  # epochs 1 and 2 logged

    began.clear()
    monkeypatch.setattr(training, "EpochLog", Counting)
    resumed = recipe.train_run(real_prepared, cfg, folder, verbose=0)
    assert began == [2]                                   # it continued with epoch 3, no more
    assert weights_equal(resumed.model, finished_run.run.model)
    same_history(resumed.history, finished_run.run.history)
    assert not list(folder.glob("unfinished-*"))           # the backup goes with the finished run
    assert runs.check(folder, spec_of(real_prepared, cfg)) is None


# --------------------------------------------------------------------------------------------------
# Diverging, foreign files
# --------------------------------------------------------------------------------------------------
def test_a_diverging_run_stops_and_leaves_no_finished_run(real_prepared, tmp_path, monkeypatch):
    """Issue 26: NaN losses vanished from the epoch lines and the NaN model was saved."""
    class NaNLoss(keras.losses.CategoricalCrossentropy):
        def call(self, y_true, y_pred):
            return super().call(y_true, y_pred) * float("nan")
    monkeypatch.setattr(keras.losses, "CategoricalCrossentropy", NaNLoss)
    monkeypatch.setattr(training, "_COMPILED", {})       # no model compiled with the real loss
    cfg, folder = tiny_cfg(epochs=2), tmp_path / "diverged"
    with pytest.raises(FloatingPointError):
        recipe.train_run(real_prepared, cfg, folder, verbose=0)
    assert runs.check(folder, spec_of(real_prepared, cfg)) == "missing"
    assert not folder.exists() or not any(folder.iterdir())        # no weights, no backup
    with pytest.raises(runs.ArtefactError):
        training.load_run(folder)


@pytest.mark.parametrize("name", ["model.weights.h5", "history.csv"])
def test_a_file_of_another_run_is_named_and_never_taken_as_this_runs(
        name, finished_run, mixed_run, real_prepared, tmp_path, no_training, capsys):
    """Issue 26: a valid model file copied from another run was evaluated as the run."""
    folder = copy_run(finished_run.run.run_dir, tmp_path / "run")
    shutil.copy(mixed_run.run_dir / name, folder / name)
    assert (folder / name).read_bytes() != (finished_run.run.run_dir / name).read_bytes()
    why = runs.check(folder, spec_of(real_prepared, finished_run.cfg))
    assert why is not None and name in why
    with pytest.raises(runs.ArtefactError, match=name.replace(".", r"\.")):
        training.load_run(folder)
    with pytest.raises(TrainingStarted):                    # trained anew, not loaded
        recipe.train_run(real_prepared, finished_run.cfg, folder)
    assert name in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# Determinism, and the held-out participants choose nothing
# --------------------------------------------------------------------------------------------------
def test_two_runs_with_one_seed_give_identical_weights(finished_run, real_prepared, tmp_path):
    again = recipe.train_run(real_prepared, finished_run.cfg, tmp_path / "again", verbose=0)
    assert weights_equal(again.model, finished_run.run.model)
    same_history(again.history, finished_run.run.history)


def test_other_held_out_clips_give_the_same_trained_weights(finished_run, real_prepared, tmp_path):
    """A data folder that differs only in the held-out participants' clips (one replaced by
    another clip's frames, one line dropped) trains to bitwise the same weights."""
    cfg = finished_run.cfg
    held = sorted(set(np.asarray(real_prepared.participant_id)[finished_run.run.split["test"]]))
    other = copy_sample(tmp_path / "other")
    table = pd.read_csv(other / "train.csv")
    rows = table.index[table.participant_id.isin(held)]
    assert len(rows) >= 2
    shutil.copy(other / table.path[rows[0]], other / table.path[rows[-1]])    # another clip's frames
    counts = table.participant_id[rows].value_counts()
    several = table.index[table.participant_id == counts.index[0]]
    if counts.iloc[0] > 1:                        # and one clip fewer (the participant stays)
        table = table.drop(index=several[0])
    table.to_csv(other / "train.csv", index=False)
    prepared = preprocessing.prepare_dataset(other, tmp_path / "art", progress=False, mmap=True)
    split = training.split_rows(prepared, cfg)
    assert prepared.key != real_prepared.key
    assert sorted(set(np.asarray(prepared.participant_id)[split["test"]])) == held
    np.testing.assert_array_equal(prepared.X[split["train"]], real_prepared.X[finished_run.run.split["train"]])
    run = recipe.train_run(prepared, cfg, tmp_path / "run", verbose=0)
    assert weights_equal(run.model, finished_run.run.model)
    np.testing.assert_array_equal(run.history["val_loss"], finished_run.run.history["val_loss"])
