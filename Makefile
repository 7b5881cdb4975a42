# The README's commands. Everything installs itself into .venv from uv.lock on first use;
# the only prerequisite is Python 3.11+ on PATH (as python3, or set PYTHON=...).
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
RUN := $(UV) run --locked --no-sync

.PHONY: dev test test-sqlite lint format typecheck bench bench-inprocess bench-scale migrate serve install clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --quiet
	@touch $@

install: $(VENV)/.synced ## create .venv from the lock file

dev: install ## run the whole system locally: SQLite, simulator, API
	$(RUN) evolink-jobs dev

test: install ## the whole suite: SQLite always, PostgreSQL when TEST_DATABASE_URL is set
	@$(RUN) pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: failing" >&2; fi; exit $$status

lint: install ## ruff, and hadolint for the Dockerfile
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) hadolint Dockerfile

format: install
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

typecheck: install
	$(RUN) mypy

bench: install ## the hot paths under wrk load, side by side with a bare reference (README, "Performance")
	$(RUN) python bench/load.py

bench-scale: install ## read paths and /metrics at 100 k vs 10 M jobs (ROWS=...), seeded with SQL
	$(RUN) python bench/scale.py

bench-inprocess: install ## one request at a time, in-process: latency ratios to /readyz
	$(RUN) python bench/run.py

migrate: install
	$(RUN) evolink-jobs migrate

serve: install
	$(RUN) evolink-jobs serve

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
