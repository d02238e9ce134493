"""Static checks of the chapters' code, without a kernel.

* Code in the notebooks fits the rendered page: at most 80 characters a line.
* A function or class of `gislr_utils` whose docstring names "chapter N" is used in chapter N:
  called in one of its code cells, directly or through other `gislr_utils` functions that the
  chapter calls (a stale reference, or code that nothing but tests uses, fails).
* Every exercise solution with code runs in the build: its code is in code cells between the
  gated ``solution-start`` / ``solution-end`` directives, not in a markdown code block.
* Every code cell that draws a figure (calls a ``plot_`` function of ``gislr_utils.plotting`` or
  ``plt.``) carries descriptive alt text in its ``mystnb.image.alt`` metadata.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "chapters").glob("0*.ipynb"))
PACKAGE = REPO / "gislr_utils"
MAX_LINE = 80


def cells(path: Path, kind: str) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind]


def chapter_number(path: Path) -> int:
    return int(path.name[:2])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_code_lines_fit_the_page(path):
    long = [f"{len(line)} characters: {line.strip()[:60]}..."
            for source in cells(path, "code") for line in source.splitlines() if len(line) > MAX_LINE]
    assert not long, f"{path.name}: {len(long)} code line(s) longer than {MAX_LINE}:\n" + "\n".join(long)


# --------------------------------------------------------------------------------------------------
# "chapter N" in docstrings
# --------------------------------------------------------------------------------------------------
_CHAPTER_REF = re.compile(r"\b[Cc]hapters?\s+(\d(?:\s*(?:-|–|,|and|or)\s*\d)*)")


def chapters_named(doc: str) -> set[int]:
    """{1, 2, 3} for "chapters 1-3", {1, 2} for "chapters 1 and 2", {4} for "Chapter 4"."""
    out: set[int] = set()
    for m in _CHAPTER_REF.finditer(doc):
        nums = [int(x) for x in re.findall(r"\d", m.group(1))]
        if re.search(r"\d\s*[-–]\s*\d", m.group(1)):
            out |= set(range(nums[0], nums[-1] + 1))
        else:
            out |= set(nums)
    return out


def test_chapters_named_reads_ranges_and_lists():
    assert chapters_named("used by chapters 1-3 and chapter 5 (Chapter 6 too)") == {1, 2, 3, 5, 6}
    assert chapters_named("chapters 1 and 2; chapter 4's model") == {1, 2, 4}
    assert chapters_named("no chapter here, 3 chapters") == set()


def _imports(tree: ast.AST) -> dict[str, tuple[str, str | None]]:
    """Local name -> (gislr_utils module, object or None for the module itself), from every
    import in `tree` (inside functions too)."""
    table: dict[str, tuple[str, str | None]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:                                   # from . import x / from .x import y
                pkg = "gislr_utils" + ("." + base if base else "")
            else:
                pkg = base
            for alias in node.names:
                local = alias.asname or alias.name
                if pkg == "gislr_utils":
                    table[local] = (alias.name, None)
                elif pkg.startswith("gislr_utils."):
                    table[local] = (pkg.split(".")[1], alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "gislr_utils" and len(parts) == 2 and alias.asname:
                    table[alias.asname] = (parts[1], None)
    return table


def _references(tree: ast.AST, module: str | None, defs) -> set[tuple[str, str]]:
    """(module, name) of every `gislr_utils` definition that `tree` refers to."""
    table = _imports(tree)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id in table and table[node.id][1]:
                out.add(table[node.id])
            elif module and (module, node.id) in defs:
                out.add((module, node.id))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            target = table.get(node.value.id)
            if target and target[1] is None:
                out.add((target[0], node.attr))
    return {ref for ref in out if ref in defs}


def _modules() -> dict[str, ast.Module]:
    """{module: tree} of the package. A subpackage (gislr_utils/plotting/) counts as one module, the
    name the chapters use (`plotting.plot_x`): its files' trees joined, without their imports of each
    other (`from .style import ...`), so that a name of one file used in another resolves."""
    trees = {p.stem: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.glob("*.py"))}
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        body = [node for p in sorted(init.parent.glob("*.py")) for node in ast.parse(p.read_text(encoding="utf-8")).body
                if not (isinstance(node, ast.ImportFrom) and node.level == 1)]
        trees[init.parent.name] = ast.Module(body=body, type_ignores=[])
    return trees


def _package():
    """{(module, name): (docstring, references)} for every top-level function and class."""
    trees = _modules()
    defs = {(mod, node.name): node for mod, tree in trees.items() for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    graph = {}
    for (mod, name), node in defs.items():
        holder = ast.Module(body=[*[n for n in trees[mod].body if isinstance(n, (ast.Import, ast.ImportFrom))],
                                  node], type_ignores=[])
        graph[(mod, name)] = (ast.get_docstring(node) or "", _references(holder, mod, defs))
    return graph


def _reached(start: set, graph) -> set:
    seen, todo = set(), list(start)
    while todo:
        ref = todo.pop()
        if ref not in seen:
            seen.add(ref)
            todo.extend(graph[ref][1] - seen)
    return seen


def _chapter_tree(path: Path) -> ast.Module:
    return ast.parse("\n".join(cells(path, "code")))


def _exported(path: Path) -> set[tuple[str, str]]:
    """("recipe", name) of each function a chapter's cells tagged ``export`` define: the chapter
    runs that code itself (`gislr_utils.recipe` is generated from it)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return {("recipe", node.name) for c in nb["cells"] if "export" in c.get("metadata", {}).get("tags", [])
            for node in ast.parse("".join(c["source"])).body if isinstance(node, ast.FunctionDef)}


