"""Every figure of the book, in one consistent style (`set_style`).

Each function takes data (arrays, DataFrames) and returns a `matplotlib.figure.Figure`; none of
them computes model or data results itself, so a chapter cell reads "compute with gislr_utils,
then draw with plotting". Chapter numbers in the docstrings say where each figure appears.
Drawing-only constants (the MediaPipe bones) live here too.
"""
from __future__ import annotations

from html import escape

import numpy as np
import pandas as pd
import matplotlib as mpl
import matplotlib.pyplot as plt
from matplotlib import animation
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .landmarks import (
    DIM_NAMES,
    GROUPS,
    INPUT_SIZE,
    LANDMARK_IDXS_LEFT_DOMINANT0,
    LANDMARK_IDXS_RIGHT_DOMINANT0,
    N_COLS,
    N_ROWS,
    TYPE_STARTS,
    dominant_hand,
)

# --------------------------------------------------------------------------------------------
# Style
# --------------------------------------------------------------------------------------------
# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
COLORS = {
    "lips": "#D55E00",
    "hand": "#0072B2",
    "pose": "#009E73",
    "face": "#9A9A9A",
    "left_hand": "#0072B2",
    "right_hand": "#CC79A7",
    "train": "#0072B2",
    "val": "#D55E00",
    "accent": "#E69F00",
    "neutral": "#555555",
}
CYCLE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
WIDTH = 7.0          # inches: the width of the book's text column at the default dpi


def set_style() -> None:
    """The book's figure style: light grid, no top/right spines, colour-blind-safe colours.

    Every chapter calls it once (through `book.setup`); all figures below assume it.
    """
    mpl.rcParams.update({
        "figure.figsize": (WIDTH, 3.4),
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "savefig.bbox": "tight",
        "figure.constrained_layout.use": True,
        "font.size": 9.5,
        "axes.titlesize": 10.5,
        "axes.titleweight": "bold",
        "axes.labelsize": 9.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "grid.linewidth": 0.6,
        "axes.prop_cycle": mpl.cycler(color=CYCLE),
        "legend.frameon": False,
        "legend.fontsize": 8.5,
        "xtick.labelsize": 8.5,
        "ytick.labelsize": 8.5,
        "image.cmap": "viridis",
        "animation.embed_limit": 8.0,     # MB; the book's animations stay far below
    })


def _fig_ax(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


# --------------------------------------------------------------------------------------------
# Skeletons (chapters 1 and 2)
# --------------------------------------------------------------------------------------------
# MediaPipe hand bones (21 landmarks: wrist 0, thumb 1-4, index 5-8, middle 9-12, ring 13-16,
# little finger 17-20).
HAND_BONES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10),
              (10, 11), (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17),
              (17, 18), (18, 19), (19, 20)]
# MediaPipe pose bones of the upper body (shoulders 11/12, elbows 13/14, wrists 15/16, hands
# 17-22, hips 23/24); the legs are usually outside the picture in GISLR clips.
POSE_BONES = [(11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14),
              (14, 16), (16, 18), (16, 20), (16, 22), (18, 20), (11, 23), (12, 24), (23, 24)]
POSE_UPPER_BODY = np.arange(0, 25)
# Face oval of the MediaPipe face mesh, in drawing order.
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67,
             109, 10]
# Lips contours: LIPS_IDXS0 lists the upper outer lip (61 ... 409), the lower outer lip
# (291, 146 ... 375), the upper inner lip (78 ... 415) and the lower inner lip (95 ... 308).
LIPS_CONTOURS = [
    [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291],
    [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291],
    [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308],
    [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308],
]
POSE0 = TYPE_STARTS["pose"]
LEFT_HAND0 = TYPE_STARTS["left_hand"]
RIGHT_HAND0 = TYPE_STARTS["right_hand"]


def _check_frame(frame) -> np.ndarray:
    frame = np.asarray(frame, dtype=np.float32)
    if frame.shape != (N_ROWS, 3) and frame.shape != (N_ROWS, 2):
        raise ValueError(f"frame must have shape [{N_ROWS}, 3] (one raw GISLR frame), got {list(frame.shape)}")
    return frame


def _chain(ax, frame, idxs, **kw):
    pts = frame[np.asarray(idxs), :2]
    return ax.plot(pts[:, 0], pts[:, 1], **kw)[0]


def _bones(ax, frame, offset, bones, **kw):
    """One Line2D for all bones (NaN separators): cheap to draw and to animate."""
    return ax.plot(*_bone_xy(frame, offset, bones), **kw)[0]


def _bone_xy(frame, offset, bones):
    a = np.array([offset + i for i, _ in bones])
    b = np.array([offset + j for _, j in bones])
    xs = np.stack([frame[a, 0], frame[b, 0], np.full(len(bones), np.nan)], axis=1).ravel()
    ys = np.stack([frame[a, 1], frame[b, 1], np.full(len(bones), np.nan)], axis=1).ravel()
    return xs, ys


def skeleton_limits(frames, margin: float = 0.05) -> tuple[tuple[float, float], tuple[float, float]]:
    """x and y limits that hold the face, both hands and the upper body of all `frames`.

    `frames` is one raw frame [543, 3] or a clip [n, 543, 3]; NaN are ignored. Returns
    ((xmin, xmax), (ymax, ymin)) -- y inverted, as image coordinates grow downwards.
    """
    frames = np.asarray(frames, dtype=np.float32).reshape(-1, N_ROWS, frames.shape[-1])
    rows = np.concatenate([np.arange(0, 468), np.arange(LEFT_HAND0, LEFT_HAND0 + 21),
                           POSE0 + POSE_UPPER_BODY, np.arange(RIGHT_HAND0, RIGHT_HAND0 + 21)])
    pts = frames[:, rows, :2].reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return (0.0, 1.0), (1.0, 0.0)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = max(hi[0] - lo[0], hi[1] - lo[1])
    centre = (lo + hi) / 2
    half = span / 2 + margin * span
    return (centre[0] - half, centre[0] + half), (centre[1] + half, centre[1] - half)


