# polycopy-stream: `make run` runs the demo, `make test` runs the tests; `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DURATION ?= 60
CAPTURE ?=
WALLETS ?=
BENCH_ARGS ?=
SOAK_ARGS ?=
# Operations tools (infra/): helm is built from the Go module proxy once, into the git-ignored .tools/.
TOOLS := .tools
HELM_VERSION := v3.22.0
HELM_K8S_MINOR := 37
HELM := $(TOOLS)/helm-$(HELM_VERSION)/helm
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
HELM_LDFLAGS := -s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR) \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "error: cannot create a virtualenv; install python3-venv" >&2; exit 1; }
	@echo "installing Python dependencies into $(VENV) ..."
	@$(BIN)/pip install -q --upgrade pip
	@$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its dev tools

up: ## start local Kafka (KRaft) and PostgreSQL, installing what is missing
	@bash infra/local.sh up

down: ## stop local Kafka and PostgreSQL (data is kept in .data/)
	@bash infra/local.sh down

status: ## show whether Kafka and PostgreSQL are running
	@bash infra/local.sh status

run: install up ## run the simulator and the whole pipeline for a bounded demo (CAPTURE=file, WALLETS=file, LIVE_FAKE=1)
	@$(BIN)/polycopy demo --duration-secs $(DURATION) $(if $(CAPTURE),--capture $(CAPTURE)) $(if $(WALLETS),--wallets $(WALLETS)) $(if $(LIVE_FAKE),--live-fake)

test: install up tools ## lint (ruff, mypy, import contracts), then unit, integration, end-to-end and operations tests
	@$(MAKE) --no-print-directory lint
	@$(BIN)/python -m pytest -q

fuzz: install ## the long fuzz run: 10,000 hypothesis examples per parser (make test runs a modest number)
	@FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -q tests/unit/test_fuzz.py

chaos: install ## the long chaos run: >= 50 seeded faults on its own Kafka and PostgreSQL (LIVE_FAKE=1: a live wallet on the fake CLOB)
	@$(BIN)/polycopy chaos --faults 50 $(if $(LIVE_FAKE),--live-fake)

bench: install up ## benchmark latency, the rate sweep and its knee, sink and whatif throughput (BENCH_ARGS=...)
	@$(BIN)/polycopy bench $(BENCH_ARGS)

soak: install up ## feed the pipeline at 200 trades/s for 10 minutes; prints the worker's RSS growth (SOAK_ARGS=...)
	@$(BIN)/polycopy soak $(SOAK_ARGS)

lint: install ## ruff (lint and format), mypy strict (pure core, schemas) and import contracts
	@$(BIN)/ruff check -q .
	@$(BIN)/ruff format --check -q .
	@$(BIN)/mypy
	@$(BIN)/lint-imports --no-cache

schemas: install ## re-export the JSON Schema files from the models
	@$(BIN)/polycopy schemas export

dashboards: install ## regenerate the Grafana dashboards (infra/grafana/dashboards/*.json) from their generator
	@$(BIN)/python infra/grafana/generate.py

$(HELM):
	@test -x "$(GO)" || { echo "error: building helm needs Go >= 1.24 (this machine kind has it in /usr/local/go)" >&2; exit 1; }
	@echo "building helm $(HELM_VERSION) from the Go module proxy into $(TOOLS)/ (once; a few minutes) ..."
	@GOBIN="$(abspath $(dir $(HELM)))" CGO_ENABLED=0 "$(GO)" install -trimpath -ldflags '$(HELM_LDFLAGS)' \
		helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@mkdir -p $(TOOLS)/bin && ln -sfn ../helm-$(HELM_VERSION)/helm $(TOOLS)/bin/helm

tools: $(HELM) ## operations tools: helm (built once into .tools/); promtool and prometheus come from Debian
	@command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 \
		|| echo "warning: promtool/prometheus missing: apt-get install prometheus (bash .ci/run does)" >&2

clean: down ## stop the servers and delete local data
	rm -rf .data

.PHONY: help install up down status run test fuzz chaos bench soak lint schemas dashboards tools clean
