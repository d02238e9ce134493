# Quick start:  make book   -> builds the whole book, executing every chapter
#               make test   -> runs the test suite
# Each target creates .venv and installs requirements.txt first (once; again when it, pyproject.toml
# or the lock changes), with the versions of requirements-py<X.Y>.lock as constraints.
# Other targets: make recipe (gislr_utils/recipe.py from the chapters' export cells),
# make check-pages (the built pages in headless Chromium: formulas typeset, nothing
# too wide), make student (the student edition, without solutions), make lint (ruff),
# make benchmarks, make setup-cells (after changing repository.url in _config.yml),
# make lock (refresh the lock), make clean.

# The first of these that runs and is Python >= 3.10 (override: make PYTHON=/path/to/python3.11).
PYTHON_CANDIDATES := python3.11 python3.12 python3.10 python3.13 python3
PYTHON ?= $(firstword $(foreach p,$(PYTHON_CANDIDATES),$(shell $(p) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 10))' >/dev/null 2>&1 && echo $(p))))
PYVER  := $(if $(PYTHON),$(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null))
LOCK   := requirements-py$(PYVER).lock
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: book check-pages test lint benchmarks lock clean python student setup-cells recipe

python:
	@if [ -z "$(PYTHON)" ]; then \
	  echo "error: no Python >= 3.10 found (tried $(PYTHON_CANDIDATES)); install one, or run make PYTHON=/path/to/python3.11"; exit 1; fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 10))' 2>/dev/null || { \
	  echo "error: PYTHON=$(PYTHON) is not a Python >= 3.10 ($$($(PYTHON) --version 2>&1 | head -1)); run make PYTHON=/path/to/python3.11"; exit 1; }

$(BIN)/.installed: requirements.txt pyproject.toml $(wildcard $(LOCK))
	@$(MAKE) --no-print-directory python PYTHON="$(PYTHON)"
	@echo "== Python: $(PYTHON) ($(PYVER))"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if [ -f $(LOCK) ]; then \
	  echo "$(BIN)/python -m pip install --quiet -c $(LOCK) -r requirements.txt"; \
	  $(BIN)/python -m pip install --quiet -c $(LOCK) -r requirements.txt; \
	else \
	  echo "warning: no $(LOCK) (the versions tested are locked for another Python): installing the newest"; \
	  echo "         versions requirements.txt allows; 'make lock' writes a lock for this Python"; \
	  $(BIN)/python -m pip install --quiet -r requirements.txt; \
	fi
	touch $@

book: $(BIN)/.installed
	$(BIN)/jupyter-book build --all -W --keep-going .

# The built pages as a reader sees them, after `make book`: each page of _build/html opened in
# headless Chromium at 1280 px (Debian: apt-get install chromium; or CHROMIUM=/path/to/chrome); every
# formula typeset by the offline MathJax, no table, code box or figure wider than its column.
check-pages: $(BIN)/.installed
	$(BIN)/python _ext/check_pages.py --known _ext/check_pages_known.txt _build/html

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q tests

# The student edition: the chapters without the cells tagged "solution" (notebooks to fill in,
# in student/chapters), and the book built from them into student/_build/html.
student: $(BIN)/.installed
	rm -rf student && mkdir -p student/chapters
	$(BIN)/jupyter nbconvert --to notebook --log-level WARN --TagRemovePreprocessor.enabled=True \
	    --TagRemovePreprocessor.remove_cell_tags=solution --output-dir student/chapters chapters/0*.ipynb
	cp -r _config.yml _toc.yml _ext intro.md teaching.md measurements.md references.md references.bib student/
	$(BIN)/jupyter-book build --all -W --keep-going student

# gislr_utils/recipe.py from the chapters' cells tagged "export" (chapter 4's training, chapter 6's
# export): run it after editing such a cell; tests/test_recipe.py fails when they disagree.
recipe:
	python3 _ext/recipes.py

setup-cells: $(BIN)/.installed
	$(BIN)/python _ext/setup_cells.py

lint: $(BIN)/.installed
	$(BIN)/ruff check .

benchmarks: $(BIN)/.installed
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Refresh the lock of this Python: resolve requirements.txt (and pyproject.toml's dependencies)
# anew with pip-tools, in a throw-away venv; the book's own package is left out of the lock.
lock: python
	rm -rf $(VENV)-lock
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet --upgrade pip pip-tools
	$(VENV)-lock/bin/pip-compile --quiet --strip-extras --no-header --no-emit-index-url \
	    --output-file $(LOCK).tmp requirements.txt
	{ echo "# Versions tested with Python $(PYVER); written by 'make lock' (pip-compile), do not edit."; \
	  awk '/^(-e|-r|--)/ {skip = 1; next} skip && /^ +#/ {next} {skip = 0; print}' $(LOCK).tmp; } > $(LOCK)
	rm -rf $(LOCK).tmp $(VENV)-lock
	@echo "wrote $(LOCK); rebuild the environment with: rm -rf $(VENV) && make test"

clean:
	rm -rf _build artifacts student
