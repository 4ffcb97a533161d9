"""The audit log records admin actions with actor, target, request id and address."""

from __future__ import annotations

import json

from gateway.auth.passwords import hash_password
from tests.auth.conftest import Gateway, error


async def test_admin_actions_are_recorded_newest_first_without_secrets(gw: Gateway) -> None:
    network = await gw.network()
    await gw.store.create_admin(network.id, "ann", "admin", hash_password("pw1", log2_n=10))
    boss = await gw.admin_token(network, "boss", "super-admin")
    headers = {"x-api-key": network.api_key}
    await gw.call("POST", "/console/v1/login", headers=headers,
                  json={"username": "ann", "password": "wrong"})
    _, login, _ = await gw.call("POST", "/console/v1/login", headers=headers,
                                json={"username": "ann", "password": "pw1"})
    ann = login["adminToken"]
    gw.session.cookie_jar.clear()
    _, key, _ = await gw.call("POST", "/api/v3/networks/server-key", ann,
                              headers={"X-Request-Id": "trace-42"})
    await gw.call("PUT", "/api/v3/networks/me", ann, json={"useSecureAuthentication": True})
    await gw.login(network, user_id="victim", authToken="x", expect=401)
    await gw.store.upsert_user(network.id, "victim", None)
    await gw.call("POST", "/api/v3/users/victim/ban", ann)
    await gw.call("POST", "/api/v1/admin-token", ann)
    await gw.call("DELETE", "/api/v1/admin-token", boss, json={"username": "ann"})

    status, page, _ = await gw.call("GET", "/api/v3/audit-logs?limit=100", boss)
    assert status == 200
    actions = [(e["action"], e["actor"], e["target"]) for e in page["auditLogs"]]
    assert actions == [
        ("admin_token.revoke", "boss", "ann"),
        ("admin_token.generate", "ann", "ann"),
        ("user.ban", "ann", "victim"),
        ("network.secure_mode", "ann", "on"),
        ("server_key.generate", "ann", None),
        ("console.login", "ann", "ann"),
        ("console.login_failed", "ann", "ann"),
    ]
    server_key = next(e for e in page["auditLogs"] if e["action"] == "server_key.generate")
    assert server_key["requestId"] == "trace-42" and server_key["sourceAddress"] == "127.0.0.1"
    assert server_key["actorRole"] == "admin" and server_key["time"].endswith("Z")
    dump = json.dumps(page)
    for secret in (key["serverKey"], ann, "pw1", "wrong"):
        assert secret not in dump
    assert page["nextBefore"] is None


async def test_paging_and_who_may_read(gw: Gateway) -> None:
    network = await gw.network()
    other = await gw.network()
    admin = await gw.admin_token(network, "adm", "admin")
    mod = await gw.admin_token(network, "mod", "moderator")
    for i in range(5):
        await gw.store.upsert_user(network.id, f"u{i}", None)
        await gw.call("POST", f"/api/v3/users/u{i}/ban", admin)
    _, first, _ = await gw.call("GET", "/api/v3/audit-logs?limit=2", admin)
    assert [e["target"] for e in first["auditLogs"]] == ["u4", "u3"]
    _, second, _ = await gw.call("GET", f"/api/v3/audit-logs?limit=2&before={first['nextBefore']}",
                                 admin)
    assert [e["target"] for e in second["auditLogs"]] == ["u2", "u1"]
    assert (await gw.call("GET", "/api/v3/audit-logs", mod))[1] == error(403, "Permission denied")
    other_admin = await gw.admin_token(other, "adm", "admin")
    assert (await gw.call("GET", "/api/v3/audit-logs", other_admin))[1]["auditLogs"] == []
    for query in ("limit=0", "limit=501", "limit=x", "before=-1"):
        status, _body, _ = await gw.call("GET", f"/api/v3/audit-logs?{query}", admin)
        assert status == 400, query