class SkeletonArtist:
    """The line artists of one skeleton drawing, updated in place for animations (chapter 1)."""

    def __init__(self, ax, frame, show_face_points: bool = True):
        frame = _check_frame(frame)
        self.ax = ax
        self.face_points = None
        if show_face_points:
            self.face_points = ax.plot(frame[:468, 0], frame[:468, 1], ".", ms=0.8,
                                       color=COLORS["face"], alpha=0.6, zorder=1)[0]
        self.face_oval = _chain(ax, frame, FACE_OVAL, color=COLORS["face"], lw=0.9, zorder=2)
        self.lips = [_chain(ax, frame, c, color=COLORS["lips"], lw=1.2, zorder=3) for c in LIPS_CONTOURS]
        self.pose = _bones(ax, frame, POSE0, POSE_BONES, color=COLORS["pose"], lw=2.0,
                           marker="o", ms=2.5, zorder=2)
        self.left = _bones(ax, frame, LEFT_HAND0, HAND_BONES, color=COLORS["left_hand"], lw=1.2,
                           marker="o", ms=2.0, zorder=4)
        self.right = _bones(ax, frame, RIGHT_HAND0, HAND_BONES, color=COLORS["right_hand"], lw=1.2,
                            marker="o", ms=2.0, zorder=4)

    @property
    def artists(self):
        out = [self.face_oval, *self.lips, self.pose, self.left, self.right]
        return ([self.face_points] if self.face_points is not None else []) + out

    def update(self, frame):
        frame = _check_frame(frame)
        if self.face_points is not None:
            self.face_points.set_data(frame[:468, 0], frame[:468, 1])
        pts = frame[FACE_OVAL, :2]
        self.face_oval.set_data(pts[:, 0], pts[:, 1])
        for line, c in zip(self.lips, LIPS_CONTOURS):
            pts = frame[c, :2]
            line.set_data(pts[:, 0], pts[:, 1])
        self.pose.set_data(*_bone_xy(frame, POSE0, POSE_BONES))
        self.left.set_data(*_bone_xy(frame, LEFT_HAND0, HAND_BONES))
        self.right.set_data(*_bone_xy(frame, RIGHT_HAND0, HAND_BONES))
        return self.artists


def _skeleton_axes(ax, limits):
    (x0, x1), (y0, y1) = limits
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)           # y0 > y1: image coordinates, y grows downwards
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)


def _skeleton_legend(ax, **kw):
    handles = [Patch(color=COLORS[k], label=k.replace("_", " ")) for k in
               ("face", "lips", "pose", "left_hand", "right_hand")]
    ax.legend(handles=handles, **kw)


def plot_skeleton(frame, ax=None, title: str | None = None, limits=None, legend: bool = True) -> Figure:
    """Draw one raw frame [543, 3]: face mesh points and oval, lips, pose bones and both hands.

    Missing landmarks (NaN) are simply not drawn, so a hand that MediaPipe lost disappears.
    Chapter 1 draws one frame with it.
    """
    frame = _check_frame(frame)
    fig, ax = _fig_ax(ax, (3.6, 3.6))
    SkeletonArtist(ax, frame)
    _skeleton_axes(ax, limits or skeleton_limits(frame))
    if title:
        ax.set_title(title)
    if legend:
        _skeleton_legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return fig


