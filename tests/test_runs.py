"""Caches, runs and training bookkeeping: keys, manifests, atomic writes, locks, stale temporaries,
resumable training, progress, the input pipeline and the GPU options (run on CPU)."""
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
from gislr_utils import book, runs
from gislr_utils import training as tr
from gislr_utils._tf import keras
from gislr_utils.config import REAL_SAMPLE_DIR

from test_training import TINY, _fake_prepared

REPO = Path(__file__).resolve().parent.parent
needs_real = pytest.mark.skipif(not (Path(REAL_SAMPLE_DIR) / "train.csv").exists(),
                                reason=f"real sample not found at {REAL_SAMPLE_DIR}")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def _copy_sample(dst: Path, participants: int = 4) -> Path:
    """A small GISLR folder: the real sample's clips of the first `participants` participants."""
    src = Path(REAL_SAMPLE_DIR)
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


def test_hash_arrays_sees_every_element():
    a = np.zeros((300, 5), np.float32)
    b = a.copy()
    b[137, 3] = 1e-7
    assert runs.hash_arrays(a) != runs.hash_arrays(b)
    assert runs.hash_arrays(a) == runs.hash_arrays(a.copy())


def test_data_fingerprint_sees_a_change_in_any_clip():
    """Item 1: the fingerprint used to hash every (len // 64)-th clip only."""
    a = _fake_prepared(n_per_sign=70)            # 210 clips: the old sampling took every 3rd
    b = _fake_prepared(n_per_sign=70)
    b.X = b.X.copy()
    b.X[1, 5, 7, 0] += 0.01                      # clip 1 is not among the sampled ones
    assert tr.data_fingerprint(a) != tr.data_fingerprint(b)
    b = _fake_prepared(n_per_sign=70)
    b.idxs = b.idxs.copy()
    b.idxs[2, 3] = 7.0
    assert tr.data_fingerprint(a) != tr.data_fingerprint(b)


def test_clean_stale_temporaries(tmp_path):
    """Item 11: temporaries of killed writers are removed, those of running writers kept."""
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


@needs_real
def test_prepare_dataset_removes_what_a_killed_preparation_left(tmp_path):
    from gislr_utils.preprocessing import prepare_dataset
    data = _copy_sample(tmp_path / "data", participants=2)
    left = tmp_path / "art" / "prepared" / (".0123456789abcdef." + "a" * 32 + ".tmp")
    left.mkdir(parents=True)
    (left / "X.npy").write_bytes(b"0" * 100)
    old = time.time() - 2 * runs.STALE_AFTER_S
    os.utime(left / "X.npy", (old, old))
    os.utime(left, (old, old))
    prepare_dataset(data, tmp_path / "art", progress=False)
    assert not left.exists()
    assert [p.name for p in (tmp_path / "art" / "prepared").iterdir() if p.name.startswith(".")] == []


# ---------------------------------------------------------------------------------- chapters' side
@needs_real
def test_statistics_are_recomputed_when_a_landmark_file_changes(tmp_path, capsys):
    """Item 1: chapter 4 rerun alone after a file changed reused the old stats.npz."""
    import pyarrow.parquet as pq
    from gislr_utils import statistics
    data = _copy_sample(tmp_path / "data", participants=4)
    ctx = book.setup(data, tmp_path / "art")
    old = book.get_stats(ctx)
    assert book.get_stats(book.setup(data, tmp_path / "art")) is not None      # reused: no message
    assert "recomputing" not in capsys.readouterr().out
    # change every x of one *training* clip (as a user who fixed a file would)
    train_idx, _ = book.get_split(ctx)
    path = Path(book.get_prepared(ctx).clips.path.iloc[int(train_idx[0])])
    table = pq.read_table(path).to_pandas()
    table["x"] = table["x"] * 0.5 + 0.3
    table.to_parquet(path, index=False)
    ctx2 = book.setup(data, tmp_path / "art")
    new = book.get_stats(ctx2)
    assert "recomputing" in capsys.readouterr().out
    prepared = book.get_prepared(ctx2)
    expected = statistics.compute_stats(prepared.X[book.get_split(ctx2)[0]])
    np.testing.assert_allclose(new["mean"], expected["mean"])
    assert not np.allclose(new["mean"], old["mean"])
    np.testing.assert_allclose(statistics.load_stats(book.stats_path(ctx2))["mean"], expected["mean"])


