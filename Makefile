# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
export PMHUB_HOME ?= $(CURDIR)/.pmhub
PORT ?= 8765

.PHONY: install demo test lint typecheck pytest bench lock clean

# pip at -qq: errors only. Some machines' pip configuration names package indexes that are
# not there, and pip warns about each of them for every package it installs.
PIP := $(BIN)/python -m pip install -qq --disable-pip-version-check

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -r $(LOCK)
	$(PIP) --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m pmhub.demo --home $(PMHUB_HOME) --port $(PORT) --serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

# pytest exits 5 when it collected no test: say so plainly and fail, since a suite that
# runs nothing proves nothing.
pytest: install
	@$(BIN)/pytest -n 2 --dist loadgroup -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "0 passed, 0 failed: pytest collected no tests"; fi; exit $$rc

test: lint typecheck pytest

bench: install
	@for b in bench/*.py; do echo "== $$b"; BENCH_SMALL=1 $(BIN)/python $$b || exit 1; done

# Refresh the lock from pyproject.toml (needs network to PyPI).
lock:
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra fhir --extra spark \
		--extra predict --extra federation --python-version 3.11 \
		--no-header --output-file $(LOCK)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
