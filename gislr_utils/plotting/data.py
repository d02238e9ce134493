"""Figures of the preprocessed data (chapter 2): one clip's preprocessing, and per-landmark
boxplots of one data set or of two side by side (real beside synthetic).

Each function takes data (arrays, dicts) and returns a `matplotlib.figure.Figure`; `data`
("synthetic", "real") is added to the figure's title. The simpler figures of chapters 1 and 2
(clip counts, clip lengths, hands, normalisation) are drawn in the chapters' own hidden cells.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..landmarks import DIM_NAMES, INPUT_SIZE, N_COLS, N_ROWS, TYPE_STARTS, dominant_hand
from .results import plot_position_index
from .style import COLORS, WIDTH, _mark


def plot_preprocessing(raw, x, idxs, position, data: str | None = None) -> Figure:
    """What preprocessing does to one clip (chapter 2), in four panels.

    `raw` [n0, 543, 3] is the file, `x` [64, 66, 3] and `idxs` [64] the preprocessed clip,
    `position` [64] the positional-embedding row of each output frame.
    (a) which raw frames show the left and right hand; (b) the dominant wrist's x in the raw
    frames; (c) the wrist's x in the 64 model frames (mirrored for right-dominant clips, 0 on
    padding); (d) the position index, where the last frame shares row 64 with the padding.
    """
    raw, x, idxs = np.asarray(raw, dtype=np.float32), np.asarray(x), np.asarray(idxs)
    if raw.ndim != 3 or raw.shape[1] != N_ROWS:
        raise ValueError(f"raw must have shape [n, {N_ROWS}, 3], got {list(raw.shape)}")
    if x.shape[-2] != N_COLS or len(x) != len(idxs):
        raise ValueError(f"x must be [{INPUT_SIZE}, {N_COLS}, 3] and idxs [{INPUT_SIZE}]")
    hands = dominant_hand(raw)
    side = "left" if hands.left else "right"
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 5.0))
    ax = axes[0, 0]
    t = np.arange(len(raw))
    ax.eventplot([t[hands.right_values > 0], t[hands.left_values > 0]], linelengths=0.5,
                 colors=[COLORS["right_hand"], COLORS["left_hand"]])
    ax.set(yticks=[0, 1], yticklabels=["right hand", "left hand"], ylim=(-0.6, 1.6), xlabel="raw frame",
           title=f"(a) hands seen: {side} dominant")
    ax = axes[0, 1]
    ax.plot(t, raw[:, TYPE_STARTS[f"{side}_hand"], 0], ".-", color=COLORS[f"{side}_hand"], ms=3, lw=1)
    ax.set(xlabel="raw frame", ylabel="wrist x", title=f"(b) raw {side} wrist x ({len(raw)} frames)")
    ax = axes[1, 0]
    pad = idxs == -1
    ax.plot(x[:, 40, 0], ".-", color=COLORS["hand"], ms=3, lw=1, label="wrist x (column 40)")
    if pad.any():
        ax.axvspan(np.argmax(pad) - 0.5, len(idxs) - 0.5, color=COLORS["face"], alpha=0.2, label="padding (zeros)")
    ax.set(xlabel="model frame", ylabel="x" + ("" if hands.left else " (mirrored: 1 - x)"),
           title=f"(c) model input: {int((~pad).sum())} frames used")
    ax.legend(loc="best")
    plot_position_index(idxs, position, ax=axes[1, 1])
    axes[1, 1].set_title("(d) positional-embedding row")
    axes[1, 1].legend(loc="upper left", fontsize=7.5)
    return _mark(fig, data)


def landmark_box_stats(values: list[np.ndarray]) -> list[dict]:
    """Box statistics (median, quartiles, 5th and 95th percentile whiskers) for `Axes.bxp`.

    Percentiles are computed with numpy once per landmark, which is much faster than letting
    `boxplot` sort millions of values and gives the same boxes. Empty landmarks give NaN boxes.
    """
    out = []
    for v in values:
        q = np.percentile(v, [5, 25, 50, 75, 95]) if np.size(v) else [np.nan] * 5
        out.append(dict(whislo=q[0], q1=q[1], med=q[2], q3=q[3], whishi=q[4], fliers=[]))
    return out


def _box_panels(sets, group: str, dims, labels=None):
    """One panel per dimension with one box per landmark (box 25-75%, whiskers 5-95%, no fliers)
    for each `(values_by_dim, filled)` of `sets`, side by side; returns the figure and top panel."""
    n = len(sets[0][0][dims[0]])
    if any(len(values[d]) != n for values, _ in sets for d in dims):
        raise ValueError("the data sets need one value array per landmark")
    fig, axes = plt.subplots(len(dims), 1, figsize=(WIDTH, 2.0 * len(dims) + 0.4), sharex=True, squeeze=False)
    color = COLORS.get(group, COLORS["hand"])
    for ax, dim in zip(axes[:, 0], dims):
        for k, (values, filled) in enumerate(sets):
            edge = color if filled else "black"
            ax.bxp(landmark_box_stats(values[dim]), positions=np.arange(n) + 0.4 * k - 0.2 * (len(sets) - 1),
                   widths=0.6 if len(sets) == 1 else 0.35, showfliers=False, patch_artist=True,
                   boxprops=dict(facecolor=color if filled else "white", alpha=0.55 if filled else 1.0,
                                 edgecolor=edge, lw=0.8),
                   medianprops=dict(color="black", lw=1), whiskerprops=dict(color=edge, lw=0.8),
                   capprops=dict(color=edge, lw=0.8))
        ax.set_ylabel(dim)
        ax.grid(axis="x", visible=False)
    ax.set_xticks(np.arange(n), [str(l) for l in (labels if labels is not None else range(n))], fontsize=7,
                  rotation=90 if n > 30 else 0)
    ax.set_xlabel("landmark (column in the group)")
    axes[0, 0].set_title(f"{group}: non-zero values per landmark (box 25-75%, whiskers 5-95%)")
    return fig, axes[0, 0]


def plot_landmark_boxplots(values_by_dim: dict, group: str, labels=None, data: str | None = None) -> Figure:
    """One box per landmark for x, y and z of a group, whiskers at 5-95%, no fliers (chapter 2).

    `values_by_dim` maps "x", "y", "z" to a list (one entry per landmark) of the landmark's
    non-zero values (`statistics.landmark_values`), as the seed's `get_*_mean_std` plots.
    """
    dims = [d for d in DIM_NAMES if d in values_by_dim]
    if not dims:
        raise ValueError(f"values_by_dim needs some of {DIM_NAMES}, got {sorted(values_by_dim)}")
    fig, _ = _box_panels([(values_by_dim, True)], group, dims, labels)
    return _mark(fig, data)


def plot_real_vs_synthetic_boxplots(values_a: dict, values_b: dict, group: str,
                                    names=("real", "synthetic")) -> Figure:
    """Per-landmark boxes of two data sets, side by side, for x and y of a group (chapter 2).

    `values_a`/`values_b` map "x" and "y" to one array of non-zero values per landmark
    (`statistics.landmark_values` of each data set's prepared clips). Boxes 25-75%, whiskers
    5-95%, no fliers; data set `names[0]` in black outline, `names[1]` filled.
    """
    if any(d not in values for values in (values_a, values_b) for d in "xy"):
        raise ValueError("values_a and values_b need the dimensions x and y")
    fig, top = _box_panels([(values_a, False), (values_b, True)], group, ["x", "y"])
    color = COLORS.get(group, COLORS["hand"])
    top.legend(handles=[Patch(facecolor="white", edgecolor="black", label=names[0]),
                        Patch(facecolor=color, alpha=0.55, edgecolor=color, label=names[1])],
               loc="lower left", bbox_to_anchor=(0.0, 1.02), ncols=2, borderaxespad=0)
    top.set_title(top.get_title(), pad=22)
    return fig
