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


def _f1_by_hand(y, yp, label):
    tp = np.sum((y == label) & (yp == label))
    fp = np.sum((y != label) & (yp == label))
    fn = np.sum((y == label) & (yp != label))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return (2 * prec * rec / (prec + rec) if prec + rec else 0.0), prec, rec


def _hmean(p, r):
    return 2 * p * r / (p + r) if p + r else 0.0


def test_wilson_interval_is_scipys():
    """The closed form agrees with scipy's binomtest(...).proportion_ci(method="wilson")."""
    from scipy.stats import binomtest
    k = np.array([0, 1, 3, 6, 0, 5, 17, 57, 1, 250])
    n = np.array([1, 1, 6, 6, 6, 9, 40, 57, 300, 250])
    for confidence in (0.95, 0.9, 0.5):
        low, high = ev.wilson_interval(k, n, confidence)
        want = np.array([tuple(binomtest(int(a), int(b)).proportion_ci(confidence, method="wilson"))
                         for a, b in zip(k, n)])
        np.testing.assert_allclose(low, want[:, 0], atol=1e-12)
        np.testing.assert_allclose(high, want[:, 1], atol=1e-12)
    low, high = ev.wilson_interval(6, 6)
    assert low == pytest.approx(0.6097, abs=1e-4) and high == 1.0     # 6 of 6 is not [1, 1]
    low, high = ev.wilson_interval([0, 2], [0, 4])                      # no trials: nothing known
    assert list(low) == [0.0, pytest.approx(0.15, abs=0.01)] and high[0] == 1.0


def test_wilson_interval_refuses_what_is_not_a_count():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        ev.wilson_interval([3], [2])
    with pytest.raises(ValueError, match="0 <= k <= n"):
        ev.wilson_interval([-1], [2])
    with pytest.raises(ValueError, match="finite"):
        ev.wilson_interval([np.nan], [2])
    with pytest.raises(ValueError, match="confidence"):
        ev.wilson_interval([1], [2], confidence=1.0)


def test_sign_intervals_from_sklearns_counts():
    """Precision and recall intervals of each sign are Wilson's of its own counts (from sklearn's
    multilabel confusion matrix), and the F1 interval, from their ends, holds the sign's F1."""
    from scipy.stats import binomtest
    from sklearn.metrics import multilabel_confusion_matrix
    rng = np.random.default_rng(3)
    y = rng.integers(0, 8, 120)
    yp = np.where(rng.random(120) < 0.7, y, rng.integers(0, 9, 120))   # 8 is never a true sign
    signs = np.unique(y)
    counts = multilabel_confusion_matrix(y, yp, labels=signs)
    tp, fp, fn = counts[:, 1, 1], counts[:, 0, 1], counts[:, 1, 0]
    iv = ev.sign_intervals(tp, fp, fn)
    assert list(iv.columns) == ["precision low", "precision high", "recall low", "recall high",
                                "f1 low", "f1 high"]
    for i, s in enumerate(signs):
        f1, prec, rec = _f1_by_hand(y, yp, s)
        found, predicted, clips = np.sum((y == s) & (yp == s)), np.sum(yp == s), np.sum(y == s)
        p_ci = binomtest(int(found), int(predicted)).proportion_ci(method="wilson")
        r_ci = binomtest(int(found), int(clips)).proportion_ci(method="wilson")
        np.testing.assert_allclose(iv.iloc[i, :4], [*p_ci, *r_ci], atol=1e-12)
        assert iv["f1 low"].iloc[i] == pytest.approx(_hmean(p_ci[0], r_ci[0]))
        assert iv["f1 high"].iloc[i] == pytest.approx(_hmean(p_ci[1], r_ci[1]))
        assert iv["f1 low"].iloc[i] <= f1 <= iv["f1 high"].iloc[i]
        assert iv["precision low"].iloc[i] <= prec <= iv["precision high"].iloc[i]
    # a sign never predicted: precision unknown (0, 1), F1 from 0 to the F1 of (1, recall high)
    never = ev.sign_intervals([0], [0], [6])
    assert never.iloc[0, :2].tolist() == [0.0, 1.0] and never["f1 low"].iloc[0] == 0.0
    r_high = binomtest(0, 6).proportion_ci(method="wilson").high
    assert never["f1 high"].iloc[0] == pytest.approx(_hmean(1.0, r_high))
    named = ev.sign_intervals(pd.Series([2, 3], index=["a", "b"]), [0, 1], [1, 0])
    assert list(named.index) == ["a", "b"]


def test_write_metrics(tmp_path):
    m = dict(accuracy=0.5, top5=0.75, top10=1.0, macro_f1=0.4, weighted_f1=0.45, n_val=4,
             n_classes_present=3)
    path = ev.write_metrics(tmp_path / "sub" / "metrics.json", m, seed=3, preset="classroom", epochs=2)
    data = json.loads(path.read_text())
    assert data == {**m, "seed": 3, "preset": "classroom", "epochs": 2}
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]   # no temporary left
    bad = dict(m)
    del bad["top5"]
    with pytest.raises(ValueError, match="top5"):
        ev.write_metrics(tmp_path / "m.json", bad)
    assert not (tmp_path / "m.json").exists()
    # NumPy numbers and arrays become JSON numbers and lists; other objects are refused
    path = ev.write_metrics(tmp_path / "np.json", {**m, "n_val": np.int64(4), "top5": np.float32(0.5)},
                            participants=np.array([3, 7]), ok=np.bool_(True))
    data = json.loads(path.read_text())
    assert data["n_val"] == 4 and data["top5"] == 0.5 and data["participants"] == [3, 7] and data["ok"] is True
    path.write_text("the old file")
    with pytest.raises(TypeError, match="set"):
        ev.write_metrics(path, m, participants={3, 7})
    assert path.read_text() == "the old file"           # a failed write leaves the old file whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["np.json", "sub"]


