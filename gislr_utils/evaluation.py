"""Evaluating a trained model: predictions, per-sign report, top-k, confusions, metrics.json (chapter 5).

All metrics are computed on the held-out participants' clips with scikit-learn, for the signs present
in the evaluated labels (a data set holding only some of the 250 signs reports only those).
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report, confusion_matrix, f1_score, top_k_accuracy_score

from . import config as _config
from .model import reseed_random_layers

REQUIRED_METRICS = ("accuracy", "top5", "top10", "macro_f1", "weighted_f1", "n_val", "n_classes_present")


def predict(model, X, idxs, batch_size: int = 256, seed: int | None = None) -> np.ndarray:
    """Class probabilities ``[n, num_classes]`` float32 for clips ``X [n,64,66,3]``, ``idxs [n,64]``.

    Only a model with randomness at inference (the `seed` preset's frame drop, `model.FrameMask`)
    cares about ``seed``: with an integer its random layers are re-seeded first
    (`reseed_random_layers`), so one model and one seed give the same probabilities whether the
    model was just trained or loaded from disk; ``None`` continues their random stream.
    """
    X = np.asarray(X, dtype=np.float32)
    idxs = np.asarray(idxs, dtype=np.float32)
    if len(X) != len(idxs):
        raise ValueError(f"X ({len(X)}) and idxs ({len(idxs)}) must have the same length")
    if len(X) == 0:
        raise ValueError("no clips to predict")
    if seed is not None:
        reseed_random_layers(model, seed)
    probs = model.predict({"frames": X, "non_empty_frame_idxs": idxs}, batch_size=batch_size, verbose=0)
    return np.asarray(probs, dtype=np.float32)


def _check(y_true, **arrays):
    """`y_true` as int64 sign indices, and each of `arrays` (probs, y_pred, participant_id) as an
    array with one row per clip; a ValueError names the array that does not fit."""
    y_true = np.asarray(y_true).astype(np.int64)
    if y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(f"y_true must be a non-empty 1-D array of sign indices, got shape {y_true.shape}")
    out = [y_true]
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        two_d = name == "probs"
        if arr.ndim != 1 + two_d or len(arr) != y_true.size:
            raise ValueError(f"{name} must be {'[n, num_classes]' if two_d else '[n]'} with n = {y_true.size} "
                             f"(one per label of y_true), got shape {arr.shape}")
        out.append(arr.astype(np.int64) if name == "y_pred" else arr)
    if "probs" in arrays and not 0 <= y_true.min() <= y_true.max() < out[1].shape[1]:
        raise ValueError(f"labels {y_true.min()}..{y_true.max()} outside [0, {out[1].shape[1]})")
    return out


def sign_name(label: int) -> str:
    """The sign of a prediction index (``config.INDEX_TO_SIGN``)."""
    return _config.INDEX_TO_SIGN[int(label)]


def top_k_accuracy(y_true, probs, k: int) -> float:
    """Fraction of clips whose true sign is among the ``k`` most probable (sklearn ``top_k_accuracy_score``)."""
    y_true, probs = _check(y_true, probs=probs)
    return float(top_k_accuracy_score(y_true, probs, k=k, labels=np.arange(probs.shape[1])))


def classification_report_df(y_true, y_pred) -> pd.DataFrame:
    """sklearn ``classification_report`` per sign as a DataFrame, for the signs present in ``y_true``.

    Index: sign name; columns: label, precision, recall, f1-score, support; sorted by label.
    Predictions of signs absent from ``y_true`` count as errors (lower recall) but get no row.
    """
    y_true, y_pred = _check(y_true, y_pred=y_pred)
    present = np.unique(y_true)
    rep = classification_report(y_true, y_pred, labels=present, target_names=[sign_name(s) for s in present],
                                output_dict=True, zero_division=0)
    df = pd.DataFrame({sign_name(s): rep[sign_name(s)] for s in present}).T
    df.insert(0, "label", present)
    df["support"] = df["support"].astype(int)
    df.index.name = "sign"
    return df


def summary_metrics(y_true, probs) -> dict:
    """accuracy, top5, top10, macro_f1, weighted_f1 (over present signs), n_val, n_classes_present."""
    y_true, probs = _check(y_true, probs=probs)
    y_pred = probs.argmax(axis=1)
    present = np.unique(y_true)
    return {
        "accuracy": float(np.mean(y_pred == y_true)),
        **{f"top{k}": top_k_accuracy(y_true, probs, k) for k in (5, 10)},
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)),
        "n_val": int(y_true.size),
        "n_classes_present": int(present.size),
    }


def per_participant_accuracy(y_true, y_pred, participant_id) -> pd.DataFrame:
    """Clips and top-1 accuracy per participant (columns participant_id, n_clips, accuracy)."""
    y_true, y_pred, pid = _check(y_true, y_pred=y_pred, participant_id=participant_id)
    df = pd.DataFrame({"participant_id": pid, "correct": y_pred == y_true})
    return df.groupby("participant_id")["correct"].agg(n_clips="size", accuracy="mean").reset_index()


def most_confused_pairs(y_true, y_pred, top: int = 10) -> pd.DataFrame:
    """The ``top`` most frequent (true sign, predicted sign) errors.

    Columns: true, predicted (sign names), true_label, predicted_label, count, rate (count / clips of
    the true sign). Sorted by count, then rate, then labels.
    """
    y_true, y_pred = _check(y_true, y_pred=y_pred)
    wrong = y_true != y_pred
    support = pd.Series(y_true).value_counts()
    pairs = (pd.DataFrame({"true_label": y_true[wrong], "predicted_label": y_pred[wrong]})
             .value_counts().rename("count").reset_index())
    pairs["rate"] = pairs["count"] / support.loc[pairs["true_label"]].to_numpy()
    pairs = pairs.sort_values(["count", "rate", "true_label", "predicted_label"],
                              ascending=[False, False, True, True]).head(top).reset_index(drop=True)
    pairs.insert(0, "true", [sign_name(s) for s in pairs["true_label"]])
    pairs.insert(1, "predicted", [sign_name(s) for s in pairs["predicted_label"]])
    return pairs[["true", "predicted", "true_label", "predicted_label", "count", "rate"]]


def confused_signs_matrix(y_true, y_pred, n_signs: int = 10) -> pd.DataFrame:
    """Confusion counts among the signs of the most-confused pairs, for a heatmap.

    Takes signs from `most_confused_pairs` in order until ``n_signs`` distinct ones are collected and
    returns their confusion sub-matrix (rows: true sign, columns: predicted sign, names as labels).
    Empty (0 x 0) when there are no errors.
    """
    y_true, y_pred = _check(y_true, y_pred=y_pred)
    pairs = most_confused_pairs(y_true, y_pred, top=len(y_true))
    chosen = [int(s) for s in pd.unique(pairs[["true_label", "predicted_label"]].to_numpy().ravel())[:n_signs]]
    cm = confusion_matrix(y_true, y_pred, labels=chosen) if chosen else np.zeros((0, 0), dtype=int)
    names = [sign_name(s) for s in chosen]
    return pd.DataFrame(cm, index=pd.Index(names, name="true"), columns=pd.Index(names, name="predicted"))


@dataclass
class Evaluation:
    """Everything chapter 5 shows about one model on one set of clips."""
    probs: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    metrics: dict
    report: pd.DataFrame
    per_participant: pd.DataFrame | None
    confused_pairs: pd.DataFrame


def evaluate(model, X, idxs, y, participant_id=None, batch_size: int = 256, top_pairs: int = 10,
             seed: int | None = None) -> Evaluation:
    """Predict and compute all metrics and tables of chapter 5 for clips ``X, idxs`` with labels ``y``.

    ``seed`` as in `predict` (it matters only for a model that is random at inference).
    """
    probs = predict(model, X, idxs, batch_size=batch_size, seed=seed)
    y_true, probs = _check(y, probs=probs)
    y_pred = probs.argmax(axis=1)
    per_part = per_participant_accuracy(y_true, y_pred, participant_id) if participant_id is not None else None
    return Evaluation(probs=probs, y_true=y_true, y_pred=y_pred, metrics=summary_metrics(y_true, probs),
                      report=classification_report_df(y_true, y_pred), per_participant=per_part,
                      confused_pairs=most_confused_pairs(y_true, y_pred, top=top_pairs))


def write_metrics(path, metrics: dict, seed: int | None = None, preset: str | None = None, **extra) -> Path:
    """Write ``metrics.json`` (metrics plus seed, preset and ``extra``); fails if a required key is missing.

    NumPy numbers and arrays are written as JSON numbers and lists.
    """
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    if missing:
        raise ValueError(f"{path}: metrics lack {missing}; required: {list(REQUIRED_METRICS)}")
    out = {**metrics, "seed": seed, "preset": preset, **extra}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, sort_keys=True, default=_plain) + "\n")
    return path


def _plain(v):
    return v.tolist() if isinstance(v, (np.generic, np.ndarray)) else json.JSONEncoder().default(v)


# ---------------------------------------------------------------------------------------------
# The seed's own 250-sign results (chapter 5's real-data reference)
# ---------------------------------------------------------------------------------------------
SEED_REPORT_FILE = "data/seed_classification_report.csv"
SEED_REPORT_COLUMNS = ("sign", "class_index", "precision", "recall", "f1", "support", "status", "note")


def _seed_report_table() -> pd.DataFrame:
    # comment lines start with "#"; empty numbers are NaN, empty notes ""
    text = resources.files("gislr_utils").joinpath(SEED_REPORT_FILE).read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    df = pd.read_csv(io.StringIO(body), dtype={"sign": str, "status": str, "note": str}, keep_default_na=False,
                     na_values=dict.fromkeys(SEED_REPORT_COLUMNS[1:6], [""]))
    if tuple(df.columns) != SEED_REPORT_COLUMNS:
        raise ValueError(f"gislr_utils/{SEED_REPORT_FILE}: columns {list(df.columns)}, "
                         f"expected {list(SEED_REPORT_COLUMNS)}")
    return df.astype({"class_index": "Int64", "support": "Int64"})


def seed_reference() -> pd.DataFrame:
    """The seed's classification report, one row per sign (250 rows, in class order; chapter 5).

    Read from ``gislr_utils/data/seed_classification_report.csv`` (its source and how the
    seed's damaged text was read are in ``seed_classification_report.md`` beside it). Index:
    sign; columns ``class_index``, ``precision``, ``recall``, ``f1``, ``support``, ``status``
    ("legible", "repaired" or "damaged") and ``note``. Values the seed's text does not give
    unambiguously are NaN (13 damaged signs); nothing is estimated.
    """
    df = _seed_report_table().query("status != 'average'").set_index("sign")
    index = df["class_index"].astype(int).tolist()
    if index != list(range(len(df))) or list(df.index) != [_config.INDEX_TO_SIGN[i] for i in index]:
        raise ValueError(f"gislr_utils/{SEED_REPORT_FILE}: signs are not the 250 signs in class order")
    return df


def seed_reference_averages() -> pd.DataFrame:
    """The last three lines of the seed's report: accuracy, macro avg and weighted avg (the intro's table).

    Index: name; columns ``precision``, ``recall``, ``f1``, ``support`` (accuracy has only F1
    and support, as sklearn prints it).
    """
    df = _seed_report_table().query("status == 'average'").set_index("sign")
    return df.rename_axis("average")[["precision", "recall", "f1", "support"]]


def compare_with_seed(report: pd.DataFrame) -> pd.DataFrame:
    """This run's F1 per sign beside the seed's, for the signs both have a value for (chapter 5).

    `report` is :func:`classification_report_df`'s table (index sign, column ``f1-score``).
    Returns one row per shared sign with ``f1_run``, ``f1_seed``, ``difference`` (run - seed),
    ``support_run`` and ``support_seed``, sorted by difference. Signs whose seed F1 is damaged
    (NaN) are left out; how many is in ``attrs["seed_f1_missing"]``.
    """
    if "f1-score" not in report.columns:
        raise ValueError("report must be classification_report_df's table (column 'f1-score')")
    seed = seed_reference()
    unknown = sorted(set(report.index) - set(seed.index))
    if unknown:
        raise ValueError(f"signs {unknown[:5]} are not among the seed's 250 signs")
    f1_run, f1_seed = report["f1-score"].astype(float), seed.loc[report.index, "f1"].astype(float)
    out = pd.DataFrame({"f1_run": f1_run, "f1_seed": f1_seed, "difference": f1_run - f1_seed,
                        "support_run": report["support"].astype(int),
                        "support_seed": seed.loc[report.index, "support"]})
    out = out.dropna(subset=["f1_seed"]).sort_values(["difference", "f1_seed"]).rename_axis("sign")
    out.attrs["seed_f1_missing"] = int(f1_seed.isna().sum())
    return out


SEED_CLASS_COUNTS_FILE = "data/seed_class_counts.csv"


def seed_class_counts() -> pd.DataFrame:
    """The seed's 5 largest and 5 smallest classes of its training split, with their clip counts (chapter 1).

    Read from ``gislr_utils/data/seed_class_counts.csv`` (its '#' header gives the source, the
    seed's EDA cell ``pd.Series(y_train).value_counts()``, and how its garbled layout was read).
    Columns ``class_index``, ``sign``, ``count``, ``rank`` ("largest" or "smallest"), in the
    printed order; the signs are checked against the competition's sign map.
    """
    text = resources.files("gislr_utils").joinpath(SEED_CLASS_COUNTS_FILE).read_text(encoding="utf-8")
    df = pd.read_csv(io.StringIO(text), comment="#")
    if list(df.columns) != ["class_index", "sign", "count", "rank"] or len(df) != 10:
        raise ValueError(f"gislr_utils/{SEED_CLASS_COUNTS_FILE}: expected 10 rows of class_index, sign, "
                         f"count, rank; got {len(df)} rows of {list(df.columns)}")
    wrong = [s for i, s in zip(df["class_index"], df["sign"]) if _config.INDEX_TO_SIGN.get(int(i)) != s]
    if wrong:
        raise ValueError(f"gislr_utils/{SEED_CLASS_COUNTS_FILE}: signs {wrong} do not match their class_index")
    return df
