"""The chapters run under papermill, alone and in sequence, and fail fast on bad parameters.

Notebook runs (each starts a kernel and TensorFlow, so they are kept few):

* on the synthetic set, in one shared artifacts folder: chapters 1, 2, 3 in order;
* on the real sample shipped in the package (``data_dir="real-sample"``: 16 genuine clips, 2 signs,
  12 participants), in a fresh folder: chapter 5 first, alone (it must train the model itself),
  then chapter 4 and chapter 6 (export, masking over two seeds);
* chapter 6 on one participant of the real sample (the masking comparison is skipped);
* chapter 4 with ``preset="nope"``, which must stop in its setup cell naming the parameter.

Every executed notebook is checked for outputs and for the absence of stderr output, which the
book build treats as an error. Parameter checking itself is tested without a kernel.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gislr_utils  # noqa: F401  (silences TensorFlow before anything imports it)
from gislr_utils import book, config

papermill = pytest.importorskip("papermill")
nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = REPO / "chapters"
NOTEBOOKS = sorted(p.name for p in CHAPTERS.glob("0*.ipynb"))


def run_chapter(name: str, out_dir: Path, **parameters):
    """Execute chapters/<name> with papermill as the book build does (kernel cwd = chapters/)."""
    out = out_dir / f"out_{name}"
    papermill.execute_notebook(str(CHAPTERS / name), str(out), parameters=parameters, kernel_name="python3",
                               cwd=str(CHAPTERS), progress_bar=False, log_output=False)
    return nbformat.read(out, as_version=4)


def outputs(nb, kind=None):
    for cell in nb.cells:
        if cell.cell_type == "code":
            for o in cell.get("outputs", []):
                if kind is None or o.output_type == kind:
                    yield cell, o


def check_clean(nb, min_images: int):
    """Every code cell ran, nothing was written to stderr, and the chapter drew its figures."""
    stderr = [o.text for _, o in outputs(nb, "stream") if o.name == "stderr"]
    assert not stderr, f"stderr output in the page: {stderr[:3]}"
    images = [o for _, o in outputs(nb) if "image/png" in o.get("data", {})]
    assert len(images) >= min_images, f"expected at least {min_images} figures, got {len(images)}"
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert sum("parameters" in t for t in tags) == 1


def text_of(nb) -> str:
    parts = []
    for _, o in outputs(nb):
        if o.output_type == "stream":
            parts.append(o.text)
        elif "text/plain" in o.get("data", {}):
            parts.append(o.data["text/plain"])
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------
# Notebook structure (no kernel)
# --------------------------------------------------------------------------------------------------
def test_six_chapters_in_the_toc_and_stored_without_outputs():
    assert NOTEBOOKS == ["01_data_exploration.ipynb", "02_landmark_statistics.ipynb",
                         "03_attention_and_embedding.ipynb", "04_training.ipynb", "05_evaluation.ipynb",
                         "06_export_and_inference.ipynb"]
    toc = (REPO / "_toc.yml").read_text()
    for name in NOTEBOOKS:
        assert f"chapters/{name[:-6]}" in toc
        nb = nbformat.read(CHAPTERS / name, as_version=4)
        code_cells = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code_cells), name
        # one title, and the parameters cell holds the four shared parameters
        titles = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                  if line.startswith("# ")]
        assert len(titles) == 1, (name, titles)
        params = [c for c in code_cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, name
        for p in ("data_dir = None", "artifacts_dir = None", 'preset = "classroom"', "seed = 0"):
            assert p in params[0].source, (name, p)
        source = "\n".join(c.source for c in code_cells)
        assert "!pip" not in source and "/work/" not in source and "http" not in source, name
        first_import = source.index("import gislr_utils")
        assert "tensorflow" not in source[:first_import] and "keras" not in source[:first_import], name
        assert "{exercise}" in "\n".join(c.source for c in nb.cells), name


@pytest.mark.parametrize("name", ["05_evaluation.ipynb", "06_export_and_inference.ipynb"])
def test_chapters_5_and_6_parameters_figures_and_solutions(name):
    """Typed parameters with help (papermill --help-notebook), numbered figures with alt text that
    the prose cites, solution cells tagged for the students' edition, chapter mentions as links."""
    import re
    nb = nbformat.read(CHAPTERS / name, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for line in params.source.splitlines():
        assert re.fullmatch(r"\w+ = .+  # type: (Optional\[(str|int)\]|str|int|bool) \S.*", line), line
    assert "run = None  # type: Optional[str]" in params.source
    setup = next(c for c in nb.cells if c.cell_type == "code" and "book.setup(" in c.source)
    assert "run=run" in setup.source
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    figures = [c for c in nb.cells if c.cell_type == "code" and "figure" in c.metadata.get("mystnb", {})]
    assert figures
    for cell in figures:
        fig = cell.metadata["mystnb"]["figure"]
        assert fig["name"].startswith(f"fig-ch{name[1]}-") and len(fig["caption"]) > 20, fig
        assert len(cell.metadata["mystnb"]["image"]["alt"]) > 30 and "hide-input" in cell.metadata["tags"]
        assert "ctx.data_label" in cell.source or "(real)" in cell.source, cell.source[:80]   # which data
    cited = set(re.findall(r"\{numref\}`([^`]+)`", markdown))
    names = {c.metadata["mystnb"]["figure"]["name"] for c in figures}
    assert cited <= names and len(cited) >= len(names) - 1, (cited, names)   # top-k is drawn on some data only
    unlinked = re.findall(r".{20}\b[Cc]hapters? \d.{10}", re.sub(r"\[[^\]]*\]\([^)]*\)", "[link]", markdown))
    assert not unlinked, f"chapter mentions must be links: {unlinked}"
    inside = False
    for cell in nb.cells:
        text, tags = cell.source, cell.metadata.get("tags", [])
        if cell.cell_type == "markdown" and "{exercise}" in text:
            assert "solution" not in tags and "{solution" not in text, text[:80]
        starts, ends = "{solution-start}" in text, "{solution-end}" in text
        if starts or "{solution}" in text:
            assert "solution" in tags, text[:80]
        if starts:
            inside = True
        elif inside:
            assert "solution" in tags, text[:80]
        if ends:
            inside = False


# --------------------------------------------------------------------------------------------------
# Parameter checking (no kernel)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(preset="nope"), "preset='nope' is not valid"),
    (dict(seed=-1), "seed=-1 must be >= 0"),
    (dict(seed="0"), "seed='0' must be an integer"),
    (dict(seed=True), "seed=True must be an integer"),
    (dict(epochs=0), "epochs=0 must be >= 1"),
    (dict(epochs=2.5), "epochs=2.5 must be an integer"),
])
def test_setup_rejects_bad_values_naming_the_parameter(tmp_path, kwargs, message):
    with pytest.raises(book.ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        book.setup(artifacts_dir=tmp_path, **kwargs)
    assert not any(tmp_path.iterdir()), "a bad parameter must fail before any work is done"


def test_setup_rejects_bad_folders(tmp_path):
    with pytest.raises(book.ParameterError, match="is not a folder"):
        book.setup(data_dir=tmp_path / "missing", artifacts_dir=tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(book.ParameterError, match="has no train.csv"):
        book.setup(data_dir=tmp_path / "empty", artifacts_dir=tmp_path / "a")
    (tmp_path / "file").write_text("x")
    with pytest.raises(book.ParameterError, match="is a file"):
        book.setup(data_dir=None, artifacts_dir=tmp_path / "file")
    with pytest.raises(book.ParameterError, match="must be a path"):
        book.setup(data_dir=3, artifacts_dir=tmp_path / "a")


def test_check_helpers():
    assert book.check_int("n", 3.0) == 3
    assert book.check_int("n", None, allow_none=True) is None
    with pytest.raises(book.ParameterError, match="n=None must be an integer"):
        book.check_int("n", None)
    with pytest.raises(book.ParameterError, match="n=5 must be <= 4"):
        book.check_int("n", 5, maximum=4)
    assert book.check_bool("flag", np.bool_(True)) is True
    with pytest.raises(book.ParameterError, match="flag='yes' must be True or False"):
        book.check_bool("flag", "yes")


def test_setup_on_real_data_keys_the_run_folder(tmp_path):
    a = book.setup(config.real_sample_dir(), tmp_path, "classroom", 0)
    b = book.setup(config.real_sample_dir(), tmp_path, "seed", 0, epochs=3)
    assert a.data_dir == config.real_sample_dir().resolve() and not a.synthetic
    assert a.run_dir.parent == b.run_dir.parent == tmp_path / "runs" and a.run_dir != b.run_dir
    assert b.cfg.epochs == 3 and a.cfg.epochs == config.PRESETS["classroom"]["epochs"]
    assert a.table().loc["preset", "value"] == "classroom"


def test_setup_real_sample_spelling(tmp_path):
    ctx = book.setup("real-sample", tmp_path, "classroom", 0)
    assert ctx.data_dir == config.real_sample_dir().resolve() and not ctx.synthetic
    assert (ctx.data_dir / "train.csv").is_file() and ctx.run_dir.name.startswith("real-sample_")
    assert len(book.get_clips(ctx)) == 16
    with pytest.raises(book.ParameterError, match="real_sample"):      # a near miss is a path
        book.setup("real_sample", tmp_path)


def test_pick_example_prefers_tracked_typical_clips():
    import pandas as pd
    summary = pd.DataFrame({
        "sequence_id": [1, 2, 3, 4],
        "n_frames": [10, 20, 21, 400],
        "left_hand_missing": [0.0, 0.9, 0.1, 0.0],
        "right_hand_missing": [1.0, 0.0, 1.0, 1.0],
        "dominant": ["left", "right", "left", "left"],
        "n_hand_frames": [10, 20, 19, 400],
        "no_hand": [False, False, False, False],
    })
    # median length 20.5: clips 2 and 3 are closest; both tracked; tie on distance -> sequence_id
    assert book.pick_example(summary).sequence_id == 2
    assert book.pick_example(summary, dominant="left").sequence_id == 3
    frames = np.full((5, 543, 3), np.nan, np.float32)
    frames[[1, 2, 4], 522:543] = 0.5
    assert book.middle_hand_frame(frames) == 2


# --------------------------------------------------------------------------------------------------
# Chapters executed with papermill
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic_artifacts")


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("real_artifacts")


def figure_names(nb) -> list:
    """The `mystnb.figure.name` of every cell that drew an image, in order; a cell drawing an image
    without a numbered caption gives None."""
    names = []
    for cell in nb.cells:
        if cell.cell_type == "code" and any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            figure = cell.metadata.get("mystnb", {}).get("figure", {})
            names.append(figure.get("name") if figure.get("caption") else None)
    return names


def test_chapter_1_data_exploration(synthetic_dir):
    nb = run_chapter("01_data_exploration.ipynb", synthetic_dir, artifacts_dir=str(synthetic_dir / "art"),
                     n_summary=300)
    check_clean(nb, min_images=6)
    assert figure_names(nb) == ["fig-ch1-counts", "fig-ch1-lengths", "fig-ch1-hands", "fig-ch1-skeleton",
                                "fig-ch1-pair", "fig-ch1-no-hand"]
    assert (synthetic_dir / "art" / "synthetic_seed0" / "train.csv").exists()
    html = [o.data["text/html"] for _, o in outputs(nb) if "text/html" in o.get("data", {})]
    assert any("<script" in h and "anim" in h and "data:image/png;base64" in h for h in html), \
        "the animation is missing"
    text = text_of(nb)
    assert "300 clips read" in text
    # the synthetic set is balanced, as the text says; the seed's real class counts beside it
    assert "clips per sign: 60 to 60; clips per participant: 75 to 75" in text
    table = "\n".join(html)
    for sign, count in [("listen", 358), ("duck", 348), ("vacuum", 255), ("person", 277)]:
        assert f"<td>{sign}</td>" in table and f"<td>{count}</td>" in table, sign
    assert "frames per clip: median" in text
    assert "real: 'hello', participant" in text          # the shipped real clip beside ours


def test_chapter_2_landmark_statistics(synthetic_dir):
    art = synthetic_dir / "art"
    nb = run_chapter("02_landmark_statistics.ipynb", synthetic_dir, artifacts_dir=str(art), boxplot_clips=200)
    check_clean(nb, min_images=8)
    assert figure_names(nb) == ["fig-ch2-landmarks", "fig-ch2-preprocessing", "fig-ch2-lips", "fig-ch2-hand",
                                "fig-ch2-pose", "fig-ch2-normalisation", "fig-ch2-real-hand", "fig-ch2-lengths"]
    stats_files = list(art.glob("runs/*/stats.npz"))
    assert len(stats_files) == 1 and stats_files[0].parent.name == "synthetic_classroom_seed0"
    from gislr_utils import preprocessing, statistics
    stats = statistics.load_stats(stats_files[0])
    assert stats["mean"].shape == (66, 2) and np.all(stats["std"] > 0)
    assert list(art.glob("prepared/*/X.npy")), "prepared arrays are cached"
    text = text_of(nb)
    # the preprocessing shown is the package's own code, without docstrings
    assert book.source(preprocessing._preprocess) in text and book.source(preprocessing._window_sums) in text
    assert '"""' not in book.source(preprocessing._preprocess)
    # clips with no hand are kept (all padding), counted once, with the run's setting
    prepared = preprocessing.prepare_dataset(art / "synthetic_seed0", art, progress=False)
    n_handless = int((~prepared.has_hand).sum())
    from gislr_utils import dataset
    assert n_handless > 0 and len(prepared.y) == len(dataset.read_clips(art / "synthetic_seed0"))   # all kept
    assert f"{n_handless} of them have no hand in any frame (all padding); this run: handless_clips='keep'" in text
    assert "skipped" not in text
    assert "validation:" in text and "test:" in text


def test_chapter_3_attention_and_embedding(synthetic_dir):
    nb = run_chapter("03_attention_and_embedding.ipynb", synthetic_dir, artifacts_dir=str(synthetic_dir / "art"))
    check_clean(nb, min_images=4)
    text = text_of(nb)
    difference = float(text.split("per-head NumPy vs the fused layer: ")[1].split()[0])
    assert difference < 1e-5
    html = "\n".join(o.data["text/html"] for _, o in outputs(nb) if "text/html" in o.get("data", {}))
    assert "5,315,965" in html
    assert html.count(">yes<") == 14 and ">NO<" not in html     # every part matches the seed report
    assert "def scaled_dot_product_attention" in text and "class TransformerBlock" in text   # shown code
    assert not list((synthetic_dir / "art").glob("runs/*/model.keras")), "chapter 3 trains nothing"


def test_chapter_5_alone_trains_then_writes_metrics(real_dir):
    art = real_dir / "art"
    nb = run_chapter("05_evaluation.ipynb", real_dir, data_dir="real-sample",
                     artifacts_dir=str(art), epochs=1)
    # F1, confusion, landmark weights, the seed's F1, precision/recall, this run against the seed;
    # no top-k curve: with 2 signs only top-1 is listed
    check_clean(nb, min_images=6)
    text = text_of(nb)
    assert "training it now, as chapter 4 does" in text          # it had to train, as chapter 4 would
    metrics_files = list(art.glob("runs/*/metrics.json"))
    assert len(metrics_files) == 1
    metrics = json.loads(metrics_files[0].read_text())
    assert metrics["preset"] == "classroom" and metrics["epochs"] == 1 and metrics["n_classes_present"] == 2
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["n_val"] > 0
    assert metrics["evaluated_on"] == "held-out participants" and metrics["kept_epoch"] == 1
    assert len(metrics["participants"]) == 2               # 10% of 12 participants, rounded up
    # which participants, once, the final model; the signs named come from the output
    ids = ", ".join(map(str, metrics["participants"]))
    assert f"signs by the 2 held-out participant(s) {ids}" in text and "epoch 1 of 1 (the final epoch)" in text
    assert ("hardest of this run:\n  " in text and "easiest of this run: " in text) or \
        "every sign of this run has F1" in text
    assert "seed's hardest:\n  goose (0.09), nap (0.24)" in text and "seed's easiest:\n  airplane (0.99)" in text
    assert "top-k accuracy on 2 signs:\n  top-1 " in text and "top-2" not in text and "(no curve" in text
    assert "signs in both" in text and "legible     233" in text    # seed reference
    assert "2 participant(s): 90% of the resampled accuracies lie in" in text   # exercise 5.2, computed


def test_chapter_4_training_on_the_real_sample(real_dir):
    art = real_dir / "art"
    nb = run_chapter("04_training.ipynb", real_dir, data_dir="real-sample",
                     artifacts_dir=str(art), epochs=1)
    check_clean(nb, min_images=3)
    text = text_of(nb)
    assert "held-out participants:" in text
    # after chapter 5 (above, same folder) trained this run, chapter 4 reuses it and prints its log
    assert "epoch 1/1" in text
    run = next(art.glob("runs/real-sample_classroom_seed0_epochs1"))
    for name in ("model.keras", "history.csv", "stats.npz", "split.npz", "train_config.json"):
        assert (run / name).exists(), name
    for shown in ("label_smoothing", "clipnorm", "model.compile(", "model.fit(", "class BalancedSignBatches"):
        assert shown in text, shown                   # the package's own code, shown on the page


def test_chapter_4_settings_are_parameters_and_change_the_model(tmp_path):
    """Issue 16: units/heads/blocks from papermill change the parameter count; issue 18: -p strategy
    mirrored trains on the CPU's two logical devices."""
    from gislr_utils import model
    settings = dict(epochs=1, units=32, num_heads=2, num_blocks=1, embedding_units=16)
    os.environ["GISLR_CPU_REPLICAS"] = "2"               # read by the kernel when it imports the package
    try:
        nb = run_chapter("04_training.ipynb", tmp_path, data_dir="real-sample", artifacts_dir=str(tmp_path / "art"),
                         strategy="mirrored", **settings)
    finally:
        del os.environ["GISLR_CPU_REPLICAS"]
    text = text_of(nb)
    expected = model.build_model(config.resolve("classroom", **settings)).count_params()
    default = model.build_model(config.resolve("classroom")).count_params()
    assert f"{expected:,} parameters" in text and expected != default
    assert "2 replicas" in text and "epoch 1/1" in text
    assert list((tmp_path / "art" / "runs").glob("real-sample_classroom_seed0_*_units32_*_epochs1"))


def test_papermill_lists_every_chapter_parameter_with_its_type():
    for name in NOTEBOOKS:
        out = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", str(CHAPTERS / name)],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        nb = nbformat.read(CHAPTERS / name, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        names = [line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line]
        for param in names:
            line = next((ln for ln in out.stdout.splitlines() if ln.strip().startswith(param + ":")), None)
            assert line is not None, f"{name}: {param} missing from --help-notebook"
            assert "(" in line and "(None)" not in line.split("default")[0], f"{name}: {param} has no type: {line}"


@pytest.mark.parametrize("chapter", ["04_training.ipynb", "05_evaluation.ipynb", "06_export_and_inference.ipynb"])
def test_a_sign_map_other_than_the_competitions_is_refused_in_every_chapter(tmp_path, chapter):
    """Issue 19: a data folder's own sign map named its classes with the competition's names."""
    data = tmp_path / "data"
    shutil.copytree(config.real_sample_dir(), data)
    for sign_map, where in (({"hello": 0, "thankyou": 1}, "'hello' -> 0"),
                            ({s: (i + 1) % 250 for s, i in config.SIGN_TO_INDEX.items()}, "-> 1")):
        (data / "sign_to_prediction_index_map.json").write_text(json.dumps(sign_map))
        with pytest.raises(papermill.PapermillExecutionError) as err:
            run_chapter(chapter, tmp_path, data_dir=str(data), artifacts_dir=str(tmp_path / "art"), epochs=1)
        assert "GISLRDataError" in str(err.value) and "sign_to_prediction_index_map.json" in str(err.value)
        assert where in str(err.value)


def test_chapter_6_export_and_masking_on_the_real_sample(real_dir):
    art = real_dir / "art"
    nb = run_chapter("06_export_and_inference.ipynb", real_dir, data_dir="real-sample",
                     artifacts_dir=str(art), epochs=1, latency_clips=2, masking_seeds=2, masking_epochs=1)
    check_clean(nb, min_images=2)                    # Keras vs TFLite, the masking comparison
    text = text_of(nb)
    assert "loaded the run trained in chapter 4" in text
    assert "'serving_default': {'inputs': ['inputs'], 'outputs': ['outputs']}" in text
    assert "choice between hello and thankyou right for" in text
    assert "2 clips of the held-out participants, 3 calls each" in text and "median of 2 clips on this machine" in text
    run = next(art.glob("runs/*_classroom_seed0_epochs1"))
    assert (run / "model.tflite").stat().st_size > 0 and (run / "model_fp16.tflite").exists()
    # two seeds x two masks, each a run folder of its own; the key-mask run of seed 0 is chapter 4's run
    assert "2 seed(s) x 2 masks, 1 epochs a run" in text
    for s in (0, 1):
        assert (art / "runs" / f"real-sample_classroom_seed{s}_epochs1" / "train_config.json").exists()
        assert (art / "runs" / f"real-sample_classroom_seed{s}_attention_maskseed_frame_drop_at_inferenceTrue"
                f"_epochs1" / "train_config.json").exists()
    for name in ("drop off - drop on (seed mask): mean", "key mask - seed mask (drop off): mean"):
        assert name in text
    lines = text.splitlines()
    verdicts = [line + (" " + lines[i + 1].strip() if line.startswith("  paired t-test p = ") else "")
                for i, line in enumerate(lines)
                if line.startswith(("  paired t-test p = ", "  the same difference, ", "  one seed: "))]
    assert len(verdicts) == 2, verdicts
    for v in verdicts:      # a p-value says only what the spread supports
        assert not v.startswith("  paired") or v.endswith(("larger than the spread across seeds",
                                                           "the data cannot tell the variants apart",
                                                           "(all 2 seeds agree in sign)")), v
    assert "reliably" not in "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_chapter_6_skips_the_masking_comparison_with_one_participant(tmp_path):
    """One participant: nobody can be held out, the chapter exports, then skips the comparison."""
    import shutil
    src = config.real_sample_dir()
    data = tmp_path / "one"
    clips = [line for line in (src / "train.csv").read_text().splitlines()[1:] if ",25571," in line]
    assert len(clips) == 2
    (data / "train_landmark_files").mkdir(parents=True)
    (data / "train.csv").write_text("path,participant_id,sequence_id,sign\n" + "\n".join(clips) + "\n")
    shutil.copy(src / "sign_to_prediction_index_map.json", data)
    shutil.copytree(src / "train_landmark_files" / "25571", data / "train_landmark_files" / "25571")
    nb = run_chapter("06_export_and_inference.ipynb", tmp_path, data_dir=str(data),
                     artifacts_dir=str(tmp_path / "art"), epochs=1, latency_clips=2)
    check_clean(nb, min_images=1)                     # Keras vs TFLite; no masking figure
    text = text_of(nb)
    assert "one participant only: nobody can be held out, so the masking comparison is skipped" in text
    assert "paired t-test" not in text and len(list((tmp_path / "art" / "runs").iterdir())) == 1


def test_bad_parameter_stops_the_chapter_at_once(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError) as err:
        run_chapter("04_training.ipynb", tmp_path, preset="nope", artifacts_dir=str(tmp_path / "art"))
    assert "ParameterError" in str(err.value) and "preset='nope' is not valid" in str(err.value)
    assert not (tmp_path / "art").exists(), "nothing may be generated before the check"
