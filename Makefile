# Developer and CI entry points. `make test` is the test command (CI runs it via .ci/run).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
TOX_VENV := .venv-tox
TOX := $(TOX_VENV)/bin/tox
HOST ?= 127.0.0.1
PORT ?= 8000
TOX_ARGS ?=

# tox-uv creates envs with uv, whose interpreter discovery searches PATH and knows nothing of
# pyenv: pyenv's shims for versions that are not activated (python3.12, python3.13) just fail.
# So tox runs with the bin/ of every pyenv CPython >= 3.11 (ascending) ahead of PATH, and uv
# never tries to download one (the network may not reach python-build-standalone).
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo "$$HOME/.pyenv")
PYENV_BINS := $(shell ls -d $(PYENV_ROOT)/versions/3.1[1-9].*/bin 2>/dev/null | sort -V | paste -sd: -)
TOX_PATH := $(if $(PYENV_BINS),$(PYENV_BINS):)$(PATH)
export UV_PYTHON_DOWNLOADS ?= never
export PYTHONUNBUFFERED ?= 1

.PHONY: help demo test qa docs docs-serve bench evidence services pythons clean

help:
	@echo "make demo   - migrate and serve the demo chat with daphne on http://$(HOST):$(PORT)/"
	@echo "make test   - the whole tox matrix + qa (sets up tox, Redis, PostgreSQL and Chromium first)"
	@echo "make qa     - ruff check + mypy (tox env qa)"
	@echo "make docs   - build the docs site strictly into site/ (make docs-serve: live on http://127.0.0.1:8001/)"
	@echo "make bench  - python -m bench in .venv (BENCH_ARGS=--quick: under two minutes)"
	@echo "make evidence - the README's guarantee figures from their tests -> bench/evidence.md (~10 min)"

# --- development venv: demo, bench --------------------------------------------------------
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(VENV)/bin/python setup.cfg pyproject.toml
	$(VENV)/bin/python -m pip install -q -e ".[tests]"
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/python manage.py migrate --noinput
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) demo_project.asgi:application

$(VENV)/.bench-installed: $(VENV)/.installed
	$(VENV)/bin/python -m pip install -q -e ".[tests,bench]"
	touch $@

$(VENV)/.docs-installed: $(VENV)/.installed
	$(VENV)/bin/python -m pip install -q -e ".[docs]"
	touch $@

docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-serve: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8001

# BENCH_ARGS=--quick for the two-minute version.
bench: $(VENV)/.bench-installed
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

# The README's reliability and presence figures, from the tests that hold them: three runs,
# about 10 minutes on a loaded 2-core machine (EVIDENCE_ARGS=--runs=1: about 6).
# EVIDENCE_ARGS="--presence-cost --autobahn" adds bench/presence.py, bench/presence_store.py and
# the Autobahn testsuite (bench/presence-cost.md, bench/autobahn.md; about 10 more minutes).
EVIDENCE_ARGS ?=
evidence: $(VENV)/.bench-installed services
	$(VENV)/bin/python -m bench.evidence $(EVIDENCE_ARGS)

# --- tox: test, qa -------------------------------------------------------------------------
$(TOX):
	$(PYTHON) -m venv $(TOX_VENV)
	$(TOX_VENV)/bin/python -m pip install -q "tox>=4.20,<5" "tox-uv>=1.20,<2"

services:
	bash .ci/ensure-redis.sh
	bash .ci/ensure-postgres.sh
	bash .ci/ensure-chromium.sh

# The interpreter uv will use for each Python of the matrix; fails early if one is missing.
pythons: $(TOX)
	@for v in 3.11 3.12 3.13; do \
	    printf 'python%s: ' $$v; \
	    PATH="$(TOX_PATH)" $(TOX_VENV)/bin/uv python find --python-preference system $$v \
	        || { echo "python$$v not found (install it, e.g. with pyenv)" >&2; exit 1; }; \
	done

# Two envs at a time: the end-to-end env (py313-django61, most of the time, mostly waiting on
# servers) beside the others one after another, which then cost no wall time. Each env's output is
# printed when it ends (parallel_show_output in tox.ini). Any failing env fails the target.
test: $(TOX) services pythons
	PATH="$(TOX_PATH)" $(TOX) run-parallel --parallel 2 --parallel-no-spinner $(TOX_ARGS)

qa: $(TOX)
	PATH="$(TOX_PATH)" $(TOX) run -e qa

clean:
	rm -rf .tox build dist site *.egg-info .mypy_cache .ruff_cache .pytest_cache