def test_predict_with_a_tiny_model():
    model = _tiny_model(attention_mask="keys")
    rng = np.random.default_rng(0)
    X = rng.random((5, 64, 66, 3), dtype=np.float32)
    idxs = np.tile(np.arange(64, dtype=np.float32), (5, 1))
    idxs[0, 10:] = -1
    probs = ev.predict(model, X, idxs, batch_size=2)
    assert probs.shape == (5, 250) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, ev.predict(model, X, idxs, batch_size=5), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probs, model([X, idxs], training=False).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="same length"):
        ev.predict(model, X, idxs[:3])


def test_seeded_predictions_of_a_model_random_at_inference(tmp_path):
    """The seed preset drops frames at inference; a seed makes predictions repeatable, also after loading
    (a run keeps its weights; `training.load_run` builds the model again and loads them)."""
    settings = dict(attention_mask="seed", frame_drop_at_inference=True)
    model = _tiny_model(**settings)
    rng = np.random.default_rng(1)
    X = rng.random((6, 64, 66, 3), dtype=np.float32)
    idxs = np.tile(np.arange(64, dtype=np.float32), (6, 1))
    a = ev.predict(model, X, idxs, seed=3)
    assert not np.allclose(a, ev.predict(model, X, idxs))          # unseeded: a new random draw
    np.testing.assert_array_equal(a, ev.predict(model, X, idxs, seed=3))
    assert not np.allclose(a, ev.predict(model, X, idxs, seed=4))
    model.save_weights(tmp_path / "model.weights.h5")
    again = _tiny_model(**settings)
    again.load_weights(tmp_path / "model.weights.h5")
    np.testing.assert_allclose(a, ev.predict(again, X, idxs, seed=3), rtol=1e-6, atol=1e-7)
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


def test_seed_intervals_rebuild_the_seeds_counts():
    """thankyou: precision 0.38, recall 0.90 of 52 clips -> 47 found of 124 predicted."""
    from scipy.stats import binomtest
    iv = ev.seed_intervals()
    ref = ev.seed_reference()
    complete = ref[["precision", "recall", "support"]].notna().all(axis=1)
    assert set(iv.index) == set(ref.index[complete]) and "eye" not in iv.index and "find" not in iv.index
    p_ci = binomtest(47, 124).proportion_ci(method="wilson")
    r_ci = binomtest(47, 52).proportion_ci(method="wilson")
    np.testing.assert_allclose(iv.loc["thankyou"].iloc[:4], [*p_ci, *r_ci], atol=1e-12)
    # the rebuilt counts give back the printed rates (two decimals)
    for sign in ("TV", "goose", "zipper", "person"):
        p, r, s = ref.loc[sign, ["precision", "recall", "support"]].astype(float)
        found = round(r * s)
        assert abs(found / s - r) <= 0.005 and abs(found / round(found / p) - p) <= 0.006
        assert iv.loc[sign, "recall low"] < r < iv.loc[sign, "recall high"]


def test_compare_with_seed_keeps_shared_signs_with_a_seed_f1():
    # hello: 5 of 10 found, none taken from others; thankyou 12 of 12; eye: the seed's F1 is damaged
    counts = pd.DataFrame({"tp": [5, 12, 2, 7], "fp": [0, 0, 1, 0], "fn": [5, 0, 3, 0]},
                          index=pd.Index(["hello", "thankyou", "eye", "airplane"], name="sign"))
    report = ev.sign_intervals(counts["tp"], counts["fp"], counts["fn"]).assign(
        **{"f1-score": [2 * 5 / 15, 1.0, 4 / 8, 1.0], "support": counts["tp"] + counts["fn"]})
    cmp = ev.compare_with_seed(report)
    assert list(cmp.index) == ["hello", "airplane", "thankyou"]           # sorted by difference
    np.testing.assert_allclose(cmp["difference"], [2 / 3 - 0.69, 1.0 - 0.99, 1.0 - 0.53])
    assert cmp.attrs["seed_f1_missing"] == 1                               # eye: damaged
    assert cmp.loc["thankyou", "clips seed"] == 52 and cmp.loc["thankyou", "clips run"] == 12
    seed_iv = ev.seed_intervals()
    for sign in cmp.index:
        assert cmp.loc[sign, "f1 run low"] == report.loc[sign, "f1 low"]
        assert cmp.loc[sign, "f1 seed high"] == seed_iv.loc[sign, "f1 high"]
        apart = (report.loc[sign, "f1 high"] < seed_iv.loc[sign, "f1 low"]
                 or report.loc[sign, "f1 low"] > seed_iv.loc[sign, "f1 high"])
        assert cmp.loc[sign, "beyond chance"] == apart
    # 12 of 12 against the seed's 0.53 on 52 clips: beyond chance; 7 of 7 against 0.99: not
    assert cmp.loc["thankyou", "beyond chance"] and not cmp.loc["airplane", "beyond chance"]
    with pytest.raises(ValueError, match="f1 low"):
        ev.compare_with_seed(report.drop(columns="f1 low"))
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
