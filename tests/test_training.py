"""Tests of gislr_utils.training: splits, balanced batches, schedules, loss, optimizer, runs."""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

import gislr_utils  # noqa: F401  (silences TensorFlow before it loads)
from gislr_utils import config, runs
from gislr_utils import training as tr
from gislr_utils._tf import keras

REPO = Path(__file__).resolve().parent.parent
TINY = dict(units=16, embedding_units=8, num_blocks=1, num_heads=2)


def _with_key(prep):
    """The data set's identity, as `PreparedData.key`: a hash of all its arrays."""
    prep.key = runs.hash_arrays(prep.X, prep.idxs, prep.y, prep.participant_id, prep.sequence_id)
    return prep


def _fake_prepared(n_per_sign=6, signs=(4, 17, 249), participants=4, seed=0):
    """Random clips whose x coordinates carry the label, so a tiny model can learn something."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.array(signs, dtype=np.int32), n_per_sign)
    n = len(y)
    X = rng.random((n, 64, 66, 3), dtype=np.float32) * 0.1
    X[..., 0] += (y[:, None, None] % 7) / 7
    idxs = np.tile(np.arange(64, dtype=np.float32), (n, 1))
    idxs[::3, 20:] = -1
    X[::3, 20:] = 0
    pid = np.tile(np.arange(participants), n // participants + 1)[:n] + 100
    prep = types.SimpleNamespace(X=X, idxs=idxs, y=y, participant_id=pid, sequence_id=np.arange(n) + 1000,
                                 has_hand=np.ones(n, bool))
    return _with_key(prep)


def _cfg(**kw):
    return config.resolve(kw.pop("preset", "classroom"), kw.pop("seed", 0), **{**TINY, **kw})


def _env(**extra):
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


# ------------------------------------------------------------------------------------------ split
def test_split_holds_out_whole_participants():
    rng = np.random.default_rng(0)
    pid = np.repeat(np.arange(21) * 11 + 16069, rng.integers(3, 9, 21))
    train_idx, val_idx = tr.split_by_participant(pid)
    assert len(np.unique(pid[val_idx])) == 3                     # ceil(0.10 * 21)
    assert not set(pid[train_idx]) & set(pid[val_idx])            # whole participants only
    np.testing.assert_array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(len(pid)))
    again = tr.split_by_participant(pid)
    np.testing.assert_array_equal(train_idx, again[0])
    np.testing.assert_array_equal(val_idx, again[1])
    with pytest.raises(ValueError, match="at least 2"):
        tr.split_by_participant(np.full(10, 5))


def test_split_rows_validation_comes_from_the_training_participants():
    prep = _fake_prepared(n_per_sign=20, participants=12)
    pid = prep.participant_id
    seed_rows = tr.split_rows(prep, config.resolve("seed"))          # the seed: no validation
    assert seed_rows["validation"].size == 0
    rows = tr.split_rows(prep, config.resolve("classroom"))
    test_p, val_p, train_p = (set(pid[rows[k]]) for k in ("test", "validation", "train"))
    assert len(test_p) == 2 and len(val_p) == 1 and len(train_p) == 9   # ceil(1.2), ceil(1.0)
    assert not (test_p & val_p) and not (test_p & train_p) and not (val_p & train_p)
    # the test participants are those of the seed's split: they choose nothing
    np.testing.assert_array_equal(rows["test"], seed_rows["test"])
    np.testing.assert_array_equal(np.sort(np.concatenate([rows["train"], rows["validation"]])), seed_rows["train"])
    # the validation participants depend on the training participants only
    other = tr.split_by_participant(pid[seed_rows["train"]], 0.10)
    np.testing.assert_array_equal(rows["validation"], seed_rows["train"][other[1]])


def test_split_rows_drops_handless_clips_only_when_asked():
    prep = _fake_prepared(n_per_sign=20, participants=12)
    prep.has_hand = np.arange(len(prep.y)) % 10 != 0
    keep = tr.split_rows(prep, _cfg())
    assert sum(r.size for r in keep.values()) == len(prep.y)
    drop = tr.split_rows(prep, _cfg(handless_clips="drop"))
    kept = np.concatenate(list(drop.values()))
    assert kept.size == prep.has_hand.sum() and prep.has_hand[kept].all()


def test_single_participant_trains_on_everything():
    prep = _fake_prepared(participants=1)
    rows = tr.split_rows(prep, _cfg())
    assert rows["train"].size == len(prep.y) and rows["test"].size == rows["validation"].size == 0


# ---------------------------------------------------------------------------------------- sampler
def test_sampler_balanced_over_present_signs_only():
    y = np.array([9] * 7 + [2] * 3 + [240] * 1 + [55] * 5 + [100] * 4, dtype=np.int32)
    n = len(y)
    X = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 64, 66, 3), np.float32)
    idxs = np.tile(np.arange(n, dtype=np.float32)[:, None], (1, 64))
    rows = np.flatnonzero(y != 100)                  # sign 100 only outside the training rows
    s = tr.BalancedSignBatches(X, idxs, y, n=3, rows=rows, seed=5)
    present = np.array([2, 9, 55, 240])
    np.testing.assert_array_equal(s.signs, present)
    assert s.batch_size == 4 * 3
    assert s.steps_per_epoch == max(1, len(rows) // 12)
    for step in range(20):
        inputs, labels = s.batch(step)
        np.testing.assert_array_equal(labels.argmax(1), np.repeat(present, 3))   # one-hot, sign order
        assert labels.shape == (12, 250) and labels.sum() == 12
        row_ids = inputs["frames"][:, 0, 0, 0].astype(int)             # X row i holds the value i
        np.testing.assert_array_equal(row_ids, inputs["non_empty_frame_idxs"][:, 0].astype(int))
        np.testing.assert_array_equal(y[row_ids], labels.argmax(1))   # each clip is of its label's sign
        assert set(row_ids) <= set(rows)
        assert inputs["frames"].shape == (12, 64, 66, 3) and inputs["frames"].dtype == np.float32
    # a batch depends on the seed and its number only
    again = tr.BalancedSignBatches(X, idxs, y, n=3, rows=rows, seed=5)
    np.testing.assert_array_equal(s.sample_rows(7), again.sample_rows(7))
    assert not np.array_equal(s.sample_rows(7), s.sample_rows(8))
    assert not np.array_equal(s.sample_rows(7), tr.BalancedSignBatches(X, idxs, y, 3, rows, 6).sample_rows(7))


def test_sampler_draws_with_replacement_and_rejects_bad_input():
    y = np.array([0, 0, 1], dtype=np.int32)
    X = np.zeros((3, 64, 66, 3), np.float32)
    idxs = np.zeros((3, 64), np.float32)
    s = tr.BalancedSignBatches(X, idxs, y, n=4, seed=0)
    np.testing.assert_array_equal(s.sample_rows(0)[4:], [2, 2, 2, 2])   # a single clip, drawn n times
    assert s.steps_per_epoch == 1                                        # 3 // 8 = 0 -> at least 1
    with pytest.raises(ValueError, match="same length"):
        tr.BalancedSignBatches(X, idxs[:2], y)
    with pytest.raises(ValueError, match="labels"):
        tr.BalancedSignBatches(X, idxs, np.array([0, 1, 250]))
    with pytest.raises(ValueError, match="n "):
        tr.BalancedSignBatches(X, idxs, y, n=0)
    with pytest.raises(ValueError, match="empty"):
        tr.BalancedSignBatches(X, idxs, y, rows=np.array([], int))


def test_batch_dataset_gives_the_samplers_batches_from_a_step_on():
    prep = _fake_prepared(n_per_sign=10)
    s = tr.BalancedSignBatches(prep.X, prep.idxs, prep.y, n=2, seed=3)
    got = list(tr.batch_dataset(s, first_step=5).take(3).as_numpy_iterator())
    for k, (inputs, labels) in enumerate(got):
        expected_inputs, expected_labels = s.batch(5 + k)
        np.testing.assert_array_equal(inputs["frames"], expected_inputs["frames"])
        np.testing.assert_array_equal(labels, expected_labels)


# -------------------------------------------------------------------------------------- schedules
def test_lr_and_weight_decay_schedules_follow_the_formulas():
    cfg = _cfg(epochs=10)
    lrs = tr.learning_rates(cfg)
    expected = [0.5 * (1 + np.cos(np.pi * e / 10)) * 1e-3 for e in range(10)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert lrs[0] == pytest.approx(1e-3) and np.all(np.diff(lrs) < 0) and lrs[-1] > 0
    np.testing.assert_allclose(tr.weight_decays(cfg), 0.05 * np.array(expected), rtol=1e-12)
    const = _cfg(epochs=4, schedule="constant")
    np.testing.assert_array_equal(tr.learning_rates(const), [1e-3] * 4)
    np.testing.assert_array_equal(tr.weight_decays(const), [1e-5] * 4)


@pytest.mark.parametrize("schedule,lr", [("constant", 1e-3), ("cosine", 4e-4)])
def test_keras_adamw_weight_decay_equals_the_seeds_decay_per_step(schedule, lr):
    """tensorflow-addons' AdamW shrank w by `wd` per step; Keras 3 by `weight_decay * lr`."""
    cfg = _cfg(schedule=schedule, learning_rate=lr)
    wd_seed = 1e-5 if schedule == "constant" else 0.05 * lr         # the seed's / notebook's value
    opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=tr.keras_weight_decay(cfg))
    w = keras.Variable(np.array([1.0, -2.0, 3.0], np.float32))
    opt.apply_gradients([(keras.ops.zeros(3), w)])                   # zero gradient: only the decay acts
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), np.array([1.0, -2.0, 3.0]) * (1 - wd_seed),
                               rtol=1e-7)


