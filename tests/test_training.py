"""Tests of gislr_utils.training: split, balanced batches, schedules, loss, determinism, end to end."""
import contextlib
import io
import json
import math
import shutil
import types

import numpy as np
import pytest

import gislr_utils  # noqa: F401  (silences TensorFlow before it loads)
from gislr_utils import runs as rn
from gislr_utils import training as tr
from gislr_utils._tf import keras
from gislr_utils.config import REAL_SAMPLE_DIR

TINY = dict(units=16, lips_units=8, hands_units=8, pose_units=8, num_blocks=1, num_heads=2)


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
    return types.SimpleNamespace(X=X, idxs=idxs, y=y, participant_id=pid, sequence_id=np.arange(n) + 1000)


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


def test_split_needs_two_participants():
    with pytest.raises(ValueError, match="at least 2"):
        tr.split_by_participant(np.full(10, 5))
    with pytest.raises(ValueError, match="non-empty"):
        tr.split_by_participant(np.array([]))


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
    it = iter(s)
    for _ in range(20):
        inputs, labels = next(it)
        np.testing.assert_array_equal(labels, np.repeat(present, 3))   # sign order, 3 each
        row_ids = inputs["frames"][:, 0, 0, 0].astype(int)             # X row i holds the value i
        np.testing.assert_array_equal(row_ids, inputs["non_empty_frame_idxs"][:, 0].astype(int))
        np.testing.assert_array_equal(y[row_ids], labels)             # each clip is of its label's sign
        assert set(row_ids) <= set(rows)
        assert inputs["frames"].shape == (12, 64, 66, 3) and inputs["frames"].dtype == np.float32
    # same seed, same batches; other seed, other batches
    a = [tr.BalancedSignBatches(X, idxs, y, n=3, rows=rows, seed=5).sample_rows() for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    b = tr.BalancedSignBatches(X, idxs, y, n=3, rows=rows, seed=6).sample_rows()
    assert not np.array_equal(a[0], b)


def test_sampler_draws_with_replacement_and_rejects_bad_input():
    y = np.array([0, 0, 1], dtype=np.int32)
    X = np.zeros((3, 64, 66, 3), np.float32)
    idxs = np.zeros((3, 64), np.float32)
    s = tr.BalancedSignBatches(X, idxs, y, n=4, seed=0)
    rows = s.sample_rows()
    np.testing.assert_array_equal(rows[4:], [2, 2, 2, 2])   # a single clip is drawn n times
    assert s.steps_per_epoch == 1                            # 3 // 8 = 0 -> at least 1
    with pytest.raises(ValueError, match="same length"):
        tr.BalancedSignBatches(X, idxs[:2], y)
    with pytest.raises(ValueError, match="labels"):
        tr.BalancedSignBatches(X, idxs, np.array([0, 1, 250]))
    with pytest.raises(ValueError, match="n "):
        tr.BalancedSignBatches(X, idxs, y, n=0)


# -------------------------------------------------------------------------------------- schedules
def test_lr_and_weight_decay_schedules_follow_the_formulas():
    lrs = tr.lr_schedule(10, "cosine", 1e-3)
    expected = [0.5 * (1 + math.cos(math.pi * e / 10)) * 1e-3 for e in range(10)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert lrs[0] == pytest.approx(1e-3) and np.all(np.diff(lrs) < 0) and lrs[-1] > 0
    np.testing.assert_allclose(tr.weight_decay_schedule(10, "cosine", 1e-3, wd_ratio=0.05),
                               0.05 * np.array(expected), rtol=1e-12)
    np.testing.assert_array_equal(tr.lr_schedule(4, "constant", 1e-3), [1e-3] * 4)
    np.testing.assert_array_equal(tr.weight_decay_schedule(4, "constant", 1e-3, weight_decay=1e-5), [1e-5] * 4)
    # the notebook's warm-up branch ("log"): lr_max * 0.1 ** (n_warmup - epoch)
    assert tr.lrfn(0, 10, 1e-3, n_warmup=2) == pytest.approx(1e-5)
    assert tr.lrfn(2, 10, 1e-3, n_warmup=2) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="schedule"):
        tr.lr_schedule(5, "linear")


@pytest.mark.parametrize("schedule,lr", [("constant", 1e-3), ("cosine", 4e-4)])
def test_keras_adamw_weight_decay_equals_the_seeds_decay_per_step(schedule, lr):
    """tensorflow-addons' AdamW shrank w by `wd` per step; Keras 3 by `weight_decay * lr`."""
    wd_seed = 1e-5 if schedule == "constant" else 0.05 * lr         # the seed's / notebook's value
    opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=tr.keras_weight_decay(schedule, lr, 1e-5, 0.05))
    w = keras.Variable(np.array([1.0, -2.0, 3.0], np.float32))
    opt.apply_gradients([(keras.ops.zeros(3), w)])                   # zero gradient: only the decay acts
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), np.array([1.0, -2.0, 3.0]) * (1 - wd_seed),
                               rtol=1e-7)


