# Every target installs what it needs first (`setup` is cheap when all is present).
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
export UV_CACHE_DIR ?= $(CURDIR)/.cache/uv
UV := uv
VALIDATOR := shared/events/asyncapi-validator
NODE_TOOLS := deploy/compose-schema $(VALIDATOR)

.PHONY: help setup infra-up infra-down infra-status run test test-unit test-integration test-faults lint format generate bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup:  ## install system packages (JDK, Maven, PostgreSQL, npm, uv) and Python dependencies
	@deploy/local/bootstrap.sh
	@$(UV) sync --frozen --quiet
	@for dir in $(NODE_TOOLS); do \
		if [ -f $$dir/package-lock.json ] && [ ! -d $$dir/node_modules ]; then \
			npm ci --prefix $$dir --no-audit --no-fund --loglevel=error; fi; done

infra-up: setup  ## start Kafka, MongoDB and PostgreSQL on loopback (idempotent)
	@$(UV) run crm-infra up

infra-down:  ## stop exactly the servers infra-up started
	@$(UV) run crm-infra down

infra-status:  ## version, address, PID and data dir of each server
	@$(UV) run crm-infra status

run: setup  ## the whole system: infrastructure, services, simulated bank (Ctrl-C stops all)
	@$(UV) run crm-run

test: setup  ## unit and integration tests (starts and stops its own servers)
	@$(UV) run pytest

test-unit: setup  ## unit tests only
	@$(UV) run pytest -m "not integration"

test-integration: setup  ## integration tests only, against the genuine servers
	@$(UV) run pytest -m integration

test-faults: setup  ## fault suite: kills and restarts servers of its own, checks nothing lost or doubled
	@$(UV) run pytest faults -p no:randomly -q -s

lint: setup  ## ruff, mypy, and the generated files (contracts, realm users) are current and valid
	@$(UV) run ruff check .
	@$(UV) run ruff format --check .
	@$(UV) run mypy .
	@if [ -d shared/events/asyncapi ]; then \
		$(UV) run python -m crm_events.generate --check && node $(VALIDATOR)/validate.mjs; fi
	@$(UV) run python -m crm_simulator.realm --check
	@$(UV) run python -m local_infra.compose_accounts --check

format: setup  ## apply ruff's fixes and formatting
	@$(UV) run ruff check --fix .
	@$(UV) run ruff format .

generate: setup  ## regenerate JSON Schemas and AsyncAPI documents, the realm's staff users, compose's database accounts
	@$(UV) run python -m crm_events.generate
	@$(UV) run python -m crm_simulator.realm
	@$(UV) run python -m local_infra.compose_accounts

bench: infra-up  ## benchmarks against the genuine servers
	@$(UV) run python bench/run.py $(BENCH_ARGS)

clean: infra-down  ## remove local data (keeps downloaded caches)
	@# A PostgreSQL cluster the postgres user could not keep in var/ lives where var/ points.
	@for pointer in var/*/postgres/cluster; do \
		if [ -f "$$pointer" ]; then rm -rf "$$(cat "$$pointer")"; fi; done
	rm -rf var
