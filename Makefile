# Everything installs itself: a fresh machine needs only Python 3.11+, Go and make.
# Builds are cached in the user cache, keyed by their pins, so fresh clones reuse them.
SHELL := /bin/bash
CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/shinsa
PYTHON ?= python3
# Keyed by the dependency pins only, so editing other pyproject settings keeps the venv.
VENV := $(CACHE)/venv/$(shell sed -n '/^dependencies/,/^\[project.scripts\]/p' pyproject.toml | sha256sum | cut -c1-16)
BIN := $(VENV)/bin
STAMP := .venv-stamp

.PHONY: help env tools browser prometheus test unit e2e lint demo demo-down crds clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.complete:
	@echo "[shinsa] creating virtualenv $(VENV)"
	@rm -rf $(VENV) && $(PYTHON) -m venv --upgrade-deps $(VENV)
	@# Python 3.12+ venvs come without setuptools, which the editable install builds with.
	@$(BIN)/pip install --quiet wheel setuptools
	@$(BIN)/pip install --quiet --no-build-isolation -e '.[dev]'
	@touch $@

env: $(VENV)/.complete ## create the virtualenv (cached) and install shinsa into it
	@# The venv is shared between clones: point the editable install at this one.
	@out=$$($(BIN)/pip install --quiet --no-deps --no-build-isolation -e . 2>&1) || { echo "$$out"; exit 1; }
	@ln -sfn $(VENV) .venv

tools: ## build the local control plane's binaries (cached)
	@tools/build.sh >/dev/null

browser: ## Debian's Chromium for the tests that look at pages (installed when missing)
	@tools/chromium.sh

prometheus: ## Debian's prometheus and promtool for the metrics tests (unpacked into the user cache)
	@tools/prometheus.sh >/dev/null

lint: env ## ruff, mypy and the import layering (.importlinter)
	$(BIN)/ruff check operator tests benchmarks
	$(BIN)/ruff format --check operator tests benchmarks
	$(BIN)/mypy
	@# This checkout's package, whichever clone the shared venv's editable install points at.
	PYTHONPATH=operator $(BIN)/lint-imports

unit: env ## unit tests only (no processes)
	$(BIN)/pytest -m unit

e2e: env tools browser prometheus ## e2e tests against the real local control plane, MLflow and S3
	$(BIN)/pytest -m e2e

test: env tools browser prometheus lint ## the whole suite: lint, unit and e2e tests
	$(BIN)/pytest -m "unit or e2e"

demo: env tools ## local GPU cluster, MLflow, S3, operator; the examples, the example EvalRun and the promotion loop
	$(BIN)/shinsa demo

demo-down: env ## stop everything `make demo` started
	$(BIN)/shinsa demo down

crds: env ## regenerate crds/, the chart's copy and docs/api.md from the pydantic models
	$(BIN)/shinsa crds --output-dir crds --api-doc docs/api.md
	rm -f charts/shinsa/crds/*.yaml && cp crds/*.yaml charts/shinsa/crds/

clean: ## remove this clone's links (the user cache is kept)
	rm -f .venv
