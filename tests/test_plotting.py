"""The figures hold what they claim: one box per landmark at the right percentiles, one bar per sign,
the bones of the landmarks that are present, the frames of the clip, the matrices given..."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, QuadMesh  # noqa: E402
from matplotlib.patches import PathPatch, Rectangle  # noqa: E402

from gislr_utils import dataset, plotting  # noqa: E402
from gislr_utils.plotting import skeleton  # noqa: E402
from gislr_utils.landmarks import GROUPS, N_ROWS  # noqa: E402


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
    assert {"set_style", "plot_preprocessing", "animate_clip_pair"} <= used
    assert sorted(n for n in used if not hasattr(plotting, n)) == []


def test_set_style_sets_the_book_style():
    matplotlib.rcdefaults()
    plotting.set_style()
    assert matplotlib.rcParams["axes.spines.top"] is False
    assert matplotlib.rcParams["figure.figsize"] == [plotting.WIDTH, 3.4]
    assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] == plotting.CYCLE[0]


def test_boxplots_one_box_per_landmark_with_5_95_whiskers():
    rng = np.random.default_rng(0)
    values = {d: [rng.normal(i, 1 + i / 10, 500).astype(np.float32) for i in range(21)] for d in "xyz"}
    fig = plotting.plot_landmark_boxplots(values, "hand")
    axes = fig.axes
    assert len(axes) == 3
    for ax, d in zip(axes, "xyz"):
        boxes = [p for p in ax.patches if isinstance(p, PathPatch)]
        assert len(boxes) == 21
        # whiskers come in pairs per box: lower at the 5th, upper at the 95th percentile
        whiskers = [l for l in ax.lines if len(l.get_ydata()) == 2 and l.get_ydata()[0] != l.get_ydata()[1]
                    and l.get_xdata()[0] == l.get_xdata()[1]]
        assert len(whiskers) == 42
        ends = sorted(float(l.get_ydata()[1]) for l in whiskers[:2])
        assert ends == pytest.approx(sorted(np.percentile(values[d][0], [5, 95])), rel=1e-5)
        assert ax.get_ylabel() == d
    assert [t.get_text() for t in axes[-1].get_xticklabels()] == [str(i) for i in range(21)]


def test_box_stats_are_numpy_percentiles_and_empty_landmarks_are_nan():
    v = np.arange(101, dtype=np.float32)
    (s, empty) = plotting.landmark_box_stats([v, np.array([])])
    assert (s["whislo"], s["q1"], s["med"], s["q3"], s["whishi"]) == (5, 25, 50, 75, 95)
    assert s["fliers"] == [] and np.isnan(empty["med"])


def test_boxplots_need_dimensions():
    with pytest.raises(ValueError, match="values_by_dim needs"):
        plotting.plot_landmark_boxplots({"w": [np.ones(3)]}, "lips")


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


def test_selected_landmarks_marks_66_points_in_three_groups():
    rng = np.random.default_rng(2)
    fig = plotting.plot_selected_landmarks(random_frame(rng, left=True))
    for ax in fig.axes[:2]:
        scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert [len(c.get_offsets()) for c in scatters] == [len(cols) for cols in GROUPS.values()]
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["lips (40)", "hand (21)", "pose (5)"]


def test_animation_has_at_most_max_frames_and_renders_to_html():
    rng = np.random.default_rng(3)
    clip = np.stack([random_frame(rng) for _ in range(7)])
    anim = plotting.animate_clip(clip, max_frames=5)
    assert anim._save_count == 5 or len(list(anim.new_frame_seq())) == 5
    html = plotting.animation_html(anim)
    assert html.count("data:image/png;base64") == 5
    assert " alt=" not in html
    described = plotting.animation_html(anim, alt='A skeleton "signs" <hello>')
    assert described.count(' alt="A skeleton &quot;signs&quot; &lt;hello&gt;" id="_anim_img') == 1
    short = plotting.animate_clip(clip[:3], max_frames=5)
    assert plotting.animation_html(short).count("data:image/png;base64") == 3
    with pytest.raises(ValueError, match="n > 0"):
        plotting.animate_clip(clip[:0])


def test_preprocessing_figure_shades_padding_and_marks_the_last_frame():
    rng = np.random.default_rng(4)
    raw = np.stack([random_frame(rng) for _ in range(10)])
    x = np.zeros((64, 66, 3), np.float32)
    idxs = np.full(64, -1.0, np.float32)
    idxs[:10] = np.arange(10)
    position = np.where(idxs == -1, 64, (idxs / 9 * 64).astype(int))
    fig = plotting.plot_preprocessing(raw, x, idxs, position)
    d = fig.axes[3]
    colours = {matplotlib.colors.to_hex(b.get_facecolor()) for b in bars(d)}
    assert plotting.COLORS["lips"].lower() in colours     # the last frame, on the padding row
    assert len(bars(d)) == 64 + 1


def test_matrices_annotate_every_cell_on_one_colour_scale():
    m = np.array([[0.5, -np.inf], [0.25, 1.0]])
    fig = plotting.plot_matrices([m, 2 * m], ["1", "2"], ["a", "b"], ["c", "d"])
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["0.25", "0.50", "1.00"]          # -inf: blank
    assert sorted(t.get_text() for t in fig.axes[1].texts) == ["0.50", "1.00", "2.00"]
    values = mesh(ax).get_array()
    assert values.mask.tolist() == [[False, True], [False, False]]
    np.testing.assert_array_equal(values.filled(0), [[0.5, 0], [0.25, 1.0]])
    assert [mesh(a).get_clim() for a in fig.axes] == [(0.25, 2.0), (0.25, 2.0)]    # finite values only
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c", "d"]
    assert ax.get_title() == "1"
    with pytest.raises(ValueError, match="2-D"):
        plotting.plot_matrices([np.ones(3)], ["x"])
    with pytest.raises(ValueError, match="same length"):
        plotting.plot_matrices([m], ["1", "2"])


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


def test_landmark_weights_bars():
    fig = plotting.plot_landmark_weights([0.2, 0.5, 0.3])
    assert [round(b.get_height(), 3) for b in bars(fig.axes[0])] == [0.2, 0.5, 0.3]
    with pytest.raises(ValueError):
        plotting.plot_landmark_weights([1, 2])


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


def test_f1_per_sign_sorted_bars_small_and_large():
    report = pd.DataFrame({"f1-score": [0.9, 0.1, 0.5]}, index=["a", "b", "c"])
    ax = plotting.plot_f1_per_sign(report).axes[0]
    assert [round(b.get_height(), 2) for b in bars(ax)] == [0.1, 0.5, 0.9]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["b", "c", "a"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["macro F1 0.50"]
    big = pd.DataFrame({"f1-score": np.linspace(0, 1, 250)}, index=[f"s{i}" for i in range(250)])
    ax = plotting.plot_f1_per_sign(big).axes[0]
    assert len(bars(ax)) == 250 and not ax.get_xticks().size
    assert [t.get_text() for t in ax.texts] == [f"s{i}" for i in [*range(8), *range(242, 250)]]
    with pytest.raises(ValueError, match="f1-score"):
        plotting.plot_f1_per_sign(report.rename(columns={"f1-score": "f1"}))


def test_confusion_heatmap_is_row_normalised():
    cm = pd.DataFrame([[3, 1], [0, 4]], index=["a", "b"], columns=["a", "b"])
    ax = plotting.plot_confusion(cm).axes[0]
    shares = mesh(ax).get_array()
    np.testing.assert_allclose(shares.filled(0), [[0.75, 0.25], [0.0, 1.0]])
    assert shares.mask.tolist() == [[False, False], [True, False]]            # a 0 stays blank
    assert mesh(ax).get_clim() == (0, 1)
    assert [t.get_text() for t in ax.texts] == ["0.75", "0.25", "1.00"]        # cells above 0 only
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"] and ax.get_ylabel() == "true sign"
    empty = plotting.plot_confusion(pd.DataFrame())
    assert "no confusions" in empty.axes[0].texts[0].get_text()


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
    anim = plotting.animate_clip_pair(long_clip, short_clip, ["a", "b"], max_frames=6)
    assert plotting.animation_html(anim).count("data:image/png;base64") == 6   # both end together
    with pytest.raises(ValueError, match="2 titles"):
        plotting.plot_skeleton_pair(a, b, ["one"])
    with pytest.raises(ValueError, match="shape"):
        plotting.animate_clip_pair(long_clip[:0], short_clip, ["a", "b"])


def test_real_vs_synthetic_boxplots_pair_boxes_per_landmark():
    rng = np.random.default_rng(6)
    real = {d: [rng.normal(i, 1, 50) for i in range(21)] for d in "xy"}
    synth = {d: [rng.normal(i + 0.5, 2, 400) for i in range(21)] for d in "xy"}
    fig = plotting.plot_real_vs_synthetic_boxplots(real, synth, "hand", names=("real", "synthetic"))
    assert len(fig.axes) == 2
    for ax, d in zip(fig.axes, "xy"):
        boxes = [p for p in ax.patches if isinstance(p, PathPatch)]
        assert len(boxes) == 42
        medians = sorted(float(l.get_ydata()[0]) for l in ax.lines
                         if len(l.get_xdata()) == 2 and l.get_xdata()[0] == pytest.approx(0.2 - 0.175))
        assert medians == pytest.approx([np.median(synth[d][0])])
    with pytest.raises(ValueError, match="one value array per landmark"):
        plotting.plot_real_vs_synthetic_boxplots(real, {d: v[:5] for d, v in synth.items()}, "hand")


def test_compare_summaries_gives_the_mean_missing_shares():
    a = pd.DataFrame({"n_frames": [2, 10, 100], "left_hand_missing": [0.0, 0.5, 1.0],
                      "right_hand_missing": [1.0, 1.0, 0.2], "dominant": ["left", "left", "right"]})
    b = a.assign(n_frames=[5, 6, 7])
    table = dataset.compare_summaries({"real": a, "synthetic": b})
    # dominant missing: 0, 0.5, 0.2 -> 0.2333; other: 1, 1, 1 -> 1; left-dominant 2/3
    assert table.loc["frames without dominant hand", "real"] == pytest.approx((0 + 0.5 + 0.2) / 3)
    assert table.loc["frames without other hand", "synthetic"] == pytest.approx(1.0)
    assert table.loc["left-dominant clips", "real"] == pytest.approx(2 / 3)
    assert table.loc["max frames", "real"] == 100 and table.loc["median frames", "synthetic"] == 6
    with pytest.raises(ValueError, match="dominant"):
        dataset.compare_summaries({"x": a.drop(columns="dominant")})
    with pytest.raises(ValueError, match="empty"):
        dataset.compare_summaries({})


def test_data_label_goes_into_the_figure_title():
    values = {d: [np.arange(5.0)] * 5 for d in "xyz"}
    title = "pose: non-zero values per landmark (box 25-75%, whiskers 5-95%)"
    assert plotting.plot_landmark_boxplots(values, "pose").axes[0].get_title() == title
    assert plotting.plot_landmark_boxplots(values, "pose", data="synthetic").axes[0].get_title() == \
        f"{title} (synthetic)"
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