def animate_clip(frames, max_frames: int = 20, size: float = 2.8, dpi: int = 72,
                 interval: int | None = None, title: str | None = None) -> animation.FuncAnimation:
    """A small animation of a whole clip [n, 543, 3] (chapter 1), for `animation_html`.

    At most `max_frames` evenly spaced frames are drawn (every frame of a short clip) at
    `size` inches and `dpi`, so the page stays light; `interval` (ms per frame) defaults to the
    clip's real pace at 30 frames per second, stretched by the frames skipped.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 3 or frames.shape[1] != N_ROWS:
        raise ValueError(f"frames must have shape [n, {N_ROWS}, 3], got {list(frames.shape)}")
    n = len(frames)
    if n == 0:
        raise ValueError("frames has 0 frames")
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    take = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
    if interval is None:
        interval = int(round(1000 / 30 * n / len(take)))
    fig, ax = plt.subplots(figsize=(size, size), dpi=dpi, layout="constrained")
    artist = SkeletonArtist(ax, frames[take[0]], show_face_points=False)
    _skeleton_axes(ax, skeleton_limits(frames[take]))
    label = ax.text(0.02, 0.02, "", transform=ax.transAxes, fontsize=8, color=COLORS["neutral"])
    if title:
        ax.set_title(title, fontsize=9)

    def update(i):
        label.set_text(f"frame {take[i] + 1}/{n}")
        return [*artist.update(frames[take[i]]), label]

    anim = animation.FuncAnimation(fig, update, frames=len(take), interval=interval, blit=False)
    plt.close(fig)             # the animation is shown as HTML, not as a static figure
    return anim


def animation_html(anim: animation.FuncAnimation, alt: str | None = None) -> str:
    """The animation as self-contained HTML/JavaScript (`to_jshtml`), looping; chapter 1.

    `alt` is the description of the animation for readers who cannot see it: it becomes the
    ``alt`` attribute of the image the player shows (MyST-NB's cell metadata sets alt text of
    static figures only).
    """
    html = anim.to_jshtml(default_mode="loop")
    if alt:
        html = html.replace('<img id="_anim_img', f'<img alt="{escape(alt, quote=True)}" id="_anim_img', 1)
    return html


def plot_selected_landmarks(frame, left_dominant: bool = True, title: str | None = None) -> Figure:
    """A skeleton with the 66 model landmarks marked by group: 40 lips, 21 hand, 5 pose (chapter 2).

    Left: the whole frame (context); right: a zoom on the selected landmarks, the 5 pose
    landmarks numbered with their column in the model input (61-65).
    """
    frame = _check_frame(frame)
    idxs = LANDMARK_IDXS_LEFT_DOMINANT0 if left_dominant else LANDMARK_IDXS_RIGHT_DOMINANT0
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.8))
    for ax in axes:
        SkeletonArtist(ax, frame)
        for artist in ax.lines:
            artist.set_alpha(0.25)
    for group, cols in GROUPS.items():
        pts = frame[idxs[cols], :2]
        for ax in axes:
            ax.scatter(pts[:, 0], pts[:, 1], s=14, color=COLORS[group], zorder=5,
                       edgecolor="white", linewidth=0.4, label=f"{group} ({len(cols)})")
    _skeleton_axes(axes[0], skeleton_limits(frame))
    pts = frame[idxs, :2]
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts):
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        span = max(hi - lo) * 1.12
        c = (lo + hi) / 2
        _skeleton_axes(axes[1], ((c[0] - span / 2, c[0] + span / 2), (c[1] + span / 2, c[1] - span / 2)))
    else:
        _skeleton_axes(axes[1], skeleton_limits(frame))
    for col in GROUPS["pose"]:
        x, y = frame[idxs[col], :2]
        if np.isfinite(x) and np.isfinite(y):
            axes[1].annotate(str(col), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7.5,
                             color=COLORS["pose"])
    axes[0].set_title("whole frame")
    axes[1].set_title("the 66 model landmarks")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig


# --------------------------------------------------------------------------------------------
# Data exploration (chapter 1)
# --------------------------------------------------------------------------------------------
def _bar(ax, counts: pd.Series, color, label_ticks: bool):
    ax.bar(np.arange(len(counts)), counts.to_numpy(), color=color, width=0.8)
    if label_ticks:
        ax.set_xticks(np.arange(len(counts)))
        ax.set_xticklabels([str(i) for i in counts.index], rotation=90, fontsize=7)
    else:
        ax.set_xticks([])
    ax.grid(axis="x", visible=False)


def plot_clip_counts(clips: pd.DataFrame, max_labels: int = 40) -> Figure:
    """Clips per sign and clips per participant, sorted, as two bar charts (chapter 1).

    `clips` is `dataset.read_clips`'s table (columns sign, participant_id). Tick labels are
    written when there are at most `max_labels` bars.
    """
    for col in ("sign", "participant_id"):
        if col not in clips:
            raise ValueError(f"clips lacks column {col!r}; expected dataset.read_clips's table")
    per_sign = clips["sign"].value_counts()
    per_part = clips["participant_id"].value_counts()
    n_sign, n_part = len(per_sign), len(per_part)
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.2), width_ratios=[max(n_sign, 8), max(n_part, 8)])
    _bar(axes[0], per_sign, COLORS["hand"], n_sign <= max_labels)
    axes[0].set_title(f"clips per sign ({n_sign} signs)")
    axes[0].set_ylabel("clips")
    _bar(axes[1], per_part, COLORS["pose"], n_part <= max_labels)
    axes[1].set_title(f"clips per participant ({n_part})")
    for ax, counts in zip(axes, (per_sign, per_part)):
        ax.axhline(counts.mean(), color=COLORS["neutral"], lw=0.8, ls="--")
    return fig


def plot_frame_histogram(n_frames, n_hand_frames=None, input_size: int = INPUT_SIZE,
                         ax=None) -> Figure:
    """Histogram of frames per clip, with median, mean and the model's 64-frame boundary (chapter 1).

    `n_frames`: frames in each file; `n_hand_frames` (optional): frames in which the dominant
    hand is visible, the frames preprocessing keeps. Clips with fewer kept frames than
    `input_size` are padded, longer ones pooled.
    """
    n_frames = np.asarray(n_frames)
    if n_frames.ndim != 1 or n_frames.size == 0:
        raise ValueError("n_frames must be a non-empty 1-D array")
    fig, ax = _fig_ax(ax, (WIDTH, 3.2))
    top = max(float(np.percentile(n_frames, 99)), input_size * 1.2)
    bins = np.linspace(0, top, 41)
    ax.hist(np.clip(n_frames, 0, top), bins=bins, color=COLORS["hand"], alpha=0.75,
            label="frames in the file")
    if n_hand_frames is not None:
        ax.hist(np.clip(np.asarray(n_hand_frames), 0, top), bins=bins, histtype="step", lw=1.6,
                color=COLORS["lips"], label="frames with the dominant hand")
    med, mean = np.median(n_frames), np.mean(n_frames)
    ax.axvline(med, color=COLORS["neutral"], lw=1, label=f"median {med:.0f}")
    ax.axvline(mean, color=COLORS["neutral"], lw=1, ls=":", label=f"mean {mean:.1f}")
    ax.axvline(input_size, color=COLORS["accent"], lw=1.6, ls="--", label=f"{input_size}: pad below, pool above")
    ax.set_xlabel(f"frames per clip (clipped at the 99th percentile; max {int(n_frames.max())})")
    ax.set_ylabel("clips")
    ax.set_title("clip length")
    ax.legend()
    return fig


def plot_hand_presence(summary: pd.DataFrame) -> Figure:
    """Missing-hand rates and the dominant-hand split (chapter 1).

    `summary` is `dataset.clip_summary`'s table: one row per clip with `left_hand_missing` and
    `right_hand_missing` (fraction of the clip's frames without that hand), `dominant`
    ("left"/"right") and optionally `participant_id`. Left: distribution of the missing
    fractions per hand; right: left- and right-dominant clips (per participant if available).
    """
    for col in ("left_hand_missing", "right_hand_missing", "dominant"):
        if col not in summary:
            raise ValueError(f"summary lacks column {col!r}; expected dataset.clip_summary's table")
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.2), width_ratios=[1, 1.3])
    bins = np.linspace(0, 1, 21)
    for hand in ("left", "right"):
        missing = summary[f"{hand}_hand_missing"]
        axes[0].hist(missing, bins=bins, histtype="step", lw=1.6, color=COLORS[f"{hand}_hand"],
                     label=f"{hand} hand (mean {missing.mean():.0%})")
    axes[0].set_xlabel("fraction of frames without the hand")
    axes[0].set_ylabel("clips")
    axes[0].set_title("missing hands")
    axes[0].legend(loc="upper center")
    if "participant_id" in summary:
        table = (summary.groupby(["participant_id", "dominant"]).size().unstack(fill_value=0)
                 .reindex(columns=["left", "right"], fill_value=0))
        x = np.arange(len(table))
        axes[1].bar(x, table["left"], color=COLORS["left_hand"], label="left-dominant")
        axes[1].bar(x, table["right"], bottom=table["left"], color=COLORS["right_hand"], label="right-dominant")
        axes[1].set_xticks(x)
        axes[1].set_xticklabels([str(p) for p in table.index], rotation=90, fontsize=7)
        axes[1].set_xlabel("participant")
        axes[1].grid(axis="x", visible=False)
        axes[1].legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncols=2, borderaxespad=0)
    else:
        counts = summary["dominant"].value_counts().reindex(["left", "right"], fill_value=0)
        axes[1].bar([0, 1], counts, color=[COLORS["left_hand"], COLORS["right_hand"]])
        axes[1].set_xticks([0, 1])
        axes[1].set_xticklabels(["left-dominant", "right-dominant"])
    share = (summary["dominant"] == "left").mean()
    axes[1].set_title(f"dominant hand ({share:.0%} of clips left)", pad=30 if "participant_id" in summary else 6)
    axes[1].set_ylabel("clips")
    return fig


# --------------------------------------------------------------------------------------------
# Preprocessing and statistics (chapter 2)
# --------------------------------------------------------------------------------------------
def plot_preprocessing(raw, x, idxs, position=None, input_size: int = INPUT_SIZE) -> Figure:
    """What preprocessing does to one clip (chapter 2), in four panels.

    `raw` [n0, 543, 3] is the file, `x` [64, 66, 3] and `idxs` [64] the preprocessed clip,
    `position` [64] (optional) the positional-embedding row of each output frame.
    (a) which raw frames show the left and right hand; (b) the dominant wrist's x in the raw
    frames; (c) the wrist's x in the 64 model frames (mirrored for right-dominant clips, 0 on
    padding); (d) `non_empty_frame_idxs` and the position index, where the last frame shares
    row 64 with the padding.
    """
    raw = np.asarray(raw, dtype=np.float32)
    x = np.asarray(x)
    idxs = np.asarray(idxs)
    if raw.ndim != 3 or raw.shape[1] != N_ROWS:
        raise ValueError(f"raw must have shape [n, {N_ROWS}, 3], got {list(raw.shape)}")
    if x.shape[-2] != N_COLS or len(x) != len(idxs):
        raise ValueError(f"x must be [{input_size}, {N_COLS}, 3] and idxs [{input_size}]")
    hands = dominant_hand(raw)
    left, right = hands.left_values > 0, hands.right_values > 0
    left_dominant = bool(hands.left)
    wrist_row = LEFT_HAND0 if left_dominant else RIGHT_HAND0
    side = "left" if left_dominant else "right"
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 5.0))
    ax = axes[0, 0]
    t = np.arange(len(raw))
    ax.scatter(t[left], np.full(left.sum(), 1), marker="|", s=60, color=COLORS["left_hand"])
    ax.scatter(t[right], np.full(right.sum(), 0), marker="|", s=60, color=COLORS["right_hand"])
    ax.set_yticks([0, 1])
    ax.set_yticklabels(["right hand", "left hand"])
    ax.set_ylim(-0.6, 1.6)
    ax.set_xlabel("raw frame")
    ax.set_title(f"(a) hands seen: {side} dominant")
    ax = axes[0, 1]
    ax.plot(t, raw[:, wrist_row, 0], ".-", color=COLORS[f"{side}_hand"], ms=3, lw=1)
    ax.set_xlabel("raw frame")
    ax.set_ylabel("wrist x")
    ax.set_title(f"(b) raw {side} wrist x ({len(raw)} frames)")
    ax = axes[1, 0]
    pad = idxs == -1
    slot = np.arange(len(idxs))
    wx = x[:, 40, 0]
    ax.plot(slot, wx, ".-", color=COLORS["hand"], ms=3, lw=1, label="wrist x (column 40)")
    if pad.any():
        ax.axvspan(slot[pad][0] - 0.5, len(idxs) - 0.5, color=COLORS["face"], alpha=0.2, label="padding (zeros)")
    ax.set_xlabel("model frame")
    ax.set_ylabel("x" + (" (mirrored: 1 - x)" if not left_dominant else ""))
    ax.set_title(f"(c) model input: {int((~pad).sum())} frames used")
    ax.legend(loc="best")
    ax = axes[1, 1]
    if position is not None:
        plot_position_index(idxs, position, input_size=input_size, ax=ax)
        ax.set_title("(d) positional-embedding row")
        ax.legend(loc="upper left", fontsize=7.5)
    else:
        ax.plot(slot[~pad], idxs[~pad], ".-", color=COLORS["pose"], ms=3, lw=1)
        ax.set_xlabel("model frame")
        ax.set_ylabel("original frame index")
        ax.set_title("(d) non_empty_frame_idxs")
    return fig


def landmark_box_stats(values: list[np.ndarray], whis=(5, 95)) -> list[dict]:
    """Box statistics (median, quartiles, `whis` percentile whiskers) for `Axes.bxp`.

    Percentiles are computed with numpy once per landmark, which is much faster than letting
    `boxplot` sort millions of values and gives the same boxes. Empty landmarks give NaN boxes.
    """
    out = []
    for v in values:
        v = np.asarray(v, dtype=np.float64)
        if v.size == 0:
            q = [np.nan] * 5
        else:
            q = np.percentile(v, [whis[0], 25, 50, 75, whis[1]])
        out.append(dict(whislo=q[0], q1=q[1], med=q[2], q3=q[3], whishi=q[4], fliers=[]))
    return out


def plot_landmark_boxplots(values_by_dim: dict, group: str, labels=None) -> Figure:
    """One box per landmark for x, y and z of a group, whiskers at 5-95%, no fliers (chapter 2).

    `values_by_dim` maps "x", "y", "z" to a list (one entry per landmark) of the landmark's
    non-zero values (`statistics.landmark_values`), as the seed's `get_*_mean_std` plots.
    """
    dims = [d for d in DIM_NAMES if d in values_by_dim]
    if not dims:
        raise ValueError(f"values_by_dim needs some of {DIM_NAMES}, got {sorted(values_by_dim)}")
    n = len(values_by_dim[dims[0]])
    fig, axes = plt.subplots(len(dims), 1, figsize=(WIDTH, 1.9 * len(dims) + 0.3), sharex=True)
    axes = np.atleast_1d(axes)
    color = COLORS.get(group, COLORS["hand"])
    for ax, dim in zip(axes, dims):
        stats = landmark_box_stats(values_by_dim[dim])
        ax.bxp(stats, positions=np.arange(n), showfliers=False, widths=0.6, patch_artist=True,
               boxprops=dict(facecolor=color, alpha=0.55, edgecolor=color, lw=0.8),
               medianprops=dict(color="black", lw=1), whiskerprops=dict(color=color, lw=0.8),
               capprops=dict(color=color, lw=0.8))
        ax.set_ylabel(dim)
        ax.grid(axis="x", visible=False)
    axes[-1].set_xticks(np.arange(n))
    axes[-1].set_xticklabels([str(l) for l in (labels if labels is not None else range(n))],
                             fontsize=7, rotation=90 if n > 30 else 0)
    axes[-1].set_xlabel("landmark (column in the group)")
    axes[0].set_title(f"{group}: non-zero values per landmark (box 25-75%, whiskers 5-95%)")
    return fig


def plot_normalisation(before, after, group_cols: dict | None = None) -> Figure:
    """Histograms of x and y per landmark group before and after standardisation (chapter 2).

    `before` [..., 66, >=2] (prepared frames) and `after` [..., 66, 2] (`statistics.normalise`);
    zeros (missing) are left out of both.
    """
    group_cols = group_cols or GROUPS
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 4.4))
    for j, dim in enumerate(("x", "y")):
        for i, (data, when) in enumerate(((before, "before"), (after, "after"))):
            ax = axes[j, i]
            for group, cols in group_cols.items():
                v = np.asarray(data[..., cols, j]).ravel()
                v = v[v != 0]
                if v.size == 0:
                    continue
                lo, hi = np.percentile(v, [0.5, 99.5])
                ax.hist(v, bins=np.linspace(lo, hi, 50), histtype="step", lw=1.4, density=True,
                        color=COLORS[group], label=group)
            ax.set_title(f"{dim} {when} normalisation")
            ax.set_yticks([])
            if i == 1:
                ax.axvline(0, color=COLORS["neutral"], lw=0.8, ls=":")
    axes[0, 0].legend()
    return fig


# --------------------------------------------------------------------------------------------
# Attention and embedding (chapter 3)
# --------------------------------------------------------------------------------------------
def plot_matrix(values, row_labels=None, col_labels=None, title: str = "", ax=None, fmt: str = "{:.2f}",
                cmap: str = "Blues", vmin=None, vmax=None) -> Figure:
    """A small matrix as an annotated heatmap (chapter 3's worked attention example)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be a 2-D matrix, got shape {values.shape}")
    fig, ax = _fig_ax(ax, (0.55 * values.shape[1] + 1.2, 0.45 * values.shape[0] + 0.9))
    finite = values[np.isfinite(values)]
    vmin = finite.min() if vmin is None and finite.size else vmin
    vmax = finite.max() if vmax is None and finite.size else vmax
    ax.imshow(np.where(np.isfinite(values), values, np.nan), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    mid = (vmin + vmax) / 2 if vmin is not None and vmax is not None else 0
    for (r, c), v in np.ndenumerate(values):
        text = "-inf" if np.isneginf(v) else fmt.format(v)
        ax.text(c, r, text, ha="center", va="center", fontsize=8,
                color="white" if np.isfinite(v) and v > mid else "black")
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    ax.set_xticklabels(col_labels if col_labels is not None else range(values.shape[1]))
    ax.set_yticklabels(row_labels if row_labels is not None else range(values.shape[0]))
    ax.grid(False)
    ax.tick_params(length=0)
    if title:
        ax.set_title(title)
    return fig


def plot_matrices(matrices, titles, row_labels=None, col_labels=None, fmt: str = "{:.2f}",
                  cmap: str = "Blues", shared_scale: bool = True) -> Figure:
    """Several small annotated matrices side by side (chapter 3's worked example).

    With `shared_scale` all panels use one colour scale, so equal numbers have equal colours.
    """
    matrices = [np.asarray(m, dtype=np.float64) for m in matrices]
    if len(matrices) != len(titles):
        raise ValueError("matrices and titles must have the same length")
    n = len(matrices)
    rows = max(m.shape[0] for m in matrices)
    fig, axes = plt.subplots(1, n, figsize=(min(WIDTH, 2.3 * n + 0.4), 0.42 * rows + 1.1), squeeze=False)
    finite = np.concatenate([m[np.isfinite(m)] for m in matrices])
    vmin, vmax = (finite.min(), finite.max()) if shared_scale and finite.size else (None, None)
    for ax, m, title in zip(axes[0], matrices, titles):
        plot_matrix(m, row_labels, col_labels, title=title, ax=ax, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax)
    return fig


def plot_attention_maps(maps, titles, n_valid: int | None = None, suptitle: str | None = None) -> Figure:
    """Attention weights [T(query), T(key)] side by side, padding shaded (chapter 3).

    `maps` is a list of 2-D arrays; `n_valid` frames (the rest is padding) are marked with
    dashed lines, so one sees which rows and columns the mask removed.
    """
    maps = [np.asarray(m) for m in maps]
    if len(maps) != len(titles):
        raise ValueError("maps and titles must have the same length")
    fig, axes = plt.subplots(1, len(maps), figsize=(WIDTH, WIDTH / len(maps) + 0.5), squeeze=False)
    vmax = max(float(np.nanmax(m)) for m in maps)
    for ax, m, title in zip(axes[0], maps, titles):
        im = ax.imshow(m, cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9.5)
        ax.set_xlabel("key frame")
        ax.grid(False)
        if n_valid is not None and n_valid < m.shape[1]:
            ax.axvline(n_valid - 0.5, color="white", ls="--", lw=0.9)
            ax.axhline(n_valid - 0.5, color="white", ls="--", lw=0.9)
    axes[0, 0].set_ylabel("query frame")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="attention weight")
    if suptitle:
        fig.suptitle(suptitle, fontweight="bold")
    return fig


def plot_position_index(idxs, position, input_size: int = INPUT_SIZE, ax=None) -> Figure:
    """Positional-embedding row of each model frame for one clip (chapter 3): padding and the last frame hit 64."""
    idxs, position = np.asarray(idxs), np.asarray(position)
    fig, ax = _fig_ax(ax, (WIDTH, 2.6))
    slot = np.arange(len(position))
    pad = idxs == -1
    ax.bar(slot[~pad], position[~pad], color=COLORS["hand"], width=0.8, label="frame of the clip")
    ax.bar(slot[pad], position[pad], color=COLORS["face"], width=0.8, label="padding")
    quirk = (~pad) & (position == input_size)
    if quirk.any():
        ax.bar(slot[quirk], position[quirk], color=COLORS["lips"], width=0.8,
               label=f"last frame: row {input_size}, same as padding")
    ax.set_xlabel("model frame")
    ax.set_ylabel("embedding row")
    ax.set_title("positional index int(idx / max(idx) * 64)")
    ax.legend(loc="lower right")
    return fig


def plot_landmark_weights(weights, names=("lips", "hand", "pose"), ax=None) -> Figure:
    """Softmax weights of the three landmark groups (chapter 5); they start equal (1/3 each)."""
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if weights.size != len(names):
        raise ValueError(f"expected {len(names)} weights, got {weights.size}")
    fig, ax = _fig_ax(ax, (3.4, 2.6))
    ax.bar(range(len(names)), weights, color=[COLORS.get(n, COLORS["hand"]) for n in names])
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names)
    ax.axhline(1 / len(names), color=COLORS["neutral"], lw=0.8, ls="--")
    ax.set_ylim(0, max(0.5, weights.max() * 1.15))
    ax.set_ylabel("softmax weight")
    ax.set_title("landmark-group weights")
    ax.grid(axis="x", visible=False)
    return fig


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
    for name, (lr, wd) in schedules.items():
        epochs = np.arange(1, len(lr) + 1)
        axes[0].plot(epochs, lr, lw=1.8, label=name)
        axes[1].plot(epochs, wd, lw=1.8, label=name)
    axes[0].set_title("learning rate")
    axes[1].set_title("weight decay per step")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    axes[0].legend()
    return fig


