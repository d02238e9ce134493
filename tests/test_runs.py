"""Caches, runs and training bookkeeping: keys, manifests, atomic writes, locks, stale temporaries,
resumable training, progress and the GPU options (run on CPU)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gislr_utils  # noqa: F401  (silences TensorFlow before it loads)
from gislr_utils import book, config, runs
from gislr_utils import training as tr
from gislr_utils._tf import keras

from test_training import _cfg, _env, _fake_prepared

REPO = Path(__file__).resolve().parent.parent


def _copy_sample(dst: Path, participants: int = 4) -> Path:
    """A small GISLR folder: the shipped real sample's clips of its first `participants` participants."""
    src = config.real_sample_dir()
    table = pd.read_csv(src / "train.csv")
    keep = sorted(table.participant_id.unique())[:participants]
    table = table[table.participant_id.isin(keep)]
    dst.mkdir(parents=True)
    table.to_csv(dst / "train.csv", index=False)
    shutil.copy(src / "sign_to_prediction_index_map.json", dst)
    for rel in table.path:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rel, dst / rel)
    return dst


# ----------------------------------------------------------------------------------------- runs
def test_key_manifest_and_differences(tmp_path):
    spec = {"settings": {"epochs": 3, "units": np.int64(16)}, "seed": 0}
    assert runs.key_of(spec) == runs.key_of({"seed": 0, "settings": {"units": 16, "epochs": 3}})
    path = tmp_path / "x.bin.manifest.json"
    runs.write_manifest(path, spec, note="extra")
    assert runs.check_manifest(path, spec) is None
    why = runs.check_manifest(path, {"settings": {"epochs": 10, "units": 16}, "seed": 0})
    assert "settings.epochs: 3 -> 10" in why
    assert "no manifest" in runs.check_manifest(tmp_path / "missing.json", spec)
    assert runs.manifest_path(tmp_path / "stats.npz").name == "stats.npz.manifest.json"


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "history.csv"
    runs.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with runs.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]      # no temporary left
    with runs.atomic_path(tmp_path / "m.weights.h5") as tmp:             # Keras' suffixes are kept
        assert tmp.name.endswith(".weights.h5") and tmp.name.startswith(".m.weights.h5.")
        tmp.write_bytes(b"x")
    assert (tmp_path / "m.weights.h5").read_bytes() == b"x"


