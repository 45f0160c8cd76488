# Web-ready JPEGs on Dask. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INPUT_DIR ?= data/input
OUTPUT_DIR ?= data/output
PYTEST_ARGS ?=
WORKERS ?= 2
# the compose v2 plugin when there, else docker-compose v1 (Debian bookworm's package)
COMPOSE = $(shell docker compose version >/dev/null 2>&1 && echo docker compose || echo docker-compose) -f docker-compose.yml

.DEFAULT_GOAL := help
.PHONY: help install run samples test lint format bench bench-scale notebook lock clean compose-up compose-down

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install the project with pinned versions

$(STAMP): pyproject.toml requirements/lock.txt
	$(PYTHON) requirements/make_venv.py $(VENV)
	$(PY) -m pip install -q -r requirements/lock.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP) ## process data/input -> data/output (fills an empty data/input with samples first)
	@mkdir -p $(INPUT_DIR)
	@if [ -z "$$(ls -A $(INPUT_DIR))" ]; then $(PY) -m pipeline samples --output $(INPUT_DIR); fi
	$(PY) -m pipeline run --input $(INPUT_DIR) --output $(OUTPUT_DIR) --report $(OUTPUT_DIR)/report.json

samples: $(STAMP) ## write generated sample images to data/input
	$(PY) -m pipeline samples --output $(INPUT_DIR)

test: $(STAMP) lint ## lint, then run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check, ruff format --check, mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/nbstripout --verify notebooks/*.ipynb

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP) ## speed/memory side by side with the seed pool and libvips (BENCH_QUICK=1: ~3 min)
	@$(PY) -c "import pyvips" 2>/dev/null || \
	  $(PY) -m pip install -q -c requirements/lock.txt -r requirements/bench.txt
	$(PY) benchmarks/bench.py

bench-scale: $(STAMP) ## the CLI over 1,000,000 empty inputs: peak RSS, graph per wave, driver ceiling
	$(PY) benchmarks/scale.py

notebook: $(STAMP) ## JupyterLab on 127.0.0.1 with the project (adds the notebook extra on first use)
	@$(PY) -c "import jupyterlab, dask_labextension" 2>/dev/null || \
	  $(PY) -m pip install -q -c requirements/lock.txt --no-build-isolation -e ".[notebook]"
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 --ServerApp.root_dir=notebooks $(JUPYTER_ARGS)

compose-up: ## Docker: build the image (on PYTHON_IMAGE if set), run scheduler + WORKERS workers (2) + runner
	@mkdir -p $(INPUT_DIR) $(OUTPUT_DIR)
	INPUT_DIR=$(abspath $(INPUT_DIR)) OUTPUT_DIR=$(abspath $(OUTPUT_DIR)) \
	PIPELINE_UID=$$(id -u) PIPELINE_GID=$$(id -g) \
	$(COMPOSE) up --build --scale worker=$(WORKERS) --exit-code-from runner

compose-down: ## Docker: remove the compose containers and network
	$(COMPOSE) down --remove-orphans

lock: ## re-resolve requirements/lock.txt from pyproject.toml in a scratch venv
	rm -rf .lock-venv && $(PYTHON) requirements/make_venv.py .lock-venv
	.lock-venv/bin/pip install -q setuptools wheel && .lock-venv/bin/pip install -q -e ".[s3,heif,test,lint]"
	{ head -n 2 requirements/lock.txt; .lock-venv/bin/pip freeze --all --exclude-editable \
	  | grep -v -E '^(-e|pip==)' | sort -f; } > requirements/lock.new && mv requirements/lock.new requirements/lock.txt
	rm -rf .lock-venv

clean: ## remove outputs, caches and the venv
	rm -rf $(VENV) $(OUTPUT_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis
