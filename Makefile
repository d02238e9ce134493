# Quick start (Python 3.11):  make book   -> builds the whole book, executing every chapter
#                             make test   -> runs the test suite
# Each target creates .venv and installs requirements.txt first (once; again when it changes).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: book test benchmarks clean

$(BIN)/.installed: requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

book: $(BIN)/.installed
	$(BIN)/jupyter-book build --all -W --keep-going .

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q tests

benchmarks: $(BIN)/.installed
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf _build artifacts
