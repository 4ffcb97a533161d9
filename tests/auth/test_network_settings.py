"""Network settings: secure mode, the mTLS toggle, the admin token lifetime."""

from __future__ import annotations

import jwt

from tests.auth.conftest import Gateway, error


async def test_read_and_toggle_with_the_contract_rules(gw: Gateway) -> None:
    network = await gw.network()
    admin = await gw.admin_token(network, "adm", "admin")
    mod = await gw.admin_token(network, "mod", "moderator")

    status, body, _ = await gw.call("GET", "/api/v3/networks/me", mod)
    assert status == 200
    assert body == {"networkId": network.id, "name": network.name, "region": "sg",
                    "useSecureAuthentication": False, "mtlsEnabled": False,
                    "securityConfigs": {"adminToken": {"expiresInHours": None}}}
    status, body, _ = await gw.call("PUT", "/api/v3/networks/me", mod,
                                    json={"useSecureAuthentication": True})
    assert (status, body) == (403, error(403, "Permission denied"))

    status, body, _ = await gw.call("PUT", "/api/v3/networks/me", admin,
                                    json={"mtlsEnabled": "yes"})
    assert status == 400 and body["message"].startswith("mtlsEnabled ")

    status, body, _ = await gw.call("PUT", "/api/v3/networks/me", admin,
                                    json={"mtlsEnabled": True})
    assert status == 403 and body["code"] == 400300 and "secure mode" in body["message"]

    status, body, _ = await gw.call("PUT", "/api/v3/networks/me", admin,
                                    json={"useSecureAuthentication": True, "mtlsEnabled": True})
    assert status == 200 and body["mtlsEnabled"] and body["useSecureAuthentication"]
    assert body["warnings"] and "certificate" in body["warnings"][0]  # none uploaded yet

    # From here on the admin needs a client certificate: tests/tls/test_mtls.py goes on
    # over TLS (secure mode cannot be turned off while mTLS is on, ...).
    status, body, _ = await gw.call("PUT", "/api/v3/networks/me", admin,
                                    json={"useSecureAuthentication": False})
    assert (status, body["message"]) == (401, "client certificate required")
    stored = await gw.store.get_network(network.id)
    assert stored is not None and stored.use_secure_authentication  # nothing changed


async def test_secure_mode_from_the_api_applies_to_logins(gw: Gateway) -> None:
    network = await gw.network()
    admin = await gw.admin_token(network, "adm", "admin")
    await gw.call("PUT", "/api/v3/networks/me", admin, json={"useSecureAuthentication": True})
    assert await gw.login(network, expect=401) == error(401, "Unauthorized")  # authToken needed


async def test_admin_token_lifetime_applies_to_new_tokens_only(gw: Gateway) -> None:
    network = await gw.network()
    admin = await gw.admin_token(network, "adm", "admin")
    boss = await gw.admin_token(network, "boss", "super-admin")
    for hours in (0, 87601, "12", True, None):
        status, body, _ = await gw.call(
            "PUT", "/api/v3/network-settings/security-configs", admin,
            json={"adminToken": {"expiresInHours": hours}})
        assert status == 400 and body["message"].startswith("adminToken.expiresInHours ")
    status, body, _ = await gw.call("PUT", "/api/v3/network-settings/security-configs", boss,
                                    json={"adminToken": {"expiresInHours": 87600}})
    assert (status, body) == (200, {"adminToken": {"expiresInHours": 87600}})
    old_claims = jwt.decode(admin, options={"verify_signature": False})

    status, body, _ = await gw.call("POST", "/api/v1/admin-token", admin)
    claims = jwt.decode(body["adminToken"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 87600 * 3600  # ten years, from now on
    assert old_claims["exp"] - old_claims["iat"] == 86400  # the old one kept its lifetime
    status, body, _ = await gw.call("GET", "/api/v3/networks/me", admin)
    assert body["securityConfigs"] == {"adminToken": {"expiresInHours": 87600}}