def plot_history(history: pd.DataFrame) -> Figure:
    """Loss, accuracy, top-5 and top-10 accuracy per epoch, training and validation (chapter 4).

    `history` is the history.csv table `training.train` writes (columns epoch, loss, acc,
    top_5_acc, top_10_acc and their val_ twins when there was a validation set).
    """
    panels = [("loss", "loss"), ("acc", "accuracy"), ("top_5_acc", "top-5 accuracy"),
              ("top_10_acc", "top-10 accuracy")]
    missing = [k for k, _ in panels if k not in history]
    if missing or "epoch" not in history:
        raise ValueError(f"history lacks columns {missing or ['epoch']}")
    fig, axes = plt.subplots(1, 4, figsize=(WIDTH, 2.5), sharex=True)
    for ax, (key, title) in zip(axes, panels):
        ax.plot(history["epoch"], history[key], "o-", ms=2.5, lw=1.5, color=COLORS["train"], label="train")
        if f"val_{key}" in history:
            ax.plot(history["epoch"], history[f"val_{key}"], "o-", ms=2.5, lw=1.5, color=COLORS["val"],
                    label="validation")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if key != "loss":
            ax.set_ylim(0, 1.02)
    axes[0].legend()
    return fig


# --------------------------------------------------------------------------------------------
# Evaluation (chapter 5)
# --------------------------------------------------------------------------------------------
def plot_f1_per_sign(report: pd.DataFrame, n_label: int = 8) -> Figure:
    """F1 per sign, sorted (chapter 5); `report` is `evaluation.classification_report_df`.

    Up to 40 signs: horizontal bars with every name. More (the 250 real signs): a sorted
    profile with the `n_label` best and worst signs named.
    """
    if "f1-score" not in report:
        raise ValueError("report lacks column 'f1-score'")
    f1 = report["f1-score"].astype(float).sort_values()
    mean = f1.mean()
    if len(f1) <= 40:
        fig, ax = plt.subplots(figsize=(WIDTH, 0.2 * len(f1) + 1.0))
        colors = plt.get_cmap("RdYlGn")(f1.to_numpy())
        ax.barh(np.arange(len(f1)), f1.to_numpy(), color=colors, edgecolor="none")
        ax.set_yticks(np.arange(len(f1)))
        ax.set_yticklabels(f1.index, fontsize=7.5)
        ax.set_xlim(0, 1)
        ax.set_xlabel("F1")
        ax.axvline(mean, color=COLORS["neutral"], ls="--", lw=0.9, label=f"macro F1 {mean:.2f}")
        ax.grid(axis="y", visible=False)
    else:
        fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
        ax.bar(np.arange(len(f1)), f1.to_numpy(), color=plt.get_cmap("RdYlGn")(f1.to_numpy()), width=1.0)
        ax.set_xticks([])
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("F1")
        ax.set_xlabel(f"{len(f1)} signs, sorted by F1")
        ax.axhline(mean, color=COLORS["neutral"], ls="--", lw=0.9, label=f"macro F1 {mean:.2f}")
        for rank in list(range(min(n_label, len(f1)))) + list(range(max(len(f1) - n_label, n_label), len(f1))):
            ax.annotate(f1.index[rank], (rank, f1.iloc[rank]), rotation=90, fontsize=6.5,
                        xytext=(0, 3), textcoords="offset points", ha="center", va="bottom")
    ax.set_title("F1 per sign (held-out participants)")
    ax.legend(loc="lower right")
    return fig


