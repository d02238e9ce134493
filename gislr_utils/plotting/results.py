"""Figures of the model and its results (chapters 3-6): attention, the position index, the
landmark-group weights, training curves, evaluation per sign and participant, the seed report,
and the exported file against Keras.

Each function takes data (arrays, DataFrames) and returns a `matplotlib.figure.Figure`; `data`
("synthetic", "real") is added to the title of the figures whose numbers depend on the data.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ..landmarks import INPUT_SIZE
from .style import COLORS, CYCLE, WIDTH, _mark, _need_columns


# --------------------------------------------------------------------------------------------
# Attention and embedding (chapter 3)
# --------------------------------------------------------------------------------------------
def _heatmap(ax, values, **kwargs):
    """seaborn's heatmap of `values` in `ax`, without the style's grid, tick labels upright."""
    sns.heatmap(values, ax=ax, **kwargs)
    ax.grid(False)
    ax.tick_params(length=0, rotation=0)


def plot_matrices(matrices, titles, row_labels=None, col_labels=None) -> Figure:
    """Small matrices side by side as annotated heatmaps on one colour scale (chapter 3's worked
    attention example), so equal numbers have equal colours; a cell that is not finite (a masked
    score, -inf) stays blank."""
    matrices = [np.asarray(m, dtype=np.float64) for m in matrices]
    if len(matrices) != len(titles):
        raise ValueError("matrices and titles must have the same length")
    if any(m.ndim != 2 for m in matrices):
        raise ValueError(f"matrices must be 2-D, got shapes {[m.shape for m in matrices]}")
    finite = np.concatenate([m[np.isfinite(m)] for m in matrices])
    rows = max(len(m) for m in matrices)
    fig, axes = plt.subplots(1, len(matrices), figsize=(min(WIDTH, 2.3 * len(matrices) + 0.4), 0.42 * rows + 1.1),
                             squeeze=False)
    for ax, m, title in zip(axes[0], matrices, titles):
        _heatmap(ax, m, annot=True, fmt=".2f", annot_kws={"fontsize": 8}, cmap="Blues", cbar=False,
                 vmin=finite.min(), vmax=finite.max(), xticklabels=True if col_labels is None else col_labels,
                 yticklabels=True if row_labels is None else row_labels)
        ax.set_title(title)
    return fig


def plot_attention_maps(maps, titles, n_valid: int | None = None, suptitle: str | None = None,
                        data: str | None = None) -> Figure:
    """Attention weights [T(query), T(key)] side by side on one colour scale (chapter 3).

    `maps` is a list of 2-D arrays; the first `n_valid` frames are the clip's, the rest padding,
    and dashed lines separate the two, so one sees which rows and columns the mask removed.
    """
    maps = [np.asarray(m) for m in maps]
    if len(maps) != len(titles):
        raise ValueError("maps and titles must have the same length")
    fig, axes = plt.subplots(1, len(maps), figsize=(WIDTH, WIDTH / len(maps) + 0.5), squeeze=False)
    vmax = max(float(np.nanmax(m)) for m in maps)
    for ax, m, title in zip(axes[0], maps, titles):
        _heatmap(ax, m, cmap="magma", vmin=0, vmax=vmax, cbar=False, square=True, xticklabels=16, yticklabels=16)
        ax.set(title=title, xlabel="key frame")
        if n_valid is not None and n_valid < m.shape[1]:
            ax.axvline(n_valid, color="white", ls="--", lw=0.9)
            ax.axhline(n_valid, color="white", ls="--", lw=0.9)
    axes[0, 0].set_ylabel("query frame")
    fig.colorbar(axes[0, 0].collections[0], ax=axes[0].tolist(), shrink=0.8, label="attention weight")
    if suptitle:
        fig.suptitle(suptitle)
    return _mark(fig, data)


def plot_position_index(idxs, position, ax=None, data: str | None = None) -> Figure:
    """Positional-embedding row of each model frame of one clip (chapter 3; chapter 2's
    preprocessing figure draws it in a panel `ax`): padding and the last frame share row 64."""
    idxs, position = np.asarray(idxs), np.asarray(position)
    fig, ax = plt.subplots(figsize=(WIDTH, 2.6)) if ax is None else (ax.figure, ax)
    slot = np.arange(len(position))
    pad = idxs == -1
    quirk = ~pad & (position == INPUT_SIZE)
    for where, color, label in ((~pad, COLORS["hand"], "frame of the clip"), (pad, COLORS["face"], "padding"),
                                (quirk, COLORS["lips"], f"last frame: row {INPUT_SIZE}, same as padding")):
        if where.any():
            ax.bar(slot[where], position[where], color=color, width=0.8, label=label)
    ax.set(xlabel="model frame", ylabel="embedding row", title="positional index int(idx / max(idx) * 64)")
    ax.legend(loc="lower right")
    return _mark(fig, data)


def plot_landmark_weights(weights, names=("lips", "hand", "pose"), data: str | None = None) -> Figure:
    """Softmax weights of the three landmark groups (chapter 5); they start equal (1/3 each, dashed)."""
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if weights.size != len(names):
        raise ValueError(f"expected {len(names)} weights, got {weights.size}")
    fig, ax = plt.subplots(figsize=(3.4, 2.6))
    ax.bar(list(names), weights, color=[COLORS.get(n, COLORS["hand"]) for n in names])
    ax.axhline(1 / len(names), color=COLORS["neutral"], lw=0.8, ls="--")
    ax.set(ylim=(0, max(0.5, weights.max() * 1.15)), ylabel="softmax weight", title="landmark-group weights")
    ax.grid(axis="x", visible=False)
    return _mark(fig, data)


# --------------------------------------------------------------------------------------------
# Training (chapter 4)
# --------------------------------------------------------------------------------------------
def plot_schedules(schedules: dict) -> Figure:
    """Learning rate and per-step weight decay per epoch for several schedules (chapter 4).

    `schedules` maps a name to `(lr [epochs], wd [epochs])`.
    """
    if not schedules:
        raise ValueError("no schedules to plot")
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 2.9))
    for i, title in enumerate(("learning rate", "weight decay per step")):
        curves = pd.DataFrame({name: curve[i] for name, curve in schedules.items()})
        curves.index += 1                                   # epochs count from 1
        curves.plot(ax=axes[i], lw=1.8, title=title, xlabel="epoch", legend=i == 0)
        axes[i].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    return fig


def plot_history(history: pd.DataFrame, data: str | None = None) -> Figure:
    """Loss, accuracy, top-5 and top-10 accuracy per epoch, training (blue) and validation (orange)
    (chapter 4). `history` is the history.csv table `training.train` writes (columns epoch, loss,
    acc, top_5_acc, top_10_acc and their val_ twins when there was a validation set).
    """
    panels = {"loss": "loss", "acc": "accuracy", "top_5_acc": "top-5 accuracy", "top_10_acc": "top-10 accuracy"}
    _need_columns(history, ["epoch", *panels], "history")
    fig, axes = plt.subplots(1, 4, figsize=(WIDTH, 2.5), sharex=True)
    for ax, (key, title) in zip(axes, panels.items()):
        for column, color, label in ((key, COLORS["train"], "train"), (f"val_{key}", COLORS["val"], "validation")):
            if column in history:
                ax.plot(history["epoch"], history[column], "o-", ms=2.5, lw=1.5, color=color, label=label)
        ax.set(title=title, xlabel="epoch", ylim=None if key == "loss" else (0, 1.02))
    axes[0].legend()
    return _mark(fig, data)


# --------------------------------------------------------------------------------------------
# Evaluation (chapter 5)
# --------------------------------------------------------------------------------------------
def _f1_bars(ax, f1: pd.Series, mean_label: str):
    """F1 values (sorted) as bars from red (0) to green (1), their mean as a dashed line."""
    ax.bar(np.arange(len(f1)), f1.to_numpy(), color=plt.get_cmap("RdYlGn")(f1.to_numpy()), width=1.0)
    ax.axhline(f1.mean(), color=COLORS["neutral"], ls="--", lw=0.9, label=f"{mean_label} {f1.mean():.2f}")
    ax.set(xlabel=f"{len(f1)} signs, sorted by F1", ylabel="F1")
    ax.grid(axis="x", visible=False)


def plot_f1_per_sign(report: pd.DataFrame, data: str | None = None) -> Figure:
    """F1 per sign, sorted, with the macro F1 (chapter 5); `report` is `evaluation.classification_report_df`.

    Up to 40 signs every sign is named; more (the 250 real signs): the 8 worst and 8 best.
    """
    _need_columns(report, ["f1-score"], "report (evaluation.classification_report_df)")
    f1 = report["f1-score"].astype(float).sort_values()
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    _f1_bars(ax, f1, "macro F1")
    ax.set(ylim=(0, 1.05), title="F1 per sign (held-out participants)")
    if len(f1) <= 40:
        ax.set_xticks(np.arange(len(f1)), f1.index, rotation=90, fontsize=7.5)
    else:
        ax.set_xticks([])
        for rank in [*range(8), *range(len(f1) - 8, len(f1))]:
            ax.annotate(f1.index[rank], (rank, f1.iloc[rank]), rotation=90, fontsize=6.5, xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom")
    ax.legend(loc="upper left")
    return _mark(fig, data)


def plot_confusion(cm: pd.DataFrame, data: str | None = None) -> Figure:
    """Row-normalised confusion heatmap among the most-confused signs (chapter 5).

    `cm` is `evaluation.confused_signs_matrix` (rows true, columns predicted); each row is divided
    by the row's clips among these signs; cells of 0 stay blank.
    """
    if cm.shape[0] == 0:
        fig, ax = plt.subplots(figsize=(3.5, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no confusions: every clip was classified correctly", ha="center", va="center")
        return _mark(fig, data)
    counts = cm.to_numpy(dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = min(5.0, 0.38 * len(cm) + 1.6)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    _heatmap(ax, pd.DataFrame(shares, cm.index, cm.columns), cmap="Blues", vmin=0, vmax=1, mask=shares == 0,
             annot=True, fmt=".2f", annot_kws={"fontsize": 7}, cbar_kws={"shrink": 0.8})
    ax.set(xlabel="predicted sign", ylabel="true sign", title="most-confused signs (row-normalised)")
    ax.tick_params(labelsize=8)
    plt.setp(ax.get_xticklabels(), rotation=60, ha="right")
    return _mark(fig, data)


def plot_topk(ks, accuracies, data: str | None = None) -> Figure:
    """Top-k accuracy against k (chapter 5)."""
    ks, accuracies = np.asarray(ks), np.asarray(accuracies, dtype=np.float64)
    if ks.shape != accuracies.shape:
        raise ValueError("ks and accuracies must have the same length")
    fig, ax = plt.subplots(figsize=(3.4, 2.7))
    ax.plot(ks, accuracies, "o-", color=COLORS["hand"], lw=1.6)
    for k, a in zip(ks, accuracies):
        ax.annotate(f"{a:.2f}", (k, a), xytext=(0, -12), textcoords="offset points", ha="center", fontsize=7.5)
    ax.set(xscale="log", xticks=ks, xticklabels=[str(k) for k in ks], ylim=(0, 1.05), xlabel="k", ylabel="accuracy",
           title="top-k accuracy")
    ax.minorticks_off()
    return _mark(fig, data)


def plot_per_participant(table: pd.DataFrame, data: str | None = None) -> Figure:
    """Accuracy per held-out participant with the number of clips (chapter 5)."""
    _need_columns(table, ["participant_id", "accuracy", "n_clips"], "table (evaluation's per_participant)")
    fig, ax = plt.subplots(figsize=(3.4, 2.7))
    bars = ax.bar(table["participant_id"].astype(str), table["accuracy"], color=COLORS["pose"], width=0.6)
    ax.bar_label(bars, [f"{a:.2f}\n{int(n)} clips" for a, n in zip(table["accuracy"], table["n_clips"])],
                 padding=2, fontsize=7)
    ax.set(ylim=(0, 1.25), xlabel="participant", ylabel="accuracy", title="per participant")
    ax.grid(axis="x", visible=False)
    return _mark(fig, data)


def plot_seed_f1(reference: pd.DataFrame) -> Figure:
    """The seed's F1 of its 250 signs (chapter 5): sorted, the 6 best and worst named, and its histogram.

    `reference` is `evaluation.seed_reference()`; signs whose F1 the seed's text does not give
    (NaN) are left out and counted in the title.
    """
    _need_columns(reference, ["f1"], "reference (evaluation.seed_reference())")
    f1 = reference["f1"].astype(float)
    missing = int(f1.isna().sum())
    f1 = f1.dropna().sort_values(kind="stable")
    if f1.empty:
        raise ValueError("reference has no F1 value")
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.4), width_ratios=[2.2, 1], sharey=True)
    _f1_bars(axes[0], f1, "mean of these")
    for x, title, signs in ((0.03, "worst", f1.iloc[:6]), (0.30, "best", f1.iloc[::-1][:6])):
        axes[0].text(x, 0.97, title + "".join(f"\n{s} {v:.2f}" for s, v in signs.items()),
                     transform=axes[0].transAxes, va="top", fontsize=7.5)
    axes[0].set(xticks=[], ylim=(0, 1.6), yticks=np.linspace(0, 1, 6),
                title=f"seed report: F1 per sign ({missing} signs unreadable, left out)")
    axes[1].hist(f1, bins=np.linspace(0, 1, 21), orientation="horizontal", color=COLORS["hand"], alpha=0.75)
    axes[1].axhline(np.median(f1), color=COLORS["neutral"], lw=1, label=f"median {np.median(f1):.2f}")
    axes[1].set(xlabel="signs", title="distribution")
    for ax in axes:
        ax.legend(loc="upper right")
    return fig


def plot_precision_recall_support(reference: pd.DataFrame) -> Figure:
    """The seed's precision against recall, and F1 against support, one point per sign (chapter 5).

    Left: the 5 signs with the largest recall - precision gap ("magnets", predicted too often)
    and the 5 with the largest precision - recall gap (predicted too rarely) are named; the
    diagonal is precision = recall. Right: F1 against the number of validation clips of the sign.
    """
    _need_columns(reference, ["precision", "recall", "f1", "support"], "reference (evaluation.seed_reference())")
    pr = reference[["precision", "recall", "f1"]].astype(float).dropna()
    fs = reference[["f1", "support"]].astype(float).dropna()
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.6))
    colour = dict(cmap="RdYlGn", vmin=0, vmax=1, s=12, edgecolors="none")
    dots = axes[0].scatter(pr["recall"], pr["precision"], c=pr["f1"], **colour)
    axes[0].plot([0, 1], [0, 1], color=COLORS["neutral"], lw=0.8, ls="--")
    gap = pr["recall"] - pr["precision"]
    for sign in [*gap.nlargest(5).index, *gap.nsmallest(5).index]:
        axes[0].annotate(sign, (pr.loc[sign, "recall"], pr.loc[sign, "precision"]), fontsize=7, xytext=(3, 2),
                         textcoords="offset points")
    axes[0].set(xlim=(0, 1.05), ylim=(0, 1.05), xlabel="recall", ylabel="precision", title="precision vs recall")
    axes[0].text(0.98, 0.04, "magnets:\npredicted too often", transform=axes[0].transAxes, ha="right",
                 fontsize=7.5, color=COLORS["neutral"])
    axes[0].text(0.03, 0.97, "predicted\ntoo rarely", transform=axes[0].transAxes, va="top", fontsize=7.5,
                 color=COLORS["neutral"])
    axes[1].scatter(fs["support"], fs["f1"], c=fs["f1"], **colour)
    r = np.corrcoef(fs["support"], fs["f1"])[0, 1] if len(fs) > 2 else np.nan
    axes[1].set(xlabel="validation clips of the sign (support)", ylabel="F1", ylim=(0, 1.05),
                title=f"F1 vs support (r = {r:.2f}, {len(fs)} signs)")
    fig.colorbar(dots, ax=axes.tolist(), shrink=0.8, label="F1")
    return fig


def plot_f1_against_seed(comparison: pd.DataFrame, title: str | None = None, data: str | None = None) -> Figure:
    """This run's F1 per sign against the seed's (chapter 5); `comparison` is `evaluation.compare_with_seed`.

    The diagonal is "as good as the seed"; the 4 signs that gained and the 4 that lost most are
    named, and the default title gives Pearson's r (when there are at least 3 signs).
    """
    _need_columns(comparison, ["f1_run", "f1_seed", "difference"], "comparison (evaluation.compare_with_seed)")
    if comparison.empty:
        raise ValueError("comparison is empty: no sign has an F1 in both")
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.scatter(comparison["f1_seed"], comparison["f1_run"], s=14, color=COLORS["hand"], alpha=0.8, edgecolors="none")
    ax.plot([0, 1], [0, 1], color=COLORS["neutral"], lw=0.8, ls="--", label="same F1 as the seed")
    d = comparison["difference"].sort_values()
    for k, sign in enumerate(dict.fromkeys([*d.index[:4], *d.index[::-1][:4]])):
        ax.annotate(sign, (comparison.loc[sign, "f1_seed"], comparison.loc[sign, "f1_run"]), fontsize=7,
                    xytext=(3, 2 - 9 * (k % 3)), textcoords="offset points",
                    arrowprops=dict(arrowstyle="-", lw=0.4, color=COLORS["neutral"]) if k % 3 else None)
    if title is None:
        r = (np.corrcoef(comparison["f1_seed"], comparison["f1_run"])[0, 1]
             if len(comparison) >= 3 and comparison["f1_run"].std() > 0 else np.nan)
        title = f"{len(comparison)} signs, r = {r:.2f}"
    ax.set(xlim=(-0.02, 1.05), ylim=(-0.02, 1.05), aspect="equal", title=title,
           xlabel="F1 in the seed report (real data, 250 signs)", ylabel="F1 of this run")
    ax.legend(loc="upper left")
    return _mark(fig, data)


# --------------------------------------------------------------------------------------------
# Export and masking (chapter 6)
# --------------------------------------------------------------------------------------------
def plot_probability_agreement(p_keras, p_tflite, data: str | None = None) -> Figure:
    """Keras against TFLite class probabilities, one point per (clip, class) (chapter 6)."""
    a, b = np.asarray(p_keras).ravel(), np.asarray(p_tflite).ravel()
    if a.shape != b.shape:
        raise ValueError("probability arrays must have the same shape")
    fig, ax = plt.subplots(figsize=(3.4, 3.2))
    ax.scatter(a, b, s=12, alpha=0.6, color=COLORS["hand"], edgecolor="none")
    top = max(float(a.max()), float(b.max()), 1e-3) * 1.05
    ax.plot([0, top], [0, top], color=COLORS["neutral"], lw=0.8, ls="--")
    ax.set(xlim=(0, top), ylim=(0, top), aspect="equal", xlabel="Keras probability", ylabel="TFLite probability",
           title=f"max difference {np.abs(a - b).max():.1e}")
    return _mark(fig, data)


def plot_masking_comparison(table: pd.DataFrame, by: str = "attention_mask", data: str | None = None) -> Figure:
    """Accuracy for the original query masking against key masking (chapter 6).

    `table` has one row per run with columns `by` and `accuracy`; several rows per mode (seeds,
    repeated predictions) are drawn as points over the bar of their mean, which is written on it.
    """
    _need_columns(table, [by, "accuracy"], "table")
    fig, ax = plt.subplots(figsize=(3.6, 2.8))
    style = dict(x=by, y="accuracy", hue=by, palette=CYCLE[:table[by].nunique()], legend=False, ax=ax)
    sns.barplot(table, errorbar=None, alpha=0.6, width=0.6, **style)
    sns.stripplot(table, jitter=False, size=4, **style)
    for bars in ax.containers:
        ax.bar_label(bars, fmt="%.3f", padding=4, fontsize=8)
    ax.set(ylim=(0, 1.05), xlabel=by.replace("_", " "), title=f"accuracy by {by.replace('_', ' ')}")
    ax.grid(axis="x", visible=False)
    return _mark(fig, data)
