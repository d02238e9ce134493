"""Figures of the model and its training (chapters 2-4): attention, the position index and the
training curves. The figures that only one chapter draws (the worked attention example, the
evaluation per sign, ...) live in that chapter's hidden cells.

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
from .style import COLORS, WIDTH, _mark


def plot_attention_maps(maps, titles, n_valid: int | None = None, suptitle: str | None = None,
                        data: str | None = None) -> Figure:
    """Attention weights [T(query), T(key)] side by side on one colour scale (chapters 3 and 4).

    `maps` is a list of 2-D arrays; the first `n_valid` frames are the clip's, the rest padding,
    and dashed lines separate the two, so one sees which rows and columns the mask removed.
    """
    maps = [np.asarray(m) for m in maps]
    if len(maps) != len(titles):
        raise ValueError("maps and titles must have the same length")
    fig, axes = plt.subplots(1, len(maps), figsize=(WIDTH, WIDTH / len(maps) + 0.5), squeeze=False)
    vmax = max(float(np.nanmax(m)) for m in maps)
    for ax, m, title in zip(axes[0], maps, titles):
        sns.heatmap(m, ax=ax, cmap="magma", vmin=0, vmax=vmax, cbar=False, square=True, xticklabels=16,
                    yticklabels=16)
        ax.grid(False)
        ax.tick_params(length=0, rotation=0)
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


def plot_history(history: pd.DataFrame, data: str | None = None) -> Figure:
    """Loss, accuracy, top-5 and top-10 accuracy per epoch, training (blue) and validation (orange)
    (chapter 4). `history` is the history.csv table of a run (chapter 4's recipe) (columns epoch, loss,
    acc, top_5_acc, top_10_acc and their val_ twins when there was a validation set).
    """
    panels = {"loss": "loss", "acc": "accuracy", "top_5_acc": "top-5 accuracy", "top_10_acc": "top-10 accuracy"}
    missing = [c for c in ["epoch", *panels] if c not in history]
    if missing:
        raise ValueError(f"history lacks columns {missing}")
    fig, axes = plt.subplots(1, 4, figsize=(WIDTH, 2.5), sharex=True)
    for ax, (key, title) in zip(axes, panels.items()):
        for column, color, label in ((key, COLORS["train"], "train"), (f"val_{key}", COLORS["val"], "validation")):
            if column in history:
                ax.plot(history["epoch"], history[column], "o-", ms=2.5, lw=1.5, color=color, label=label)
        ax.set(title=title, xlabel="epoch", ylim=None if key == "loss" else (0, 1.02))
    axes[0].legend()
    return _mark(fig, data)