# ------------------------------------------------------------------------------------------- loss
def test_loss_is_smoothed_categorical_crossentropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 250))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([0, 5, 249, 5])
    target = np.full((4, 250), 0.25 / 250)
    target[np.arange(4), y] += 0.75
    expected = np.mean(-(target * np.log(p)).sum(axis=1))
    loss = tr.SparseCategoricalCrossentropyLS(250, 0.25)
    assert float(loss(y, p.astype(np.float32))) == pytest.approx(expected, rel=1e-5)
    assert float(loss(y[:, None], p.astype(np.float32))) == pytest.approx(expected, rel=1e-5)
    same = keras.losses.CategoricalCrossentropy(label_smoothing=0.25)(np.eye(250)[y], p.astype(np.float32))
    assert float(loss(y, p.astype(np.float32))) == pytest.approx(float(same), rel=1e-6)
    clone = tr.SparseCategoricalCrossentropyLS.from_config(loss.get_config())
    assert clone.label_smoothing == 0.25 and clone.num_classes == 250


# ------------------------------------------------------------------------------------- training
def test_data_fingerprint_follows_clips_labels_and_contents():
    a, b = _fake_prepared(), _fake_prepared()
    assert tr.data_fingerprint(a) == tr.data_fingerprint(b)
    b.X = b.X.copy()
    b.X[0, 0, 0, 0] += 1.0                      # clip 0 is among the sampled clips
    assert tr.data_fingerprint(a) != tr.data_fingerprint(b)
    c = _fake_prepared()
    c.y = c.y.copy()
    c.y[-1] = 5
    assert tr.data_fingerprint(a) != tr.data_fingerprint(c)