def test_a_full_disk_names_the_file_being_written(tmp_path):
    """Issue 19: "No space left on device" during a checkpoint named no path."""
    import errno
    target = tmp_path / "checkpoint" / "epoch-0003.npz"
    with pytest.raises(OSError, match=rf"{target}: No space left on device"):
        with runs.atomic_path(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert not any(p.name.startswith(".") for p in target.parent.iterdir())


def test_hash_arrays_sees_every_element():
    a = np.zeros((300, 5), np.float32)
    b = a.copy()
    b[137, 3] = 1e-7
    assert runs.hash_arrays(a) != runs.hash_arrays(b)
    assert runs.hash_arrays(a) == runs.hash_arrays(a.copy())


def test_clean_stale_temporaries(tmp_path):
    """Temporaries of killed writers are removed, those of running writers kept."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    host = runs._HOST
    killed = tmp_path / f".abc123.{host}-{dead}-0123abcd.tmp"
    legacy = tmp_path / (".abc123." + "f" * 32 + ".tmp")                # the old form, old
    running = runs.temp_path(tmp_path / "abc123")                       # this process: alive
    young_legacy = tmp_path / (".def456." + "e" * 32 + ".tmp")
    for p in (killed, legacy, running, young_legacy):
        p.mkdir()
        (p / "X.npy").write_bytes(b"0" * 10)
    old = time.time() - 2 * runs.STALE_AFTER_S
    for p in (legacy, legacy / "X.npy"):
        os.utime(p, (old, old))
    removed = runs.clean_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([killed, legacy])
    assert running.exists() and young_legacy.exists() and not killed.exists() and not legacy.exists()


# ---------------------------------------------------------------------------------- chapters' side
def test_statistics_are_recomputed_when_a_landmark_file_changes(tmp_path, capsys):
    """Chapter 4 rerun alone after a file changed must not reuse the old stats.npz."""
    import pyarrow.parquet as pq
    from gislr_utils import statistics
    data = _copy_sample(tmp_path / "data", participants=4)
    ctx = book.setup(data, tmp_path / "art")
    old = book.get_stats(ctx)
    assert book.get_stats(book.setup(data, tmp_path / "art")) is not None      # reused: no message
    assert "computing them anew" not in capsys.readouterr().out
    # change every x of one *training* clip (as a user who fixed a file would)
    train = book.get_split(ctx)["train"]
    path = Path(book.get_prepared(ctx).clips.path.iloc[int(train[0])])
    table = pq.read_table(path).to_pandas()
    table["x"] = table["x"] * 0.5 + 0.3
    table.to_parquet(path, index=False)
    ctx2 = book.setup(data, tmp_path / "art")
    new = book.get_stats(ctx2)
    assert "computing them anew" in capsys.readouterr().out
    expected = statistics.compute_stats(book.get_prepared(ctx2).X[book.get_split(ctx2)["train"]])
    np.testing.assert_allclose(new["mean"], expected["mean"])
    assert not np.allclose(new["mean"], old["mean"])
    np.testing.assert_allclose(statistics.load_stats(ctx2.run_dir / "stats.npz")["mean"], expected["mean"])


def test_settings_are_part_of_the_run_folder(tmp_path):
    a = book.setup(None, tmp_path)
    b = book.setup(None, tmp_path, epochs=3)
    c = book.setup(None, tmp_path, epochs=a.cfg.epochs)
    d = book.setup(None, tmp_path, units=128, num_heads=8)
    assert a.run_dir == c.run_dir and a.run_dir.name == "synthetic_classroom_seed0"
    assert b.run_dir.name == "synthetic_classroom_seed0_epochs3"
    assert d.run_dir.name == "synthetic_classroom_seed0_units128_num_heads8" and d.cfg.units == 128
    with pytest.raises(config.ParameterError, match="run='nothing-here'"):
        book.setup(None, tmp_path, run="nothing-here")


def test_every_numeric_parameter_has_a_range(tmp_path):
    """`epochs=10**20` used to pass and fail deep in a plot."""
    with pytest.raises(config.ParameterError, match=r"epochs=100000000000000000000 must be <= 10000"):
        book.setup(artifacts_dir=tmp_path, epochs=10**20)
    with pytest.raises(config.ParameterError, match=r"seed=4294967296 must be <= 4294967295"):
        book.setup(artifacts_dir=tmp_path, seed=2**32)
    assert not any(tmp_path.iterdir())
    import nbformat
    ranges = {**config.INT_RANGES, **book.PARAMETER_RANGES}
    for nb_path in sorted((REPO / "chapters").glob("0*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = {}
        exec(cell.source, {}, names)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        for name, value in names.items():
            if not isinstance(value, int) or isinstance(value, bool):
                continue
            checked = name in config.INT_RANGES or f'check_int("{name}"' in code
            assert checked, f"{nb_path.name}: integer parameter {name} is never checked"
            assert name in ranges, f"{nb_path.name}: {name} has no range"
            lo, hi = ranges[name]
            with pytest.raises(config.ParameterError, match=f"{name}={hi + 1} must be <= {hi}"):
                book.check_int(name, hi + 1)


def test_empty_artifacts_dir_is_refused(tmp_path):
    """Issue 19: `-p artifacts_dir ''` was taken as the current directory."""
    for bad in ("", "   "):
        with pytest.raises(config.ParameterError, match="artifacts_dir="):
            book.setup(artifacts_dir=bad)
    with pytest.raises(config.ParameterError, match="data_dir="):
        book.setup(data_dir="", artifacts_dir=tmp_path)


# ------------------------------------------------------------------------------------- load_model
def test_load_model_in_a_fresh_process(tmp_path):
    """Loading a trained model.keras needs nothing but the model module."""
    r = tr.train(_fake_prepared(), _cfg(epochs=1), tmp_path, verbose=0)
    code = textwrap.dedent(f"""
        from gislr_utils.model import load_model
        m = load_model({str(tmp_path / 'model.keras')!r})
        print(m.count_params(), type(m.loss).__name__, type(m.optimizer).__name__)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(r.model.count_params()), "CategoricalCrossentropy", "AdamW"]


