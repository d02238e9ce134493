"""Figures of the model and its results (chapters 3-5): attention, the position index, the
landmark-group weights, training curves, and the evaluation per sign (F1 and confusions).
The figures that only one chapter draws in a few lines of seaborn (top-k, the seed report, the
masking comparison, ...) live in that chapter's hidden cells.

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
from .style import COLORS, WIDTH, _mark, _need_columns


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
def plot_f1_per_sign(report: pd.DataFrame, data: str | None = None, interval=None) -> Figure:
    """F1 per sign, sorted, with the macro F1 (chapter 5); `report` has one row per sign and a
    column ``f1-score``; `interval`, a pair of its column names (low, high), adds each sign's
    interval as an error bar.

    Up to 40 signs every sign is named; more (the 250 real signs): the 8 worst and 8 best.
    """
    _need_columns(report, ["f1-score", *(interval or ())], "report")
    order = report["f1-score"].astype(float).sort_values(kind="stable").index
    f1 = report.loc[order, "f1-score"].astype(float)
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    ax.bar(np.arange(len(f1)), f1.to_numpy(), color=plt.get_cmap("RdYlGn")(f1.to_numpy()), width=1.0)
    top = f1.to_numpy()                                     # where a sign's name goes
    if interval:
        low, top = (report.loc[order, c].astype(float).to_numpy() for c in interval)
        ax.errorbar(np.arange(len(f1)), f1.to_numpy(), yerr=[f1.to_numpy() - low, top - f1.to_numpy()],
                    fmt="none", ecolor="0.25", elinewidth=0.8 if len(f1) <= 40 else 0.3,
                    capsize=2 if len(f1) <= 40 else 0, label="interval")
    ax.axhline(f1.mean(), color=COLORS["neutral"], ls="--", lw=0.9, label=f"macro F1 {f1.mean():.2f}")
    ax.set(xlabel=f"{len(f1)} signs, sorted by F1", ylabel="F1", ylim=(0, 1.05 if len(f1) <= 40 else 1.3),
           yticks=np.linspace(0, 1, 6), title="F1 per sign")
    ax.grid(axis="x", visible=False)
    if len(f1) <= 40:
        ax.set_xticks(np.arange(len(f1)), f1.index, rotation=90, fontsize=7.5)
    else:
        ax.set_xticks([])
        for rank in [*range(8), *range(len(f1) - 8, len(f1))]:
            ax.annotate(f1.index[rank], (rank, top[rank]), rotation=90, fontsize=6.5, xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom")
    ax.legend(loc="upper left")
    return _mark(fig, data)


def plot_confusion(cm: pd.DataFrame, data: str | None = None, support=None) -> Figure:
    """Row-normalised confusion heatmap among the most-confused signs (chapter 5).

    `cm` holds confusion counts (rows true, columns predicted). Each row is divided by `support`
    (the clips of its true sign, one number per row: then the diagonal is each sign's recall), or,
    without it, by the row's clips among these signs; cells of 0 stay blank.
    """
    if cm.shape[0] == 0:
        fig, ax = plt.subplots(figsize=(3.5, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no confusions: every clip was classified correctly", ha="center", va="center")
        return _mark(fig, data)
    counts = cm.to_numpy(dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True) if support is None else np.asarray(support, np.float64)[:, None]
    if rows.shape != (len(cm), 1) or (rows < counts.sum(axis=1, keepdims=True)).any():
        raise ValueError(f"support must give one number per row of cm ({len(cm)}), at least the row's counts")
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = min(5.0, 0.38 * len(cm) + 1.6)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    _heatmap(ax, pd.DataFrame(shares, cm.index, cm.columns), cmap="Blues", vmin=0, vmax=1, mask=shares == 0,
             annot=True, fmt=".2f", annot_kws={"fontsize": 7}, cbar_kws={"shrink": 0.8})
    title = "most-confused signs, " + ("share of the true sign's clips" if support is not None else "row-normalised")
    ax.set(xlabel="predicted sign", ylabel="true sign", title=title)
    ax.tick_params(labelsize=8)
    plt.setp(ax.get_xticklabels(), rotation=60, ha="right")
    return _mark(fig, data)
