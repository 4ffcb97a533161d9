"""The `tracing:` section: defaults, environment overrides, and refused values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, load_config
from gateway.runtime import _RESTART_ONLY
from gateway.testing.support import write_config
from gateway.tracing.spans import traces_url


def test_off_by_default(tmp_path: Path) -> None:
    tracing = load_config(write_config(tmp_path), environ={}).tracing
    assert tracing.otlp_endpoint is None
    assert (tracing.service_name, tracing.sample_ratio) == ("gateway", 1.0)
    assert "tracing" in _RESTART_ONLY  # the exporter is set up once


def test_set_in_the_file_or_from_the_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"tracing": {"otlp_endpoint": "http://collector:4318/",
                                               "sample_ratio": 0.25}})
    tracing = load_config(path, environ={}).tracing
    assert (tracing.otlp_endpoint, tracing.sample_ratio) == ("http://collector:4318", 0.25)
    tracing = load_config(path, environ={"GATEWAY_TRACING_SAMPLE_RATIO": "1",
                                         "GATEWAY_TRACING_SERVICE_NAME": "edge-eu"}).tracing
    assert (tracing.sample_ratio, tracing.service_name) == (1.0, "edge-eu")


@pytest.mark.parametrize(("values", "message"), [
    ({"sample_ratio": 1.5}, "tracing.sample_ratio: got 1.5, expected from 0 to 1"),
    ({"sample_ratio": -0.1}, "tracing.sample_ratio: got -0.1, expected from 0 to 1"),
    ({"sample_ratio": "half"}, "tracing.sample_ratio: got 'half', expected a number"),
    ({"sample_ratio": True}, "tracing.sample_ratio: got True, expected a number"),
    ({"otlp_endpoint": "collector:4318"}, "tracing.otlp_endpoint: got 'collector:4318'"),
    ({"otlp_endpoint": "grpc://collector:4317"}, "expected an http:// or https:// URL"),
    ({"service_name": " "}, "tracing.service_name: got '', expected a name"),
    ({"endpoint": "http://collector:4318"}, "unknown key 'tracing.endpoint'"),
])
def test_bad_values_name_the_key(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write_config(tmp_path, {"tracing": values}), environ={})


@pytest.mark.parametrize(("endpoint", "url"), [
    ("http://collector:4318", "http://collector:4318/v1/traces"),
    ("http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
    ("https://otel.example/ingest", "https://otel.example/ingest/v1/traces"),
])
def test_the_traces_url(endpoint: str, url: str) -> None:
    assert traces_url(endpoint) == url