def _chapter_references(path: Path, graph) -> set:
    return _references(_chapter_tree(path), None, graph) | (_exported(path) & set(graph))


def test_every_chapter_named_in_a_docstring_uses_that_function():
    graph = _package()
    reached = {chapter_number(p): _reached(_chapter_references(p, graph), graph) for p in NOTEBOOKS}
    assert reached[1] and reached[6]                                 # the analysis sees calls
    stale = [f"{mod}.{name}: docstring names chapter {n}, which does not use it"
             for (mod, name), (doc, _) in sorted(graph.items()) if not name.startswith("_")
             for n in sorted(chapters_named(doc)) if (mod, name) not in reached.get(n, ())]
    assert not stale, "\n".join(stale)


def test_every_function_of_the_package_is_used_outside_the_tests():
    """Code that only tests call is dead weight: each top-level function and class of gislr_utils
    is reached from a chapter, a benchmark, the package's module-level code or a command in the
    README (a maintainer's tool such as `synthetic.write_template`)."""
    graph = _package()
    roots = set()
    for path in NOTEBOOKS:
        roots |= _chapter_references(path, graph)
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        roots |= _references(ast.parse(path.read_text(encoding="utf-8")), None, graph)
    for module, tree in _modules().items():
        top = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        roots |= _references(ast.Module(body=top, type_ignores=[]), module, graph)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    roots |= {ref for ref in re.findall(r"\b(\w+)\.(\w+)\(", readme) if ref in graph}
    unused = sorted(f"{mod}.{name}" for mod, name in set(graph) - _reached(roots, graph))
    assert not unused, f"used by nothing but tests (remove, or use): {unused}"


def test_reference_analysis_follows_imports_and_calls():
    graph = _package()
    tree = ast.parse("from gislr_utils import book\nfrom gislr_utils.model import build_model\n"
                     "ctx = book.setup(None, None, 'classroom', 0)\nbuild_model()")
    refs = _references(tree, None, graph)
    assert refs == {("book", "setup"), ("model", "build_model")}
    # preprocessing.prepare_dataset -> preprocessing._write_arrays -> preprocessing.preprocess_files
    assert ("preprocessing", "preprocess_files") in _reached({("preprocessing", "prepare_dataset")}, graph)
    # chapter 4's exported recipe reaches what it calls, and what that calls
    assert {("training", "load_run"), ("model", "build_model"), ("runs", "file_hash")} <= \
        _reached({("recipe", "train_run")}, graph)
    assert ("recipe", "train_run") in _exported(REPO / "chapters" / "04_training.ipynb")
    assert ("model", "build_model") not in _reached({("dataset", "load_frames")}, graph)
    # the subpackage plotting is one module: a chapter's plotting.animate_clips reaches the
    # helpers of plotting's other files
    reached = _reached({("plotting", "animate_clips")}, graph)
    assert {("plotting", "SkeletonArtist"), ("plotting", "skeleton_limits"), ("plotting", "_mark")} <= reached


