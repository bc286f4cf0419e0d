# paysaga: `make dev` runs the whole stack, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKERS ?= 1
API_WORKERS ?= 1

.PHONY: dev test docs docs-serve jq lint typecheck audit bench chaos dr-drill fuzz clean histories browser pgbouncer screenshots lock min-versions prometheus dashboards

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

dev: $(STAMP)
	PAYSAGA_API_WORKERS=$(API_WORKERS) $(BIN)/python -m devtools --workers $(WORKERS)

test: $(STAMP) browser prometheus pgbouncer jq
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

# The docs site (mkdocs.yml, docs/) into site/, strict: a broken link or a missing page fails.
# `make test` runs the same build (tests/test_docs.py) and every curl example of the README and
# the docs against a test stack (tests/test_docs_examples.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

# The docs' examples (tests/test_docs_examples.py) read the API's answers with jq, as a newcomer
# following them does: installed here when missing and we are root, as the packages below.
jq:
	@if command -v jq >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing jq (apt-get) for the docs' examples"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq >/dev/null; }; \
	else \
		echo "note: jq is missing; as root: apt-get install jq (the docs' examples fail without it)"; \
	fi

# The demo checkout's browser test (tests/paysaga/test_demo_checkout.py) drives Debian's
# Chromium through its chromedriver. Installed here when missing and we are root; otherwise the
# test fails saying what to install.
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(BROWSER_PACKAGES) (apt-get) for the demo checkout's browser test"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null; }; \
	else \
		echo "note: chromium and chromedriver are missing; as root: apt-get install $(BROWSER_PACKAGES)" \
			"(the demo checkout's browser test fails without them)"; \
	fi

# The alerting rules' checks and the dashboards' test (tests/observability) run Debian's
# Prometheus and promtool: installed here when missing and we are root.
prometheus:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing prometheus (apt-get) for the alert rules' and dashboards' tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus >/dev/null; }; \
	else \
		echo "note: prometheus is missing; as root: apt-get install prometheus" \
			"(the alert rules' and dashboards' tests fail without it)"; \
	fi

# Regenerates deploy/grafana/dashboards/*.json from deploy/grafana/dashboards.py.
dashboards: $(STAMP)
	$(BIN)/python deploy/grafana/dashboards.py

# The PgBouncer tests (tests/pgbouncer/) start Debian's pgbouncer in transaction mode in front
# of the test PostgreSQL. Installed here when missing and we are root, as the browser above.
pgbouncer:
	@if command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing pgbouncer (apt-get) for the PgBouncer tests"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >/dev/null; }; \
	else \
		echo "note: pgbouncer is missing; as root: apt-get install pgbouncer" \
			"(the PgBouncer tests fail without it)"; \
	fi

# Re-takes docs/demo/*.png: the demo checkout's browser test, saving a screenshot of each step.
screenshots: $(STAMP) browser
	PAYSAGA_DEMO_SCREENSHOTS=docs/demo $(BIN)/pytest tests/paysaga/test_demo_checkout.py -q -p no:randomly

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Schemathesis, every check, against a running `make dev` (exceptions: schemathesis.toml).
FUZZ_URL ?= http://127.0.0.1:8000
FUZZ_SECONDS ?= 600
fuzz: $(STAMP)
	$(BIN)/schemathesis --config-file schemathesis.toml run $(FUZZ_URL)/openapi.json \
		--checks all --max-time $(FUZZ_SECONDS) --header "Authorization: Bearer sk_test_ops"

chaos: $(STAMP)
	$(BIN)/python -m devtools.chaos

# Disaster recovery: the ledger database killed and deleted under load, restored to the last
# record; prints RPO and RTO, then audits and reconciles. DR_ARGS="--duration 120 --rate 8".
dr-drill: $(STAMP)
	$(BIN)/python -m devtools.dr_drill $(DR_ARGS)

audit: $(STAMP)
	$(BIN)/paysaga ledger audit

# Starts its own stack on free ports; BENCH_ARGS="--duration 120 --rate 15", or "--quick".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Re-record tests/histories/ after a deliberate saga change (docs/guides/change-a-saga.md).
histories: $(STAMP)
	$(BIN)/python -m tests.histories.capture

# requirements.lock: the image's runtime dependencies, pinned with their hashes (uv, from the
# `dev` extra). Run after changing pyproject.toml's dependencies; tests/test_packaging.py checks
# that the lock still satisfies them.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes --annotation-style line \
		--custom-compile-command "make lock" -o requirements.lock

# The declared lower bounds, installed and tested: a virtualenv of the lowest versions that
# pyproject.toml allows for paysaga's own dependencies (uv's lowest-direct resolution), then a
# representative part of the suite (a few minutes; the whole suite: MIN_TESTS=tests).
MIN_VENV := .venv-min
MIN_TESTS ?= tests/ledger tests/api/test_deposits.py tests/api/test_probes.py \
	tests/paysaga/test_temporal_connection.py tests/paysaga/test_cli_production.py \
	tests/paysaga/test_secret_files.py tests/test_deploy.py tests/k8s
min-versions: $(STAMP)
	rm -rf $(MIN_VENV)
	$(BIN)/uv venv -q -p $(PYTHON) $(MIN_VENV)
	VIRTUAL_ENV=$(MIN_VENV) $(BIN)/uv pip install -q --resolution lowest-direct -e '.[dev]'
	VIRTUAL_ENV=$(MIN_VENV) $(BIN)/uv pip freeze \
		| grep -iE '^(fastapi|starlette|pydantic|pydantic-settings|sqlalchemy|sqlmodel|temporalio|uvicorn|psycopg|httpx|alembic)=='
	$(MIN_VENV)/bin/pytest -q -p no:randomly $(PYTEST_ARGS) $(MIN_TESTS)

clean:
	rm -rf $(VENV) $(MIN_VENV) .data .mypy_cache .pytest_cache .ruff_cache
