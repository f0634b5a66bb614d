# Headwater — every tool the project needs is installed by these targets, never assumed present.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
CLUSTER := $(PY) -m headwater_localcluster
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV_STAMP): pyproject.toml
	@command -v $(PYTHON_BOOTSTRAP) >/dev/null || { echo "$(PYTHON_BOOTSTRAP) is required"; exit 1; }
	[ -x $(PY) ] || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

.PHONY: venv
venv: $(VENV_STAMP) ## Create the virtual environment with every Python dependency

.PHONY: system-deps
system-deps: ## Install Debian packages the tests and benchmarks need (PostgreSQL server, util-linux, gdal-bin)
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v unshare >/dev/null; then \
	  echo "installing PostgreSQL server and util-linux from Debian's packages"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql util-linux >/dev/null; \
	fi
	@if ! command -v gdalwarp >/dev/null; then \
	  echo "installing gdal-bin (gdalwarp, the Package benchmark's baseline) from Debian's packages"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdal-bin >/dev/null; \
	fi

.PHONY: cluster-bin
cluster-bin: venv ## Build etcd, kube-apiserver, kube-controller-manager, kubectl and helm (cached per machine)
	$(CLUSTER) build

.PHONY: up
up: cluster-bin ## Start the local control plane and node (idempotent); kubeconfig in .localcluster/kubeconfig
	$(CLUSTER) up

.PHONY: down
down: venv ## Stop the local control plane and everything it started
	$(CLUSTER) down
	$(CLUSTER) s3 down
	$(CLUSTER) postgres down

.PHONY: lint
lint: venv ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: fmt
fmt: venv ## Format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: test
test: venv system-deps cluster-bin lint ## Lint, then every test (the slow ones included)
	$(PY) -m pytest -q $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: venv ## Tests not marked slow
	$(PY) -m pytest -q -m 'not slow' $(PYTEST_ARGS)

.PHONY: postgres
postgres: venv system-deps ## Start PostgreSQL for the demo (idempotent); prints its DATABASE_URL
	$(CLUSTER) postgres up

.PHONY: s3
s3: venv ## Start an S3 protocol endpoint (moto) for the demo (idempotent); prints its URL
	$(CLUSTER) s3 up

.PHONY: env
env: ## Print the exports that point kubectl and helm at the local control plane: eval "$$(make -s env)"
	@echo "export KUBECONFIG=$(CURDIR)/.localcluster/kubeconfig"
	@echo "export PATH=$$($(PY) -c 'from headwater_localcluster import binaries; print(binaries.bin_dir())'):$$PATH"

.PHONY: crds
crds: venv ## Generate crds/ from the API models
	$(PY) -m headwater_operator.api.crdgen --out crds

.PHONY: chart-crds
chart-crds: ## Copy crds/ into the Helm chart
	find charts/headwater/crds -name '*.yaml' ! -name '*.kopf.dev.yaml' -delete
	cp crds/*.yaml charts/headwater/crds/

.PHONY: demo
demo: venv system-deps cluster-bin ## Start everything locally, run the operator, apply the examples and show them Ready
	$(CLUSTER) demo

.PHONY: bench
bench: venv system-deps cluster-bin ## Run the benchmarks and write docs/benchmarks.md and .json
	$(PY) -m bench all