def test_epochs_are_part_of_the_run_folder(tmp_path):
    a = book.setup(None, tmp_path)
    b = book.setup(None, tmp_path, epochs=3)
    c = book.setup(None, tmp_path, epochs=a.settings["epochs"])
    assert a.run_dir == c.run_dir and a.run_dir.name == "synthetic_classroom_seed0"
    assert b.run_dir.name == "synthetic_classroom_seed0_epochs3"


def test_every_numeric_parameter_has_a_range(tmp_path):
    """Item 10: `epochs=10**20` used to pass and fail deep in a plot."""
    with pytest.raises(book.ParameterError, match=r"epochs=100000000000000000000 must be <= 10000"):
        book.setup(artifacts_dir=tmp_path, epochs=10**20)
    with pytest.raises(book.ParameterError, match=r"seed=4294967296 must be <= 4294967295"):
        book.setup(artifacts_dir=tmp_path, seed=2**32)
    assert not any(tmp_path.iterdir())
    import nbformat
    for nb_path in sorted((REPO / "chapters").glob("0*.ipynb")):
        nb = nbformat.read(nb_path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = {}
        exec(cell.source, {}, names)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        for name, value in names.items():
            if isinstance(value, bool) or name in ("data_dir", "artifacts_dir", "preset"):
                continue
            if value is None or isinstance(value, int):
                checked = name in ("seed", "epochs") or f'check_int("{name}"' in code
                assert checked, f"{nb_path.name}: integer parameter {name} is never checked"
                assert name in book.PARAMETER_RANGES, f"{nb_path.name}: {name} has no range"
                lo, hi = book.PARAMETER_RANGES[name]
                with pytest.raises(book.ParameterError, match=f"{name}={hi + 1} must be <= {hi}"):
                    book.check_int(name, hi + 1)


# ------------------------------------------------------------------------------------- load_model
def test_load_model_in_a_fresh_process(tmp_path):
    """Item 7: loading a trained model.keras needed `training` imported first."""
    r = tr.train(_fake_prepared(), "classroom", tmp_path, seed=0, epochs=1, verbose=0, **TINY)
    code = textwrap.dedent(f"""
        from gislr_utils.model import load_model
        m = load_model({str(r.paths['model'])!r})
        print(m.count_params(), type(m.loss).__name__)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(r.model.count_params()), "SparseCategoricalCrossentropyLS"]


# --------------------------------------------------------------------------------------- locking
def test_a_second_run_in_a_locked_folder_stops_clearly(tmp_path):
    """Item 6: two runs in one folder used to end in BadZipFile or a config beside a wrong history."""
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
            tr.train(_fake_prepared(), "classroom", folder, seed=0, epochs=1, verbose=0, **TINY)
        with pytest.raises(runs.FolderInUseError, match="another artifacts_dir"):
            with runs.FolderLock(folder, shared=True):      # what load_trained takes to read
                pass
        assert not (folder / "train_config.json").exists() and not (folder / "model.keras").exists()
    finally:
        holder.kill()
        holder.wait()
    r = tr.train(_fake_prepared(), "classroom", folder, seed=0, epochs=1, verbose=0, **TINY)   # free again
    saved = json.loads(r.paths["config"].read_text())
    assert saved["spec"]["settings"]["epochs"] == len(pd.read_csv(r.paths["history"])) == 1


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
    prep = _fake_prepared(n_per_sign=12, participants=5)
    kw = dict(preset="classroom", seed=7, epochs=4, verbose=1, **TINY)       # cosine schedule
    full = tr.train(prep, artifacts_dir=tmp_path / "full", **kw)
    with pytest.raises(_Stop):
        tr.train(prep, artifacts_dir=tmp_path / "cut", callbacks=[_StopAfter(2)], **kw)
    assert not (tmp_path / "cut" / "train_config.json").exists()             # not a finished run
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert state["epochs_done"] == 2 and len(state["history"]) == 2
    capsys.readouterr()
    resumed = tr.train(prep, artifacts_dir=tmp_path / "cut", **kw)
    assert "resuming the interrupted run from its checkpoint: 2 of 4 epochs" in capsys.readouterr().out
    assert resumed.resumed_from == 2 and not resumed.reused
    for a, b in zip(full.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    cols = [c for c in full.history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(full.history[cols], resumed.history[cols])
    assert resumed.best_epoch == full.best_epoch
    assert not (tmp_path / "cut" / "checkpoint").exists()                   # removed when finished
    # a finished run is reused; restart=True starts over (and gives the same weights again)
    again = tr.train(prep, artifacts_dir=tmp_path / "cut", **kw)
    assert again.reused
    fresh = tr.train(prep, artifacts_dir=tmp_path / "cut", restart=True, **kw)
    assert not fresh.reused and fresh.resumed_from == 0
    for a, b in zip(full.model.get_weights(), fresh.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path, capsys):
    prep = _fake_prepared(participants=5)
    with pytest.raises(_Stop):
        tr.train(prep, "classroom", tmp_path, seed=0, epochs=3, verbose=0, callbacks=[_StopAfter(1)], **TINY)
    capsys.readouterr()
    r = tr.train(prep, "classroom", tmp_path, seed=1, epochs=3, verbose=1, **TINY)
    assert r.resumed_from == 0 and "belongs to other settings: starting over" in capsys.readouterr().out


# -------------------------------------------------------------------------------------- progress
def test_progress_projection_and_lines_inside_long_epochs(tmp_path, capsys):
    prep = _fake_prepared(n_per_sign=40, participants=5)
    r = tr.train(prep, "classroom", tmp_path, seed=0, epochs=1, verbose=1, progress_every=0.0,
                 batch_all_signs_n=2, **TINY)
    out, err = capsys.readouterr()
    steps = len(r.train_idx) // 6
    assert steps > 8
    assert "s a step (" in out and f"an epoch of {steps} steps" in out and "for the 1 epoch" in out
    assert f"step 8/{steps}," in out and "left in this epoch" in out
    assert "step" not in err and "epoch" not in err
    # the classroom default (30 s) adds no progress lines to short epochs
    tr.train(prep, "classroom", tmp_path / "quiet", seed=0, epochs=1, verbose=1, batch_all_signs_n=2, **TINY)
    assert "left in this epoch" not in capsys.readouterr().out
    assert tr.format_duration(42) == "42 s" and tr.format_duration(200) == "3 min 20 s"
    assert tr.format_duration(7500) == "2 h 05 min"


# ---------------------------------------------------------------------------------------- pipeline
def test_batch_dataset_gives_the_samplers_batches_in_order():
    prep = _fake_prepared(n_per_sign=10)

    def sampler():
        return tr.BalancedSignBatches(prep.X, prep.idxs, prep.y, n=2, seed=3)

    direct = iter(sampler())
    ds = iter(tr.batch_dataset(sampler(), prefetch=3))
    for _ in range(6):
        (a, la), (b, lb) = next(direct), next(ds)
        np.testing.assert_array_equal(a["frames"], b["frames"].numpy())
        np.testing.assert_array_equal(a["non_empty_frame_idxs"], b["non_empty_frame_idxs"].numpy())
        np.testing.assert_array_equal(la, lb.numpy())
    # the state at an epoch boundary is kept even after batches were drawn ahead
    s = sampler()
    first = [s.sample_rows() for _ in range(s.steps_per_epoch)]
    state = s.get_state(s.steps_per_epoch)
    ahead = [s.sample_rows() for _ in range(3)]
    t = sampler()
    t.set_state(s.get_state(s.steps_per_epoch))
    assert s.get_state(s.steps_per_epoch) == state and len(first) == s.steps_per_epoch
    np.testing.assert_array_equal(t.sample_rows(), ahead[0])


# ------------------------------------------------------------------------------------- GPU options
def test_mixed_precision_trains_saves_and_exports_the_same_contract(tmp_path):
    from gislr_utils import export
    from gislr_utils.model import load_model
    prep = _fake_prepared(participants=5)
    r = tr.train(prep, "classroom", tmp_path, seed=0, epochs=1, verbose=0, mixed_precision=True, **TINY)
    assert keras.mixed_precision.global_policy().name == "float32"         # nothing leaks
    assert np.isfinite(r.history["loss"]).all() and np.isfinite(r.history["val_loss"]).all()
    assert json.loads(r.paths["config"].read_text())["spec"]["execution"]["mixed_precision"]
    cfg, _ = tr.resolve_settings("classroom", 1, **TINY)
    mixed = tr._build("classroom", r.stats, TINY, cfg, True, False)     # what trained: float16 inside
    assert type(mixed.optimizer).__name__ == "LossScaleOptimizer"
    assert mixed.get_layer("transformer").compute_dtype == "float16" and mixed.output.dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert r.model.get_layer("transformer").compute_dtype == "float32"   # saved: the float32 model
    probs = r.model.predict({"frames": prep.X[:3], "non_empty_frame_idxs": prep.idxs[:3]}, verbose=0)
    assert probs.shape == (3, 250) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    loaded = load_model(r.paths["model"])
    np.testing.assert_array_equal(loaded.predict({"frames": prep.X[:3], "non_empty_frame_idxs": prep.idxs[:3]},
                                                 verbose=0), probs)
    path = export.export_tflite(loaded, tmp_path / "model.tflite")
    sig = export.load_interpreter(path).get_signature_list()
    assert sig == {"serving_default": {"inputs": ["inputs"], "outputs": ["outputs"]}}
    rng = np.random.default_rng(0)
    clip = rng.random((20, 543, 3)).astype(np.float32)
    out = export.tflite_predict(path, clip)
    assert out.shape == (250,) and out.dtype == np.float32 and np.isfinite(out).all()
    # a mixed-precision run is a run of its own; a plain one in the same folder is trained anew
    plain = tr.train(prep, "classroom", tmp_path, seed=0, epochs=1, verbose=0, **TINY)
    assert not plain.reused


def test_xla_trains_a_few_steps(tmp_path):
    """In a fresh process: op determinism (on in this one after other tests) disables XLA."""
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from test_training import TINY, _fake_prepared
        from gislr_utils import training as tr
        prep = _fake_prepared(participants=5)
        r = tr.train(prep, "classroom", {str(tmp_path)!r}, seed=0, epochs=1, verbose=1,
                     jit_compile=True, **TINY)
        probs = r.model.predict({{"frames": prep.X[:2], "non_empty_frame_idxs": prep.idxs[:2]}}, verbose=0)
        print("RESULT", r.model.jit_compile, bool(np.isfinite(r.history["loss"]).all()), probs.shape,
              probs.dtype)
    """)
    out = subprocess.run([sys.executable, "-W", "error::UserWarning:keras", "-c", code], capture_output=True,
                         text=True, env=_env(), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT True True (2, 250) float32" in out.stdout
    assert "doesn't support `jit_compile=True`" not in out.stderr
    prep = _fake_prepared(participants=5)
    with pytest.raises(ValueError, match="jit_compile='yes' must be True or False"):
        tr.train(prep, "classroom", tmp_path, epochs=1, verbose=0, jit_compile="yes", **TINY)


@needs_real
def test_data_fingerprint_follows_contents_not_file_times(tmp_path):
    """Re-prepared arrays from untouched contents keep the fingerprint: a run there is still resumed."""
    from gislr_utils.preprocessing import prepare_dataset
    data = _copy_sample(tmp_path / "data", participants=2)
    a = prepare_dataset(data, tmp_path / "art", progress=False)
    fa = tr.data_fingerprint(a)
    assert (a.cache_dir / "fingerprint.json").exists() and tr.data_fingerprint(a) == fa
    path = Path(a.clips.path.iloc[0])
    os.utime(path, (time.time() + 5, time.time() + 5))            # touched: prepared anew
    b = prepare_dataset(data, tmp_path / "art", progress=False)
    assert b.cache_dir != a.cache_dir and tr.data_fingerprint(b) == fa
