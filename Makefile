# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-compiled lint bench bench-tls clean

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

# The compiled build (gateway/build.py) in a copy of the tree, then the tests of the
# request path on it (CI runs this after `make test`).
COMPILED_TREE ?= /tmp/gateway-compiled-tree
COMPILED_TESTS ?= tests/dataplane tests/proxy tests/hostile tests/auth tests/tls \
	tests/tracing tests/sdk tests/reliability tests/test_metrics.py tests/test_accesslog.py \
	tests/test_upstream_faults.py tests/test_proxy_process.py
test-compiled: $(STAMP)
	bash bench/compiled_tree.sh $(COMPILED_TREE) $(abspath $(BIN))/python
	cd $(COMPILED_TREE) && GATEWAY_EXPECT_BUILD=compiled PYTHONPATH=$(COMPILED_TREE) \
		$(abspath $(BIN))/pytest -q -rs -p no:cacheprovider $(COMPILED_TESTS)

bench: $(STAMP)
	bash bench/run.sh

bench-tls: $(STAMP)
	bash bench/tls.sh

clean:
	rm -rf $(VENV) var
