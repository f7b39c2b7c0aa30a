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

run: install up ## run the simulator and the whole pipeline for a bounded demo (CAPTURE=file, WALLETS=file)
	@$(BIN)/polycopy demo --duration-secs $(DURATION) $(if $(CAPTURE),--capture $(CAPTURE)) $(if $(WALLETS),--wallets $(WALLETS))

test: install up ## lint (ruff, mypy, import contracts), then unit, integration and end-to-end tests
	@$(MAKE) --no-print-directory lint
	@$(BIN)/python -m pytest -q

bench: install up ## benchmark latency and throughput over the real broker; prints figures
	@$(BIN)/polycopy bench

lint: install ## ruff (lint and format), mypy strict (pure core, schemas) and import contracts
	@$(BIN)/ruff check -q .
	@$(BIN)/ruff format --check -q .
	@$(BIN)/mypy
	@$(BIN)/lint-imports --no-cache

schemas: install ## re-export the JSON Schema files from the models
	@$(BIN)/polycopy schemas export

clean: down ## stop the servers and delete local data
	rm -rf .data

.PHONY: help install up down status run test bench lint schemas clean
