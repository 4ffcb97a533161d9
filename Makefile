# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-tls clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/gateway serve --config config.yaml

test: $(STAMP)
	$(BIN)/ruff check gateway tests
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(STAMP)
	bash bench/run.sh

bench-tls: $(STAMP)
	bash bench/tls.sh

clean:
	rm -rf $(VENV) var