# --------------------------------------------------------------------------------------------------
# Exercise solutions
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solution_code_is_in_code_cells_that_run(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    inside, n_code, opened = None, 0, []
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            for block in re.findall(r":::\{solution\}.*?\n:::(?:\n|$)", source + "\n", re.S):
                assert "```" not in block, \
                    f"{path.name}: code in a solution's markdown never runs: {block[:80]!r}"
            for m in re.finditer(r"\{solution-(start|end)\}\s*(\S*)", source):
                if m.group(1) == "start":
                    assert inside is None, f"{path.name}: solution {inside} is not closed"
                    inside, n_code = m.group(2), 0
                    opened.append(inside)
                else:
                    assert inside is not None, f"{path.name}: solution-end without solution-start"
                    assert n_code, f"{path.name}: gated solution {inside} holds no code cell"
                    inside = None
        elif inside is not None:
            n_code += 1
            assert source.strip() and "skip" not in cell.get("metadata", {}).get("tags", [])
    assert inside is None, f"{path.name}: solution {inside} is not closed"
    labels = re.findall(r"\{exercise\}\s*\n:label:\s*(\S+)", "\n".join(cells(path, "markdown")))
    assert set(opened) <= set(labels), f"{path.name}: gated solutions of unknown exercises"


# --------------------------------------------------------------------------------------------------
# Alt text of figures
# --------------------------------------------------------------------------------------------------
MIN_ALT = 30


def draws_figure(source: str) -> bool:
    """Whether a code cell calls a static plotting function: `plotting.plot_*(...)` (or a
    `plot_*` imported from gislr_utils.plotting) or anything of `plt.` (matplotlib.pyplot).
    The animations (`plotting.animate_clips` wrapped in `HTML(plotting.animation_html(...))`)
    are not figures here: MyST-NB renders them as raw HTML and uses `mystnb.image` only for
    image outputs."""
    try:
        tree = ast.parse(source)
    except SyntaxError:                          # IPython magics: fall back on the text
        return bool(re.search(r"\bplotting\.plot_\w+\(|\bplt\.\w+", source))
    imported = {alias.asname or alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module == "gislr_utils.plotting"
                for alias in node.names if alias.name.startswith("plot_")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "plt" or (node.value.id == "plotting"
                                          and node.attr.startswith("plot_")):
                return True
        elif isinstance(node, ast.Name) and node.id in imported:
            return True
    return False


def test_draws_figure_tells_figure_cells_apart():
    assert draws_figure("fig = plotting.plot_history(result.history)")
    assert draws_figure("if x:\n    fig = plotting.plot_masking_comparison(t, by='v')")
    assert draws_figure("fig, ax = plt.subplots()\nax.plot([1, 2])")
    assert draws_figure("from gislr_utils.plotting import plot_topk as p\nfig = p([1], [1.0])")
    assert not draws_figure("from gislr_utils import book, plotting\nctx = book.setup()")
    assert not draws_figure("HTML(plotting.animation_html(plotting.animate_clips([f], ['a'])))")
    assert not draws_figure("limits = plotting.skeleton_limits(frames)  # plot_ later")


def _alt(cell: dict):
    return cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_descriptive_alt_text(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    figures = [c for c in nb["cells"]
               if c["cell_type"] == "code" and draws_figure("".join(c["source"]))]
    assert figures, f"{path.name}: no figure cell found (is the detection broken?)"
    bad = []
    for cell in figures:
        alt = _alt(cell)
        if not isinstance(alt, str) or len(alt.strip()) < MIN_ALT:
            bad.append(f"{cell.get('id')}: alt text {alt!r} (needs {MIN_ALT}+ characters)")
        elif re.fullmatch(r"\S+\.(png|jpe?g|svg|gif)", alt.strip(), re.I):
            bad.append(f"{cell.get('id')}: alt text is a file name: {alt!r}")
    assert not bad, (f"{path.name}: figure cells without descriptive alt text; set "
                     '{"mystnb": {"image": {"alt": "what the figure shows"}}} in the cell '
                     "metadata:\n" + "\n".join(bad))


# --------------------------------------------------------------------------------------------------
# Code shown on the pages (issue 15): the package's own live code, without docstrings, lines <= 80
# --------------------------------------------------------------------------------------------------
def _shown_objects():
    """(chapter, "module.name") of every `book.show_code(...)` argument in the chapters."""
    found = []
    for path in sorted((REPO / "chapters").glob("0*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            for node in ast.walk(ast.parse("".join(cell["source"]))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "show_code"):
                    found += [(path.name, ast.unparse(arg)) for arg in node.args]
    return found


def test_the_method_is_shown_as_live_code_that_fits_the_page():
    import importlib
    import inspect
    import textwrap

    from gislr_utils import book
    shown = _shown_objects()
    names = {name for _, name in shown}
    # what issue 15 asks the chapters to show (chapter 4's fit call is in its own cell: test_recipe.py)
    for required in ("model.scaled_dot_product_attention", "model.LandmarkEmbedding", "model.FrameEmbedding",
                     "model.TransformerBlock", "model.build_model", "training.compile_model",
                     "training.BalancedSignBatches", "training.EpochSeed"):
        assert required in names, f"{required} is not shown on any page"
    text = "\n".join(book.source(getattr(importlib.import_module(f"gislr_utils.{n.split('.')[0]}"),
                                         n.split(".")[1])) for n in names)
    for needle in ("label_smoothing", "clipnorm", "compile("):
        assert needle in text, f"the shown code has no {needle!r}"
    for chapter, name in shown:
        module, attr = name.split(".")
        assert not attr.startswith("_"), f"{chapter} shows the private {name}: show the function it runs"
        obj = getattr(importlib.import_module(f"gislr_utils.{module}"), attr)
        src = book.source(obj)
        long = [line for line in src.splitlines() if len(line) > 80]
        assert not long, f"{chapter}: {name} shows lines over 80 characters: {long[:3]}"
        # the live code: its syntax tree is the object's own, docstrings removed
        live = ast.parse(textwrap.dedent(inspect.getsource(obj)))
        for node in ast.walk(live):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.FunctionDef, ast.ClassDef)) and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        assert ast.dump(ast.parse(src)) == ast.dump(live), f"{chapter}: {name} is not shown as it is"
        assert '"""' not in src, f"{chapter}: {name} still shows a docstring"


def test_chapters_show_and_run_what_issue_24_lists():
    """Chapter 3 shows the frame mask (with its frame drop), the normalisation and the pooling;
    chapter 5 runs the scikit-learn report in its cells or shows the function that does; chapter 6
    runs the export (the Keras export archive and the converter) in a cell of its own, and the
    masking comparison as a loop in its cells."""
    shown = {}
    for chapter, name in _shown_objects():
        shown.setdefault(int(chapter[:2]), set()).add(name)
    missing = {"model.FrameMask", "model.LandmarkNormalisation", "model.MaskedMeanPooling"} - shown.get(3, set())
    assert not missing, f"chapter 3 does not show {sorted(missing)}"
    code = {chapter_number(p): "\n".join(cells(p, "code")) for p in NOTEBOOKS}
    assert "classification_report" in code[5] or "evaluation.classification_report_df" in shown.get(5, set())
    nb = json.loads((REPO / "chapters" / "06_export_and_inference.ipynb").read_text(encoding="utf-8"))
    exported = "\n".join("".join(c["source"]) for c in nb["cells"] if "export" in c["metadata"].get("tags", []))
    assert "ExportArchive" in exported and "TFLiteConverter" in exported, "chapter 6 does not run the export"
    assert "masking_comparison(" not in code[6] and re.search(r"^for .* in .*:$", code[6], re.M)
