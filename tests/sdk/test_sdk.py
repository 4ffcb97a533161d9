"""The published TypeScript SDK (@amityco/ts-sdk, pinned in package-lock.json) under Node,
against a real `gateway serve` and a loopback upstream (API.md sections 3 and 4).

Each test starts its own gateway, creates networks with the CLI and runs one or more
scenarios of harness.cjs, a fresh Node process each, bounded by its own timeout. The
harness refuses and records any connection or DNS lookup beyond loopback; every test
checks that list is empty.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.sdk.support import SdkGateway, SdkRun, run_sdk, sdk_gateway_running
from tests.sdk.upstream import mqtt_connect_packet

PROBE = "/api/v3/sdk-e2e-probe"  # any proxied path: the upstream echoes who called
SHORT_TOKENS = {"tokens": {"access_ttl_unsecure": "3s", "access_ttl_secure": "3s",
                           "leeway": "0s"}}
ORIGIN = "http://app.example"


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return decoded


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def error(message: str, code: int = 400100) -> dict[str, Any]:
    return {"status": "error", "code": code, "message": message}


def assert_loopback_only(run: SdkRun, gw: SdkGateway) -> None:
    """Nothing left loopback, and every connection the SDK made went to the gateway."""
    assert run["blocked"] == [], run.describe()
    allowed = {gw.address, f"127.0.0.1:{gw.gateway.https_port}"}
    targets = {c["target"] for c in run["connections"] if "target" in c}
    assert targets <= allowed, (targets, run.describe())


def assert_ok(run: SdkRun) -> None:
    assert run["ok"] and run.returncode == 0, run.describe()


async def secure_network(gw: SdkGateway) -> tuple[dict[str, Any], str]:
    """A secure-mode network and its server key (generated with an admin token)."""
    network = await gw.network(secure=True)
    return network, await gw.server_key(await gw.admin_token(network))


async def test_the_harness_refuses_destinations_beyond_loopback(sdk_dir: Path) -> None:
    """The guard is real: without `apiEndpoint` the SDK aims at its hosted service, and the
    harness refuses (and records) the attempt instead of letting it out."""
    run = await run_sdk(sdk_dir, "login_refused", {
        "apiKey": "not-a-key", "region": "sg", "userId": "nobody", "timeoutMs": 10000})
    assert_ok(run)
    assert "(not loopback)" in run.step("login-threw")["message"], run.describe()
    assert {"kind": "connect", "target": "apix.sg.amity.co:443"} in [
        {k: v for k, v in b.items() if k != "at"} for b in run["blocked"]], run.describe()
    assert run["requests"][0]["url"] == "https://apix.sg.amity.co/api/v5/sessions"


async def test_unsecure_login_then_the_api_and_realtime_through_the_gateway(
    sdk_gateway: SdkGateway, sdk_dir: Path
) -> None:
    gw = sdk_gateway
    network = await gw.network()
    run = await run_sdk(sdk_dir, "login", gw.sdk_params(
        network, "alice", probePath=PROBE, waitRealtime=True, settleMs=5000))
    assert_ok(run)
    login = run.step("login")
    assert (login["returned"], login["sessionState"], login["userId"]) == (
        True, "established", "alice")

    # The session request exactly as the SDK sends it.
    [session] = run.requests("POST", "/api/v5/sessions")
    headers = lower(session["headers"])
    assert headers["x-api-key"] == network["apiKey"]
    assert headers["set-access-token-cookie"] == "true"
    assert headers["content-type"].startswith("application/json")
    assert "authorization" not in headers
    body = session["body"]
    assert set(body) == {"userId", "displayName", "deviceId", "deviceInfo"}
    assert (body["userId"], body["displayName"]) == ("alice", "alice (SDK e2e)")
    assert re.fullmatch(r"ascWebSdk#[0-9a-f-]{36}", body["deviceId"]), body
    assert body["deviceInfo"]["kind"] == "web"
    assert body["deviceInfo"]["sdkVersion"].startswith("v6.")

    # The answer the SDK accepted: top-level body, the caller in `users` with its `_id`.
    assert session["status"] == 200, session
    answer = session["response"]
    token = answer["accessToken"]
    [user] = answer["users"]
    assert user["userId"] == "alice" and user["_id"] and user["isGlobalBanned"] is False
    assert login["user"]["_id"] == user["_id"]
    token_claims = claims(token)
    assert (token_claims["sub"], token_claims["nid"], token_claims["did"], token_claims["kind"]) \
        == ("alice", network["networkId"], body["deviceId"], "access")

    # Then the SDK calls the upstream's chat settings, with the bearer, through the proxy.
    [chat] = run.requests("GET", "/api/v3/network-settings/chat")
    assert chat["status"] == 200 and lower(chat["headers"])["authorization"] == f"Bearer {token}"
    seen = [r for r in gw.upstream.requests if r["path"] == "/api/v3/network-settings/chat"]
    assert len(seen) == 1
    assert seen[0]["headers"]["x-gateway-user-id"] == "alice"
    assert seen[0]["headers"]["x-gateway-network-id"] == network["networkId"]
    assert seen[0]["headers"]["x-gateway-token-kind"] == "access"
    probe = run.step("probe:after-login")
    assert probe["status"] == 200 and probe["body"]["data"]["userId"] == "alice", probe

    # socket.io with the token in the query (checked by the gateway, which keeps it: the
    # upstream gets the identity headers instead); MQTT with username `_id`, password the
    # token.
    assert gw.upstream.socketio_connects == [{"EIO": "3", "transport": "websocket"}]
    assert [(c["username"], c["password"]) for c in gw.upstream.mqtt_connects] == [
        (user["_id"], token)]
    mqtt = [w for w in run["websockets"] if w["url"].endswith("/mqtt")]
    assert [w["protocols"] for w in mqtt] == [["mqtt"]], run["websockets"]
    assert run.step("realtime") == {"socketioConnected": True, "mqttConnected": True}
    assert_loopback_only(run, gw)


async def test_sdk_subscribes_to_its_realtime_topics(
    sdk_gateway: SdkGateway, sdk_dir: Path
) -> None:
    """On MQTT connect the SDK subscribes to topics built from the session's `users[].path`
    (`<networkId>/user/<_id>`: `getNetworkId(user) = user.path.split('/user/')[0]`). Without
    `path` it throws inside the MQTT `connect` handler and subscribes to nothing, so no
    real-time event (a global ban included) ever reaches it."""
    gw = sdk_gateway
    network = await gw.network()
    run = await run_sdk(sdk_dir, "login", gw.sdk_params(
        network, "alice", waitRealtime=True, settleMs=5000, afterRealtimeMs=700))
    assert_ok(run)
    [session] = run.requests("POST", "/api/v5/sessions")
    [user] = session["response"]["users"]
    nid, uid = network["networkId"], user["_id"]
    assert user.get("path") == f"{nid}/user/{uid}", user
    assert run.uncaught() == [], run.describe()
    assert {nid, f"{nid}/user/{uid}", f"{nid}/smartfeed/{uid}/channels",
            f"{nid}/smartfeed/{uid}/messagefeeds", f"{nid}/smartfeed/{uid}/messages",
            f"{nid}/marker/user/{uid}"} <= set(gw.upstream.mqtt_subscriptions)
    assert_loopback_only(run, gw)


async def test_secure_login_with_an_auth_token_from_the_server_key(
    sdk_gateway: SdkGateway, sdk_dir: Path
) -> None:
    gw = sdk_gateway
    network, server_key = await secure_network(gw)
    auth_token = await gw.auth_token(server_key, "bob")
    run = await run_sdk(sdk_dir, "login", gw.sdk_params(
        network, "bob", authToken=auth_token, probePath=PROBE))
    assert_ok(run)
    [session] = run.requests("POST", "/api/v5/sessions")
    assert session["body"]["authToken"] == auth_token and session["status"] == 200
    assert run.step("login")["sessionState"] == "established"
    assert run.step("probe:after-login")["body"]["data"]["userId"] == "bob"
    assert_loopback_only(run, gw)

    # Without an auth token, and with the one already used: refused, and the SDK says so.
    for extra, message in (({}, "Unauthorized"), ({"authToken": auth_token}, "Invalid token")):
        params = gw.sdk_params(network, "bob")
        params.update(extra)
        refused = await run_sdk(sdk_dir, "login_refused", params)
        assert_ok(refused)
        [attempt] = refused.requests("POST", "/api/v5/sessions")
        assert (attempt["status"], attempt["response"]) == (401, error(message))
        threw = refused.step("login-threw")
        assert threw["code"] == 400100 and message in threw["message"], threw
        assert refused["websockets"] == []
        assert_loopback_only(refused, gw)


async def test_renewal_with_an_expired_bearer_gets_a_new_token(
    tmp_path: Path, sdk_dir: Path
) -> None:
    """`Client.renewal().renew()` re-posts the session with the current bearer, here expired
    at the gateway (3 s lifetime, no leeway): the stale header must be ignored."""
    async with sdk_gateway_running(tmp_path, SHORT_TOKENS) as gw:
        network = await gw.network()
        run = await run_sdk(sdk_dir, "renew", gw.sdk_params(
            network, "carol", probePath=PROBE, renewAfterMs=4200))
        assert_ok(run)
        first, second = run.requests("POST", "/api/v5/sessions")
        old = first["response"]["accessToken"]
        assert lower(second["headers"])["authorization"] == f"Bearer {old}"
        assert lower(second["headers"])["x-api-key"] == network["apiKey"]
        # Under Node the SDK's device-id storage is a fresh in-memory object per call, so
        # each session request names a new device (a browser's localStorage keeps one).
        assert re.fullmatch(r"ascWebSdk#[0-9a-f-]{36}", second["body"]["deviceId"])
        assert second["status"] == 200, second
        new = second["response"]["accessToken"]
        assert new != old and run.step("renewed")["token"]["accessToken"] == new
        assert run.step("probe:after-renewal")["status"] == 200
        status, body = await gw.call("GET", "/api/v3/sessions", token=old)
        assert (status, body) == (401, error("token expired"))  # it really was expired
        assert_loopback_only(run, gw)


@pytest.mark.parametrize("mode", ["unsecure", "secure"])
async def test_the_session_handler_renews_an_expiring_token(
    tmp_path: Path, sdk_dir: Path, mode: str
) -> None:
    """The SDK's expiry watcher (sped up from 10 min to 1 s) asks the session handler to
    renew; the handler calls `renew()`, or in secure mode `renewWithAuthToken()` with a
    fresh auth token from the server-key endpoint, and the SDK logs in again."""
    async with sdk_gateway_running(tmp_path, SHORT_TOKENS) as gw:
        extra: dict[str, Any] = {}
        if mode == "secure":
            network, server_key = await secure_network(gw)
            extra = {"authToken": await gw.auth_token(server_key, "dave"),
                     "serverKey": server_key}
        else:
            network = await gw.network()
        run = await run_sdk(sdk_dir, "renew_on_expiry", gw.sdk_params(
            network, "dave", probePath=PROBE, watcherIntervalMs=1000, **extra))
        assert_ok(run)
        [handler] = run["sessionHandler"]
        assert handler["action"] == ("renewWithAuthToken" if mode == "secure" else "renew")
        first, second = run.requests("POST", "/api/v5/sessions")
        assert (first["status"], second["status"]) == (200, 200), run.describe()
        if mode == "secure":
            assert second["body"]["authToken"] not in ("", None, extra["authToken"])
        new = second["response"]["accessToken"]
        assert new != first["response"]["accessToken"]
        assert run.step("renewed")["token"]["accessToken"] == new
        probe = run.step("probe:after-renewal")
        assert probe["status"] == 200 and probe["body"]["data"]["userId"] == "dave", probe
        assert_loopback_only(run, gw)


async def test_secure_logout_revokes_the_token_at_the_proxy(
    sdk_gateway: SdkGateway, sdk_dir: Path
) -> None:
    gw = sdk_gateway
    network = await gw.network()
    run = await run_sdk(sdk_dir, "secure_logout", gw.sdk_params(network, "erin", probePath=PROBE))
    assert_ok(run)
    done = run.step("secureLogout")
    token = done["revokedToken"]
    assert done["returned"] is True
    assert run.step("probe:before-logout")["status"] == 200
    [delete] = run.requests("DELETE", "/api/v4/sessions")
    assert lower(delete["headers"])["authorization"] == f"Bearer {token}"
    assert (delete["status"], delete["response"]) == (200, {"success": True})

    before = len(gw.upstream.requests)
    status, body = await gw.call("GET", PROBE, token=token)
    assert (status, body) == (401, error("Invalid token"))
    assert len(gw.upstream.requests) == before  # refused at the gateway
    assert_loopback_only(run, gw)


async def _revoked_session(gw: SdkGateway, sdk_dir: Path) -> tuple[str, str]:
    """An SDK session ended with secureLogout(): (revoked access token, user `_id`)."""
    network = await gw.network()
    run = await run_sdk(sdk_dir, "secure_logout", gw.sdk_params(network, "frank"))
    assert_ok(run)
    [session] = run.requests("POST", "/api/v5/sessions")
    return run.step("secureLogout")["revokedToken"], session["response"]["users"][0]["_id"]


async def test_a_revoked_token_cannot_open_the_sdk_socket_io(
    sdk_gateway: SdkGateway, sdk_dir: Path
) -> None:
    """The SDK's socket.io upgrade carries the access token in `?token=`; API.md section 4:
    upgrades are proxied after the same checks, so a revoked token must not get through."""
    gw = sdk_gateway
    token, _ = await _revoked_session(gw, sdk_dir)
    before = len(gw.upstream.socketio_connects)
    url = f"ws://{gw.address}/socket.io/?token={token}&EIO=3&transport=websocket"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with gw.session.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5)):
            pass
    assert refused.value.status == 401
    assert len(gw.upstream.socketio_connects) == before


async def test_a_revoked_token_cannot_connect_the_sdk_mqtt(
    sdk_gateway: SdkGateway, sdk_dir: Path
) -> None:
    """The SDK's MQTT CONNECT carries username `_id` and the access token as password
    (API.md section 4); after secureLogout() that CONNECT must not reach the broker."""
    gw = sdk_gateway
    token, user_id = await _revoked_session(gw, sdk_dir)
    before = len(gw.upstream.mqtt_connects)
    packet = mqtt_connect_packet(f"mqttjs_e2e_{user_id}", user_id, token)
    try:
        async with gw.session.ws_connect(f"ws://{gw.address}/mqtt", protocols=("mqtt",),
                                         timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
            await ws.send_bytes(packet)
            answer = await ws.receive(timeout=5)
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 401  # refused at the upgrade: fine too
    else:
        if answer.type == aiohttp.WSMsgType.BINARY:  # a CONNACK that refuses
            assert answer.data[0] == 0x20 and answer.data[3] != 0, answer.data
        else:
            assert answer.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                   aiohttp.WSMsgType.CLOSING), answer
    assert len(gw.upstream.mqtt_connects) == before


async def test_a_banned_user_cannot_log_in(sdk_gateway: SdkGateway, sdk_dir: Path) -> None:
    gw = sdk_gateway
    network = await gw.network()
    status, body = await gw.call("POST", "/api/v5/sessions", headers={
        "x-api-key": network["apiKey"]}, json_body={"userId": "mallory", "deviceId": "d1"})
    assert status == 200, body
    admin = await gw.admin_token(network)
    assert await gw.call("POST", "/api/v3/users/mallory/ban", token=admin) == (
        200, {"success": True})

    run = await run_sdk(sdk_dir, "login_refused", gw.sdk_params(network, "mallory"))
    assert_ok(run)
    [attempt] = run.requests("POST", "/api/v5/sessions")
    assert (attempt["status"], attempt["response"]) == (
        403, error("User is global banned.", 400312))
    threw = run.step("login-threw")
    assert threw["code"] == 400312 and "User is global banned." in threw["message"], threw
    assert run["websockets"] == [] and len(run["requests"]) == 1
    assert_loopback_only(run, gw)


async def test_login_over_https_with_the_gateway_ca(
    sdk_gateway: SdkGateway, sdk_dir: Path
) -> None:
    gw = sdk_gateway
    network = await gw.network()
    params = gw.sdk_params(network, "grace", https=True, probePath=PROBE,
                           waitRealtime=True, settleMs=5000)
    assert params["http"].startswith("https://") and params["mqtt"].startswith("wss://")
    run = await run_sdk(sdk_dir, "login", params, env={"NODE_EXTRA_CA_CERTS": str(gw.ca)})
    assert_ok(run)
    assert run.step("login")["sessionState"] == "established"
    assert run.step("probe:after-login")["status"] == 200
    assert run.step("realtime") == {"socketioConnected": True, "mqttConnected": True}
    assert all(w["url"].startswith("wss://") for w in run["websockets"])
    targets = {c.get("target") for c in run["connections"]}
    assert targets == {f"127.0.0.1:{gw.gateway.https_port}"}, targets
    assert_loopback_only(run, gw)

    # Without the gateway's CA the SDK cannot log in: the certificate is not trusted.
    untrusted = await run_sdk(sdk_dir, "login_refused", gw.sdk_params(network, "grace",
                              https=True), env={"NODE_EXTRA_CA_CERTS": None})
    assert_ok(untrusted)
    threw = untrusted.step("login-threw")
    assert "certificate" in threw["message"].lower(), threw
    assert_loopback_only(untrusted, gw)


SAFELISTED = {"accept", "accept-language", "content-language"}


async def test_browser_preflight_for_the_requests_the_sdk_sends(
    tmp_path: Path, sdk_dir: Path
) -> None:
    """In a browser every SDK request is cross-origin and non-simple (JSON body, X-API-Key,
    set-access-token-cookie, Authorization): with `server.cors_origins` set, the gateway
    must answer the preflight for the headers and methods the SDK was seen to use
    (API.md section 4, CORS), and mark the real answers as readable by that origin."""
    async with sdk_gateway_running(tmp_path, {"server": {"cors_origins": [ORIGIN]}}) as gw:
        network = await gw.network()
        run = await run_sdk(sdk_dir, "secure_logout", gw.sdk_params(network, "heidi",
                                                                    probePath=PROBE))
        assert_ok(run)
        assert len(run["requests"]) >= 4  # session, chat settings, probe, logout
        for sent in run["requests"]:
            path = "/" + sent["url"].split("/", 3)[3]
            wanted = sorted(h.lower() for h in sent["headers"] if h.lower() not in SAFELISTED)
            async with gw.session.options(gw.url + path, headers={
                "Origin": ORIGIN, "Access-Control-Request-Method": sent["method"],
                "Access-Control-Request-Headers": ",".join(wanted),
            }) as response:
                assert response.status in (200, 204), (path, response.status)
                allowed = response.headers
                assert allowed.get("Access-Control-Allow-Origin") == ORIGIN, (path, allowed)
                methods = {m.strip().upper()
                           for m in allowed.get("Access-Control-Allow-Methods", "").split(",")}
                assert sent["method"] in methods, (path, allowed)
                names = {h.strip().lower()
                         for h in allowed.get("Access-Control-Allow-Headers", "").split(",")}
                assert set(wanted) <= names, (path, wanted, allowed)

        async with gw.session.post(gw.url + "/api/v5/sessions", json={
            "userId": "heidi", "deviceId": "browser-1"}, headers={
                "x-api-key": network["apiKey"], "Origin": ORIGIN}) as response:
            assert response.status == 200
            assert response.headers.get("Access-Control-Allow-Origin") == ORIGIN
        async with gw.session.post(gw.url + "/api/v5/sessions", json={
            "userId": "heidi", "deviceId": "browser-1"}, headers={
                "x-api-key": network["apiKey"], "Origin": "http://elsewhere.example"}) as other:
            assert "Access-Control-Allow-Origin" not in other.headers
