# taskcell: the two commands are `make run` and `make test`; each sets itself up first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := frontend/node_modules/.installed

.PHONY: run test lint bench chaos web setup clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

setup: $(STAMP)

# Serve the API, the web page and the demo agents on http://127.0.0.1:8000 (SQLite file).
run: $(STAMP)
	$(BIN)/taskcell serve --host 127.0.0.1 --port 8000

# Rebuild the web page from source (when npm is here), then run every test.
test: $(STAMP) web
	$(BIN)/python -m pytest

$(NODE_STAMP): frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

web:
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(NODE_STAMP) && cd frontend && npm run --silent build; \
	else \
		echo "npm not found: testing the web page as built in src/taskcell/web/dist"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/lifecycle.py
	$(BIN)/python bench/events.py
	$(BIN)/python bench/schedule.py
	$(BIN)/python bench/sse.py
	$(BIN)/python bench/cluster.py

# The long chaos run (20+ minutes, every fault at least five times); `make test` runs the short one.
chaos: $(STAMP)
	TASKCELL_CHAOS_LONG=1 $(BIN)/python -m pytest tests/chaos -rA

clean:
	rm -rf $(VENV) frontend/node_modules .pytest_cache .mypy_cache .ruff_cache test-output