def plot_confusion(cm: pd.DataFrame, normalise: bool = True) -> Figure:
    """Confusion heatmap among the most-confused signs (chapter 5).

    `cm` is `evaluation.confused_signs_matrix` (rows true, columns predicted). With `normalise`
    each row is divided by the row's clips among these signs.
    """
    if cm.shape[0] == 0:
        fig, ax = plt.subplots(figsize=(3.5, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no confusions: every clip was classified correctly", ha="center", va="center")
        return fig
    values = cm.to_numpy(dtype=np.float64)
    if normalise:
        rows = values.sum(axis=1, keepdims=True)
        values = np.divide(values, rows, out=np.zeros_like(values), where=rows > 0)
    n = len(cm)
    size = min(5.0, 0.38 * n + 1.6)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    for (r, c), v in np.ndenumerate(values):
        if v > 0:
            ax.text(c, r, f"{v:.2f}" if normalise else f"{int(v)}", ha="center", va="center", fontsize=7,
                    color="white" if v > (0.5 if normalise else values.max() / 2) else "black")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(cm.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticklabels(cm.index, fontsize=8)
    ax.set_xlabel("predicted sign")
    ax.set_ylabel("true sign")
    ax.grid(False)
    ax.set_title("most-confused signs" + (" (row-normalised)" if normalise else ""))
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def plot_topk(ks, accuracies, ax=None) -> Figure:
    """Top-k accuracy against k (chapter 5)."""
    ks, accuracies = np.asarray(ks), np.asarray(accuracies, dtype=np.float64)
    if ks.shape != accuracies.shape:
        raise ValueError("ks and accuracies must have the same length")
    fig, ax = _fig_ax(ax, (3.4, 2.7))
    ax.plot(ks, accuracies, "o-", color=COLORS["hand"], lw=1.6)
    for k, a in zip(ks, accuracies):
        ax.annotate(f"{a:.2f}", (k, a), xytext=(0, -12), textcoords="offset points", ha="center", fontsize=7.5)
    ax.set_xscale("log")
    ax.set_xticks(ks)
    ax.set_xticklabels([str(k) for k in ks])
    ax.minorticks_off()
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("k")
    ax.set_ylabel("accuracy")
    ax.set_title("top-k accuracy")
    return fig


def plot_per_participant(table: pd.DataFrame, ax=None) -> Figure:
    """Accuracy per held-out participant with the number of clips (chapter 5)."""
    for col in ("participant_id", "accuracy", "n_clips"):
        if col not in table:
            raise ValueError(f"table lacks column {col!r}")
    fig, ax = _fig_ax(ax, (3.4, 2.7))
    x = np.arange(len(table))
    ax.bar(x, table["accuracy"], color=COLORS["pose"], width=0.6)
    for xi, (acc, n) in enumerate(zip(table["accuracy"], table["n_clips"])):
        ax.annotate(f"{acc:.2f}\n{int(n)} clips", (xi, acc), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels([str(p) for p in table["participant_id"]])
    ax.set_ylim(0, 1.25)
    ax.set_xlabel("participant")
    ax.set_ylabel("accuracy")
    ax.set_title("per participant")
    ax.grid(axis="x", visible=False)
    return fig


# --------------------------------------------------------------------------------------------
# Export and masking (chapter 6)
# --------------------------------------------------------------------------------------------
def plot_probability_agreement(p_keras, p_tflite, ax=None) -> Figure:
    """Keras against TFLite class probabilities, one point per (clip, class) (chapter 6)."""
    a, b = np.asarray(p_keras).ravel(), np.asarray(p_tflite).ravel()
    if a.shape != b.shape:
        raise ValueError("probability arrays must have the same shape")
    fig, ax = _fig_ax(ax, (3.4, 3.2))
    ax.scatter(a, b, s=12, alpha=0.6, color=COLORS["hand"], edgecolor="none")
    top = max(float(a.max()), float(b.max()), 1e-3) * 1.05
    ax.plot([0, top], [0, top], color=COLORS["neutral"], lw=0.8, ls="--")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_aspect("equal")
    ax.set_xlabel("Keras probability")
    ax.set_ylabel("TFLite probability")
    ax.set_title(f"max difference {np.abs(a - b).max():.1e}")
    return fig


def plot_masking_comparison(table: pd.DataFrame, metric: str = "accuracy", by: str = "attention_mask",
                            ax=None) -> Figure:
    """A metric for the original query masking against key masking (chapter 6).

    `table` has one row per run with columns `by` and `metric` (several rows per mode, e.g.
    seeds or repeated predictions, are drawn as points over the bar of their mean).
    """
    for col in (by, metric):
        if col not in table:
            raise ValueError(f"table lacks column {col!r}")
    fig, ax = _fig_ax(ax, (3.6, 2.8))
    modes = list(dict.fromkeys(table[by]))
    for i, mode in enumerate(modes):
        v = table.loc[table[by] == mode, metric].astype(float).to_numpy()
        ax.bar(i, v.mean(), color=CYCLE[i % len(CYCLE)], alpha=0.6, width=0.6)
        ax.scatter(np.full(v.size, i), v, color=CYCLE[i % len(CYCLE)], s=14, zorder=3)
        ax.annotate(f"{v.mean():.3f}", (i, v.mean()), xytext=(0, 4), textcoords="offset points",
                    ha="center", fontsize=8)
    ax.set_xticks(range(len(modes)))
    ax.set_xticklabels([str(m) for m in modes])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(by.replace("_", " "))
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} by {by.replace('_', ' ')}")
    ax.grid(axis="x", visible=False)
    return fig


# --------------------------------------------------------------------------------------------
# Real beside synthetic (chapters 1, 2, 5): the real sample shipped in gislr_utils/data/real_sample
# --------------------------------------------------------------------------------------------
def plot_skeleton_pair(frame_a, frame_b, titles) -> Figure:
    """Two raw frames [543, 3] side by side, each on its own scale (chapter 1: real vs synthetic)."""
    if len(titles) != 2:
        raise ValueError(f"titles must hold 2 titles, got {len(titles)}")
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.7))
    for ax, frame, title in zip(axes, (frame_a, frame_b), titles):
        frame = _check_frame(frame)
        SkeletonArtist(ax, frame)
        _skeleton_axes(ax, skeleton_limits(frame))
        ax.set_title(title, fontsize=9.5)
    _skeleton_legend(axes[1], loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return fig


def animate_clip_pair(frames_a, frames_b, titles, max_frames: int = 20, size: float = 2.6,
                      dpi: int = 72) -> animation.FuncAnimation:
    """Two clips [n, 543, 3] playing side by side (chapter 1), for `animation_html`.

    Each clip is shown at `max_frames` (or fewer) evenly spaced frames from its first to its
    last, so both start and end together whatever their lengths; the frame counter of each
    panel gives the real frame. The pace is the longer clip's at 30 frames per second.
    """
    clips = [np.asarray(f, dtype=np.float32) for f in (frames_a, frames_b)]
    for f in clips:
        if f.ndim != 3 or f.shape[1] != N_ROWS or len(f) == 0:
            raise ValueError(f"frames must have shape [n>0, {N_ROWS}, 3], got {list(f.shape)}")
    if len(titles) != 2:
        raise ValueError(f"titles must hold 2 titles, got {len(titles)}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    steps = min(max_frames, max(len(f) for f in clips))
    takes = [np.linspace(0, len(f) - 1, steps).round().astype(int) for f in clips]
    interval = int(round(1000 / 30 * max(len(f) for f in clips) / steps))
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size), dpi=dpi, layout="constrained")
    artists, labels = [], []
    for ax, f, take, title in zip(axes, clips, takes, titles):
        artists.append(SkeletonArtist(ax, f[take[0]], show_face_points=False))
        _skeleton_axes(ax, skeleton_limits(f[take]))
        labels.append(ax.text(0.02, 0.02, "", transform=ax.transAxes, fontsize=8, color=COLORS["neutral"]))
        ax.set_title(title, fontsize=9)

    def update(i):
        out = []
        for artist, label, f, take in zip(artists, labels, clips, takes):
            label.set_text(f"frame {take[i] + 1}/{len(f)}")
            out += [*artist.update(f[take[i]]), label]
        return out

    anim = animation.FuncAnimation(fig, update, frames=steps, interval=interval, blit=False)
    plt.close(fig)
    return anim


def plot_real_vs_synthetic_boxplots(values_a: dict, values_b: dict, group: str, labels=None,
                                    names=("real", "synthetic"), dims=("x", "y")) -> Figure:
    """Per-landmark boxes of two data sets, side by side, for x and y of a group (chapter 2).

    `values_a`/`values_b` map "x", "y" (and "z") to one array of non-zero values per landmark
    (`statistics.landmark_values` of each data set's prepared clips). Boxes 25-75%, whiskers
    5-95%, no fliers; data set `names[0]` in black outline, `names[1]` filled.
    """
    dims = [d for d in dims if d in values_a and d in values_b]
    if not dims:
        raise ValueError("values_a and values_b need the same dimensions (x, y, z)")
    n = len(values_a[dims[0]])
    if any(len(values_a[d]) != n or len(values_b[d]) != n for d in dims):
        raise ValueError("both data sets need one value array per landmark")
    fig, axes = plt.subplots(len(dims), 1, figsize=(WIDTH, 2.0 * len(dims) + 0.5), sharex=True)
    axes = np.atleast_1d(axes)
    color = COLORS.get(group, COLORS["hand"])
    pos = np.arange(n)
    for ax, dim in zip(axes, dims):
        for values, offset, style in ((values_a, -0.2, "real"), (values_b, 0.2, "synthetic")):
            filled = style == "synthetic"
            edge = color if filled else "black"
            ax.bxp(landmark_box_stats(values[dim]), positions=pos + offset, showfliers=False,
                   widths=0.35, patch_artist=True,
                   boxprops=dict(facecolor=color if filled else "white", alpha=0.6 if filled else 1.0,
                                 edgecolor=edge, lw=0.8),
                   medianprops=dict(color="black", lw=1), whiskerprops=dict(color=edge, lw=0.8),
                   capprops=dict(color=edge, lw=0.8))
        ax.set_ylabel(dim)
        ax.grid(axis="x", visible=False)
    axes[-1].set_xticks(pos)
    axes[-1].set_xticklabels([str(l) for l in (labels if labels is not None else range(n))], fontsize=7)
    axes[-1].set_xlabel("landmark (column in the group)")
    axes[0].legend(handles=[Patch(facecolor="white", edgecolor="black", label=names[0]),
                            Patch(facecolor=color, alpha=0.6, edgecolor=color, label=names[1])],
                   loc="lower left", bbox_to_anchor=(0.0, 1.02), ncols=2, borderaxespad=0)
    axes[0].set_title(f"{group}: non-zero values per landmark (box 25-75%, whiskers 5-95%)", pad=22)
    return fig


def plot_clip_comparison(summaries: dict) -> Figure:
    """Clip lengths and missing hands of several data sets (chapter 2: real vs synthetic).

    `summaries` maps a name to `dataset.clip_summary`'s table. Left: the share of clips with
    at most n frames (log scale), with the model's 64 frames marked; right: the mean share of
    frames without the dominant and without the other hand, and the share of left-dominant clips.
    """
    from .dataset import compare_summaries
    shares = compare_summaries(summaries).loc[
        ["frames without dominant hand", "frames without other hand", "left-dominant clips"]]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.2), width_ratios=[1.2, 1])
    rows = {}
    for k, (name, s) in enumerate(summaries.items()):
        n = np.sort(s["n_frames"].to_numpy())
        axes[0].step(n, np.arange(1, len(n) + 1) / len(n), where="post", color=CYCLE[k], lw=1.6,
                     label=f"{name} ({len(n)} clips, median {np.median(n):.0f})")
        rows[name] = shares[name].to_numpy(float)
    axes[0].axvline(INPUT_SIZE, color=COLORS["accent"], ls="--", lw=1.2, label=f"{INPUT_SIZE} frames")
    axes[0].set_xscale("log")
    axes[0].set_xlabel("frames in the file (log scale)")
    axes[0].set_ylabel("share of clips with at most that many")
    axes[0].set_title("clip length")
    axes[0].legend(loc="lower right", fontsize=7.5)
    names = list(rows)
    width = 0.8 / len(names)
    x = np.arange(3)
    for k, name in enumerate(names):
        axes[1].bar(x + (k - (len(names) - 1) / 2) * width, rows[name], width=width, color=CYCLE[k], label=name)
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(["frames without\ndominant hand", "frames without\nother hand",
                             "left-dominant\nclips"], fontsize=8)
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("share")
    axes[1].set_title("missing hands")
    axes[1].grid(axis="x", visible=False)
    axes[1].legend(loc="upper left", fontsize=7.5)
    return fig


