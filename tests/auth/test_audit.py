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


async def test_filters_by_action_and_actor_and_folded_failures_carry_a_count(gw: Gateway) -> None:
    network = await gw.network()
    ann = await gw.admin_token(network, "ann", "admin")
    bob = await gw.admin_token(network, "bob", "admin")
    for user, admin in (("u1", ann), ("u2", bob), ("u3", ann)):
        await gw.store.upsert_user(network.id, user, None)
        await gw.call("POST", f"/api/v3/users/{user}/ban", admin)
    await gw.call("DELETE", "/api/v3/users/u1/ban", ann)
    await gw.call("DELETE", "/api/v4/sessions/users/u2", bob)
    await gw.store.create_admin(network.id, "cat", "admin", hash_password("pw1", log2_n=10))
    for _ in range(2):  # two failures in one minute from one address: one entry
        await gw.call("POST", "/console/v1/login", headers={"x-api-key": network.api_key},
                      json={"username": "cat", "password": "wrong"})

    async def page(query: str) -> list[tuple[str, str, str | None]]:
        status, body, _ = await gw.call("GET", f"/api/v3/audit-logs?{query}", ann)
        assert status == 200, body
        return [(e["action"], e["actor"], e["target"]) for e in body["auditLogs"]]

    assert await page("action=user") == [
        ("user.unban", "ann", "u1"), ("user.ban", "ann", "u3"), ("user.ban", "bob", "u2"),
        ("user.ban", "ann", "u1")]
    assert await page("action=user.ban&actor=ann") == [
        ("user.ban", "ann", "u3"), ("user.ban", "ann", "u1")]
    assert await page("actor=bob") == [
        ("sessions.revoke_user", "bob", "u2"), ("user.ban", "bob", "u2")]
    # A filtered page goes on from its own nextBefore.
    _, first, _ = await gw.call("GET", "/api/v3/audit-logs?action=user&limit=3", ann)
    assert first["nextBefore"] == first["auditLogs"][-1]["id"]
    assert await page(f"action=user&limit=3&before={first['nextBefore']}") == [
        ("user.ban", "ann", "u1")]

    _, body, _ = await gw.call("GET", "/api/v3/audit-logs?action=console.login_failed", ann)
    [failed] = body["auditLogs"]
    assert (failed["actor"], failed["count"]) == ("cat", 2)
    _, body, _ = await gw.call("GET", "/api/v3/audit-logs?action=user.ban", ann)
    assert all("count" not in e for e in body["auditLogs"])  # only folded entries count
    for query in ("action=", "actor=", "actor=" + "x" * 201, "action=a%0Ab"):
        status, body, _ = await gw.call("GET", f"/api/v3/audit-logs?{query}", ann)
        assert status == 400 and body["message"].startswith(query.split("=")[0]), query
