# locdiff: every target bootstraps what it needs (the virtual environment) and is idempotent.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= cpu
# REDRAW=1: notebook 06 redraws its figures from the committed ablations.csv instead of training
REDRAW ?=
# The torch wheel installed first. 2.13.0 is a CPU build where a local wheel lies on disk;
# set TORCH=torch (or your own spec) for a CUDA build on a GPU machine.
TORCH ?= torch==2.13.0
# apt-get runs as is when we are root, else through sudo (the book's browser test needs Chromium)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
STAMP := $(VENV)/.locdiff-installed
# DATASET=path/to/spec.json runs the notebooks that take a real data set (02, 03, 04, 06) on it.
DATASET ?=
ifeq ($(DATASET),)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
EXECUTED := build/notebooks/$(PROFILE)
DATASET_ARG :=
else
NOTEBOOKS := $(addprefix notebooks/,02_train.ipynb 03_sampling.ipynb 04_baselines.ipynb 06_ablations.ipynb)
EXECUTED := build/notebooks/$(PROFILE)-$(basename $(notdir $(DATASET)))
DATASET_ARG := -p dataset $(abspath $(DATASET))
endif

.PHONY: help setup figures test unit unit-fast nbtest booktest book lab bench gpu-check gpu-wheels weights clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create .venv and install locdiff (editable, with the dev extra); no-op when up to date

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { echo "installing chromium (Debian) for the book's browser test"; \
	  $(SUDO) apt-get install -y -q chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q >/dev/null 2>&1 && \
	  $(SUDO) apt-get install -y -q chromium >/dev/null 2>&1; } || echo "chromium could not be installed: make booktest will fail"; }
	@touch $(STAMP)

figures: $(STAMP)  ## execute every notebook in order with papermill, streaming each cell's output (PROFILE=cpu|smoke|gpu; DATASET=spec.json; REDRAW=1 redraws 06 from its committed CSV); figures land in figures/
	@mkdir -p $(EXECUTED)
	@t0=$$(date +%s); for nb in $(NOTEBOOKS); do \
	  name=$$(basename $$nb); echo "== $$name (profile $(PROFILE))"; t=$$(date +%s); \
	  LOCDIFF_PROFILE=$(PROFILE) LOCDIFF_REDRAW=$(REDRAW) $(BIN)/papermill --cwd notebooks -p profile $(PROFILE) $(DATASET_ARG) \
	    $$nb $(EXECUTED)/$$name --log-output --no-progress-bar || { echo "FAILED: $$name"; exit 1; }; \
	  echo "== $$name took $$(( $$(date +%s) - t )) s"; \
	done; echo "== all notebooks took $$(( $$(date +%s) - t0 )) s"

test: unit nbtest booktest  ## unit tests, every notebook (exercises included) on the smoke profile, the book in a browser

unit: $(STAMP)  ## unit tests only
	$(BIN)/python -m pytest tests -q -n auto --dist loadfile -m "not book"

unit-fast: $(STAMP)  ## unit tests without the slow ones (multi-process, signal, offline, dry runs): a quick local loop
	$(BIN)/python -m pytest tests -q -n auto --dist loadfile -m "not slow and not book"

nbtest: $(STAMP)  ## execute every notebook with the smoke profile (fails on any error); kept in build/notebooks/smoke
	@$(MAKE) --no-print-directory figures PROFILE=smoke DATASET=

booktest: $(STAMP)  ## build the book from the smoke notebooks (make nbtest) and open every page in headless Chromium
	$(BIN)/python -m pytest tests/test_book.py -q -m book -p no:cacheprovider

book: $(STAMP)  ## the executed notebooks of PROFILE (make figures) as a static HTML site: build/book/PROFILE/html/index.html
	$(BIN)/python -m locdiff.book --profile $(PROFILE)

lab: $(STAMP)  ## JupyterLab on the notebooks
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)  ## speed benchmarks; ratios printed, CSVs under data/results/
	$(BIN)/python benchmarks/bench_shdd.py
	$(BIN)/python benchmarks/bench_data.py
	$(BIN)/python benchmarks/bench_locdiff.py
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_scale.py

# On a GPU machine whose Python is not ours (no .venv): the system python3, the repository on PYTHONPATH.
GPU_PYTHON := $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
gpu-check:  ## the prepared GPU check (benchmarks/gpu_check.py, < 8 min on one GPU): CSV and log under OUT (default build/gpu-check); DRY=1 runs it on the CPU at toy size
	$(GPU_PYTHON) benchmarks/gpu_check.py $(if $(DRY),--dry-run) --out "$${OUT:-build/gpu-check}"

gpu-wheels: $(STAMP)  ## download the wheels the GPU check carries to a machine without pytest (build/gpu-wheels, 1.8 MiB)
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: -d build/gpu-wheels \
	  "pytest>=8" "pluggy>=1.5" "iniconfig>=2" "packaging>=23" "pygments>=2.17"
	@du -sh build/gpu-wheels; ls build/gpu-wheels

weights: $(STAMP)  ## retrain (or reuse) the cpu-profile LocDiff and export it (float16) to locdiff/weights/locdiff-cpu (shipped)
	$(BIN)/python -c "from locdiff import pipeline, profiles; \
	  p = pipeline.LocDiffPipeline.from_experiment(profiles.get('cpu')); \
	  print('wrote', p.save_pretrained(pipeline.shipped_weights(), half=True))"

clean:  ## remove executed notebooks, caches and smoke figures (keeps .venv, committed figures and results)
	rm -rf build data/cache figures/smoke .pytest_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
