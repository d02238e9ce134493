"""Figures of the data (chapters 1 and 2): clip counts and lengths, hands, one clip's
preprocessing, per-landmark boxplots, normalisation, and real beside synthetic data.

Each function takes data (arrays, DataFrames) and returns a `matplotlib.figure.Figure`; `data`
("synthetic", "real") is added to the figure's title.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..dataset import compare_summaries
from ..landmarks import DIM_NAMES, GROUPS, INPUT_SIZE, N_COLS, N_ROWS, TYPE_STARTS, dominant_hand
from .results import plot_position_index
from .style import COLORS, CYCLE, WIDTH, _mark, _need_columns


def plot_clip_counts(clips: pd.DataFrame, data: str | None = None) -> Figure:
    """Clips per sign and clips per participant, sorted, as two bar charts (chapter 1).

    `clips` is `dataset.read_clips`'s table (columns sign, participant_id); the dashed line is
    the mean. Up to 40 bars are named.
    """
    _need_columns(clips, ["sign", "participant_id"], "clips (dataset.read_clips's table)")
    counts = [clips[c].value_counts() for c in ("sign", "participant_id")]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.2), width_ratios=[max(len(c), 8) for c in counts])
    for ax, c, what, color in zip(axes, counts, ("sign", "participant"), (COLORS["hand"], COLORS["pose"])):
        c.plot.bar(ax=ax, color=color, width=0.8, xlabel=what, title=f"clips per {what} ({len(c)} {what}s)")
        ax.axhline(c.mean(), color=COLORS["neutral"], lw=0.8, ls="--")
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", visible=False)
        if len(c) > 40:
            ax.set_xticks([])
    axes[0].set_ylabel("clips")
    return _mark(fig, data)


def plot_frame_histogram(n_frames, n_hand_frames, data: str | None = None) -> Figure:
    """Histogram of frames per clip, with median, mean and the model's 64-frame boundary (chapter 1).

    `n_frames`: frames in each file; `n_hand_frames` (outlined): frames in which the dominant hand
    is visible, the frames preprocessing keeps. Clips with fewer kept frames than 64 are padded,
    longer ones pooled.
    """
    n_frames = np.asarray(n_frames)
    if n_frames.ndim != 1 or n_frames.size == 0:
        raise ValueError("n_frames must be a non-empty 1-D array")
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    top = max(float(np.percentile(n_frames, 99)), INPUT_SIZE * 1.2)
    bins = np.linspace(0, top, 41)
    ax.hist(np.clip(n_frames, 0, top), bins=bins, color=COLORS["hand"], alpha=0.75, label="frames in the file")
    ax.hist(np.clip(np.asarray(n_hand_frames), 0, top), bins=bins, histtype="step", lw=1.6, color=COLORS["lips"],
            label="frames with the dominant hand")
    med, mean = np.median(n_frames), np.mean(n_frames)
    ax.axvline(med, color=COLORS["neutral"], lw=1, label=f"median {med:.0f}")
    ax.axvline(mean, color=COLORS["neutral"], lw=1, ls=":", label=f"mean {mean:.1f}")
    ax.axvline(INPUT_SIZE, color=COLORS["accent"], lw=1.6, ls="--", label=f"{INPUT_SIZE}: pad below, pool above")
    ax.set(xlabel=f"frames per clip (clipped at the 99th percentile; max {int(n_frames.max())})", ylabel="clips",
           title="clip length")
    ax.legend()
    return _mark(fig, data)


def plot_hand_presence(summary: pd.DataFrame, data: str | None = None) -> Figure:
    """Missing-hand rates and the dominant-hand split per participant (chapter 1).

    `summary` is `dataset.clip_summary`'s table: one row per clip with `left_hand_missing` and
    `right_hand_missing` (fraction of the clip's frames without that hand), `dominant`
    ("left"/"right") and `participant_id`. Left: distribution of the missing fractions per hand;
    right: left- and right-dominant clips of each participant, stacked.
    """
    _need_columns(summary, ["left_hand_missing", "right_hand_missing", "dominant", "participant_id"],
                  "summary (dataset.clip_summary's table)")
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.2), width_ratios=[1, 1.3])
    for hand in ("left", "right"):
        missing = summary[f"{hand}_hand_missing"]
        axes[0].hist(missing, bins=np.linspace(0, 1, 21), histtype="step", lw=1.6, color=COLORS[f"{hand}_hand"],
                     label=f"{hand} hand (mean {missing.mean():.0%})")
    axes[0].set(xlabel="fraction of frames without the hand", ylabel="clips", title="missing hands")
    axes[0].legend(loc="upper center")
    table = pd.crosstab(summary["participant_id"], summary["dominant"]).reindex(columns=["left", "right"],
                                                                                  fill_value=0)
    table.add_suffix("-dominant").plot.bar(ax=axes[1], stacked=True, width=0.8, xlabel="participant", ylabel="clips",
                                           color=[COLORS["left_hand"], COLORS["right_hand"]])
    axes[1].tick_params(axis="x", labelsize=7)
    axes[1].grid(axis="x", visible=False)
    axes[1].legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncols=2, borderaxespad=0)
    axes[1].set_title(f"dominant hand ({(summary['dominant'] == 'left').mean():.0%} of clips left)", pad=30)
    return _mark(fig, data)


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


def plot_normalisation(before, after, data: str | None = None) -> Figure:
    """Histograms of x and y per landmark group before and after standardisation (chapter 2).

    `before` [..., 66, >=2] (prepared frames) and `after` [..., 66, 2] (`statistics.normalise`);
    zeros (missing) are left out of both. The dotted line marks 0, the centre after.
    """
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 4.4))
    for j, dim in enumerate(("x", "y")):
        for i, (values, when) in enumerate(((before, "before"), (after, "after"))):
            ax = axes[j, i]
            for group, cols in GROUPS.items():
                v = np.asarray(values[..., cols, j]).ravel()
                v = v[v != 0]
                if v.size:
                    ax.hist(v, bins=np.linspace(*np.percentile(v, [0.5, 99.5]), 50), histtype="step", lw=1.4,
                            density=True, color=COLORS[group], label=group)
            ax.set(title=f"{dim} {when} normalisation", yticks=[])
            if when == "after":
                ax.axvline(0, color=COLORS["neutral"], lw=0.8, ls=":")
    axes[0, 0].legend()
    return _mark(fig, data)


def plot_clip_comparison(summaries: dict) -> Figure:
    """Clip lengths and missing hands of several data sets (chapter 2: real vs synthetic).

    `summaries` maps a name to `dataset.clip_summary`'s table. Left: the share of clips with
    at most n frames (log scale), with the model's 64 frames marked; right: the mean share of
    frames without the dominant and without the other hand, and the share of left-dominant clips.
    """
    shares = compare_summaries(summaries).loc[
        ["frames without dominant hand", "frames without other hand", "left-dominant clips"]]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.2), width_ratios=[1.2, 1])
    for color, (name, s) in zip(CYCLE, summaries.items()):
        n = np.sort(s["n_frames"].to_numpy())
        axes[0].step(n, np.arange(1, len(n) + 1) / len(n), where="post", color=color, lw=1.6,
                     label=f"{name} ({len(n)} clips, median {np.median(n):.0f})")
    axes[0].axvline(INPUT_SIZE, color=COLORS["accent"], ls="--", lw=1.2, label=f"{INPUT_SIZE} frames")
    axes[0].set(xscale="log", xlabel="frames in the file (log scale)", ylabel="share of clips with at most that many",
                title="clip length")
    axes[0].legend(loc="lower right", fontsize=7.5)
    shares.index = ["frames without\ndominant hand", "frames without\nother hand", "left-dominant\nclips"]
    shares.plot.bar(ax=axes[1], rot=0, width=0.8, color=CYCLE[:shares.shape[1]], ylim=(0, 1), ylabel="share",
                    title="missing hands", fontsize=8)
    axes[1].grid(axis="x", visible=False)
    axes[1].legend(loc="upper left", fontsize=7.5)
    return fig