# --------------------------------------------------------------------------------------- locking
def test_a_second_run_in_a_locked_folder_stops_clearly(tmp_path):
    """Two runs in one folder used to end in BadZipFile or a config beside a wrong history."""
    folder = tmp_path / "run"
    code = textwrap.dedent(f"""
        import sys, time
        from gislr_utils.runs import FolderLock
        with FolderLock({str(folder)!r}):
            print("locked", flush=True)
            time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(runs.FolderInUseError, match=rf"in use by another process \(pid {holder.pid} "):
            tr.train(_fake_prepared(), _cfg(epochs=1), folder, verbose=0)
        assert not (folder / "train_config.json").exists() and not (folder / "model.keras").exists()
    finally:
        holder.kill()
        holder.wait()
    tr.train(_fake_prepared(), _cfg(epochs=1), folder, verbose=0)     # free again
    saved = json.loads((folder / "train_config.json").read_text())
    assert saved["spec"]["settings"]["epochs"] == len(pd.read_csv(folder / "history.csv")) == 1


def test_the_lock_message_names_the_live_writer_not_a_dead_one(tmp_path):
    """Issue 19: the message named the last writer (dead for hours), not the process holding it."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".lock.info").write_text("pid 1 on elsewhere since 00:00:00")    # a dead writer's note
    with runs.FolderLock(folder):
        assert f"pid {os.getpid()} " in (folder / ".lock.info").read_text()


def _read_only(monkeypatch, folder: Path):
    """Every write, folder creation or lock under `folder` fails as on a read-only file system
    (chmod cannot show it to root, who runs CI)."""
    import builtins
    import errno
    import io
    inside = lambda p: str(Path(p).resolve()).startswith(str(folder.resolve()))   # noqa: E731
    refuse = OSError(errno.EROFS, "Read-only file system")
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def fake_open(file, mode="r", *a, **k):
        if inside(file) and any(c in mode for c in "wax+"):
            raise refuse
        return real_open(file, mode, *a, **k)

    def fake_os_open(path, flags, *a, **k):
        if inside(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise refuse
        return real_os_open(path, flags, *a, **k)

    def fake_mkdir(path, *a, **k):
        if inside(path) and not Path(path).exists():
            raise refuse
        return real_mkdir(path, *a, **k)
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def test_a_chapter_that_only_reads_works_in_a_read_only_folder(tmp_path, monkeypatch, capsys):
    """Issue 19: chapter 5 failed on a shared read-only copy (its log file, the folder lock)."""
    data = _copy_sample(tmp_path / "data", participants=3)
    art = tmp_path / "art"
    ctx = book.setup(data, art, epochs=1, **{"units": 16, "embedding_units": 8, "num_heads": 2})
    book.train(ctx, verbose=0)
    ev = book.get_evaluation(ctx)
    _read_only(monkeypatch, art)
    with pytest.raises(OSError):
        (art / "probe.txt").write_text("x")                 # the fake works
    ctx2 = book.setup(data, art, epochs=1, **{"units": 16, "embedding_units": 8, "num_heads": 2})
    assert book.native_logs_to_file(art / "logs" / "x.log") is None
    again = book.get_evaluation(ctx2)
    np.testing.assert_array_equal(again.probs, ev.probs)
    assert book.write_metrics(ctx2, again) is None
    assert "read-only: metrics.json not written" in capsys.readouterr().out


# -------------------------------------------------------------------------------------- resuming
class _Stop(Exception):
    pass


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, epochs_done):
        super().__init__()
        self.epochs_done = epochs_done

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs_done:
            raise _Stop(f"stopped after epoch {epoch + 1}")


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, capsys):
    prep = _fake_prepared(n_per_sign=12, participants=12)
    cfg = _cfg(seed=7, epochs=4, epoch_selection="best")          # cosine schedule, validation
    full = tr.train(prep, cfg, tmp_path / "full", verbose=1)
    with pytest.raises(_Stop):
        tr.train(prep, cfg, tmp_path / "cut", verbose=1, callbacks=[_StopAfter(2)])
    assert not (tmp_path / "cut" / "train_config.json").exists()             # not a finished run
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert state["epochs_done"] == 2 and len(state["history"]) == 2
    capsys.readouterr()
    resumed = tr.train(prep, cfg, tmp_path / "cut", verbose=1)
    assert "resuming the interrupted run: 2 of 4 epochs done" in capsys.readouterr().out
    assert resumed.resumed_from == 2 and not resumed.reused
    for a, b in zip(full.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    cols = [c for c in full.history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(full.history[cols], resumed.history[cols])
    assert resumed.kept_epoch == full.kept_epoch
    assert not (tmp_path / "cut" / "checkpoint").exists()                   # removed when finished
    # a finished run is reused (its epoch lines printed again); restart=True starts over
    again = tr.train(prep, cfg, tmp_path / "cut", verbose=1)
    assert again.reused and "epoch 4/4" in capsys.readouterr().out
    fresh = tr.train(prep, cfg, tmp_path / "cut", restart=True, verbose=0)
    assert not fresh.reused and fresh.resumed_from == 0
    for a, b in zip(full.model.get_weights(), fresh.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path, capsys):
    prep = _fake_prepared(participants=5)
    with pytest.raises(_Stop):
        tr.train(prep, _cfg(epochs=3), tmp_path, verbose=0, callbacks=[_StopAfter(1)])
    capsys.readouterr()
    r = tr.train(prep, _cfg(epochs=3, seed=1), tmp_path, verbose=1)
    assert r.resumed_from == 0 and "belongs to other settings: starting over" in capsys.readouterr().out


def test_damaged_run_files_are_named_and_rebuilt(tmp_path, capsys):
    """Issue 19: an empty train_config.json was "a run of an older version"; a truncated
    model.keras gave Keras' "File not found" for a file that exists."""
    prep = _fake_prepared(participants=5)
    tr.train(prep, _cfg(epochs=1), tmp_path, verbose=0)
    (tmp_path / "train_config.json").write_text("")
    with pytest.raises(runs.ArtefactError, match="train_config.json: missing, empty or unreadable"):
        tr.load_trained(tmp_path)
    tr.train(prep, _cfg(epochs=1), tmp_path, verbose=0)                   # rebuilt
    data = (tmp_path / "model.keras").read_bytes()
    (tmp_path / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(runs.ArtefactError, match=r"model.keras: damaged or unreadable"):
        tr.load_trained(tmp_path)
    again = tr.train(prep, _cfg(epochs=1), tmp_path, verbose=1)                # named, then rebuilt
    assert not again.reused and "model.keras: damaged or unreadable" in capsys.readouterr().out
    assert tr.load_trained(tmp_path).reused


# -------------------------------------------------------------------------------------- progress
def test_progress_projection_and_lines_inside_long_epochs(tmp_path, capsys):
    prep = _fake_prepared(n_per_sign=40, participants=5)
    r = tr.train(prep, _cfg(epochs=1), tmp_path, verbose=1, progress_every=0.0)
    out, err = capsys.readouterr()
    steps = len(r.rows["train"]) // 6
    assert steps > 8
    assert "s a step (" in out and f"an epoch of {steps} steps" in out and "for the 1 epoch" in out
    assert f"step 8/{steps}," in out and "left in this epoch" in out
    assert "step" not in err and "epoch" not in err
    # the default (30 s) adds no progress lines to short epochs
    tr.train(prep, _cfg(epochs=1), tmp_path / "quiet", verbose=1)
    assert "left in this epoch" not in capsys.readouterr().out
    assert tr.format_duration(42) == "42 s" and tr.format_duration(200) == "3 min 20 s"
    assert tr.format_duration(7500) == "2 h 05 min"


# ------------------------------------------------------------------------------------- GPU options
def test_mixed_precision_trains_saves_and_exports_the_same_contract(tmp_path):
    from gislr_utils import export
    from gislr_utils.model import load_model
    prep = _fake_prepared(participants=5)
    r = tr.train(prep, _cfg(epochs=1, mixed_precision=True), tmp_path, verbose=0)
    assert keras.mixed_precision.global_policy().name == "float32"         # nothing leaks
    assert np.isfinite(r.history["loss"]).all() and np.isfinite(r.history["val_loss"]).all()
    assert json.loads((tmp_path / "train_config.json").read_text())["spec"]["settings"]["mixed_precision"]
    assert r.model.get_layer("block_0").compute_dtype == "float32"         # saved: the float32 model
    probs = r.model.predict({"frames": prep.X[:3], "non_empty_frame_idxs": prep.idxs[:3]}, verbose=0)
    assert probs.shape == (3, 250) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    loaded = load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.predict({"frames": prep.X[:3], "non_empty_frame_idxs": prep.idxs[:3]},
                                                 verbose=0), probs)
    path = export.export_tflite(loaded, tmp_path / "model.tflite")
    clip = np.random.default_rng(0).random((20, 543, 3)).astype(np.float32)
    out = export.tflite_predict(path, clip)
    assert out.shape == (250,) and out.dtype == np.float32 and np.isfinite(out).all()
    # a mixed-precision run is a run of its own; a plain one in the same folder is trained anew
    assert not tr.train(prep, _cfg(epochs=1), tmp_path, verbose=0).reused


def test_xla_trains_a_few_steps(tmp_path):
    """In a fresh process: op determinism (on in this one after other tests) disables XLA."""
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from test_training import _cfg, _fake_prepared
        from gislr_utils import training as tr
        prep = _fake_prepared(participants=5)
        r = tr.train(prep, _cfg(epochs=1, jit_compile=True), {str(tmp_path)!r}, verbose=1)
        probs = r.model.predict({{"frames": prep.X[:2], "non_empty_frame_idxs": prep.idxs[:2]}}, verbose=0)
        print("RESULT", bool(np.isfinite(r.history["loss"]).all()), probs.shape, probs.dtype)
    """)
    out = subprocess.run([sys.executable, "-W", "error::UserWarning:keras", "-c", code], capture_output=True,
                         text=True, env=_env(), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT True (2, 250) float32" in out.stdout
    assert "doesn't support `jit_compile=True`" not in out.stderr
    with pytest.raises(config.ParameterError, match="jit_compile='yes' must be True or False"):
        _cfg(jit_compile="yes")


def test_the_tflite_file_is_exported_again_when_the_preprocessing_changes(tmp_path, monkeypatch):
    """Issue 19: model.tflite outlived a preprocessing change (its manifest named only the run)."""
    from gislr_utils import preprocessing
    data = _copy_sample(tmp_path / "data", participants=3)
    ctx = book.setup(data, tmp_path / "art", epochs=1, units=16, embedding_units=8, num_heads=2)
    book.train(ctx, verbose=0)
    path = book.export_tflite(ctx)
    first = path.stat().st_mtime_ns
    assert book.export_tflite(ctx).stat().st_mtime_ns == first                 # cached: same inputs
    manifest = json.loads(runs.manifest_path(path).read_text())
    assert manifest["spec"]["preprocessing"] == preprocessing.PREPROCESSING_VERSION
    monkeypatch.setattr(preprocessing, "PREPROCESSING_VERSION", preprocessing.PREPROCESSING_VERSION + 1)
    time.sleep(0.01)
    assert book.export_tflite(ctx).stat().st_mtime_ns != first                  # exported again


def test_side_runs_live_in_their_runs_folder(tmp_path):
    """Issue 19: chapter 4's exercise wrote every run's side run into one shared random_split/."""
    a = book.setup(None, tmp_path, seed=0)
    b = book.setup(None, tmp_path, seed=1)
    assert book.side_run_dir(a, "random_split") != book.side_run_dir(b, "random_split")
    assert book.side_run_dir(a, "random_split").parent.parent == a.run_dir
