"""`gislr_utils.training`: the participant split, balanced batches, `EpochSeed`, schedules, loss and
optimizer, `load_run`, several devices and mixed precision."""
from __future__ import annotations

import json
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, copy_run, subprocess_env, tiny_cfg, weights_equal
from gislr_utils import config, preprocessing, runs, training
from gislr_utils import model as gm
from gislr_utils._tf import keras


def _fake_prepared(n_per_sign=6, signs=(4, 17, 249), participants=4, seed=0):
    """Random clips of `participants` participants (ids from 100) and `signs`, as `PreparedData`
    has them (only what the functions under test read)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.array(signs, dtype=np.int32), n_per_sign)
    n = len(y)
    X = rng.random((n, 64, 66, 3), dtype=np.float32)
    idxs = np.tile(np.arange(64, dtype=np.float32), (n, 1))
    pid = np.tile(np.arange(participants), n // participants + 1)[:n] + 100
    prep = types.SimpleNamespace(X=X, idxs=idxs, y=y, participant_id=pid, sequence_id=np.arange(n) + 1000,
                                 has_hand=np.ones(n, bool))
    prep.key = preprocessing.content_key(X, idxs, y, pid, prep.sequence_id)
    return prep


# ------------------------------------------------------------------------------------------ split
def test_split_holds_out_whole_participants_as_the_kaggle_notebook():
    from sklearn.model_selection import GroupShuffleSplit
    rng = np.random.default_rng(0)
    pid = np.repeat(np.arange(21) * 11 + 16069, rng.integers(3, 9, 21))
    train, test = training.split_by_participant(pid)
    assert len(np.unique(pid[test])) == 3                      # ceil(0.10 * 21)
    assert not set(pid[train]) & set(pid[test])
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(pid)))
    first, second = next(GroupShuffleSplit(n_splits=1, test_size=0.1, random_state=42).split(pid, groups=pid))
    np.testing.assert_array_equal(train, np.sort(first))
    np.testing.assert_array_equal(test, np.sort(second))
    with pytest.raises(ValueError, match="at least 2"):
        training.split_by_participant(np.full(10, 5))


def test_validation_participants_come_from_the_training_participants():
    prep = _fake_prepared(n_per_sign=20, participants=12)
    pid = prep.participant_id
    seed_rows = training.split_rows(prep, config.resolve("seed"))       # the seed: no validation
    assert seed_rows["validation"].size == 0
    rows = training.split_rows(prep, config.resolve("classroom"))
    test_p, val_p, train_p = (set(pid[rows[k]]) for k in ("test", "validation", "train"))
    assert len(test_p) == 2 and len(val_p) == 1 and len(train_p) == 9   # ceil(1.2), ceil(1.0)
    assert not (test_p & val_p) and not (test_p & train_p) and not (val_p & train_p)
    np.testing.assert_array_equal(rows["test"], seed_rows["test"])     # the test participants choose nothing
    np.testing.assert_array_equal(np.sort(np.concatenate([rows["train"], rows["validation"]])), seed_rows["train"])
    other = training.split_by_participant(pid[seed_rows["train"]], 0.10)
    np.testing.assert_array_equal(rows["validation"], seed_rows["train"][other[1]])


def test_handless_clips_are_dropped_only_when_asked():
    prep = _fake_prepared(n_per_sign=20, participants=12)
    prep.has_hand = np.arange(len(prep.y)) % 10 != 0
    keep = training.split_rows(prep, tiny_cfg())
    assert np.array_equal(np.sort(np.concatenate(list(keep.values()))), np.arange(len(prep.y)))
    drop = training.split_rows(prep, tiny_cfg(handless_clips="drop"))
    kept = np.sort(np.concatenate(list(drop.values())))
    np.testing.assert_array_equal(kept, np.flatnonzero(prep.has_hand))


def test_a_single_participant_trains_on_everything():
    prep = _fake_prepared(participants=1)
    rows = training.split_rows(prep, tiny_cfg())
    np.testing.assert_array_equal(rows["train"], np.arange(len(prep.y)))
    assert rows["test"].size == rows["validation"].size == 0
    assert training.validation_data(prep, rows["validation"]) is None


# ---------------------------------------------------------------------------------------- batches
def test_batches_hold_n_clips_of_every_present_sign():
    y = np.array([9] * 7 + [2] * 3 + [240] * 1 + [55] * 5 + [100] * 4, dtype=np.int32)
    n = len(y)
    prep = types.SimpleNamespace(
        X=np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 64, 66, 3), np.float32),
        idxs=np.tile(np.arange(n, dtype=np.float32)[:, None], (1, 64)), y=y)
    rows = np.flatnonzero(y != 100)                       # sign 100 only outside the training rows
    cfg = tiny_cfg(seed=5, batch_all_signs_n=3)
    b = training.BalancedSignBatches(prep, rows, cfg)
    present = np.array([2, 9, 55, 240])
    np.testing.assert_array_equal(b.signs, present)
    assert b.batch_size == 12 and len(b) == max(1, len(rows) // 12)
    for epoch in (0, 3):
        b.epoch = epoch
        for step in range(5):
            inputs, labels = b[step]
            assert labels.shape == (12, 250) and labels.dtype == np.float32 and labels.sum() == 12
            np.testing.assert_array_equal(labels.argmax(1), np.repeat(present, 3))     # one-hot, sign order
            row_ids = inputs["frames"][:, 0, 0, 0].astype(int)                         # X row i holds i
            np.testing.assert_array_equal(row_ids, inputs["non_empty_frame_idxs"][:, 0].astype(int))
            np.testing.assert_array_equal(y[row_ids], labels.argmax(1))
            assert set(row_ids) <= set(rows)
            # an independent draw: numpy's default_rng([seed, epoch, step]), n per sign in sign order
            rng = np.random.default_rng([5, epoch, step])
            expected = np.concatenate([rng.choice(rows[y[rows] == s], 3) for s in present])
            np.testing.assert_array_equal(row_ids, expected)
    assert not np.array_equal(b.sample_rows(1, 2), b.sample_rows(2, 1))
    other_seed = training.BalancedSignBatches(prep, rows, tiny_cfg(seed=6, batch_all_signs_n=3))
    assert not np.array_equal(b.sample_rows(1, 2), other_seed.sample_rows(1, 2))


def test_batches_draw_with_replacement_and_refuse_bad_input():
    prep = types.SimpleNamespace(X=np.zeros((3, 64, 66, 3), np.float32), idxs=np.zeros((3, 64), np.float32),
                                 y=np.array([0, 0, 1], dtype=np.int32))
    b = training.BalancedSignBatches(prep, np.arange(3), tiny_cfg(batch_all_signs_n=4))
    np.testing.assert_array_equal(b.sample_rows(0, 0)[4:], [2, 2, 2, 2])     # one clip, drawn n times
    assert len(b) == 1                                                         # 3 // 8 = 0 -> at least 1
    with pytest.raises(ValueError, match="empty"):
        training.BalancedSignBatches(prep, np.array([], int), tiny_cfg())
    prep.y = np.array([0, 1, 250], dtype=np.int32)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 250\)"):
        training.BalancedSignBatches(prep, np.arange(3), tiny_cfg())


def test_epoch_seed_sets_the_epoch_and_refuses_a_backup_whose_steps_disagree():
    """A damaged backup (the weights of one epoch, the optimizer of another) stops the run."""
    prep = _fake_prepared(n_per_sign=10)
    cfg = tiny_cfg()
    batches = training.BalancedSignBatches(prep, np.arange(len(prep.y)), cfg)
    net = training.compile_model(gm.build_model(cfg), cfg)
    net.optimizer.build(net.trainable_variables)
    seeder = training.EpochSeed(batches, cfg.seed)
    seeder.set_model(net)
    net.optimizer.iterations.assign(2 * len(batches))
    seeder.on_epoch_begin(2)                                    # epoch 3 after 2 epochs of steps
    assert batches.epoch == 2
    net.optimizer.iterations.assign(2 * len(batches) - 1)
    with pytest.raises(runs.ArtefactError, match="optimizer steps"):
        seeder.on_epoch_begin(2)


# -------------------------------------------------------------------------------------- schedules
def test_lr_and_weight_decay_schedules_follow_the_formulas():
    cfg = tiny_cfg(epochs=10)
    lrs = training.learning_rates(cfg)
    expected = [0.5 * (1 + np.cos(np.pi * e / 10)) * 1e-3 for e in range(10)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    np.testing.assert_allclose(training.weight_decays(cfg), 0.05 * np.array(expected), rtol=1e-12)
    const = tiny_cfg(epochs=4, schedule="constant")
    np.testing.assert_array_equal(training.learning_rates(const), [1e-3] * 4)
    np.testing.assert_array_equal(training.weight_decays(const), [1e-5] * 4)


@pytest.mark.parametrize("schedule, lr", [("constant", 1e-3), ("constant", 3e-6), ("cosine", 4e-4)])
def test_keras_adamw_weight_decay_equals_the_seeds_decay_per_step(schedule, lr):
    """tensorflow-addons' AdamW shrank w by `wd` per step; Keras 3's by `weight_decay * lr`."""
    cfg = tiny_cfg(schedule=schedule, learning_rate=lr)
    wd_seed = 1e-5 if schedule == "constant" else 0.05 * lr
    opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=training.keras_weight_decay(cfg))
    w = keras.Variable(np.array([1.0, -2.0, 3.0], np.float32))
    opt.apply_gradients([(keras.ops.zeros(3), w)])               # zero gradient: only the decay acts
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), np.array([1.0, -2.0, 3.0]) * (1 - wd_seed), rtol=1e-7)


def test_compiled_loss_is_the_seeds_smoothed_crossentropy_with_clipnorm():
    cfg = tiny_cfg()
    m = training.compile_model(gm.build_model(cfg), cfg)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 250))
    p = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    y = np.array([0, 5, 249, 5])
    target = np.full((4, 250), 0.25 / 250)                        # the seed's scce_with_ls
    target[np.arange(4), y] += 0.75
    expected = np.mean(-(target * np.log(p)).sum(axis=1))
    assert float(m.loss(np.eye(250)[y], p)) == pytest.approx(expected, rel=1e-5)
    assert isinstance(m.optimizer, keras.optimizers.AdamW) and m.optimizer.clipnorm == 1.0
    assert float(m.optimizer.learning_rate) == pytest.approx(training.learning_rates(cfg)[0])
    assert m.optimizer.weight_decay == pytest.approx(training.keras_weight_decay(cfg))
    logs = m.evaluate([np.zeros((2, 64, 66, 3)), np.zeros((2, 64))], np.eye(250)[[1, 2]], verbose=0,
                      return_dict=True)
    assert sorted(logs) == ["acc", "loss", "top_10_acc", "top_5_acc"]


def test_history_keeps_the_last_row_of_an_epoch_repeated_by_a_resume(tmp_path):
    (tmp_path / "h.csv").write_text("epoch,loss\n0,3.0\n1,2.5\n1,2.4\n2,2.0\n")
    h = training.read_history(tmp_path / "h.csv")
    assert h["epoch"].tolist() == [1, 2, 3] and h["loss"].tolist() == [3.0, 2.4, 2.0]


def test_strategies_are_checked():
    assert training.get_strategy("one").num_replicas_in_sync == 1
    with pytest.raises(RuntimeError, match="no TPU"):
        training.get_strategy("tpu")
    with pytest.raises(config.ParameterError, match="strategy='two'"):
        training.get_strategy("two")


# ------------------------------------------------------------------------------------------ load_run
def test_load_run_names_a_manifest_of_another_version(finished_run, tmp_path):
    """Issue 26: ``run=`` on a manifest of another version gave ``TypeError: RunConfig.__init__()
    got an unexpected keyword argument 'warmup_epochs'``, naming no file."""
    folder = copy_run(finished_run.run.run_dir, tmp_path / "run")
    path = folder / runs.MANIFEST
    record = json.loads(path.read_text())
    record["spec"]["settings"]["warmup_epochs"] = 3
    path.write_text(json.dumps(record))
    with pytest.raises(runs.ArtefactError, match=rf"{runs.MANIFEST}: settings of another version"):
        training.load_run(folder)
    record["spec"]["settings"].pop("warmup_epochs")
    record["spec"]["version"] = training.VERSION - 1
    path.write_text(json.dumps(record))
    with pytest.raises(runs.ArtefactError, match=rf"{runs.MANIFEST}: made by another version"):
        training.load_run(folder)


def test_load_run_refuses_a_run_of_another_data_set(finished_run, real_prepared):
    other = types.SimpleNamespace(key="0123456789abcdef")
    with pytest.raises(runs.ArtefactError, match="another data set"):
        training.load_run(finished_run.run.run_dir, other)
    assert training.load_run(finished_run.run.run_dir, real_prepared).spec["data"] == real_prepared.key


@pytest.mark.parametrize("name", ["model.weights.h5", "stats.npz", "split.npz"])
def test_load_run_names_a_damaged_file(finished_run, tmp_path, name):
    folder = copy_run(finished_run.run.run_dir, tmp_path / "run")
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(runs.ArtefactError, match=name.replace(".", r"\.")):
        training.load_run(folder)
    (folder / name).unlink()
    with pytest.raises(runs.ArtefactError, match=rf"{name.replace('.', chr(92) + '.')} is missing"):
        training.load_run(folder)
    (folder / runs.MANIFEST).unlink()
    with pytest.raises(runs.ArtefactError, match="no finished run"):
        training.load_run(folder)


# ---------------------------------------------------------------------------------- GPU options
_REPLICAS = """
import json, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, {tests!r})
from conftest import EPOCHS, tiny_cfg
from gislr_utils import config, preprocessing, recipe, training

