# The two commands: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "lockgate needs Python 3.11+, found " + sys.version' \
		|| { echo "make: set PYTHON=/path/to/python3.11 (or newer)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(PIP) install -e '.[train,serve]'
	@touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/lockgate demo --fresh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest --cov --cov-report=term --cov-report=xml -p no:cacheprovider

# The demo is part of the checks: `make test` fails if `make demo` would.
test: lint typecheck unit demo

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/prep.py

clean:
	rm -rf $(VENV) .coverage .coverage.* coverage.xml .mypy_cache .ruff_cache .pytest_cache