def plot_seed_f1(reference: pd.DataFrame, n_label: int = 6) -> Figure:
    """The seed's F1 of its 250 signs (chapter 5): sorted, best and worst named, and its histogram.

    `reference` is `evaluation.seed_reference()`; signs whose F1 the seed's text does not give
    (NaN) are left out and counted in the title.
    """
    if "f1" not in reference:
        raise ValueError("reference lacks column 'f1'; expected evaluation.seed_reference()")
    f1 = reference["f1"].astype(float)
    missing = int(f1.isna().sum())
    f1 = f1.dropna().sort_values(kind="stable")
    if f1.empty:
        raise ValueError("reference has no F1 value")
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.4), width_ratios=[2.2, 1])
    ax = axes[0]
    ax.bar(np.arange(len(f1)), f1.to_numpy(), color=plt.get_cmap("RdYlGn")(f1.to_numpy()), width=1.0)
    worst = "\n".join(f"{s} {v:.2f}" for s, v in f1.iloc[:n_label].items())
    best = "\n".join(f"{s} {v:.2f}" for s, v in f1.iloc[::-1][:n_label].items())
    ax.text(0.03, 0.97, f"worst\n{worst}", transform=ax.transAxes, va="top", fontsize=7.5)
    ax.text(0.30, 0.97, f"best\n{best}", transform=ax.transAxes, va="top", fontsize=7.5)
    ax.axhline(f1.mean(), color=COLORS["neutral"], ls="--", lw=0.9, label=f"mean of these {f1.mean():.2f}")
    ax.set_xticks([])
    ax.set_ylim(0, 1.6)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel(f"{len(f1)} signs, sorted by F1")
    ax.set_ylabel("F1")
    ax.set_title(f"seed report: F1 per sign ({missing} signs unreadable, left out)")
    ax.legend(loc="upper right")
    axes[1].hist(f1, bins=np.linspace(0, 1, 21), orientation="horizontal", color=COLORS["hand"], alpha=0.75)
    axes[1].axhline(np.median(f1), color=COLORS["neutral"], lw=1, label=f"median {np.median(f1):.2f}")
    axes[1].set_ylim(0, 1.6)
    axes[1].set_yticks(np.linspace(0, 1, 6))
    axes[1].set_xlabel("signs")
    axes[1].set_title("distribution")
    axes[1].legend(loc="upper right")
    return fig


