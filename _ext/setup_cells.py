"""Write the hosted-notebook setup cell into every chapter (`make setup-cells`).

The cell is the first of each chapter, hidden on the pages and skipped by the book's build
(tags ``remove-cell``, ``skip-execution``). In Colab, Kaggle or a JupyterHub, where `gislr_utils`
is not installed, it installs the package at this book's version from the repository named once,
in `_config.yml` (``repository.url``); without a URL it says what to do instead. A test checks
that the chapters' cells agree with `_config.yml` and `pyproject.toml`.
"""
import json
import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
TAGS = ["setup", "remove-cell", "skip-execution"]
TEMPLATE = '''\
# Hosted notebooks (Colab, Kaggle, JupyterHub): install the book's package when
# it is missing. The book's build skips this cell; elsewhere it does nothing.
import importlib.util
import subprocess
import sys

REPOSITORY = {url}  # repository.url of _config.yml (make setup-cells)
VERSION = {version}  # the book's version (pyproject.toml)
if importlib.util.find_spec("gislr_utils") is None:
    if REPOSITORY:
        spec = f"gislr-utils @ git+{{REPOSITORY}}@v{{VERSION}}"
        subprocess.check_call([sys.executable, "-m", "pip", "install", spec])
    else:
        print("gislr_utils is not installed and this book names no repository: "
              "install the book's package (pip install <folder or URL of the "
              "book>), or set repository.url in _config.yml and run "
              "make setup-cells")'''


def expected_source() -> str:
    """The setup cell's source for the repository URL and version configured now."""
    url = (yaml.safe_load((ROOT / "_config.yml").read_text()).get("repository") or {}).get("url") or ""
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    return TEMPLATE.format(url=json.dumps(url), version=json.dumps(version))


def main() -> int:
    source = expected_source()
    for path in sorted((ROOT / "chapters").glob("0*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": TAGS})
        if nb.cells and "setup" in nb.cells[0].metadata.get("tags", []):
            cell.id = nb.cells[0].id
            nb.cells[0] = cell
        else:
            nb.cells.insert(0, cell)
        nbformat.write(nb, path)
        print(f"{path.relative_to(ROOT)}: setup cell written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
