"""Evaluating a trained model (chapter 5): predictions, intervals of per-sign numbers, metrics.json,
and the seed report's own results.

Chapter 5 computes its report in its own cells with scikit-learn (``classification_report``,
``top_k_accuracy_score``, ``f1_score``, ``confusion_matrix``); this module holds what other
chapters and the tests reuse: `predict`, the Wilson intervals of proportions (`wilson_interval`,
`sign_intervals`), `write_metrics`, and the seed's per-sign report and class counts as data.
"""
from __future__ import annotations

import io
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtri

from . import config as _config
from . import runs
from ._tf import keras
from .model import reseed_random_layers

REQUIRED_METRICS = ("accuracy", "top5", "top10", "macro_f1", "weighted_f1", "n_val", "n_classes_present")


def predict(model, X, idxs, batch_size: int = 256, seed: int | None = None) -> np.ndarray:
    """Class probabilities ``[n, num_classes]`` float32 for clips ``X [n,64,66,3]``, ``idxs [n,64]``.

    Only a model with randomness at inference (the `seed` preset's frame drop, `model.FrameMask`)
    cares about ``seed``: with an integer its random layers are re-seeded first
    (`reseed_random_layers`), so one model and one seed give the same probabilities whether the
    model was just trained or loaded from disk; ``None`` continues their random stream. The model
    runs eagerly, batch by batch: nothing is traced or compiled for a few hundred clips.
    """
    X = np.asarray(X, dtype=np.float32)
    idxs = np.asarray(idxs, dtype=np.float32)
    if len(X) != len(idxs):
        raise ValueError(f"X ({len(X)}) and idxs ({len(idxs)}) must have the same length")
    if len(X) == 0:
        raise ValueError("no clips to predict")
    if seed is not None:
        reseed_random_layers(model, seed)
    probs = [model({"frames": X[i:i + batch_size], "non_empty_frame_idxs": idxs[i:i + batch_size]}, training=False)
             for i in range(0, len(X), batch_size)]       # eager: no graph to trace (or XLA to compile)
    return np.concatenate([keras.ops.convert_to_numpy(p) for p in probs]).astype(np.float32)


def wilson_interval(k, n, confidence: float = 0.95):
    """Wilson score interval of a proportion: ``k`` successes in ``n`` trials (arrays; chapter 5).

    The closed form of Wilson (1927), the interval ``scipy.stats.binomtest(k, n).proportion_ci(
    method="wilson")`` gives, for many proportions at once: with ``p = k / n`` and ``z`` the
    normal quantile of ``confidence``, ``(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``.
    Where ``n == 0`` nothing is known: ``(0, 1)``. Returns (low, high) as float arrays.
    """
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if np.any(~np.isfinite(k) | ~np.isfinite(n)) or np.any((k < 0) | (k > n)):
        raise ValueError("k and n must be finite counts with 0 <= k <= n")
    z2 = ndtri(0.5 + confidence / 2) ** 2        # z squared; 1.96**2 for 95%
    m = np.maximum(n, 1)                         # n == 0 is answered below
    p = k / m
    centre = (p + z2 / (2 * m)) / (1 + z2 / m)
    half = np.sqrt(z2 * p * (1 - p) / m + z2**2 / (4 * m**2)) / (1 + z2 / m)
    low = np.clip(centre - half, 0, 1)
    high = np.clip(centre + half, 0, 1)
    return np.where(n > 0, low, 0.0), np.where(n > 0, high, 1.0)


def sign_intervals(tp, fp, fn, confidence: float = 0.95) -> pd.DataFrame:
    """Intervals of each sign's precision, recall and F1 from its counts (chapter 5).

    ``tp``, ``fp``, ``fn``: clips of the sign found, clips of other signs taken for it, clips of
    it missed. Precision ``tp / (tp + fp)`` and recall ``tp / (tp + fn)`` get `wilson_interval`s;
    F1, their harmonic mean, grows with both, so the F1 of the two lower ends and of the two upper
    ends bound it wherever both intervals hold: a conservative interval (of about
    ``2 * confidence - 1`` or more, by Bonferroni; Wilson's own coverage is approximate).
    Columns ``precision low``, ``precision high``, ``recall low``, ``recall high``, ``f1 low``,
    ``f1 high``; one row per sign, in the order of the counts (with the index of ``tp`` when
    it is a Series).
    """
    index = tp.index if isinstance(tp, pd.Series) else None
    tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in (tp, fp, fn))
    p_low, p_high = wilson_interval(tp, tp + fp, confidence)   # precision
    r_low, r_high = wilson_interval(tp, tp + fn, confidence)   # recall

    def f1(p, r):                                # 0 where p + r == 0
        return np.divide(2 * p * r, p + r, out=np.zeros_like(p),
                         where=p + r > 0)
    return pd.DataFrame({
        "precision low": p_low, "precision high": p_high,
        "recall low": r_low, "recall high": r_high,
        "f1 low": f1(p_low, r_low), "f1 high": f1(p_high, r_high)},
        index=index)


