"""Ready for a classroom (issue 17): the student edition, the hosted-notebook setup cell, the licence,
and the package from a non-editable install in another directory.

The student edition is checked statically (no cell uses a name that only a removed solution
defines); the book build executes the full chapters, so no student notebook is executed here."""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((REPO / "chapters").glob("0*.ipynb"))
SOLUTION_MARKERS = re.compile(r"\{solution(-start|-end)?\}")


def _load_setup_cells():
    spec = importlib.util.spec_from_file_location("setup_cells", REPO / "_ext" / "setup_cells.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------- setup cell
def test_every_chapter_opens_with_the_setup_cell_of_the_configuration():
    expected = _load_setup_cells().expected_source()
    for path in CHAPTERS:
        first = nbformat.read(path, as_version=4).cells[0]
        assert first.cell_type == "code" and first.source == expected, f"{path.name}: run make setup-cells"
        assert {"remove-cell", "skip-execution"} <= set(first.metadata.get("tags", [])), path.name


def test_the_setup_cell_installs_only_a_missing_package(monkeypatch, capsys):
    source = _load_setup_cells().expected_source()
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda cmd: calls.append(cmd))
    exec(compile(source, "setup", "exec"), {})                       # installed: nothing happens
    assert calls == [] and capsys.readouterr().out == ""
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)   # a hosted notebook
    exec(compile(source, "setup", "exec"), {})                       # no repository configured
    assert calls == [] and "set repository.url in _config.yml" in capsys.readouterr().out
    configured = source.replace('REPOSITORY = ""', 'REPOSITORY = "https://example.org/gislr-book"')
    exec(compile(configured, "setup", "exec"), {})
    version = re.search(r'VERSION = "([^"]+)"', source).group(1)
    assert calls == [[sys.executable, "-m", "pip", "install",
                      f"gislr-utils @ git+https://example.org/gislr-book@v{version}"]]


# ------------------------------------------------------------------------------ student edition
def _student_edition(out: Path) -> list[Path]:
    """The student notebooks as `make student` writes them (nbconvert's TagRemovePreprocessor with
    the tag ``solution``), in this process."""
    from nbconvert.preprocessors import TagRemovePreprocessor
    remove = TagRemovePreprocessor(enabled=True, remove_cell_tags={"solution"})
    out.mkdir(parents=True, exist_ok=True)
    for path in CHAPTERS:
        nb, _ = remove.preprocess(nbformat.read(path, as_version=4), {})
        nbformat.write(nb, out / path.name)
    return sorted(out.glob("0*.ipynb"))


def _defined_and_used(source: str) -> tuple[set, set]:
    tree = ast.parse(source)
    defined, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, ast.Store) else used).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return defined, used


def test_the_student_edition_keeps_the_exercises_and_no_solution(tmp_path):
    student = _student_edition(tmp_path)
    assert [p.name for p in student] == [p.name for p in CHAPTERS]
    for full_path, student_path in zip(CHAPTERS, student):
        full = nbformat.read(full_path, as_version=4)
        mine = nbformat.read(student_path, as_version=4)
        solutions = [c for c in full.cells if "solution" in c.metadata.get("tags", [])]
        assert solutions, f"{full_path.name}: no cell is tagged as a solution"
        text = "\n".join(c.source for c in mine.cells)
        assert not SOLUTION_MARKERS.search(text), f"{student_path.name}: a solution marker survived"
        elsewhere = "\n".join(c.source for c in full.cells if "solution" not in c.metadata.get("tags", []))
        for cell in solutions:                    # no solution text or code survives
            body = [line for line in cell.source.splitlines() if len(line.strip()) > 30
                    and not line.startswith(":::") and line not in elsewhere]
            assert not any(line in text for line in body), f"{student_path.name}: solution text survived"
        # every exercise is kept, with its label, in order
        labels = lambda nb: re.findall(r":label: (\S+)", "\n".join(c.source for c in nb.cells))  # noqa: E731
        assert labels(mine) == labels(full) and labels(mine), student_path.name
        # a markdown cell that holds an exercise holds no solution (mixed cells were split)
        for cell in full.cells:
            if "{exercise}" in cell.source:
                assert not SOLUTION_MARKERS.search(cell.source), f"{full_path.name}: exercise and solution mixed"
        # no later cell uses a name that only a removed solution cell defines
        removed_defs = set()
        for cell in solutions:
            if cell.cell_type == "code":
                removed_defs |= _defined_and_used(cell.source)[0]
        kept_defs, used_after = set(), set()
        for cell in mine.cells:
            if cell.cell_type == "code":
                defined, used = _defined_and_used(cell.source)
                used_after |= used - kept_defs
                kept_defs |= defined
        missing = (removed_defs - kept_defs) & used_after
        assert not missing, f"{student_path.name}: cells use {sorted(missing)}, defined only in solutions"


# --------------------------------------------------------------------------------------- licence
def test_licences_of_code_text_and_data():
    text = (REPO / "LICENSE").read_text()
    assert "MIT License" in text and "CC BY 4.0" in text and "ATTRIBUTION.md" in text
    assert 'license = "MIT"' in (REPO / "pyproject.toml").read_text()
    assert "CC BY 4.0" in (REPO / "gislr_utils" / "data" / "real_sample" / "ATTRIBUTION.md").read_text()


# ------------------------------------------------------------- a non-editable install, elsewhere
def test_the_package_works_from_a_non_editable_install_in_another_directory(tmp_path):
    """`pip install .` (not editable) in a fresh virtual environment; the package, run from an
    unrelated folder, writes artifacts/ there (not into site-packages) and finds the shipped sample
    and its data files through package data. (A chapter run there adds nothing: chapters reach the
    package only through these calls.)"""
    import sysconfig
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # the dependencies (TensorFlow, pip, setuptools, ...) come from this environment, through a .pth
    # file; the package itself is installed into the new one, not editable, and is found first
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "book-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    source = tmp_path / "book"          # a copy: building must not write into the repository
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "gislr_utils", source / "gislr_utils", ignore=shutil.ignore_patterns("__pycache__"))
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(source)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "class"
    elsewhere.mkdir()
    script = ("import gislr_utils\n"
              "from gislr_utils import book, config, evaluation, preprocessing\n"
              "ctx = book.setup('real-sample', None)\n"
              "prepared = preprocessing.prepare_dataset(ctx.data_dir, ctx.artifacts_dir, progress=False)\n"
              "print(gislr_utils.__file__, ctx.artifacts_dir, len(prepared.y), len(config.SIGN_TO_INDEX),\n"
              "      len(evaluation.seed_reference()) > 200)\n")
    run = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=elsewhere,
                         timeout=900, env=_clean_env())
    assert run.returncode == 0, run.stderr[-3000:]
    package, artifacts, *counts = run.stdout.split()
    assert package.startswith(site), f"imported from {package}, not the new environment"
    assert Path(artifacts) == elsewhere / "artifacts" and (elsewhere / "artifacts" / "prepared").is_dir()
    assert counts == ["16", "250", "True"]
    assert not list(Path(package).parent.rglob("artifacts")), "artifacts written into site-packages"


def _clean_env():
    """The environment without this repository on the import path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env