def plot_precision_recall_support(reference: pd.DataFrame, n_label: int = 5) -> Figure:
    """The seed's precision against recall, and F1 against support, one point per sign (chapter 5).

    Left: the `n_label` signs with the largest recall - precision gap ("magnets", predicted too
    often) and the largest precision - recall gap (predicted too rarely) are named; the diagonal
    is precision = recall. Right: F1 against the number of validation clips of the sign.
    """
    for col in ("precision", "recall", "f1", "support"):
        if col not in reference:
            raise ValueError(f"reference lacks column {col!r}; expected evaluation.seed_reference()")
    pr = reference[["precision", "recall", "f1"]].astype(float).dropna()
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.6))
    ax = axes[0]
    sc = ax.scatter(pr["recall"], pr["precision"], c=pr["f1"], cmap="RdYlGn", vmin=0, vmax=1, s=12,
                    edgecolors="none")
    ax.plot([0, 1], [0, 1], color=COLORS["neutral"], lw=0.8, ls="--")
    gap = pr["recall"] - pr["precision"]
    for sign in list(gap.nlargest(n_label).index) + list(gap.nsmallest(n_label).index):
        ax.annotate(sign, (pr.loc[sign, "recall"], pr.loc[sign, "precision"]), fontsize=7,
                    xytext=(3, 2), textcoords="offset points")
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision vs recall")
    ax.text(0.98, 0.04, "magnets:\npredicted too often", transform=ax.transAxes, ha="right",
            fontsize=7.5, color=COLORS["neutral"])
    ax.text(0.03, 0.97, "predicted\ntoo rarely", transform=ax.transAxes, va="top", fontsize=7.5,
            color=COLORS["neutral"])
    fs = reference[["f1", "support"]].dropna().astype(float)
    axes[1].scatter(fs["support"], fs["f1"], c=fs["f1"], cmap="RdYlGn", vmin=0, vmax=1, s=12, edgecolors="none")
    r = np.corrcoef(fs["support"], fs["f1"])[0, 1] if len(fs) > 2 else np.nan
    axes[1].set_xlabel("validation clips of the sign (support)")
    axes[1].set_ylabel("F1")
    axes[1].set_ylim(0, 1.05)
    axes[1].set_title(f"F1 vs support (r = {r:.2f}, {len(fs)} signs)")
    fig.colorbar(sc, ax=axes.tolist(), shrink=0.8, label="F1")
    return fig


