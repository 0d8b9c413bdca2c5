# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test test-clock-ahead system-packages typecheck bench clean

$(BIN)/receiver: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## run: install into .venv and serve on 127.0.0.1:9095 with SQLite under ./data
run: $(BIN)/receiver
	$(BIN)/receiver serve --config examples/receiver.yml

## test: install what the suite needs (system packages when root, else say which), then run it all
test: system-packages $(BIN)/receiver
	$(BIN)/ruff check receiver tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest
	$(MAKE) --no-print-directory test-clock-ahead

## system-packages: what the suite needs from the machine (installed when root, else the command to run)
system-packages:
	bash scripts/system-packages

## test-clock-ahead: the whole suite again with the machine's clock a year ahead: no test may depend on today's date
# (libfaketime shifts the wall clock of this process tree, not its monotonic clock, as setting a machine's clock would)
test-clock-ahead: $(BIN)/receiver
	$(BIN)/python scripts/clock-ahead $(BIN)/pytest -q -p no:cacheprovider

typecheck: $(BIN)/receiver
	$(BIN)/mypy

bench: $(BIN)/receiver
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data .bench
