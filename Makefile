# taskcell: the two commands are `make run` and `make test`; each sets itself up first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := frontend/node_modules/.installed

.PHONY: run test lint bench bench-scale bench-scale-pg chaos web setup clean

$(STAMP): pyproject.toml
	@echo "Setting up $(VENV): installing taskcell and its dependencies with pip (a few minutes the first time)..."
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar on --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[dev,bench]'
	touch $(STAMP)
	@echo "$(VENV) is ready."

setup: $(STAMP)

# Serve the API, the web page and the demo agents on http://127.0.0.1:8000 (SQLite file).
run: $(STAMP)
	$(BIN)/taskcell serve --host 127.0.0.1 --port 8000

# Rebuild the web page from source (when npm is here), then run every test (the page's own
# unit tests with vitest too, when npm is here).
test: $(STAMP) web
	@if command -v npm >/dev/null 2>&1; then cd frontend && npm run --silent test; \
	else echo "npm not found: the page's unit tests (vitest) are skipped"; fi
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
	$(BIN)/lint-imports

# Each benchmark writes its rows for the closing table to $(BENCH_OUT); one that fails (cluster.py
# needs PostgreSQL) leaves a gap in the table rather than stopping the others.
BENCH_OUT := test-output/bench
BENCHES := lifecycle events schedule cron sse cluster stall retention timeouts webhooks

bench: $(STAMP)
	rm -rf $(BENCH_OUT) && mkdir -p $(BENCH_OUT)
	-$(BIN)/python bench/lifecycle.py --json $(BENCH_OUT)/lifecycle.json
	-$(BIN)/python bench/events.py --json $(BENCH_OUT)/events.json
	-$(BIN)/python bench/schedule.py --json $(BENCH_OUT)/schedule.json
	-$(BIN)/python bench/cron.py --json $(BENCH_OUT)/cron.json
	-$(BIN)/python bench/sse.py --json $(BENCH_OUT)/sse.json
	-$(BIN)/python bench/cluster.py --json $(BENCH_OUT)/cluster.json
	-$(BIN)/python bench/stall.py --json $(BENCH_OUT)/stall.json
	-$(BIN)/python bench/retention.py --json $(BENCH_OUT)/retention.json
	-$(BIN)/python bench/timeouts.py --json $(BENCH_OUT)/timeouts.json
	-$(BIN)/python bench/webhooks.py --json $(BENCH_OUT)/webhooks.json
	$(BIN)/python bench/summary.py $(foreach name,$(BENCHES),$(BENCH_OUT)/$(name).json)

# Costs as history grows (issue 19): a year of history beside an empty database. Not in `bench`:
# building the database takes most of an hour the first time (reused after, under test-output/scale).
bench-scale: $(STAMP)
	mkdir -p $(BENCH_OUT)
	$(BIN)/python bench/scale.py --json $(BENCH_OUT)/scale.json
	$(BIN)/python bench/summary.py $(BENCH_OUT)/scale.json

# The same on PostgreSQL (the server at 127.0.0.1:5432, user postgres), at a tenth of the scale:
# the benchmark creates the databases taskcell_scale (reused after) and taskcell_scale_empty.
bench-scale-pg: $(STAMP)
	mkdir -p $(BENCH_OUT)
	$(BIN)/python bench/scale.py --postgres --json $(BENCH_OUT)/scale-pg.json
	$(BIN)/python bench/summary.py $(BENCH_OUT)/scale-pg.json

# The long chaos run (20+ minutes, every fault at least five times); `make test` runs the short one.
chaos: $(STAMP)
	TASKCELL_CHAOS_LONG=1 $(BIN)/python -m pytest tests/chaos -rA

clean:
	rm -rf $(VENV) frontend/node_modules .pytest_cache .mypy_cache .ruff_cache .import_linter_cache test-output
