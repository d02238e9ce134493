"""Fixtures shared by the tests of runs, training, the recipe and the book's set-up.

Training a model is the expensive step of these tests (each new model traces its training step:
about 6 s of CPU), so the finished runs that several tests read are trained once per session,
on the 16 genuine clips shipped with the package and a tiny model. A test that changes a run
folder works on a copy (`copy_run`).
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import types
from pathlib import Path

import numpy as np
import pytest

import gislr_utils  # noqa: F401  (silences TensorFlow before it loads)
from gislr_utils import config

REPO = Path(__file__).resolve().parent.parent
# A tiny model: one block of 16 units and 2 heads (the classroom preset has 96 units, 2 blocks).
TINY = dict(units=16, num_heads=2, embedding_units=8, num_blocks=1)
EPOCHS = 3          # the shared run: long enough to be killed in its third epoch


def tiny_cfg(seed: int = 0, **settings) -> config.RunConfig:
    """The classroom preset with a tiny model (`TINY`) and `settings`."""
    return config.resolve("classroom", seed, **{**TINY, **settings})


def weights_equal(a, b) -> bool:
    """Whether two models (or lists of arrays) have bitwise the same weights."""
    a = a.get_weights() if hasattr(a, "get_weights") else a
    b = b.get_weights() if hasattr(b, "get_weights") else b
    return len(a) == len(b) > 0 and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


def subprocess_env(**extra) -> dict:
    """The environment for a Python subprocess that imports this worktree's gislr_utils."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


class TrainingStarted(Exception):
    """Raised by `no_training` when something calls ``fit``."""


@pytest.fixture
def no_training(monkeypatch):
    """Any ``keras.Model.fit`` call raises `TrainingStarted`: a run that is loaded, not trained,
    passes; one that trains is caught before its first step."""
    from gislr_utils._tf import keras

    def fit(self, *args, **kwargs):
        raise TrainingStarted("fit was called")
    monkeypatch.setattr(keras.Model, "fit", fit)


def copy_sample(dst: Path) -> Path:
    """A copy of the real sample shipped with the package (16 clips, 12 participants, 2 signs)."""
    shutil.copytree(config.real_sample_dir(), dst)
    return dst


@pytest.fixture(scope="session")
def real_dir(tmp_path_factory) -> Path:
    """A data folder holding a copy of the shipped real sample (tests may rename it, then put it back)."""
    return copy_sample(tmp_path_factory.mktemp("data") / "real")


@pytest.fixture(scope="session")
def shared_artifacts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def real_prepared(real_dir, shared_artifacts):
    from gislr_utils import preprocessing
    return preprocessing.prepare_dataset(real_dir, shared_artifacts, progress=False, mmap=True)


@pytest.fixture(scope="session")
def finished_run(real_dir, shared_artifacts, real_prepared):
    """The run of a tiny model (`TINY`, `EPOCHS` epochs, classroom preset, seed 0) on the real
    sample, trained once by `recipe.train_run` into its folder as chapter 4 names it. Read only:
    tests that change a run folder copy it first. ``.run`` (a `training.Run`), ``.cfg``,
    ``.printed`` (what training printed)."""
    from gislr_utils import book, recipe
    ctx = book.setup(real_dir, shared_artifacts, **TINY, epochs=EPOCHS)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run = recipe.train_run(real_prepared, ctx.cfg, ctx.run_dir(real_prepared))
    return types.SimpleNamespace(run=run, cfg=ctx.cfg, printed=out.getvalue(), ctx=ctx)


@pytest.fixture(scope="session")
def mixed_run(shared_artifacts, real_prepared):
    """Another finished run of the same tiny model: 2 epochs under mixed precision."""
    from gislr_utils import recipe
    cfg = tiny_cfg(epochs=2, mixed_precision=True)
    return recipe.train_run(real_prepared, cfg, shared_artifacts / "runs" / "mixed", verbose=0)


def copy_run(run_dir: Path, dst: Path) -> Path:
    """A copy of a run folder, to be changed by a test."""
    shutil.copytree(run_dir, dst)
    return dst
