"""Skeleton drawings and animations of raw GISLR frames [543, 3] (chapters 1 and 2).

One `SkeletonArtist` draws a frame as five lines (face oval, lips, pose, left hand, right hand,
each one polyline with NaN between its bones) and moves them for the animations.
"""
from __future__ import annotations

import re

from html import escape

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..landmarks import N_ROWS, TYPE_STARTS
from .style import COLORS, WIDTH, _mark

# MediaPipe hand bones (21 landmarks: wrist 0, thumb 1-4, index 5-8, middle 9-12, ring 13-16,
# little finger 17-20): the palm, then the three bones of each finger from its base.
HAND_BONES = ([(0, 1), (0, 5), (5, 9), (9, 13), (13, 17), (0, 17)]
              + [(i, i + 1) for base in (1, 5, 9, 13, 17) for i in range(base, base + 3)])
# MediaPipe pose bones of the upper body (shoulders 11/12, elbows 13/14, wrists 15/16, hands
# 17-22, hips 23/24); the legs are usually outside the picture in GISLR clips.
POSE_BONES = [(11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14),
              (14, 16), (16, 18), (16, 20), (16, 22), (18, 20), (11, 23), (12, 24), (23, 24)]
# Face oval of the MediaPipe face mesh, in drawing order.
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67,
             109, 10]
# Lips contours: the upper and lower outer lip, the upper and lower inner lip (LIPS_IDXS0).
LIPS_CONTOURS = [
    [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291],
    [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291],
    [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308],
    [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308],
]
N_FACE = TYPE_STARTS["left_hand"]      # rows 0-467: the face mesh
# The drawn parts, one line each: colour (a COLORS key) -> (first row, bones, line style).
PARTS = {
    "face": (0, list(zip(FACE_OVAL, FACE_OVAL[1:])), dict(lw=0.9, zorder=2)),
    "lips": (0, [b for c in LIPS_CONTOURS for b in zip(c, c[1:])], dict(lw=1.2, zorder=3)),
    "pose": (TYPE_STARTS["pose"], POSE_BONES, dict(lw=2.0, marker="o", ms=2.5, zorder=2)),
    "left_hand": (TYPE_STARTS["left_hand"], HAND_BONES, dict(lw=1.2, marker="o", ms=2.0, zorder=4)),
    "right_hand": (TYPE_STARTS["right_hand"], HAND_BONES, dict(lw=1.2, marker="o", ms=2.0, zorder=4)),
}
# The rows that set a drawing's limits: face, both hands and the upper body (pose 0-24).
DRAWN_ROWS = np.r_[0:N_FACE + 21, TYPE_STARTS["pose"]:TYPE_STARTS["pose"] + 25, TYPE_STARTS["right_hand"]:N_ROWS]


def _check_frame(frame) -> np.ndarray:
    frame = np.asarray(frame, dtype=np.float32)
    if frame.shape not in ((N_ROWS, 3), (N_ROWS, 2)):
        raise ValueError(f"frame must have shape [{N_ROWS}, 3] (one raw GISLR frame), got {list(frame.shape)}")
    return frame


def _xy(frame, first, bones):
    """x and y of `bones` (pairs of rows counted from `first`) as one polyline, NaN between bones."""
    ends = frame[first + np.asarray(bones), :2]                       # [bones, 2 ends, xy]
    pts = np.concatenate([ends, np.full((len(bones), 1, 2), np.nan)], axis=1)
    return pts[..., 0].ravel(), pts[..., 1].ravel()


class SkeletonArtist:
    """The lines of one skeleton drawing, moved in place by the animations (chapter 1).

    Missing landmarks (NaN) are simply not drawn, so a hand that MediaPipe lost disappears.
    """

    def __init__(self, ax, frame, face_points: bool = True):
        self.points = (ax.plot([], [], ".", ms=0.8, color=COLORS["face"], alpha=0.6, zorder=1)[0]
                       if face_points else None)
        self.lines = [ax.plot([], [], color=COLORS[name], **style)[0] for name, (_, _, style) in PARTS.items()]
        self.update(frame)

    def update(self, frame) -> list:
        """Draw `frame` [543, 3]; returns the changed artists."""
        frame = _check_frame(frame)
        if self.points is not None:
            self.points.set_data(frame[:N_FACE, 0], frame[:N_FACE, 1])
        for line, (first, bones, _) in zip(self.lines, PARTS.values()):
            line.set_data(*_xy(frame, first, bones))
        return [a for a in (self.points, *self.lines) if a is not None]


def skeleton_limits(frames, rows=DRAWN_ROWS) -> tuple[tuple[float, float], tuple[float, float]]:
    """Square x and y limits that hold `rows` (by default face, hands and upper body) of `frames`.

    `frames` is one raw frame [543, 3] or a clip [n, 543, 3]; NaN are ignored. Returns
    ((xmin, xmax), (ymax, ymin)) -- y inverted, as image coordinates grow downwards.
    """
    frames = np.asarray(frames, dtype=np.float32)
    pts = frames.reshape(-1, N_ROWS, frames.shape[-1])[:, rows, :2].reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return (0.0, 1.0), (1.0, 0.0)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, half = (lo + hi) / 2, 0.55 * max(hi - lo)          # a margin of 5% on each side
    return (centre[0] - half, centre[0] + half), (centre[1] + half, centre[1] - half)


