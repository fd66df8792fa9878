# Fournil: `make help` lists the targets. Every target installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen
PYTEST_ARGS ?=
export UV_PYTHON_DOWNLOADS := never

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z_-]+:.*?## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: ## Install uv (if missing) and the locked dependencies into .venv
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || \
		$(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet

.PHONY: demo
demo: install ## Run the demo on embedded defaults (SQLite warehouse under ./.fournil)
	$(RUN) fournil demo

.PHONY: test
test: install ## Run unit and integration tests (needs PostgreSQL: TEST_DATABASE_URL)
	$(RUN) pytest tests $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install ## Run unit tests only (no database server needed)
	$(RUN) pytest tests/unit $(PYTEST_ARGS)

.PHONY: lint
lint: install ## Lint, check formatting and types
	$(RUN) ruff check src tests benchmarks flows
	$(RUN) ruff format --check src tests benchmarks flows
	$(RUN) mypy

.PHONY: format
format: install ## Format and auto-fix the code
	$(RUN) ruff format src tests benchmarks flows
	$(RUN) ruff check --fix src tests benchmarks flows

.PHONY: bench
bench: install ## Benchmarks with ratios against named baselines (PostgreSQL)
	$(RUN) python -m benchmarks.bench_ingest
	$(RUN) python -m benchmarks.bench_train
	$(RUN) python -m benchmarks.bench_api

.PHONY: db-upgrade
db-upgrade: install ## Create or migrate the warehouse that DATABASE_URL names
	$(RUN) fournil db upgrade

.PHONY: clean
clean: ## Remove the local state (.fournil) and caches
	rm -rf .fournil .pytest_cache .mypy_cache .ruff_cache
