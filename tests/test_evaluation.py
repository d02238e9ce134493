"""Tests of gislr_utils.evaluation against independent NumPy computations."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gislr_utils  # noqa: F401  (silences TensorFlow before it loads)
from gislr_utils import config
from gislr_utils import evaluation as ev
from gislr_utils.config import INDEX_TO_SIGN


def _tiny_model(**settings):
    from gislr_utils.model import build_model
    tiny = dict(units=16, embedding_units=8, num_blocks=1, num_heads=2)
    return build_model(config.resolve("classroom", **{**tiny, **settings}))


def _probs(n, c=250, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.random((n, c))
    return p / p.sum(axis=1, keepdims=True)


def _f1_by_hand(y, yp, label):
    tp = np.sum((y == label) & (yp == label))
    fp = np.sum((y != label) & (yp == label))
    fn = np.sum((y == label) & (yp != label))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return (2 * prec * rec / (prec + rec) if prec + rec else 0.0), prec, rec


def test_top_k_matches_argsort():
    rng = np.random.default_rng(1)
    probs = _probs(40)
    y = rng.integers(0, 250, 40)
    # make some true labels rank high so that the counts are not trivially 0
    probs[:10, y[:10]] += 0.5
    probs /= probs.sum(axis=1, keepdims=True)
    order = np.argsort(-probs, axis=1)
    for k in (1, 5, 10):
        expected = np.mean([y[i] in order[i, :k] for i in range(len(y))])
        assert ev.top_k_accuracy(y, probs, k) == pytest.approx(expected)
    assert ev.top_k_accuracy(y, probs, 1) == pytest.approx(np.mean(probs.argmax(1) == y))


def test_summary_metrics_against_hand_computation():
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 5])
    yp = np.array([0, 0, 1, 1, 2, 2, 2, 0, 2, 7])       # 7 is predicted but absent from y
    probs = np.full((len(y), 250), 1e-4)
    probs[np.arange(len(y)), yp] = 0.9
    m = ev.summary_metrics(y, probs)
    present = np.unique(y)
    f1s = np.array([_f1_by_hand(y, yp, s)[0] for s in present])
    support = np.array([np.sum(y == s) for s in present])
    assert m["accuracy"] == pytest.approx(6 / 10)
    assert m["macro_f1"] == pytest.approx(f1s.mean())
    assert m["weighted_f1"] == pytest.approx((f1s * support).sum() / support.sum())
    assert m["n_val"] == 10 and m["n_classes_present"] == 4
    assert m["top5"] >= m["accuracy"] and m["top10"] >= m["top5"]


def test_classification_report_present_signs_only():
    y = np.array([3, 3, 3, 9, 9, 249])
    yp = np.array([3, 9, 3, 9, 100, 249])               # 100 absent from y: an error, no row
    rep = ev.classification_report_df(y, yp)
    assert list(rep.index) == [INDEX_TO_SIGN[3], INDEX_TO_SIGN[9], INDEX_TO_SIGN[249]]
    assert list(rep["label"]) == [3, 9, 249]
    assert list(rep["support"]) == [3, 2, 1]
    for _sign, row in rep.iterrows():
        f1, prec, rec = _f1_by_hand(y, yp, row["label"])
        assert row["precision"] == pytest.approx(prec)
        assert row["recall"] == pytest.approx(rec)
        assert row["f1-score"] == pytest.approx(f1)
    assert rep.loc[INDEX_TO_SIGN[9], "recall"] == pytest.approx(0.5)
    assert rep.loc[INDEX_TO_SIGN[9], "precision"] == pytest.approx(0.5)


def test_per_participant_accuracy():
    y = np.array([1, 1, 2, 2, 3, 3, 3])
    yp = np.array([1, 0, 2, 2, 0, 0, 3])
    pid = np.array([7, 7, 7, 9, 9, 9, 9])
    df = ev.per_participant_accuracy(y, yp, pid).set_index("participant_id")
    assert df.loc[7, "n_clips"] == 3 and df.loc[7, "accuracy"] == pytest.approx(2 / 3)
    assert df.loc[9, "n_clips"] == 4 and df.loc[9, "accuracy"] == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="participant_id"):
        ev.per_participant_accuracy(y, yp, pid[:-1])


def test_most_confused_pairs_and_matrix():
    # true 5 -> predicted 6 three times (of 4 clips), 6 -> 5 once (of 2), 8 -> 6 once (of 1)
    y = np.array([5, 5, 5, 5, 6, 6, 8, 9])
    yp = np.array([6, 6, 6, 5, 5, 6, 6, 9])
    pairs = ev.most_confused_pairs(y, yp, top=10)
    assert list(zip(pairs["true_label"], pairs["predicted_label"], pairs["count"])) == \
        [(5, 6, 3), (8, 6, 1), (6, 5, 1)]                 # ties on count broken by higher rate
    assert list(pairs["rate"]) == pytest.approx([3 / 4, 1.0, 1 / 2])
    assert pairs.loc[0, "true"] == INDEX_TO_SIGN[5] and pairs.loc[0, "predicted"] == INDEX_TO_SIGN[6]
    assert len(ev.most_confused_pairs(y, yp, top=2)) == 2

    cm = ev.confused_signs_matrix(y, yp, n_signs=3)
    names = [INDEX_TO_SIGN[s] for s in (5, 6, 8)]
    assert list(cm.index) == names and list(cm.columns) == names
    expected = np.array([[np.sum((y == a) & (yp == b)) for b in (5, 6, 8)] for a in (5, 6, 8)])
    np.testing.assert_array_equal(cm.to_numpy(), expected)
    assert ev.confused_signs_matrix(y, y).shape == (0, 0)   # no errors, nothing to show


def test_write_metrics(tmp_path):
    y = np.array([0, 1, 1, 2])
    m = ev.summary_metrics(y, _probs(4))
    path = ev.write_metrics(tmp_path / "sub" / "metrics.json", m, seed=3, preset="classroom", epochs=2)
    data = json.loads(path.read_text())
    for key in ev.REQUIRED_METRICS + ("seed", "preset"):
        assert key in data
    assert data["seed"] == 3 and data["preset"] == "classroom" and data["epochs"] == 2
    assert data["accuracy"] == pytest.approx(m["accuracy"])
    bad = dict(m)
    del bad["top5"]
    with pytest.raises(ValueError, match="top5"):
        ev.write_metrics(tmp_path / "m.json", bad)
    # NumPy numbers and arrays become JSON numbers and lists; other objects are refused
    path = ev.write_metrics(tmp_path / "np.json", {**m, "n_val": np.int64(4), "top5": np.float32(0.5)},
                            participants=np.array([3, 7]), ok=np.bool_(True))
    data = json.loads(path.read_text())
    assert data["n_val"] == 4 and data["top5"] == 0.5 and data["participants"] == [3, 7] and data["ok"] is True
    with pytest.raises(TypeError, match="set"):
        ev.write_metrics(tmp_path / "bad.json", m, participants={3, 7})


def test_bad_inputs():
    with pytest.raises(ValueError, match="probs"):
        ev.summary_metrics(np.array([0, 1]), _probs(3))
    with pytest.raises(ValueError, match=r"probs must be \[n, num_classes\] with n = 2"):
        ev.summary_metrics(np.array([0, 1]), _probs(2)[0])
    with pytest.raises(ValueError, match="outside"):
        ev.top_k_accuracy(np.array([0, 300]), _probs(2), 5)
    with pytest.raises(ValueError, match="outside"):
        ev.top_k_accuracy(np.array([-1, 3]), _probs(2), 5)
    with pytest.raises(ValueError, match="y_pred"):
        ev.classification_report_df(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="y_pred"):
        ev.most_confused_pairs(np.array([0, 1]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="y_true"):
        ev.summary_metrics(np.array([], int), _probs(0))


def test_predict_and_evaluate_with_a_tiny_model():
    model = _tiny_model(attention_mask="keys")
    rng = np.random.default_rng(0)
    X = rng.random((5, 64, 66, 3), dtype=np.float32)
    idxs = np.tile(np.arange(64, dtype=np.float32), (5, 1))
    idxs[0, 10:] = -1
    probs = ev.predict(model, X, idxs, batch_size=2)
    assert probs.shape == (5, 250) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, ev.predict(model, X, idxs, batch_size=5), rtol=1e-5, atol=1e-7)
    y = np.array([0, 1, 2, 3, 4])
    out = ev.evaluate(model, X, idxs, y, participant_id=np.array([1, 1, 2, 2, 2]))
    assert out.metrics["n_val"] == 5 and out.metrics["n_classes_present"] == 5
    assert out.metrics["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))
    assert list(out.per_participant["n_clips"]) == [2, 3]
    with pytest.raises(ValueError, match="same length"):
        ev.predict(model, X, idxs[:3])


def test_seeded_predictions_of_a_model_random_at_inference(tmp_path):
    """The seed preset drops frames at inference; a seed makes predictions repeatable, also after loading."""
    from gislr_utils.model import load_model
    model = _tiny_model(attention_mask="seed", frame_drop_at_inference=True)
    rng = np.random.default_rng(1)
    X = rng.random((6, 64, 66, 3), dtype=np.float32)
    idxs = np.tile(np.arange(64, dtype=np.float32), (6, 1))
    a = ev.predict(model, X, idxs, seed=3)
    assert not np.allclose(a, ev.predict(model, X, idxs))          # unseeded: a new random draw
    np.testing.assert_array_equal(a, ev.predict(model, X, idxs, seed=3))
    assert not np.allclose(a, ev.predict(model, X, idxs, seed=4))
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(a, ev.predict(load_model(tmp_path / "m.keras"), X, idxs, seed=3), rtol=1e-6, atol=1e-7)
    assert ev.reseed_random_layers(model, 0) >= 1


# ---------------------------------------------------------------------------------------------
# The seed's 250-sign report shipped as data (values typed from the seed's APPENDIX 2)
NAN = float("nan")
SEED_ROWS = {   # sign: (class index, precision, recall, F1, support) as the seed prints them
    "TV": (0, 0.76, 0.95, 0.84, 60), "after": (1, 0.39, 0.37, 0.38, 59),
    "airplane": (2, 0.98, 1.00, 0.99, 57), "cat": (38, 0.54, 0.66, 0.59, 67),
    "cereal": (39, 0.79, 0.54, 0.64, 56), "every": (71, 0.82, 0.78, 0.80, 54),
    "fall": (74, 0.86, 0.62, 0.72, 58), "fine": (79, 0.52, 0.89, 0.66, 53),
    "goose": (98, 0.60, 0.05, 0.09, 62), "hello": (113, 0.62, 0.79, 0.69, 57),
    "lips": (134, 0.47, 0.58, 0.52, 60), "owl": (165, 0.96, 0.95, 0.96, 57),
    "person": (170, 0.36, 0.40, 0.38, 35), "rain": (183, 0.87, 0.65, 0.74, 60),
    "thankyou": (214, 0.38, 0.90, 0.53, 52), "tiger": (219, 0.89, 0.91, 0.90, 50),
    "tongue": (222, 0.49, 0.81, 0.61, 58), "yucky": (247, 0.44, 0.34, 0.38, 56),
    "zipper": (249, 0.75, 0.66, 0.70, 32),
    # repaired names (numbers as printed)
    "bedroom": (18, 0.71, 0.61, 0.65, 61), "chocolate": (44, 0.83, 0.91, 0.87, 58),
    "cow": (50, 0.92, 0.95, 0.93, 60), "grandma": (99, 0.58, 0.75, 0.66, 57),
    # damaged: only what the seed prints unambiguously
    "eye": (72, NAN, NAN, NAN, None), "face": (73, NAN, NAN, NAN, None),
    "farm": (75, 0.87, NAN, NAN, None), "find": (78, 0.31, 0.56, 0.40, None),
    "kitty": (129, NAN, NAN, NAN, 65), "lamp": (130, NAN, NAN, NAN, None),
    "later": (131, NAN, NAN, NAN, None), "like": (132, NAN, NAN, NAN, None),
    "lion": (133, 0.66, 0.92, 0.77, None), "think": (217, NAN, NAN, NAN, 55),
    "thirsty": (218, NAN, NAN, NAN, 56), "time": (220, NAN, NAN, NAN, None),
    "tomorrow": (221, 0.87, 0.49, 0.63, None),
}
DAMAGED = {"eye", "face", "farm", "find", "kitty", "lamp", "later", "like", "lion", "think",
           "thirsty", "time", "tomorrow"}


def test_seed_reference_matches_the_seed_report():
    ref = ev.seed_reference()
    assert len(ref) == 250 and list(ref.index) == [INDEX_TO_SIGN[i] for i in range(250)]
    assert ref["class_index"].tolist() == list(range(250))
    for sign, (idx, p, r, f, s) in SEED_ROWS.items():
        row = ref.loc[sign]
        assert row["class_index"] == idx, sign
        np.testing.assert_array_equal(row[["precision", "recall", "f1"]].to_numpy(float), [p, r, f],
                                      err_msg=sign)
        assert (pd.isna(row["support"]) if s is None else row["support"] == s), sign
    assert set(ref.index[ref["status"] == "damaged"]) == DAMAGED
    assert set(ref.index[ref["status"] == "repaired"]) == {"bedroom", "chocolate", "cow", "grandma"}
    assert (ref["status"] == "legible").sum() == 233
    assert (ref.loc[ref["status"] != "legible", "note"] != "").all()
    assert (ref.loc[ref["status"] == "legible", "note"] == "").all()
    # every legible row is complete, and its F1 agrees with its precision and recall (2 decimals)
    legible = ref[ref["status"] != "damaged"]
    assert not legible[["precision", "recall", "f1", "support"]].isna().any().any()
    p, r = legible["precision"].to_numpy(), legible["recall"].to_numpy()
    f1 = np.divide(2 * p * r, p + r, out=np.zeros_like(p), where=p + r > 0)
    assert np.abs(f1 - legible["f1"].to_numpy()).max() <= 0.011
    assert ref["f1"].isna().sum() == 10 and ref["support"].isna().sum() == 10


def test_seed_reference_averages_and_the_intro_agree():
    avg = ev.seed_reference_averages()
    assert list(avg.index) == ["accuracy", "macro avg", "weighted avg"]
    np.testing.assert_array_equal(avg.loc["accuracy"].to_numpy(float), [NAN, NAN, 0.71, 14248])
    np.testing.assert_array_equal(avg.loc["macro avg"].to_numpy(float), [0.74, 0.71, 0.71, 14248])
    np.testing.assert_array_equal(avg.loc["weighted avg"].to_numpy(float), [0.74, 0.71, 0.71, 14248])
    # The intro's result table is this file's averages (one home for the seed's numbers).
    intro = (Path(__file__).resolve().parent.parent / "intro.md").read_text()
    for name, label in [("accuracy", "accuracy"), ("macro avg", "macro average"),
                        ("weighted avg", "weighted average")]:
        line = next(l for l in intro.splitlines() if l.startswith(f"| {label} |"))
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")[1:]]
        want = ["" if pd.isna(v) else f"{v:.2f}" for v in avg.loc[name, ["precision", "recall", "f1"]]]
        assert cells == want, (name, cells, want)
    assert f"{int(avg.loc['accuracy', 'support']):,} clips" in intro
    ref = ev.seed_reference()
    assert ref.loc[["airplane", "owl"], "f1"].min() > 0.90       # the intro's examples
    assert ref.loc[["after", "yucky"], "f1"].max() < 0.40


def test_compare_with_seed_keeps_shared_signs_with_a_seed_f1():
    report = pd.DataFrame({"label": [113, 214, 72, 2], "f1-score": [0.5, 0.9, 0.4, 1.0],
                           "support": [10, 12, 5, 7]},
                          index=pd.Index(["hello", "thankyou", "eye", "airplane"], name="sign"))
    cmp = ev.compare_with_seed(report)
    assert list(cmp.index) == ["hello", "airplane", "thankyou"]           # sorted by difference
    np.testing.assert_allclose(cmp["difference"], [0.5 - 0.69, 1.0 - 0.99, 0.9 - 0.53])
    assert cmp.attrs["seed_f1_missing"] == 1                               # eye: damaged
    assert cmp.loc["thankyou", "support_seed"] == 52 and cmp.loc["thankyou", "support_run"] == 12
    with pytest.raises(ValueError, match="f1-score"):
        ev.compare_with_seed(report.drop(columns="f1-score"))
    with pytest.raises(ValueError, match="notasign"):
        ev.compare_with_seed(report.rename(index={"hello": "notasign"}))


@pytest.mark.parametrize("mode", ["keys", "seed"])
def test_predict_is_the_64_frame_model_and_the_files_valid_frames_computation(mode):
    """`predict` runs the 64-frame model; the TFLite file's computation on each clip's valid frames
    (`export.compact_forward`, chapter 6) gives the same probabilities."""
    from gislr_utils import export
    model = _tiny_model(num_blocks=2, attention_mask=mode)
    rng = np.random.default_rng(2)
    for w in model.weights:
        w.assign((rng.normal(size=w.shape) * 0.3).astype("float32"))
    lengths = [64, 0, 3, 17, 40, 1, 63, 9]
    X = rng.random((len(lengths), 64, 66, 3), dtype=np.float32)
    idxs = np.full((len(lengths), 64), -1.0, np.float32)
    for i, n in enumerate(lengths):
        idxs[i, :n] = np.arange(n)
        X[i, n:] = 0.0
    ref = model([X, idxs], training=False).numpy()
    assert ref.std(axis=1).min() > 1e-4
    for batch_size in (3, 256):
        np.testing.assert_allclose(ev.predict(model, X, idxs, batch_size=batch_size), ref, atol=1e-6)
    np.testing.assert_allclose(export.compact_forward(model, X, idxs).numpy(), ref, atol=1e-6)
    X[2, 10] = 0.5                           # padding that is not the preprocessing's: still all rows
    np.testing.assert_allclose(ev.predict(model, X, idxs), model([X, idxs], training=False).numpy(), atol=1e-6)


def test_seed_class_counts_are_the_seeds_printed_eda_table():
    """Typed from the seed's EDA cell (value_counts of y_train, rows 0-4 and -5..-1)."""
    df = ev.seed_class_counts()
    assert list(df["class_index"]) == [135, 136, 60, 194, 67, 170, 249, 56, 21, 231]
    assert list(df["count"]) == [358, 352, 351, 351, 348, 277, 267, 266, 263, 255]
    assert list(df["rank"]) == ["largest"] * 5 + ["smallest"] * 5
    assert list(df["sign"]) == [config.INDEX_TO_SIGN[i] for i in df["class_index"]]
    assert df["sign"].iloc[0] == "listen" and df["sign"].iloc[-1] == "vacuum"
