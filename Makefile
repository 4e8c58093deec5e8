# The project's commands. `make dev` and `make test` are the two a newcomer needs.
PYTHON ?= python3.11
VENV := .venv
TOOLS := .venv-tools
# checkov pins an exact boto3 that aws-sam-cli's exact pin excludes: it gets a virtualenv of its own (inside .venv-tools)
CHECKOV := $(TOOLS)/checkov
PY := $(VENV)/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: dev demo test unit e2e lint build bench bench-e2e dlq token clean-local help

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(VENV)/.installed: requirements-dev.txt layers/dependencies/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(TOOLS)/.installed: requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet -r requirements-tools.txt
	touch $@

$(CHECKOV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV)
	$(CHECKOV)/bin/pip install --quiet -r requirements-checkov.txt
	touch $@

dev: $(VENV)/.installed ## set up and run the whole system locally (API on :3000 + events); FRESH=1 wipes data
	$(PY) -m devstack up $(if $(FRESH),--fresh)

demo: $(VENV)/.installed ## drive the running local stack through the whole saga
	$(PY) -m devstack demo

test: $(VENV)/.installed ## run the whole test suite (unit, integration, end-to-end)
	$(PY) -m pytest

unit: $(VENV)/.installed ## only the fast tests without MongoDB
	$(PY) -m pytest tests/unit

lint: $(VENV)/.installed $(TOOLS)/.installed $(CHECKOV)/.installed ## ruff, mypy, cfn-lint + serverless rules, sam validate --lint, checkov
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/shared functions devstack tests bench tools
	$(TOOLS)/bin/cfn-lint template.yaml -a cfn_lint_serverless.rules
	SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam validate --lint --region eu-west-1
	$(CHECKOV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download

build: $(TOOLS)/.installed ## sam build (no container needed)
	$(TOOLS)/bin/sam build

e2e: $(VENV)/.installed ## only the end-to-end tests (local stack over HTTP: saga, identity, fuzzing, MongoDB killed under load)
	$(PY) -m pytest tests/e2e

bench-e2e: $(VENV)/.installed ## only the saga on the local stack, 16 clients: orders/s, p50/p95 POST -> CONFIRMED
	$(PY) -m bench.end_to_end

bench: $(VENV)/.installed ## benchmarks; writes docs/BENCHMARKS.md
	$(PY) -m bench

dlq: $(VENV)/.installed ## list dead-letter queues of the local stack (see README for redrive and AWS)
	$(PY) -m devstack dlq list

clean-local: ## stop nothing, delete the local stack's data (.local/)
	rm -rf .local