art = Path({art!r})
prepared = preprocessing.prepare_dataset(config.real_sample_dir(), art, progress=False, mmap=True)
compile_model, sample_rows, get_strategy = (training.compile_model, training.BalancedSignBatches.sample_rows,
                                            training.get_strategy)
out = {{}}

def run(name, strategy, cfg):
    seen, replicas = set(), []
    def record_init(net, cfg):
        np.savez(art / f"{{name}}-init.npz", *net.get_weights())
        return compile_model(net, cfg)
    def record_rows(self, epoch, step):
        rows = sample_rows(self, epoch, step)
        seen.add(str((epoch, step, rows.tolist())))       # Keras may draw a batch twice (to read shapes)
        return rows
    def record_strategy(kind):
        replicas.append(get_strategy(kind).num_replicas_in_sync)
        return get_strategy(kind)
    training.compile_model, training.get_strategy = record_init, record_strategy
    training.BalancedSignBatches.sample_rows = record_rows
    r = recipe.train_run(prepared, cfg, art / name, strategy=strategy, verbose=0)
    np.savez(art / f"{{name}}-final.npz", *r.model.get_weights())
    out[name] = dict(replicas=replicas[0], loss=r.history["loss"].tolist(), batches=sorted(seen))

# XLA cannot run one step on several CPU devices (its variables' devices): jit_compile off
plain = tiny_cfg(epochs=2, validation_split=0.0, mlp_dropout=0.0, classifier_dropout=0.0, frame_drop=0.0,
                 jit_compile=False)
