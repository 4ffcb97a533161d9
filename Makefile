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

# `make run PORT=8081 HTTPS_PORT=8444` moves the listeners (a second instance needs both).
# Development: Ctrl-C stops at once instead of waiting out server.drain_grace.
PORT ?=
HTTPS_PORT ?=
HTTP_OVERRIDE = GATEWAY_SERVER_HTTP='{host: 127.0.0.1, port: $(PORT)}'
HTTPS_OVERRIDE = GATEWAY_SERVER_HTTPS='{host: 127.0.0.1, port: $(HTTPS_PORT), \
	cert: certs/server.pem, key: certs/server.key}'
RUN_ENV = GATEWAY_SERVER_DRAIN_GRACE=0 $(if $(PORT),$(HTTP_OVERRIDE)) \
	$(if $(HTTPS_PORT),$(HTTPS_OVERRIDE))

run: $(STAMP)
	$(RUN_ENV) $(BIN)/gateway serve --config config.yaml

test: $(STAMP)
	$(BIN)/ruff check gateway tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -rs

bench: $(STAMP)
	bash bench/run.sh

bench-tls: $(STAMP)
	bash bench/tls.sh

clean:
	rm -rf $(VENV) var
