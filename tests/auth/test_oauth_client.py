"""A third-party OAuth client (Authlib over httpx2) against the gateway's HTTPS listener:
it discovers the endpoints from the RFC 8414 metadata at the issuer, introspects and
revokes with its own request code, and the gateway's answers are what it expects."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from aiohttp import web
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from gateway.auth.secrets import hash_secret
from gateway.config import load_config
from gateway.keys import STORE
from gateway.store import Network
from gateway.testing.support import REPO, free_port, write_config
from gateway.testing.upstream import running_upstream
from tests.proxy.conftest import in_process_gateway

SERVER_KEY = "x-server-key"


@dataclass
class Served:
    issuer: str
    ca: ssl.SSLContext  # trusts the gateway's own CA
    app: web.Application


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    https_port = free_port()
    async with running_upstream("sg") as upstream:
        config_path = write_config(tmp_path, {
            "server": {"https": {"host": "127.0.0.1", "port": https_port,
                                 "cert": "certs/server.pem", "key": "certs/server.key"}},
            "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
            "policies": [str(REPO / "policies" / "default.yaml")],
        })
        config = load_config(config_path, environ={})
        async with in_process_gateway(config_path) as (_url, app):
            ca = ssl.create_default_context(cafile=config.mtls.ca_cert)  # made at start
            yield Served(f"https://127.0.0.1:{https_port}", ca, app)


def _add_server_key(client: Any, method: str, uri: str, headers: dict[str, str],
                    body: str) -> tuple[str, dict[str, str], str]:
    """An Authlib client authentication method: the network's server key in its header
    (the client secret), nothing else."""
    headers[SERVER_KEY] = client.client_secret
    return uri, headers, body


def _client(served: Served, network: Network, key: str) -> AsyncOAuth2Client:
    client = AsyncOAuth2Client(
        client_id=network.id, client_secret=key, verify=served.ca,
        token_endpoint_auth_method=SERVER_KEY, revocation_endpoint_auth_method=SERVER_KEY)
    client.register_client_auth_method((SERVER_KEY, _add_server_key))
    return client


async def _network(served: Served) -> tuple[Network, str]:
    store = served.app[STORE]
    network = await store.create_network("oauth", "sg", False)
    key = "a-server-key-" + network.id
    await store.set_server_key_hash(network.id, hash_secret(key), "test")
    return network, key


async def _access_token(served: Served, network: Network, user_id: str) -> str:
    async with httpx2.AsyncClient(verify=served.ca) as http:
        response = await http.post(f"{served.issuer}/api/v3/sessions",
                                   headers={"x-api-key": network.api_key},
                                   json={"userId": user_id, "deviceId": f"{user_id}-phone"})
        assert response.status_code == 200, response.text
        return str(response.json()["accessToken"])


async def _metadata(served: Served) -> AuthorizationServerMetadata:
    """RFC 8414 section 3: the metadata at the issuer's well-known URL, checked by the
    library's validators (all but the token and response-type rules: the gateway has no
    authorization or token endpoint, see docs/OAUTH.md)."""
    async with httpx2.AsyncClient(verify=served.ca) as http:
        response = await http.get(f"{served.issuer}/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    metadata = AuthorizationServerMetadata(response.json())
    for name in AuthorizationServerMetadata.REGISTRY_KEYS:
        if name not in ("token_endpoint", "response_types_supported"):
            getattr(metadata, f"validate_{name}")()
    assert metadata["issuer"] == served.issuer
    return metadata


async def test_authlib_discovers_introspects_and_revokes(served: Served) -> None:
    metadata = await _metadata(served)
    network, key = await _network(served)
    token = await _access_token(served, network, "carol")
    async with _client(served, network, key) as client:
        response = await client.introspect_token(
            metadata["introspection_endpoint"], token=token, token_type_hint="access_token")
        assert response.status_code == 200
        answer = response.json()
        assert answer["active"] is True and answer["sub"] == "carol"
        assert answer["client_id"] == network.id and answer["iss"] == served.issuer

        response = await client.revoke_token(metadata["revocation_endpoint"], token=token,
                                             token_type_hint="access_token")
        assert (response.status_code, response.content) == (200, b"")
        response = await client.introspect_token(metadata["introspection_endpoint"],
                                                 token=token)
        assert response.json() == {"active": False}
        # Unknown tokens: the library sees a success, as RFC 7009 says.
        response = await client.revoke_token(metadata["revocation_endpoint"], token="nope")
        assert response.status_code == 200


async def test_authlib_revokes_with_the_token_as_its_own_credential(served: Served) -> None:
    """The holder revokes the token it was given: the library's bearer auth, no client
    secret."""
    metadata = await _metadata(served)
    network, _key = await _network(served)
    token = await _access_token(served, network, "dave")
    bearer = {"access_token": token, "token_type": "Bearer"}
    async with AsyncOAuth2Client(token=bearer, verify=served.ca) as client:
        response = await client.get(f"{served.issuer}/api/v3/sessions")
        assert response.status_code == 200
        response = await client.revoke_token(metadata["revocation_endpoint"], token=token,
                                             auth=client.token_auth)
        assert (response.status_code, response.content) == (200, b"")
        response = await client.get(f"{served.issuer}/api/v3/sessions")
        assert response.status_code == 401


async def test_authlib_sees_the_rfc_errors(served: Served) -> None:
    metadata = await _metadata(served)
    network, _key = await _network(served)
    async with _client(served, network, "wrong") as client:
        response = await client.introspect_token(metadata["introspection_endpoint"],
                                                 token="whatever")
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        response = await client.revoke_token(metadata["revocation_endpoint"], token="x")
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