def _skeleton_axes(ax, limits):
    """Limits from `skeleton_limits` (ymax first: y grows downwards), equal scales, no axes."""
    ax.set(xlim=limits[0], ylim=limits[1], aspect="equal", xticks=[], yticks=[])
    ax.grid(False)
    ax.spines[["left", "bottom"]].set_visible(False)


def _skeletons(frames, titles, figsize, legend: bool = True):
    """One panel per frame, each on its own scale, the parts' colours in a legend on the right."""
    fig, axes = plt.subplots(1, len(frames), figsize=figsize, squeeze=False)
    for ax, frame, title in zip(axes[0], frames, titles):
        SkeletonArtist(ax, frame)
        _skeleton_axes(ax, skeleton_limits(frame))
        ax.set_title(title)
    if legend:
        handles = [Patch(color=COLORS[k], label=k.replace("_", " ")) for k in PARTS]
        axes[0, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig, axes[0]


def plot_skeleton(frame, title: str | None = None, data: str | None = None) -> Figure:
    """Draw one raw frame [543, 3]: face mesh points and oval, lips, pose bones and both hands.

    Missing landmarks (NaN) are not drawn, so a hand that MediaPipe lost disappears. Chapter 1
    draws frames with it.
    """
    fig, _ = _skeletons([_check_frame(frame)], [title or ""], (3.6, 3.6))
    return _mark(fig, data)


def plot_skeleton_pair(frame_a, frame_b, titles) -> Figure:
    """Two raw frames [543, 3] side by side, each on its own scale (chapter 1: real vs synthetic)."""
    if len(titles) != 2:
        raise ValueError(f"titles must hold 2 titles, got {len(titles)}")
    fig, _ = _skeletons([_check_frame(frame_a), _check_frame(frame_b)], titles, (WIDTH, 3.7))
    return fig


def animate_clips(clips, titles, max_frames: int = 20, data: str | None = None) -> animation.FuncAnimation:
    """Clips [n, 543, 3] playing side by side, small (chapter 1), for `animation_html`.

    Each clip is shown at `max_frames` (or fewer) evenly spaced frames from its first to its last
    (every frame of a short clip), so that all start and end together whatever their lengths and
    the page stays light; a counter in each panel gives the real frame. The pace is the longest
    clip's at 30 frames per second (stretched by the frames skipped).
    """
    clips = [np.asarray(f, dtype=np.float32) for f in clips]
    for f in clips:
        if f.ndim != 3 or f.shape[1] != N_ROWS or len(f) == 0:
            raise ValueError(f"frames must have shape [n, {N_ROWS}, 3] with n > 0, got {list(f.shape)}")
    if len(titles) != len(clips) or max_frames < 1:
        raise ValueError(f"{len(clips)} clip(s) need as many titles (got {len(titles)}) and max_frames >= 1 "
                         f"(got {max_frames})")
    longest = max(len(f) for f in clips)
    steps, size = min(max_frames, longest), 2.8 if len(clips) == 1 else 2.6
    fig, axes = plt.subplots(1, len(clips), figsize=(size * len(clips), size), dpi=72, squeeze=False)
    panels = []
    for ax, f, title in zip(axes[0], clips, titles):
        take = np.linspace(0, len(f) - 1, steps).round().astype(int)
        label = ax.text(0.02, 0.02, "", transform=ax.transAxes, fontsize=8, color=COLORS["neutral"])
        panels.append((SkeletonArtist(ax, f[take[0]], face_points=False), label, f, take))
        _skeleton_axes(ax, skeleton_limits(f[take]))
        ax.set_title(title, fontsize=9)
    _mark(fig, data)

    def update(i):
        changed = []
        for artist, label, f, take in panels:
            label.set_text(f"frame {take[i] + 1}/{len(f)}")
            changed += [*artist.update(f[take[i]]), label]
        return changed

    anim = animation.FuncAnimation(fig, update, frames=steps, interval=round(1000 / 30 * longest / steps))
    plt.close(fig)             # the animation is shown as HTML, not as a static figure
    return anim


def animation_html(anim: animation.FuncAnimation, alt: str | None = None) -> str:
    """The animation as self-contained HTML/JavaScript (`to_jshtml`), looping; chapter 1.

    `alt` is the description of the animation for readers who cannot see it: it becomes the
    ``alt`` attribute of the image the player shows (MyST-NB's cell metadata sets alt text of
    static figures only).
    """
    html = re.sub(r"<link[^>]*font-awesome[^>]*>", "", anim.to_jshtml(default_mode="loop"))  # a CDN: the page
    if alt:                                                                             # has its own icons
        html = html.replace('<img id="_anim_img', f'<img alt="{escape(alt, quote=True)}" id="_anim_img', 1)
    return html
