# The two commands a newcomer needs: `make run` and `make test`. CI runs `make test` (.ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.noctis-installed

.PHONY: run test install lint typecheck pytest system-deps client bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

client:
	@if [ -f client/package.json ]; then scripts/build-client; fi

run: install client
	$(BIN)/noctis serve

system-deps:
	scripts/install-system-deps

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy server shared

pytest: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: install system-deps client lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
