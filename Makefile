# DHR: the newcomer's two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dhr-installed
JS_STAMP := tests/js/node_modules/.dhr-installed
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?= -n 2

.PHONY: run test lint typecheck dockerlint test-sqlite test-postgres bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# Browser-side test clients (npm fhirclient); without npm the browser test that needs it is
# skipped with a loud reason.
$(JS_STAMP): tests/js/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/js && npm install --omit=peer --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error \
		&& touch node_modules/.dhr-installed; \
	else \
		echo "!! npm is missing: THE NPM FHIRCLIENT BROWSER TEST WILL BE SKIPPED" >&2; \
	fi

run: $(STAMP)
	$(BIN)/dhr serve --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

dockerlint: $(STAMP)
	$(BIN)/hadolint Dockerfile

test-sqlite: $(STAMP) $(JS_STAMP)
	@scripts/ensure-chromium
	DHR_TEST_DATABASE_URL= $(BIN)/pytest $(PYTEST_ARGS)

test-postgres: $(STAMP) $(JS_STAMP)
	@scripts/ensure-chromium
	@if scripts/ensure-postgres "$(PG_URL)"; then \
		DHR_TEST_DATABASE_URL="$(PG_URL)" $(BIN)/pytest $(PYTEST_ARGS); \
	else \
		echo; echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
		echo "!!  PostgreSQL did not answer at $(PG_URL)"; \
		echo "!!  THE POSTGRESQL HALF OF THE SUITE WAS SKIPPED. Only SQLite was tested."; \
		echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; echo; \
	fi

test: lint typecheck dockerlint test-sqlite test-postgres

bench: $(STAMP)
	$(BIN)/python bench/rest.py

clean:
	rm -rf $(VENV) dhr-data .mypy_cache .ruff_cache .pytest_cache tests/js/node_modules
