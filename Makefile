# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml

.PHONY: install run test lint typecheck pytest clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/aggregator --config $(CONFIG) run

lint: install
	$(BIN)/ruff check aggregator tests bench
	$(BIN)/ruff format --check aggregator tests bench

typecheck: install
	$(BIN)/mypy

# Tests run on every core (one module per worker), then those that measure time or memory
# against a limit run alone.
pytest: install
	$(BIN)/pytest -n auto --maxprocesses 4 --dist loadfile -m "not serial"
	$(BIN)/pytest -m serial

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
