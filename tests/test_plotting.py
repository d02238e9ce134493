"""The figures hold what they claim: the bones of the landmarks that are present, the frames of the
clip, the attention maps and positions given, the curves of the history..."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from gislr_utils import plotting  # noqa: E402
from gislr_utils.plotting import skeleton  # noqa: E402
from gislr_utils.landmarks import N_ROWS  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    plotting.set_style()
    yield
    plt.close("all")


def bars(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def mesh(ax):
    (quadmesh,) = [c for c in ax.collections if isinstance(c, QuadMesh)]
    return quadmesh


def random_frame(rng, left=True, right=False):
    frame = rng.uniform(0.2, 0.8, (N_ROWS, 3)).astype(np.float32)
    if not left:
        frame[468:489] = np.nan
    if not right:
        frame[522:543] = np.nan
    return frame


# --------------------------------------------------------------------------------------------------
def test_every_plotting_name_the_chapters_and_modules_use_exists():
    """`plotting.x` in a chapter, a package module or a benchmark is a name the package exports."""
    root = Path(__file__).resolve().parent.parent
    sources = [*root.glob("chapters/*.ipynb"), *root.glob("gislr_utils/*.py"), *root.glob("benchmarks/*.py")]
    used = {name for p in sources for name in re.findall(r"\bplotting\.(\w+)", p.read_text(encoding="utf-8"))}
    assert {"set_style", "plot_position_index", "animate_clips"} <= used
    assert sorted(n for n in used if not hasattr(plotting, n)) == []


def test_set_style_sets_the_book_style():
    matplotlib.rcdefaults()
    plotting.set_style()
    assert matplotlib.rcParams["axes.spines.top"] is False
    assert matplotlib.rcParams["figure.figsize"] == [plotting.WIDTH, 3.4]
    assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] == plotting.CYCLE[0]


def test_skeleton_draws_the_present_hand_and_not_the_missing_one():
    rng = np.random.default_rng(1)
    fig = plotting.plot_skeleton(random_frame(rng, left=True, right=False))
    ax = fig.axes[0]
    # face points, then one line per part: face oval, lips (4 contours), pose, left hand, right hand
    points, oval, lips, pose, left, right = ax.lines
    assert len(points.get_xdata()) == 468
    assert np.isfinite(oval.get_xdata()).sum() == 2 * (len(skeleton.FACE_OVAL) - 1)
    assert np.isfinite(lips.get_xdata()).sum() == 2 * sum(len(c) - 1 for c in skeleton.LIPS_CONTOURS)
    assert np.isfinite(pose.get_xdata()).sum() == 2 * len(skeleton.POSE_BONES)
    n_bones = len(skeleton.HAND_BONES)
    assert np.isfinite(left.get_xdata()).sum() == 2 * n_bones
    assert np.isfinite(right.get_xdata()).sum() == 0
    # the bone 0-1 of the left hand joins the wrist (row 468) to the thumb's first joint (469)
    frame = random_frame(np.random.default_rng(1), left=True, right=False)
    np.testing.assert_allclose(left.get_xdata()[:3], [frame[468, 0], frame[469, 0], np.nan])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["face", "lips", "pose", "left hand", "right hand"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1], "image coordinates: y grows downwards"
    with pytest.raises(ValueError, match="one raw GISLR frame"):
        plotting.plot_skeleton(np.zeros((66, 3)))


def test_skeleton_limits_cover_all_points_and_ignore_nan():
    frame = np.full((N_ROWS, 3), np.nan, np.float32)
    frame[:468, :2] = 0.5
    frame[470, :2] = (0.9, 0.1)
    (x0, x1), (ybottom, ytop) = plotting.skeleton_limits(frame)
    assert x0 <= 0.5 and x1 >= 0.9 and ytop <= 0.1 and ybottom >= 0.5
    (x0, x1), (ybottom, ytop) = plotting.skeleton_limits(frame, rows=[470])     # one point: a zero span
    assert (x0, x1, ybottom, ytop) == pytest.approx((0.9, 0.9, 0.1, 0.1))


def test_animation_has_at_most_max_frames_and_renders_to_html():
    rng = np.random.default_rng(3)
    clip = np.stack([random_frame(rng) for _ in range(7)])
    anim = plotting.animate_clips([clip], ["a clip"], max_frames=5)
    assert anim._save_count == 5 or len(list(anim.new_frame_seq())) == 5
    html = plotting.animation_html(anim)
    assert html.count("data:image/png;base64") == 5
    assert " alt=" not in html
    described = plotting.animation_html(anim, alt='A skeleton "signs" <hello>')
    assert described.count(' alt="A skeleton &quot;signs&quot; &lt;hello&gt;" id="_anim_img') == 1
    short = plotting.animate_clips([clip[:3]], ["short"], max_frames=5)
    assert plotting.animation_html(short).count("data:image/png;base64") == 3
    with pytest.raises(ValueError, match="n > 0"):
        plotting.animate_clips([clip[:0]], ["empty"])
    with pytest.raises(ValueError, match="as many titles"):
        plotting.animate_clips([clip, clip], ["one"])


def test_attention_maps_one_heatmap_per_map_with_the_padding_marked():
    maps = [np.full((8, 8), 1 / 8), np.eye(8)]
    fig = plotting.plot_attention_maps(maps, ["a", "b"], n_valid=5, suptitle="block 1")
    panels = fig.axes[:2]
    for ax, m in zip(panels, maps):
        np.testing.assert_allclose(mesh(ax).get_array(), m)
        assert mesh(ax).get_clim() == (0, 1.0)
        dashed = [l for l in ax.lines if l.get_linestyle() == "--"]
        assert sorted(tuple(l.get_xdata()) for l in dashed) == [(0, 1), (5, 5)]   # one vertical, one horizontal
        assert sorted(tuple(l.get_ydata()) for l in dashed) == [(0, 1), (5, 5)]
    assert [ax.get_title() for ax in panels] == ["a", "b"] and panels[0].get_ylabel() == "query frame"
    assert fig.axes[2].get_ylabel() == "attention weight"                           # the shared colour bar
    assert fig.get_suptitle() == "block 1"
    no_padding = plotting.plot_attention_maps(maps, ["a", "b"], n_valid=8)
    assert not [l for ax in no_padding.axes for l in ax.lines]
    with pytest.raises(ValueError):
        plotting.plot_attention_maps(maps, ["only one"])


def test_position_index_highlights_the_quirk():
    idxs = np.array([0, 1, 2, -1], np.float32)
    position = np.array([0, 32, 64, 64])
    fig = plotting.plot_position_index(idxs, position)
    ax = fig.axes[0]
    assert len(bars(ax)) == 3 + 1 + 1
    assert any("same as padding" in t.get_text() for t in ax.get_legend().get_texts())


def test_history_with_and_without_validation():
    h = pd.DataFrame({"epoch": [1, 2], "loss": [3.0, 2.0], "acc": [0.1, 0.5], "top_5_acc": [0.3, 0.7],
                      "top_10_acc": [0.4, 0.8]})
    assert [len(ax.lines) for ax in plotting.plot_history(h).axes] == [1, 1, 1, 1]
    for k in ("loss", "acc", "top_5_acc", "top_10_acc"):
        h[f"val_{k}"] = h[k]
    fig = plotting.plot_history(h)
    assert [len(ax.lines) for ax in fig.axes] == [2, 2, 2, 2]
    np.testing.assert_allclose(fig.axes[1].lines[1].get_ydata(), [0.1, 0.5])
    with pytest.raises(ValueError, match="history lacks"):
        plotting.plot_history(h.drop(columns="top_5_acc"))


# ------------------------------------------------------------------ real beside synthetic
def test_skeleton_pair_and_paired_animation():
    rng = np.random.default_rng(5)
    a, b = random_frame(rng, left=True), random_frame(rng, left=False, right=True)
    fig = plotting.plot_skeleton_pair(a, b, ["real", "synthetic"])
    assert [ax.get_title() for ax in fig.axes] == ["real", "synthetic"]
    # the left-hand bones are drawn only in the first panel (the second frame has no left hand)
    left = [np.isfinite(ax.lines[-2].get_xdata()).sum() for ax in fig.axes]
    assert left[0] > 0 and left[1] == 0
    long_clip = np.stack([random_frame(rng) for _ in range(9)])
    short_clip = np.stack([random_frame(rng) for _ in range(3)])
    anim = plotting.animate_clips([long_clip, short_clip], ["a", "b"], max_frames=6)
    assert plotting.animation_html(anim).count("data:image/png;base64") == 6   # both end together
    with pytest.raises(ValueError, match="2 titles"):
        plotting.plot_skeleton_pair(a, b, ["one"])
    with pytest.raises(ValueError, match="shape"):
        plotting.animate_clips([long_clip[:0], short_clip], ["a", "b"])


def test_data_label_goes_into_the_figure_title():
    idxs, position = np.array([0, 1, -1], np.float32), np.array([0, 64, 64])
    title = "positional index int(idx / max(idx) * 64)"
    assert plotting.plot_position_index(idxs, position).axes[0].get_title() == title
    assert plotting.plot_position_index(idxs, position, data="real").axes[0].get_title() == f"{title} (real)"
    maps = [np.eye(4)] * 2
    fig = plotting.plot_attention_maps(maps, ["a", "b"], suptitle="block 1", data="real")
    assert fig.get_suptitle() == "block 1 (real)" and [ax.get_title() for ax in fig.axes[:2]] == ["a", "b"]
    h = pd.DataFrame({"epoch": [1], "loss": [3.0], "acc": [0.1], "top_5_acc": [0.3], "top_10_acc": [0.4]})
    fig = plotting.plot_history(h, data="synthetic")                     # several panels: the first one
    assert [ax.get_title() for ax in fig.axes] == ["loss (synthetic)", "accuracy", "top-5 accuracy",
                                                   "top-10 accuracy"]
    frame = random_frame(np.random.default_rng(7))
    assert plotting.plot_skeleton(frame, data="real").axes[0].get_title() == "(real)"
    assert plotting.plot_skeleton(frame, title="hello", data="real").axes[0].get_title() == "hello (real)"
