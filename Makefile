# photopipe — `make demo` runs the main job, `make test` runs every test. Both do all set-up themselves.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Any Python 3 can run the finder; it prints an interpreter >= 3.12 (3.13 preferred) or says what it searched.
BOOT_PYTHON := $(shell command -v python3 || command -v python)

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -n "$(BOOT_PYTHON)" || { echo "error: no python3 on PATH to look for Python >= 3.12 with" >&2; exit 1; }
	@py=$$($(BOOT_PYTHON) infra/src/photopipe_infra/pythons.py) && echo "Creating $(VENV) with $$py" && \
		rm -rf $(VENV) && "$$py" -m venv $(VENV)
	@# uv installs in seconds what pip takes minutes for; photopipe makes its tool venvs with it too.
	@# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set, every `photopipe` command compiled boto3 and the rest
	@# from source again (2.8 s for `photopipe --help`, 1.3 s compiled).
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv>=0.5'
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	@touch $@

.PHONY: venv
venv: $(STAMP) ## Create the project venv (.venv) with the CLI and dev tools

.PHONY: up
up: $(STAMP) ## Start embedded LocalStack and deploy the stack (idempotent)
	$(BIN)/photopipe up

.PHONY: down
down: $(STAMP) ## Stop what `make up` started
	$(BIN)/photopipe down

.PHONY: demo
demo: $(STAMP) ## The main job: bring the stack up, send photos through the pipeline, show what happened
	$(BIN)/photopipe demo

.PHONY: unit
unit: $(STAMP) ## Pure tests (no network)
	$(BIN)/pytest tests/unit

.PHONY: functional
functional: $(STAMP) ## Handlers in-process against moto
	$(BIN)/pytest tests/functional

.PHONY: integration
integration: $(STAMP) browser ## The deployed stack on embedded LocalStack (started and stopped by the tests)
	$(BIN)/pytest tests/integration

.PHONY: browser
browser: ## Install Debian's chromium and chromium-driver, which the upload page's browser test drives (once)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	echo "Installing Debian's chromium and chromium-driver with apt-get (for the upload page's browser test; once)"; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
	$$sudo apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null

.PHONY: test
test: $(STAMP) browser ## Every test: unit, functional, integration (installs the browser the page's test needs)
	$(BIN)/pytest tests --cov --cov-report=term:skip-covered

.PHONY: lint
lint: $(STAMP) ## ruff, mypy, and the template's review (cfn-lint with info checks, checkov)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m photopipe_infra.review
