# Fournil: `make help` lists the targets. Every target installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen
PYTEST_ARGS ?=
# REPORTS=build/reports: each test target also writes JUnit XML and coverage there (Jenkins)
REPORTS ?=
PYTEST_REPORT = $(if $(REPORTS),--junitxml=$(REPORTS)/$@.xml --cov=fournil --cov-report=xml:$(REPORTS)/coverage-$@.xml)
TAG ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo dev)
export UV_PYTHON_DOWNLOADS := never

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*?## "} /^[a-zA-Z_-]+:.*?## / {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: ## Install uv (if missing) and the locked dependencies into .venv
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || \
		$(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --quiet

.PHONY: demo
demo: install ## Run the demo on embedded defaults (SQLite warehouse under ./.fournil)
	$(RUN) fournil demo

.PHONY: test
test: install ## Run unit, integration and stack tests (needs PostgreSQL: TEST_DATABASE_URL)
	$(RUN) pytest tests $(PYTEST_REPORT) $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: install ## Run unit tests only (no database server needed)
	$(RUN) pytest tests/unit $(PYTEST_REPORT) $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: install ## Run integration tests (real PostgreSQL, MLflow, Prefect, Superset)
	$(RUN) pytest tests/integration $(PYTEST_REPORT) $(PYTEST_ARGS)

.PHONY: lint
lint: install ## Lint, check formatting and types
	$(RUN) ruff check src tests benchmarks grafana compose superset docs
	$(RUN) ruff format --check src tests benchmarks grafana compose superset docs
	$(RUN) mypy
	$(RUN) mypy benchmarks docs grafana compose tests
	$(RUN) mypy superset  # apart: grafana/ and superset/ both hold a generate.py

.PHONY: format
format: install ## Format and auto-fix the code
	$(RUN) ruff format src tests benchmarks grafana compose superset docs
	$(RUN) ruff check --fix src tests benchmarks grafana compose superset docs

.PHONY: bench
bench: install ## Benchmarks with ratios against named baselines (PostgreSQL)
	$(RUN) python -m benchmarks.bench_ingest
	$(RUN) python -m benchmarks.bench_train
	$(RUN) python -m benchmarks.bench_api

SIZE ?= S
.PHONY: bench-scale
bench-scale: install ## The pipeline's stages at a chain's size: SIZE=S|M|L (PostgreSQL; L takes hours)
	$(RUN) python -m benchmarks.bench_scale --size $(SIZE) $(BENCH_ARGS)

.PHONY: bench-accuracy
bench-accuracy: install ## Accuracy vs statsforecast and mlforecast on public data (BENCH_ARGS="--datasets m4_daily --quick")
	$(RUN) --group peers python -m benchmarks.bench_accuracy $(BENCH_ARGS)

.PHONY: db-upgrade
db-upgrade: install ## Create or migrate the warehouse that DATABASE_URL names
	$(RUN) fournil db upgrade

.PHONY: docs
docs: install ## Build the docs site strictly into build/site (regenerates docs/api/openapi.json)
	$(RUN) python docs/gen_openapi.py
	NO_MKDOCS_2_WARNING=1 $(RUN) --group docs mkdocs build --strict --site-dir build/site

.PHONY: docs-serve
docs-serve: install ## Serve the docs site with live reload (DOCS_ADDR, default 127.0.0.1:8001)
	$(RUN) python docs/gen_openapi.py
	NO_MKDOCS_2_WARNING=1 $(RUN) --group docs mkdocs serve --strict --dev-addr $(or $(DOCS_ADDR),127.0.0.1:8001)

.PHONY: clean
clean: ## Remove the local state (.fournil) and caches
	rm -rf .fournil .pytest_cache .mypy_cache .ruff_cache

# --- the compose stack (a VM with Docker) -------------------------------------------------------
COMPOSE ?= docker compose
APP_SERVICES := worker api mlflow prefect-server superset grafana jupyterlab

.PHONY: init-env
init-env: ## Write .env with random secrets (DOMAIN=example.org to set FOURNIL_DOMAIN)
	$(PYTHON) compose/init_env.py $(if $(DOMAIN),--domain $(DOMAIN))

.PHONY: up
up: ## Build the images and start the stack (docker compose up -d)
	@test -f .env || { echo ".env missing: run make init-env first"; exit 1; }
	@! grep -qE '^[A-Z_]+=change-me$$' .env || { echo ".env still has change-me secrets: make init-env"; exit 1; }
	$(COMPOSE) up -d --build --remove-orphans
	$(COMPOSE) ps

.PHONY: down
down: ## Stop the stack (volumes are kept)
	$(COMPOSE) down

.PHONY: logs
logs: ## Follow the stack's logs (SERVICE=api for one service)
	$(COMPOSE) logs -f --tail=200 $(SERVICE)

.PHONY: backup
backup: ## Back up every database and the MLflow artifacts now (volume `backups`)
	$(COMPOSE) exec backup /opt/backup/backup.sh

.PHONY: restore
restore: ## Restore a backup in place: make restore BACKUP=20261123T020000Z
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=<folder in the backups volume>"; \
		$(COMPOSE) exec backup ls /backups; exit 1; }
	$(COMPOSE) stop $(APP_SERVICES)
	$(COMPOSE) exec backup /opt/backup/restore.sh /backups/$(BACKUP)
	$(COMPOSE) up -d

.PHONY: compose-test
compose-test: install ## The real compose stack in Docker: engine, stand-in images, build, up, pipeline, faults (root)
	bash compose/standins/prepare.sh all
	FOURNIL_COMPOSE_TEST=1 $(RUN) pytest tests/e2e/containers -s $(PYTEST_REPORT) $(PYTEST_ARGS)

.PHONY: stack-test
stack-test: install ## Run the compose services natively from docker-compose.yml, end to end
	$(RUN) pytest tests/e2e $(PYTEST_REPORT) $(PYTEST_ARGS)

# --- CI/CD (the Jenkinsfile's stages; `make -n <target>` shows what each runs) ---------------
.PHONY: qualify
qualify: stack-test ## Qualification on a fresh environment: the native stack test, end to end

.PHONY: images
images: ## Build every image tagged TAG (default: the commit): make images TAG=abc123
	FOURNIL_VERSION=$(TAG) $(COMPOSE) --profile observability --profile bi --profile notebook \
		--profile ci build

.PHONY: deploy
deploy: ## Roll the VM's stack out to TAG, smoke-test, roll back on failure (FOURNIL_DEPLOY_DIR)
	bash jenkins/deploy.sh $(TAG)

.PHONY: notify-failure
notify-failure: ## Post a failed build to the webhook in $$WEBHOOK (Slack-compatible), if set
	@if [ -n "$${WEBHOOK:-}" ]; then \
		curl -fsS -X POST -H 'Content-Type: application/json' \
			-d "{\"text\": \"Fournil CI/CD: $(BUILD) failed: $(LINK)\"}" "$$WEBHOOK" >/dev/null; \
	else echo "notify-failure: no webhook set"; fi

SUPERSET_VENV ?= .venv-superset
.PHONY: superset-venv
superset-venv: ## Superset's own virtualenv (its pins conflict with ours), cached by requirements hash
	@want=$$(sha256sum services/superset/requirements.txt | cut -d' ' -f1); \
	if [ "$$(cat $(SUPERSET_VENV)/.requirements.sha256 2>/dev/null)" != "$$want" ]; then \
		rm -rf $(SUPERSET_VENV) && $(UV) venv --quiet --python $(PYTHON) $(SUPERSET_VENV) && \
		$(UV) pip install --quiet --no-config --python $(SUPERSET_VENV)/bin/python --no-deps \
			-r services/superset/requirements.txt && \
		echo "$$want" > $(SUPERSET_VENV)/.requirements.sha256; \
	fi

.PHONY: dashboards
dashboards: install ## Regenerate the Grafana dashboards (grafana/generate.py) and the Superset bundle (superset/generate.py)
	$(RUN) python grafana/generate.py
	$(RUN) python superset/generate.py

define STRIP_NOTEBOOKS
import sys, nbformat
for path in sys.argv[1:]:
    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(book, path)
endef
export STRIP_NOTEBOOKS
.PHONY: notebooks-strip
notebooks-strip: install ## Strip the example notebooks' outputs (git holds them clean)
	$(RUN) python -c "$$STRIP_NOTEBOOKS" notebooks/*.ipynb

.PHONY: dashboards-preview
dashboards-preview: install ## Run the stack natively and plot every dashboard panel (build/dashboards/*.png)
	FOURNIL_DASHBOARD_PREVIEW=build/dashboards $(RUN) pytest tests/e2e -k dashboards $(PYTEST_ARGS)

.PHONY: compose-check
compose-check: install ## Validate the compose file, Dockerfiles, proxy and Prometheus configs
	$(RUN) check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	$(RUN) hadolint services/*/Dockerfile
	@if command -v caddy >/dev/null; then \
		FOURNIL_DOMAIN=example.org PROXY_USER=u PROXY_PASSWORD_HASH="$$(caddy hash-password --plaintext x)" \
		caddy validate --config compose/proxy/Caddyfile --adapter caddyfile; \
	else echo "caddy not installed: Caddyfile not validated (apt-get install caddy)"; fi
	promtool check config compose/prometheus/prometheus.yml
	promtool check rules compose/prometheus/rules/*.yml
	promtool test rules compose/prometheus/tests/*.yml
	@for url in "" "https://hooks.slack.com/services/T0/B0/x"; do \
		run=$$(mktemp -d) && ALERT_WEBHOOK_URL="$$url" ALERTMANAGER_CONFIG_DIR=compose/alertmanager \
		ALERTMANAGER_RUN_DIR=$$run ALERTMANAGER_BIN=true sh compose/alertmanager/start.sh && \
		amtool check-config $$run/alertmanager.yml && rm -rf $$run || exit 1; \
	done