def test_two_runs_with_one_seed_give_identical_weights(tmp_path):
    prep = _fake_prepared()
    runs = [tr.train(prep, "classroom", tmp_path / f"run{i}", seed=3, epochs=1, verbose=0,
                     attention_mask="seed", **TINY) for i in range(2)]
    w0, w1 = runs[0].model.get_weights(), runs[1].model.get_weights()
    assert len(w0) == len(w1) > 0
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(runs[0].history["loss"], runs[1].history["loss"])
    r = runs[0]
    assert set(prep.participant_id[r.val_idx]).isdisjoint(prep.participant_id[r.train_idx])
    for name in ("model", "history", "stats", "split", "config"):
        assert r.paths[name].exists(), name
    cols = list(r.history.columns)
    for col in ("epoch", "loss", "acc", "top_5_acc", "top_10_acc", "val_loss", "val_acc",
                "val_top_5_acc", "val_top_10_acc", "learning_rate", "weight_decay"):
        assert col in cols
    assert r.history["learning_rate"].iloc[0] == pytest.approx(1e-3)
    assert r.history["weight_decay"].iloc[0] == pytest.approx(0.05 * 1e-3)   # cosine: wd_ratio * lr
    # reuse: same preset, settings, seed and data -> the saved model is loaded, not retrained
    again = tr.train(prep, "classroom", tmp_path / "run0", seed=3, epochs=1, verbose=0, reuse=True,
                     attention_mask="seed", **TINY)
    assert again.reused
    for a, b in zip(w0, again.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    saved = json.loads(r.paths["config"].read_text())
    spec = tr.run_key(prep, "classroom", *tr.resolve_settings("classroom", 1, attention_mask="seed", **TINY),
                      3, r.stats)
    assert saved["spec"] == spec and saved["key"] == rn.key_of(spec)
    assert tr.why_not_reusable(tmp_path / "run0", spec) is None
    for change, says in (({"seed": 4}, "seed: 3 -> 4"), ({"stats": "0" * 16}, "stats:"),
                         ({"settings": {**spec["settings"], "units": 32}}, "settings.units: 16 -> 32"),
                         ({"settings": {**spec["settings"], "epochs": 2}}, "settings.epochs: 1 -> 2")):
        assert says in tr.why_not_reusable(tmp_path / "run0", {**spec, **change})   # retrain, not reuse


def test_train_uses_training_split_statistics_and_a_subset_of_signs(tmp_path, capsys):
    from gislr_utils import statistics
    prep = _fake_prepared(signs=(1, 2), participants=5)
    r = tr.train(prep, "classroom", tmp_path, seed=0, epochs=1, verbose=1, schedule="constant", **TINY)
    expected = statistics.compute_stats(prep.X[r.train_idx])
    np.testing.assert_allclose(r.stats["mean"], expected["mean"])
    np.testing.assert_allclose(r.stats["std"], expected["std"])
    assert r.history["learning_rate"].iloc[0] == pytest.approx(1e-3)
    assert r.history["weight_decay"].iloc[0] == pytest.approx(1e-5)          # the seed's decay per step
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "\x1b[" not in out and "\b" not in out       # one plain line, no bar
    saved = json.loads(r.paths["config"].read_text())
    assert saved["spec"]["settings"]["schedule"] == "constant" and saved["n_val"] == len(r.val_idx)


def test_paths_in_messages_are_relative_to_the_repository(tmp_path):
    from gislr_utils.config import REPO_ROOT, show_path
    assert show_path(REPO_ROOT / "artifacts" / "runs" / "x" / "model.keras") == "./artifacts/runs/x/model.keras"
    assert show_path(tmp_path / "model.keras") == str(tmp_path / "model.keras")   # outside: unchanged
    prep = _fake_prepared(signs=(1, 2), participants=5)
    run_dir = REPO_ROOT / "artifacts" / "test-runs" / tmp_path.name
    try:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            tr.train(prep, "classroom", run_dir, seed=0, epochs=1, verbose=1, **TINY)
        out = buf.getvalue()
        assert f"saved ./artifacts/test-runs/{tmp_path.name}/model.keras" in out
        assert str(REPO_ROOT) not in out
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_train_without_validation_says_so(tmp_path):
    prep = _fake_prepared(signs=(3, 4), participants=1)
    with pytest.warns(UserWarning, match="no validation split possible"):
        r = tr.train(prep, "classroom", tmp_path, seed=0, epochs=1, verbose=0, **TINY)
    assert not r.has_validation and len(r.train_idx) == len(prep.y)
    assert "val_acc" not in r.history.columns and r.paths["model"].exists()


def test_train_rejects_bad_settings(tmp_path):
    prep = _fake_prepared()
    with pytest.raises(ValueError, match="schedule"):
        tr.train(prep, "classroom", tmp_path, epochs=1, verbose=0, schedule="step", **TINY)
    with pytest.raises(ValueError, match="preset"):
        tr.train(prep, "large", tmp_path, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="epochs"):
        tr.train(prep, "classroom", tmp_path, epochs=0, verbose=0)


def test_compare_masking_trains_both_variants_and_reuses_the_main_run(tmp_path):
    prep = _fake_prepared(participants=5)
    main = tr.train(prep, "classroom", tmp_path, seed=1, epochs=1, verbose=0, attention_mask="keys", **TINY)
    table = tr.compare_masking(prep, "classroom", seed=1, artifacts_dir=tmp_path, epochs=1, verbose=0, **TINY)
    assert list(table["attention_mask"]) == ["seed", "seed", "keys"]
    assert list(table["frame_drop_at_inference"]) == [True, False, False]
    for col in ("accuracy", "top5", "top10", "macro_f1", "n_val", "train_seconds", "best_epoch", "epochs"):
        assert col in table.columns
    assert (table["n_val"] == len(main.val_idx)).all() and (table["epochs"] == 1).all()
    # the keys variant is the main run itself (not retrained); the seed variant was trained once
    assert table.loc[2, "train_seconds"] == pytest.approx(main.train_seconds)
    assert not (tmp_path / "masking" / "keys").exists() and (tmp_path / "masking" / "seed" / "model.keras").exists()
    # keys predictions are deterministic: accuracy equals the main model's on the held-out clips
    from gislr_utils import evaluation
    probs = evaluation.predict(main.model, prep.X[main.val_idx], prep.idxs[main.val_idx])
    assert table.loc[2, "accuracy"] == pytest.approx(np.mean(probs.argmax(1) == prep.y[main.val_idx]))
    again = tr.compare_masking(prep, "classroom", seed=1, artifacts_dir=tmp_path, epochs=1, verbose=0, **TINY)
    np.testing.assert_array_equal(again["accuracy"], table["accuracy"])      # reused, same numbers
    assert (tmp_path / "masking" / "masking_comparison.csv").exists()


@pytest.mark.skipif(not REAL_SAMPLE_DIR.exists(), reason=f"real GISLR sample not found at {REAL_SAMPLE_DIR}")
def test_end_to_end_on_the_real_sample(tmp_path):
    from gislr_utils import evaluation
    from gislr_utils.preprocessing import prepare_dataset
    prep = prepare_dataset(REAL_SAMPLE_DIR, tmp_path / "artifacts")
    assert len(np.unique(prep.participant_id)) == 21
    r = tr.train(prep, "classroom", tmp_path / "artifacts", seed=0, epochs=2, verbose=0, **TINY)
    assert len(np.unique(prep.participant_id[r.val_idx])) == 3
    out = evaluation.evaluate(r.model, prep.X[r.val_idx], prep.idxs[r.val_idx], prep.y[r.val_idx],
                              participant_id=prep.participant_id[r.val_idx])
    path = evaluation.write_metrics(tmp_path / "artifacts" / "metrics.json", out.metrics, seed=0,
                                    preset="classroom")
    data = json.loads(path.read_text())
    assert data["n_val"] == len(r.val_idx) and data["n_classes_present"] == 2
    assert set(out.report["label"]) == set(np.unique(prep.y))
    assert 0.0 <= data["accuracy"] <= data["top5"] <= data["top10"] <= 1.0
    assert data["accuracy"] == pytest.approx(np.mean(out.probs.argmax(1) == prep.y[r.val_idx]))
