# Interloper control plane. The two commands of the README:
#   make run    start the whole stack locally (http://127.0.0.1:8080)
#   make test   lint, types, generated-stub check and every test (unit, service, end to end)
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PATH := $(CURDIR)/.tools/bin:$(PATH)

HTTP_PORT ?= 8080
DATA_DIR ?= .data
# Processes per service, e.g. make run REPLICAS=gateway=2,pipelines-worker=3 (interloper-stack up --replicas).
REPLICAS ?=
STACK_UP = uv run interloper-stack up --data-dir $(DATA_DIR) --http-port $(HTTP_PORT) $(if $(REPLICAS),--replicas $(REPLICAS))
PACKAGES = -p icp_common -p icp_protos -p icp_gateway -p icp_identity -p icp_pipelines \
	-p icp_notifications -p icp_agent -p icp_stack -p icp_testing -p icp_ctl

.PHONY: help install browser run fresh demo test lint typecheck pytest e2e

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install: ## Create .venv and install every package from uv.lock
	@scripts/bootstrap.sh >/dev/null

browser: ## Install Debian's chromium for the browser tests (tests-e2e/browser) if it is missing
	@scripts/install-browser.sh

run: install ## Start the whole stack: PostgreSQL, NATS, services, gateway, Traefik on :8080
	$(STACK_UP)

fresh: install ## Like run, but wipe the stack's state (.data/) first
	$(STACK_UP) --fresh

demo: install ## Like run, plus a demo organisation with a pipeline that has run once (sign-in link at startup)
	$(STACK_UP) --demo

test: install lint typecheck protos-check pytest ## Everything CI runs

lint: install ## ruff (lint + format check)
	uv run ruff check .
	uv run ruff format --check .

typecheck: install ## mypy (strict) on every package
	uv run mypy $(PACKAGES)

pytest: install browser ## Unit, service and end-to-end tests (real PostgreSQL, NATS, Traefik)
	uv run pytest -q

e2e: install browser ## Only the end-to-end tests through Traefik
	uv run pytest -q tests-e2e

include mk/protos.mk
include mk/deploy.mk
include mk/bench.mk
include mk/faults.mk
