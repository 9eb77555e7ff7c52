# eks-proxy: every entry point a contributor or CI needs. `make help` lists them.
SHELL := /bin/bash
# The first interpreter that really runs (a pyenv shim for a version that is not selected exits 127).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do $$p -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1 && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
PYTEST_ARGS ?=
# pytest-xdist workers: `auto` is one per core; `make test PYTEST_WORKERS=0` runs the suite in one process.
PYTEST_WORKERS ?= auto

.PHONY: help install tools test unit lint format demo bench validate build clean asl

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP) ## create .venv with the package, the eks-proxy CLI and the dev tools

$(SAM): 
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --upgrade pip
	$(SAM_VENV)/bin/pip install -q aws-sam-cli

tools: ## check the tools the suite runs (tinyproxy, docker-registry, skopeo, squid, ...); installs missing ones as root with apt-get
	$(PYTHON) scripts/ensure_tools.py

test: tools $(STAMP) $(SAM) ## run the whole suite on every core (unit, CLI, moto server, node simulation, template)
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

unit: $(STAMP) ## fast tests only (no namespaces, no SAM)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP) ## ruff + mypy --strict (package, functions, testkit, scripts, demo, bench) + import direction + no module imports tests/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) scripts/check_test_imports.py

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

demo: $(STAMP) ## the whole product on an embedded default, against a local moto server
	$(PY) -m demo $(DEMO_ARGS)

asl: $(STAMP) ## regenerate statemachine/rollout.asl.json (tests fail when it differs from statemachine/generate.py)
	$(PY) statemachine/generate.py

bench: $(STAMP) ## print the figures the issues ask for
	$(PY) bench/run.py

validate: $(SAM) ## sam validate --lint (offline)
	$(SAM) validate --lint

build: $(SAM) ## sam build without Docker and without python3.13
	$(SAM) build

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
