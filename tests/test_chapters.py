"""Static checks of the chapters' notebooks, without a kernel.

The book build executes every chapter top to bottom (``execute_notebooks: force``) and fails on
an error or on text written to stderr (``-W``), so no test executes a chapter again. What the
build cannot see is checked here: every chapter is in the table of contents and stored without
outputs, has one ``parameters`` cell whose every parameter reaches the chapter (a run setting
reaches ``book.setup``, so it reaches the run or is refused), calls ``book.setup`` before any work,
and ends with a summary before its exercises. Parameter checking itself is tested without a
kernel in test_book.py.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from gislr_utils import config

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((REPO / "chapters").glob("0*.ipynb"))
SETTINGS = set(config.RunConfig.__dataclass_fields__) - {"preset", "seed"}


def _cells(path: Path) -> list[dict]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for c in cells:
        c["text"] = "".join(c["source"])
    return cells


def _tags(cell) -> list:
    return cell.get("metadata", {}).get("tags", [])


def test_every_chapter_is_in_the_toc_in_order_and_stored_without_outputs():
    toc = re.findall(r"file: chapters/(\S+)", (REPO / "_toc.yml").read_text())
    assert toc == [p.stem for p in CHAPTERS] + ["08_what_was_reproduced"] and len(toc) >= 8
    closing = (REPO / "chapters" / "08_what_was_reproduced.md").read_text()
    for fact in ("5,315,965", "0.9885", "0.71", "0.80", "84.2%", "## Summary"):     # issue 25's closing chapter
        assert fact in closing, fact
    for path in CHAPTERS:
        code = [c for c in _cells(path) if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), f"{path.name}: outputs stored"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_layout(path):
    """One title, one parameters cell with the shared parameters, exercises; no downloads, no
    absolute paths, TensorFlow only after gislr_utils (which silences its logs)."""
    cells = _cells(path)
    markdown = "\n".join(c["text"] for c in cells if c["cell_type"] == "markdown")
    titles = [line for line in markdown.splitlines() if line.startswith("# ")]
    assert len(titles) == 1, titles
    params = [c for c in cells if "parameters" in _tags(c)]
    assert len(params) == 1
    for p in ("data_dir = None", "artifacts_dir = None", 'preset = "classroom"', "seed = 0"):
        assert p in params[0]["text"], p
    source = "\n".join(c["text"] for c in cells if c["cell_type"] == "code" and "setup" not in _tags(c))
    assert "!pip" not in source and "/work/" not in source and "http" not in source
    first_import = source.index("import gislr_utils")
    assert "tensorflow" not in source[:first_import] and "keras" not in source[:first_import]
    assert "{exercise}" in markdown


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_ends_with_a_summary_before_its_exercises(path):
    markdown = [c["text"] for c in _cells(path) if c["cell_type"] == "markdown"]
    text = "\n".join(markdown)
    summary = [m.start() for m in re.finditer(r"^## Summary\s*$", text, re.M)]
    assert len(summary) == 1, f"{path.name}: no '## Summary' section"
    bullets = re.findall(r"^- ", text[summary[0]:text.find("{exercise}", summary[0])], re.M)
    assert len(bullets) >= 2, f"{path.name}: the summary has {len(bullets)} bullet point(s)"
    assert summary[0] < text.index("{exercise}"), f"{path.name}: the summary comes after the exercises"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_parameter_reaches_the_chapter_and_setup_comes_first(path):
    """Issue 26: a parameter that does nothing (chapter 5 ignored `-p units 128`). Every parameter
    is read by the chapter's code; a run setting is passed to ``book.setup`` under its own name, so
    it reaches the run (or `setup` refuses it); ``book.setup`` is called before any work."""
    cells = _cells(path)
    i = next(k for k, c in enumerate(cells) if "parameters" in _tags(c))
    names = [t.id for node in ast.parse(cells[i]["text"]).body for t in node.targets]
    code = [c for c in cells[i + 1:] if c["cell_type"] == "code"]
    trees = [ast.parse(c["text"]) for c in code]
    read = {n.id for tree in trees for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert not set(names) - read, f"{path.name}: parameters never read: {sorted(set(names) - read)}"
    # the first code cell after the parameters: imports, then ctx = book.setup(...)
    first = trees[0].body
    k = next(k for k, node in enumerate(first) if "book.setup(" in ast.unparse(node))
    assert all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in first[:k]), \
        f"{path.name}: work before book.setup"
    call = next(n for n in ast.walk(first[k]) if isinstance(n, ast.Call) and ast.unparse(n.func) == "book.setup")
    passed = [ast.unparse(a) for a in call.args[:4]] + [kw.arg for kw in call.keywords]
    for name in ("data_dir", "artifacts_dir", "preset", "seed"):
        assert name in passed, f"{path.name}: {name} does not reach book.setup"
    for kw in call.keywords:
        if kw.arg in SETTINGS | {"run"}:
            assert ast.unparse(kw.value) == kw.arg, f"{path.name}: {kw.arg}={ast.unparse(kw.value)}"
    missing = sorted(set(names) & (SETTINGS | {"run"}) - {kw.arg for kw in call.keywords})
    assert not missing, f"{path.name}: run settings that do not reach book.setup: {missing}"


@pytest.mark.parametrize("name", ["05_evaluation.ipynb", "06_export_and_inference.ipynb"])
def test_chapters_5_and_6_parameters_figures_and_solutions(name):
    """Typed parameters, a named run (``run``), numbered figures with alt text that the prose cites
    and that say which data they show, solution cells tagged for the students' edition, chapter
    mentions as links."""
    cells = _cells(REPO / "chapters" / name)
    params = next(c for c in cells if "parameters" in _tags(c))
    for line in params["text"].splitlines():
        assert re.fullmatch(r"\w+ = .+  # type: (Optional\[(str|int|float)\]|str|int|bool|float) \S.*", line), line
    assert "run = None  # type: Optional[str]" in params["text"]
    markdown = "\n".join(c["text"] for c in cells if c["cell_type"] == "markdown")
    figures = [c for c in cells if c["cell_type"] == "code" and "figure" in c["metadata"].get("mystnb", {})]
    assert figures
    for cell in figures:
        fig = cell["metadata"]["mystnb"]["figure"]
        assert fig["name"].startswith(f"fig-ch{name[1]}-") and len(fig["caption"]) > 20, fig
        assert len(cell["metadata"]["mystnb"]["image"]["alt"]) > 30 and "hide-input" in _tags(cell)
        assert "ctx.data_label" in cell["text"] or "(real)" in cell["text"], cell["text"][:80]   # which data
    cited = set(re.findall(r"\{numref\}`([^`]+)`", markdown))
    names = {c["metadata"]["mystnb"]["figure"]["name"] for c in figures}
    assert cited <= names and len(cited) >= len(names) - 1, (cited, names)
    unlinked = re.findall(r".{20}\b[Cc]hapters? \d.{10}", re.sub(r"\[[^\]]*\]\([^)]*\)", "[link]", markdown))
    assert not unlinked, f"chapter mentions must be links: {unlinked}"
    inside = False
    for cell in cells:
        text, tags = cell["text"], _tags(cell)
        if cell["cell_type"] == "markdown" and "{exercise}" in text:
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


def test_pick_example_prefers_tracked_typical_clips():
    """`dataset.pick_example` chooses the clip chapters 1 and 2 show (kept here until
    tests/test_dataset.py takes it)."""
    import pandas as pd

    from gislr_utils import dataset
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
    assert dataset.pick_example(summary).sequence_id == 2
    assert dataset.pick_example(summary, dominant="left").sequence_id == 3
