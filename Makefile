# Web-ready JPEGs on Dask. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INPUT_DIR ?= data/input
OUTPUT_DIR ?= data/output
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run samples test lint format bench notebook lock clean compose-up compose-down

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

format: $(STAMP) ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

lock: ## re-resolve requirements/lock.txt from pyproject.toml in a scratch venv
	rm -rf .lock-venv && $(PYTHON) requirements/make_venv.py .lock-venv
	.lock-venv/bin/pip install -q setuptools wheel && .lock-venv/bin/pip install -q -e ".[s3,test,lint]"
	{ head -n 2 requirements/lock.txt; .lock-venv/bin/pip freeze --all --exclude-editable \
	  | grep -v -E '^(-e|pip==)' | sort -f; } > requirements/lock.new && mv requirements/lock.new requirements/lock.txt
	rm -rf .lock-venv

clean: ## remove outputs, caches and the venv
	rm -rf $(VENV) $(OUTPUT_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis
