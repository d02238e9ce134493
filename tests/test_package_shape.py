"""A package a student can read (issues 15 and 24): its size, the size of each module and
function, its import graph."""
from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gislr_utils"
MAX_TOTAL = 2600          # lines of code in the package, chapter 7's two modules apart
CHAPTER7 = ("augment.py", "improved.py")     # what issue 27 adds: at most about 350 lines
MAX_CHAPTER7 = 350
MAX_MODULE = 400          # lines of code in one module
MAX_FUNCTION = 60         # lines of code in one function or method
MAX_BOOK = 100            # lines of code in book.py: it only sets a chapter up

# Floors of the package: a module imports only from lower floors (and its own floor's listed
# neighbours below it in this order), never upwards. The book's plumbing sits on top.
FLOORS = [
    ["_tf", "landmarks", "config", "runs"],
    ["augment", "improved"],
    ["dataset"],
    ["preprocessing", "statistics", "synthetic"],
    ["model"],
    ["training", "evaluation", "export"],
    ["recipe"],
    ["plotting"],
    ["book"],
]


def code_line_numbers(source: str) -> set[int]:
    """Numbers of the lines holding code: not blank, not only a comment, not part of a docstring."""
    tree = ast.parse(source)
    doc = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                doc.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = set()
    skip = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in doc)
    return lines


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    return len(code_line_numbers(source))


def function_sizes(source: str) -> dict[str, int]:
    """Lines of code of every function and method (``Class.method``), nested ones included in
    their enclosing function's count."""
    lines, sizes = code_line_numbers(source), {}

    def visit(node, prefix=""):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                span = range(child.lineno if not child.decorator_list else child.decorator_list[0].lineno,
                             child.end_lineno + 1)
                sizes[prefix + child.name] = len(lines.intersection(span))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
    visit(ast.parse(source))
    return sizes


def _files():
    return sorted(PACKAGE.rglob("*.py"))


def _module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_code_lines_counts_code_only():
    source = ('"""Module doc."""\n# a comment\n\ndef f(x):\n    """Doc\n    two lines."""\n'
              '    return (x +\n            1)\n')
    assert code_lines(source) == 3          # def, return and its continuation


def test_function_sizes_count_code_lines_per_function():
    source = ('class A:\n    def m(self):\n        """Doc."""\n        # note\n        x = 1\n\n        return x\n'
              '\n\n@dec\ndef f(a,\n      b):\n    def g():\n        return 1\n    return g\n')
    assert function_sizes(source) == {"A.m": 3, "f": 6, "f.g": 2}


def test_package_and_modules_are_small():
    sizes = {str(p.relative_to(PACKAGE)): code_lines(p.read_text(encoding="utf-8")) for p in _files()}
    total = sum(n for name, n in sizes.items() if name not in CHAPTER7)
    assert total <= MAX_TOTAL, f"gislr_utils has {total} lines of code (at most {MAX_TOTAL}): {sizes}"
    added = sum(sizes[name] for name in CHAPTER7)
    assert added <= MAX_CHAPTER7, f"chapter 7's modules have {added} lines of code (at most {MAX_CHAPTER7})"
    big = {name: n for name, n in sizes.items() if n > MAX_MODULE}
    assert not big, f"modules over {MAX_MODULE} lines of code: {big}"
    assert sizes["book.py"] <= MAX_BOOK, f"book.py has {sizes['book.py']} lines of code (at most {MAX_BOOK})"


def test_no_function_is_long():
    long = {f"{p.relative_to(PACKAGE)}:{name}": n for p in _files()
            for name, n in function_sizes(p.read_text(encoding="utf-8")).items() if n > MAX_FUNCTION}
    assert not long, f"functions over {MAX_FUNCTION} lines of code: {long}"


def _imports(path: Path) -> set[str]:
    """Package modules that `path` imports (at the top or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            depth_ok = node.level == 1 or (node.level == 2 and path.parent != PACKAGE)
            if not depth_ok:
                continue
            base = node.module.split(".")[0] if node.module else None
            if base is None:                                   # from . import a, b
                out |= {alias.name for alias in node.names}
            elif not (path.parent != PACKAGE and node.level == 1):  # inside a subpackage: its own files
                out.add(base)
            elif node.level == 2:
                out.add(base)
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("gislr_utils.")}
    return out - {""}


def test_imports_only_go_down_the_floors():
    floor = {m: i for i, mods in enumerate(FLOORS) for m in mods}
    modules = {_module_of(p) for p in _files()} - {"__init__"}
    assert modules <= set(floor), f"modules without a floor: {sorted(modules - set(floor))}"
    wrong = []
    for path in _files():
        me = _module_of(path)
        if me == "__init__":
            continue
        for other in _imports(path):
            if other == me or other not in floor:
                continue
            same_floor_ok = floor[other] == floor[me] and FLOORS[floor[me]].index(other) < FLOORS[floor[me]].index(me)
            if floor[other] > floor[me] or (floor[other] == floor[me] and not same_floor_ok):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {other}")
    assert not wrong, "imports that go up (or sideways) a floor: " + "; ".join(wrong)


def test_the_floor_check_sees_an_upward_import(tmp_path, monkeypatch):
    pkg = tmp_path / "gislr_utils"
    pkg.mkdir()
    (pkg / "model.py").write_text("def f():\n    from . import training\n")
    (pkg / "training.py").write_text("from .model import f\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    assert _imports(pkg / "model.py") == {"training"}
    try:
        test_imports_only_go_down_the_floors()
    except AssertionError as err:
        assert "model.py imports training" in str(err)
    else:
        raise AssertionError("an upward import went unnoticed")