def test_compiled_loss_is_the_seeds_smoothed_crossentropy_and_clipnorm_is_set():
    from gislr_utils.model import build_model
    cfg = _cfg()
    m = tr.compile_model(build_model(cfg), cfg)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 250))
    p = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    y = np.array([0, 5, 249, 5])
    target = np.full((4, 250), 0.25 / 250)                           # the seed's scce_with_ls
    target[np.arange(4), y] += 0.75
    expected = np.mean(-(target * np.log(p)).sum(axis=1))
    assert float(m.loss(np.eye(250)[y], p)) == pytest.approx(expected, rel=1e-5)
    assert m.optimizer.clipnorm == 1.0 and isinstance(m.optimizer, keras.optimizers.AdamW)
    logs = m.evaluate([np.zeros((2, 64, 66, 3)), np.zeros((2, 64))], np.eye(250)[[1, 2]], verbose=0,
                      return_dict=True)
    assert sorted(logs) == ["acc", "loss", "top_10_acc", "top_5_acc"]


# ------------------------------------------------------------------------------------- training
def test_two_runs_with_one_seed_give_identical_weights(tmp_path):
    prep = _fake_prepared(participants=5)
    cfg = _cfg(seed=3, epochs=1, attention_mask="seed")
    results = [tr.train(prep, cfg, tmp_path / f"run{i}", verbose=0) for i in range(2)]
    w0, w1 = results[0].model.get_weights(), results[1].model.get_weights()
    assert len(w0) == len(w1) > 0
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(results[0].history["loss"], results[1].history["loss"])
    r = results[0]
    assert set(prep.participant_id[r.rows["test"]]).isdisjoint(prep.participant_id[r.rows["train"]])
    for name in tr.RUN_FILES:
        assert (tmp_path / "run0" / name).exists(), name
    for col in ("epoch", "loss", "acc", "top_5_acc", "top_10_acc", "val_loss", "val_acc", "learning_rate"):
        assert col in r.history.columns
    assert r.history["learning_rate"].iloc[0] == pytest.approx(1e-3)
    # reuse: the same settings and data -> the saved model is loaded, not retrained
    again = tr.train(prep, cfg, tmp_path / "run0", verbose=0)
    assert again.reused
    for a, b in zip(w0, again.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    spec = tr.run_spec(prep, cfg, r.stats)
    saved = json.loads((tmp_path / "run0" / "train_config.json").read_text())
    assert saved["spec"] == spec and saved["key"] == runs.key_of(spec)
    for change, says in (({"data": "0" * 16}, "data:"), ({"stats": "0" * 16}, "stats:"),
                         ({"settings": {**spec["settings"], "units": 32}}, "settings.units: 16 -> 32"),
                         ({"settings": {**spec["settings"], "seed": 4}}, "settings.seed: 3 -> 4")):
        assert says in tr.why_not_reusable(tmp_path / "run0", {**spec, **change})   # retrain, not reuse


def test_other_held_out_clips_same_training_clips_same_weights(tmp_path):
    """The test participants choose nothing: changing their clips leaves the trained weights alone."""
    prep = _fake_prepared(n_per_sign=20, participants=12)
    cfg = _cfg(epochs=2, attention_mask="seed", frame_drop_at_inference=True)   # random at inference
    rows = tr.split_rows(prep, cfg)
    other = _fake_prepared(n_per_sign=20, participants=12)
    test = rows["test"]
    other.X = other.X.copy()
    other.X[test] = np.random.default_rng(9).random(other.X[test].shape, dtype=np.float32)
    other.y = other.y.copy()
    other.y[test] = 4
    _with_key(other)
    assert other.key != prep.key
    a = tr.train(prep, cfg, tmp_path / "a", verbose=0)
    b = tr.train(other, cfg, tmp_path / "b", verbose=0)
    for u, v in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(a.history["val_acc"], b.history["val_acc"])


def test_best_epoch_is_chosen_on_the_validation_participants(tmp_path):
    prep = _fake_prepared(n_per_sign=20, participants=12)
    r = tr.train(prep, _cfg(epochs=3, epoch_selection="best"), tmp_path, verbose=0)
    assert r.kept_epoch == int(r.history["val_acc"].idxmax()) + 1
    final = tr.train(prep, _cfg(epochs=3), tmp_path / "final", verbose=0)
    assert final.kept_epoch == 3
    with pytest.raises(config.ParameterError, match="validation_split"):
        _cfg(epoch_selection="best", validation_split=0)


def test_train_uses_training_split_statistics_and_prints_plain_lines(tmp_path, capsys):
    from gislr_utils import statistics
    prep = _fake_prepared(signs=(1, 2), participants=5)
    r = tr.train(prep, _cfg(epochs=1, schedule="constant", validation_split=0), tmp_path, verbose=1)
    expected = statistics.compute_stats(prep.X[r.rows["train"]])
    np.testing.assert_allclose(r.stats["mean"], expected["mean"])
    np.testing.assert_allclose(r.stats["std"], expected["std"])
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "\x1b[" not in out and "\b" not in out       # one plain line, no bar
    assert "val_acc" not in r.history.columns


def test_paths_in_messages_are_relative_to_the_repository(tmp_path):
    from gislr_utils.config import REPO_ROOT, show_path
    assert show_path(REPO_ROOT / "artifacts" / "runs" / "x" / "model.keras") == "./artifacts/runs/x/model.keras"
    assert show_path(tmp_path / "model.keras") == str(tmp_path / "model.keras")   # outside: unchanged
    run_dir = REPO_ROOT / "artifacts" / "test-runs" / tmp_path.name
    try:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            tr.train(_fake_prepared(signs=(1, 2), participants=5), _cfg(epochs=1), run_dir, verbose=1)
        assert f"saved ./artifacts/test-runs/{tmp_path.name}/model.keras" in buf.getvalue()
        assert str(REPO_ROOT) not in buf.getvalue()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_settings_are_checked_naming_the_setting():
    for kw, says in ((dict(schedule="step"), "schedule='step'"), (dict(epochs=0), "epochs=0 must be >= 1"),
                     (dict(units=30, num_heads=4), "divisible"), (dict(mlp_dropout=1.0), "mlp_dropout=1.0"),
                     (dict(label_smoothing=-0.1), "label_smoothing"), (dict(learning_rate="fast"), "learning_rate"),
                     (dict(frame_drop_at_inference=True), "attention_mask='seed'"), (dict(nope=1), "unknown")):
        with pytest.raises(config.ParameterError, match=says):
            config.resolve("classroom", 0, **kw)
    with pytest.raises(config.ParameterError, match="preset"):
        config.resolve("large")
    assert config.resolve("seed", units=None).units == 512          # None: the preset's value


# --------------------------------------------------------------------------- several devices
def test_two_cpu_replicas_train_like_one_device(tmp_path):
    """`GISLR_CPU_REPLICAS=2` splits the CPU into two logical devices; "mirrored" trains on both.

    The same global batches and seed give the same losses and weights, up to float32 rounding:
    the replicas' gradients are summed in another order (and the clipping factor is computed from
    the sum). Tolerances: losses rtol 1e-5; weights (of order 0.1-1) 5e-5 absolute after 2 epochs
    of 16 steps. Each step is ``lr * m / sqrt(v)``: a rounding difference of a gradient component
    (float32: ~1e-7 of it) is not damped where the component is small, so weights drift more than
    gradients; measured 7.9e-6, against 3e-2 to 9e-2 when a data-pipeline bug mixed up batches.
    """
    code = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_training import _fake_prepared, _cfg
        from gislr_utils import training as tr
        prep = _fake_prepared(n_per_sign=40, participants=5)
        cfg = _cfg(epochs=2, mlp_dropout=0.0, classifier_dropout=0.0, frame_drop=0.0, validation_split=0)
        one = tr.train(prep, cfg, {str(tmp_path / 'one')!r}, strategy="one", verbose=0)
        two = tr.train(prep, cfg, {str(tmp_path / 'two')!r}, strategy="mirrored", verbose=1)
        print("LOSS", *one.history["loss"], *two.history["loss"])
        print("DIFF", max(float(np.abs(a - b).max()) for a, b in zip(one.model.get_weights(), two.model.get_weights())))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(GISLR_CPU_REPLICAS="2"), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 replicas" in out.stdout
    losses = [float(v) for v in out.stdout.split("LOSS")[1].split("\n")[0].split()]
    np.testing.assert_allclose(losses[:2], losses[2:], rtol=1e-5)
    assert float(out.stdout.split("DIFF")[1].split()[0]) < 5e-5


def test_unavailable_strategy_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no TPU"):
        tr.get_strategy("tpu")
    assert tr.get_strategy("one").num_replicas_in_sync == 1


def test_real_clips_other_held_out_files_same_weights(tmp_path):
    """Issue 16, on genuine clips: two data folders that differ only in the held-out participants'
    files (one of their clips replaced by another of theirs, one line dropped) train to identical
    weights; the held-out participants choose nothing."""
    import shutil

    import pandas as pd

    from gislr_utils.preprocessing import prepare_dataset
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    shutil.copytree(config.real_sample_dir(), a_dir)
    shutil.copytree(config.real_sample_dir(), b_dir)
    cfg = _cfg(epochs=2, validation_split=0.0)
    a = prepare_dataset(a_dir, tmp_path / "art")
    test = tr.split_rows(a, cfg)["test"]
    held = sorted(set(np.asarray(a.participant_id)[test]))
    table = pd.read_csv(b_dir / "train.csv")
    rows = table.index[table.participant_id.isin(held)]
    shutil.copy(b_dir / table.path[rows[0]], b_dir / table.path[rows[-1]])     # another clip's frames
    if len(rows) > 2:
        table = table.drop(index=rows[1])                                      # and one clip fewer
    table.to_csv(b_dir / "train.csv", index=False)
    b = prepare_dataset(b_dir, tmp_path / "art")
    assert a.key != b.key and sorted(set(np.asarray(b.participant_id)[tr.split_rows(b, cfg)["test"]])) == held
    ra = tr.train(a, cfg, tmp_path / "run_a", verbose=0)
    rb = tr.train(b, cfg, tmp_path / "run_b", verbose=0)
    for u, v in zip(ra.model.get_weights(), rb.model.get_weights()):
        np.testing.assert_array_equal(u, v)