def write_metrics(path, metrics: dict, seed: int | None = None, preset: str | None = None, **extra) -> Path:
    """Write ``metrics.json`` (metrics plus seed, preset and ``extra``) atomically (`runs.write_text`);
    fails if a required key of `REQUIRED_METRICS` is missing.

    NumPy numbers and arrays are written as JSON numbers and lists.
    """
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    if missing:
        raise ValueError(f"{path}: metrics lack {missing}; required: {list(REQUIRED_METRICS)}")
    out = {**metrics, "seed": seed, "preset": preset, **extra}
    return runs.write_text(path, json.dumps(out, indent=2, sort_keys=True, default=_plain) + "\n")


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


def seed_intervals(confidence: float = 0.95) -> pd.DataFrame:
    """`sign_intervals` of the seed report's signs (chapter 5), from counts rebuilt from its printed
    two-decimal rates (so approximately): clips found ``round(recall * support)``, clips predicted
    as the sign ``round(found / precision)``. Index: sign; the damaged signs that lack a
    precision, recall or support are left out.
    """
    seed = seed_reference()[["precision", "recall", "support"]].astype(float).dropna()
    seed = seed[seed["precision"] > 0]
    found = (seed["recall"] * seed["support"]).round()
    predicted = (found / seed["precision"]).round().clip(lower=found)
    return sign_intervals(found, predicted - found, seed["support"] - found, confidence)


def compare_with_seed(report: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """This run's F1 per sign beside the seed's, each with its interval, for the signs both have
    an F1 for (chapter 5).

    `report`: the chapter's table of this run, index sign, columns ``f1-score``, ``support``,
    ``f1 low`` and ``f1 high`` (`sign_intervals`); the seed's intervals are `seed_intervals`.
    Returns one row per shared sign: ``f1 run``, ``f1 run low``, ``f1 run high``, ``f1 seed``,
    ``f1 seed low``, ``f1 seed high`` (NaN where the seed prints no support), ``difference``
    (run - seed), ``beyond chance`` (the two intervals do not overlap), ``clips run``,
    ``clips seed``; sorted by difference. Signs whose seed F1 is damaged (NaN) are left out;
    how many is in ``attrs["seed_f1_missing"]``.
    """
    need = [c for c in ("f1-score", "support", "f1 low", "f1 high") if c not in report.columns]
    if need:
        raise ValueError(f"report lacks the column(s) {need} (chapter 5's per-sign table)")
    seed = seed_reference()
    unknown = sorted(set(report.index) - set(seed.index))
    if unknown:
        raise ValueError(f"signs {unknown[:5]} are not among the seed's 250 signs")
    seed_iv = seed_intervals(confidence).reindex(report.index)
    out = pd.DataFrame({"f1 run": report["f1-score"].astype(float), "f1 run low": report["f1 low"],
                        "f1 run high": report["f1 high"], "f1 seed": seed.loc[report.index, "f1"].astype(float),
                        "f1 seed low": seed_iv["f1 low"], "f1 seed high": seed_iv["f1 high"]})
    out["difference"] = out["f1 run"] - out["f1 seed"]
    out["beyond chance"] = (out["f1 run high"] < out["f1 seed low"]) | (out["f1 run low"] > out["f1 seed high"])
    out["clips run"] = report["support"].astype(int)
    out["clips seed"] = seed.loc[report.index, "support"]
    missing = int(out["f1 seed"].isna().sum())
    out = out.dropna(subset=["f1 seed"]).sort_values(["difference", "f1 seed"]).rename_axis("sign")
    out.attrs["seed_f1_missing"] = missing
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
