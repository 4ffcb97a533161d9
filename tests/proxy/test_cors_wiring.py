"""CORS on the wire (API.md section 4): preflights, answers, errors, streamed proxying."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.testing.support import REPO, free_port, write_config
from gateway.testing.upstream import running_upstream
from tests.proxy.conftest import in_process_gateway

APP = "https://app.example.com"


@pytest.fixture
async def cors_gateway(tmp_path: Path) -> AsyncIterator[str]:
    async with running_upstream("sg") as upstream:
        config = write_config(tmp_path, {
            "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()},
                       "cors_origins": [APP]},
            "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
            "policies": [str(REPO / "policies" / "default.yaml")],
        })
        async with in_process_gateway(config) as (url, _):
            yield url


async def test_a_preflight_from_a_listed_origin_is_answered_by_the_gateway(
    cors_gateway: str,
) -> None:
    headers = {"Origin": APP, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type,x-api-key,"
                                                 "set-access-token-cookie,authorization"}
    async with aiohttp.ClientSession() as session, session.options(
        f"{cors_gateway}/api/v5/sessions", headers=headers
    ) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == APP
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        allowed = {h.strip().lower()
                   for h in response.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"content-type", "x-api-key", "set-access-token-cookie",
                "authorization"} <= allowed
        assert "Origin" in response.headers["Vary"]
        # A preflight for a proxied path needs no token either.
    async with aiohttp.ClientSession() as session, session.options(
        f"{cors_gateway}/api/v3/posts", headers=headers
    ) as response:
        assert response.status == 204


async def test_an_unlisted_origin_gets_nothing(cors_gateway: str) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    async with aiohttp.ClientSession() as session:
        async with session.options(f"{cors_gateway}/api/v5/sessions",
                                   headers=headers) as response:
            assert "Access-Control-Allow-Origin" not in response.headers
        async with session.get(f"{cors_gateway}/healthz",
                               headers={"Origin": "https://evil.example"}) as response:
            assert response.status == 200
            assert "Access-Control-Allow-Origin" not in response.headers
            assert "Origin" in response.headers["Vary"]


async def test_answers_and_errors_carry_the_headers(cors_gateway: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{cors_gateway}/healthz", headers={"Origin": APP}) as response:
            assert response.headers["Access-Control-Allow-Origin"] == APP
            assert "X-Request-Id" in response.headers["Access-Control-Expose-Headers"]
        # The browser app can read the gateway's JSON error.
        async with session.get(f"{cors_gateway}/api/v3/posts",
                               headers={"Origin": APP}) as response:
            assert response.status == 401
            assert response.headers["Access-Control-Allow-Origin"] == APP
            assert (await response.json())["message"] == "Unauthorized"


async def test_no_cors_headers_when_no_origin_is_configured(tmp_path: Path) -> None:
    config = write_config(tmp_path, {
        "server": {"https": None, "http": {"host": "127.0.0.1", "port": free_port()}},
    })
    async with in_process_gateway(config) as (url, _), aiohttp.ClientSession() as session:
        async with session.options(f"{url}/api/v5/sessions", headers={
            "Origin": APP, "Access-Control-Request-Method": "POST"}) as response:
            assert not [h for h in response.headers if h.lower().startswith("access-control")]
        async with session.get(f"{url}/healthz", headers={"Origin": APP}) as response:
            assert not [h for h in response.headers if h.lower().startswith("access-control")]
