# The two commands: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
# The infrastructure linters (requirements-infra.txt) live in a venv of their own.
INFRA ?= .venv-infra
INFRA_BIN := $(INFRA)/bin
TEMPLATES := $(wildcard src/lockgate/aws/templates/*.yaml)

.PHONY: demo test lint infra-lint typecheck unit bench clean

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

$(INFRA)/.installed: requirements-infra.txt
	$(PYTHON) -m venv $(INFRA)
	$(INFRA_BIN)/python -m pip --disable-pip-version-check -q install -r requirements-infra.txt
	@touch $@

demo: $(VENV)/.installed
	$(BIN)/lockgate demo --fresh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

# CloudFormation templates, Dockerfiles and GitHub workflows: linted here, exercised on AWS.
# (--skip-download: checkov would otherwise ask a web service for its guideline links.)
# checkov fails on any failed check; a check a template skips names it with a reason in the
# resource's Metadata (tests/aws/test_templates.py holds those reasons to a standard).
infra-lint: $(INFRA)/.installed
	$(INFRA_BIN)/cfn-lint $(TEMPLATES)
	$(INFRA_BIN)/checkov --quiet --compact --skip-download --framework cloudformation $(addprefix -f ,$(TEMPLATES))
	$(INFRA_BIN)/hadolint docker/*.Dockerfile
	PATH="$(abspath $(INFRA_BIN)):$$PATH" $(INFRA_BIN)/actionlint

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest --cov --cov-report=term --cov-report=xml -p no:cacheprovider

# The demo is part of the checks: `make test` fails if `make demo` would.
test: lint infra-lint typecheck unit demo

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/prep.py

clean:
	rm -rf $(VENV) $(INFRA) .coverage .coverage.* coverage.xml .mypy_cache .ruff_cache .pytest_cache
