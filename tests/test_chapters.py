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
needs_real = pytest.mark.skipif(not (Path(config.REAL_SAMPLE_DIR) / "train.csv").exists(),
                                reason=f"real sample not found at {config.REAL_SAMPLE_DIR}")


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
    with pytest.raises(book.ParameterError, match="does not exist"):
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
    assert b.settings["epochs"] == 3 and a.settings["epochs"] == config.PRESETS["classroom"]["epochs"]
    assert a.table().loc["preset", "value"] == "classroom"


def test_setup_real_sample_spelling(tmp_path):
    ctx = book.setup("real-sample", tmp_path, "classroom", 0)
    assert ctx.data_dir == config.real_sample_dir().resolve() and not ctx.synthetic
    assert (ctx.data_dir / "train.csv").is_file() and ctx.run_dir.name.startswith("real_sample-")
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


def test_chapter_1_data_exploration(synthetic_dir):
    nb = run_chapter("01_data_exploration.ipynb", synthetic_dir, artifacts_dir=str(synthetic_dir / "art"),
                     n_summary=300)
    check_clean(nb, min_images=4)
    assert (synthetic_dir / "art" / "synthetic_seed0" / "train.csv").exists()
    html = [o.data["text/html"] for _, o in outputs(nb) if "text/html" in o.get("data", {})]
    assert any("<script" in h and "anim" in h and "data:image/png;base64" in h for h in html), \
        "the animation is missing"
    assert "300 clips read" in text_of(nb)
    assert "real: 'hello', participant" in text_of(nb)          # the shipped real clip beside ours


def test_chapter_2_landmark_statistics(synthetic_dir):
    art = synthetic_dir / "art"
    nb = run_chapter("02_landmark_statistics.ipynb", synthetic_dir, artifacts_dir=str(art), boxplot_clips=200)
    check_clean(nb, min_images=6)          # landmarks, preprocessing, 3 boxplot figures, normalisation
    stats_files = list(art.glob("runs/*/stats.npz"))
    assert len(stats_files) == 1 and stats_files[0].parent.name == "synthetic_classroom_seed0"
    from gislr_utils import statistics
    stats = statistics.load_stats(stats_files[0])
    assert stats["mean"].shape == (66, 2) and np.all(stats["std"] > 0)
    assert list(art.glob("prepared/*/X.npy")), "prepared arrays are cached"


def test_chapter_3_attention_and_embedding(synthetic_dir):
    nb = run_chapter("03_attention_and_embedding.ipynb", synthetic_dir, artifacts_dir=str(synthetic_dir / "art"),
                     epochs=1)                     # its last section trains chapter 4's model
    check_clean(nb, min_images=3)
    text = text_of(nb)
    assert "largest difference between the per-head and the fused model" in text
    html = "\n".join(o.data["text/html"] for _, o in outputs(nb) if "text/html" in o.get("data", {}))
    assert "5,315,965" in html
    assert html.count(">yes<") == 14 and ">NO<" not in html     # every part matches the seed report


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
    assert ("hardest of this run: " in text and "easiest of this run: " in text) or \
        "every sign of this run has F1" in text
    assert "seed's hardest: goose (0.09), nap (0.24)" in text and "seed's easiest: airplane (0.99)" in text
    assert "top-k accuracy on 2 signs: top-1 " in text and "top-2" not in text and "(no curve" in text
    assert "signs in both" in text and "legible     233" in text    # seed reference
    assert "2 participant(s): 90% of the resampled accuracies lie in" in text   # exercise 5.2, computed


def test_chapter_4_training_on_the_real_sample(real_dir):
    art = real_dir / "art"
    nb = run_chapter("04_training.ipynb", real_dir, data_dir="real-sample",
                     artifacts_dir=str(art), epochs=1)
    check_clean(nb, min_images=2)
    text = text_of(nb)
    assert "held-out participants:" in text
    # after chapter 5 (above, same folder) trained this run, chapter 4 reuses it: trained once
    assert ("epoch 1/1" in text) != ("reusing the trained model in" in text)
    run = next(art.glob("runs/*_classroom_seed0_epochs1"))
    for name in ("model.keras", "history.csv", "stats.npz", "split.npz", "train_config.json"):
        assert (run / name).exists(), name


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
    verdicts = [line for line in text.splitlines()
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