run("plain one", "one", plain)
run("plain two", "mirrored", plain)
run("dropout two", "mirrored", tiny_cfg(epochs=EPOCHS, jit_compile=False))   # finished_run's, without XLA
print("RESULT " + json.dumps(out))
"""


def _arrays(path):
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def test_two_cpu_replicas_train_like_one_device_without_dropout_and_differ_with_it(finished_run, real_prepared,
                                                                                  tmp_path):
    """``GISLR_CPU_REPLICAS=2`` (read at import: a fresh process) splits the CPU into two logical
    devices for ``strategy="mirrored"``. What chapter 4 says: with dropout and frame drop 0, one and
    two devices give the same losses up to float32 rounding (the replicas' gradients are summed in
    another order: losses rtol 1e-5, weights 5e-5 after 2 epochs); with the presets' dropout the
    batches and initial weights are those of one device (conftest's finished_run) but each replica
    draws its own dropout: other losses."""
    code = _REPLICAS.format(tests=str(REPO / "tests"), art=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(GISLR_CPU_REPLICAS="2"), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.split("RESULT ")[1])
    one, two, dropout = result["plain one"], result["plain two"], result["dropout two"]
    assert (one["replicas"], two["replicas"], dropout["replicas"]) == (1, 2, 2)
    # without dropout: the same run, up to float32 rounding
    assert weights_equal(_arrays(tmp_path / "plain one-init.npz"), _arrays(tmp_path / "plain two-init.npz"))
    assert one["batches"] == two["batches"] and len(one["batches"]) >= 4
    np.testing.assert_allclose(one["loss"], two["loss"], rtol=1e-5)
    diff = max(np.abs(a - b).max() for a, b in zip(_arrays(tmp_path / "plain one-final.npz"),
                                                   _arrays(tmp_path / "plain two-final.npz")))
    assert diff < 5e-5
    # with dropout: the batches and initial weights of one device, other losses
    cfg, run = finished_run.cfg, finished_run.run
    batches = training.BalancedSignBatches(real_prepared, run.split["train"], cfg)
    expected = sorted(str((e, s, batches.sample_rows(e, s).tolist())) for e in range(cfg.epochs)
                      for s in range(len(batches)))
    assert dropout["batches"] == expected
    keras.utils.set_random_seed(cfg.seed)
    assert weights_equal(_arrays(tmp_path / "dropout two-init.npz"), gm.build_model(cfg, run.stats))
    assert not np.allclose(dropout["loss"], run.history["loss"], rtol=1e-4, atol=0)


def test_mixed_precision_trains_and_saves_a_float32_model(mixed_run, real_prepared):
    assert keras.config.dtype_policy().name == "float32"                # nothing leaks
    assert runs.read_manifest(mixed_run.run_dir)["spec"]["settings"]["mixed_precision"] is True
    assert len(mixed_run.history) == 2 and np.isfinite(mixed_run.history[["loss", "val_loss"]].to_numpy()).all()
    net = mixed_run.model                                               # loaded: one float32 model
    assert {layer.dtype_policy.name for layer in net.layers} == {"float32"}
    probs = net.predict({"frames": real_prepared.X[:5], "non_empty_frame_idxs": real_prepared.idxs[:5]}, verbose=0)
    assert probs.dtype == np.float32 and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert not pd.isna(mixed_run.history["learning_rate"]).any()