def plot_f1_against_seed(comparison: pd.DataFrame, n_label: int = 4, title: str | None = None) -> Figure:
    """This run's F1 per sign against the seed's (chapter 5); `comparison` is `evaluation.compare_with_seed`.

    The diagonal is "as good as the seed"; the `n_label` signs that gained and lost most are named,
    and the title gives Pearson's r (when there are at least 3 signs).
    """
    for col in ("f1_run", "f1_seed", "difference"):
        if col not in comparison:
            raise ValueError(f"comparison lacks column {col!r}; expected evaluation.compare_with_seed's table")
    if comparison.empty:
        raise ValueError("comparison is empty: no sign has an F1 in both")
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.scatter(comparison["f1_seed"], comparison["f1_run"], s=14, color=COLORS["hand"], alpha=0.8,
               edgecolors="none")
    ax.plot([0, 1], [0, 1], color=COLORS["neutral"], lw=0.8, ls="--", label="same F1 as the seed")
    d = comparison["difference"].sort_values()
    for k, sign in enumerate(dict.fromkeys(list(d.index[:n_label]) + list(d.index[::-1][:n_label]))):
        ax.annotate(sign, (comparison.loc[sign, "f1_seed"], comparison.loc[sign, "f1_run"]), fontsize=7,
                    xytext=(3, 2 - 9 * (k % 3)), textcoords="offset points",
                    arrowprops=dict(arrowstyle="-", lw=0.4, color=COLORS["neutral"]) if k % 3 else None)
    ax.set_xlim(-0.02, 1.05)
    ax.set_ylim(-0.02, 1.05)
    ax.set_aspect("equal")
    ax.set_xlabel("F1 in the seed report (real data, 250 signs)")
    ax.set_ylabel("F1 of this run")
    if title is None:
        r = (np.corrcoef(comparison["f1_seed"], comparison["f1_run"])[0, 1]
             if len(comparison) >= 3 and comparison["f1_run"].std() > 0 else np.nan)
        title = f"{len(comparison)} signs, r = {r:.2f}"
    ax.set_title(title)
    ax.legend(loc="upper left")
    return fig
