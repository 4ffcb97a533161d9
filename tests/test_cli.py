"""The `gateway` command as an operator runs it: real processes, real files."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.auth.passwords import hash_password, verify_password
from gateway.config import load_config
from gateway.store import open_store
from gateway.testing.process import run_cli
from gateway.testing.support import write_config


async def test_init_creates_what_is_missing_and_never_overwrites(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, out, err = await run_cli("init", "--config", str(config))
    assert code == 0, err
    first = json.loads(out)
    assert first["ca"] == str(tmp_path / "certs" / "ca.pem")
    assert set(first["created"]) == {"ca", "server_certificate", "kek"}
    assert first["schema_version"] >= 1
    files = ["certs/ca.pem", "certs/ca.key", "certs/server.pem", "certs/server.key",
             "certs/keys/kek.key", "var/gateway.db"]
    before = {name: (tmp_path / name).read_bytes() for name in files[:-1]}
    assert all((tmp_path / name).exists() for name in files)
    assert (tmp_path / "certs" / "ca.key").stat().st_mode & 0o077 == 0

    code, out, err = await run_cli("init", "--config", str(config))
    assert code == 0, err
    assert json.loads(out)["created"] == []
    assert {name: (tmp_path / name).read_bytes() for name in files[:-1]} == before


async def test_network_and_admin_creation(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, out, err = await run_cli(
        "network", "create", "--config", str(config), "--name", "acme", "--region", "eu",
        "--secure",
    )
    assert code == 0, err
    network = json.loads(out)
    assert network["region"] == "eu" and network["useSecureAuthentication"] is True
    assert set(network) == {"networkId", "apiKey", "region", "useSecureAuthentication"}

    args = ("admin", "create", "--config", str(config), "--network", network["networkId"],
            "--username", "alice", "--role", "admin", "--password-stdin")
    code, out, err = await run_cli(*args, stdin=b"correct horse\n")
    assert code == 0, err
    assert json.loads(out) == {"username": "alice", "role": "admin",
                               "networkId": network["networkId"]}
    store = await open_store(load_config(config, environ={}))
    try:
        admin = await store.admin_by_username(network["networkId"], "alice")
    finally:
        await store.close()
    assert admin is not None and "correct horse" not in admin.password_hash
    assert verify_password("correct horse", admin.password_hash)
    assert not verify_password("wrong", admin.password_hash)

    code, out, err = await run_cli(*args, stdin=b"again\n")
    assert (code, out) == (1, "")
    assert "already exists" in err and len(err.strip().splitlines()) == 1


async def test_network_update_turns_secure_mode_and_mtls_on_and_off(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, out, err = await run_cli("network", "create", "--config", str(config), "--name", "n")
    assert code == 0, err
    base = ("network", "update", "--config", str(config), "--network",
            json.loads(out)["networkId"])
    code, out, err = await run_cli(*base, "--mtls", "on")
    assert (code, out) == (1, "") and "mTLS needs secure mode" in err
    code, out, err = await run_cli(*base, "--secure", "on", "--mtls", "on")
    assert code == 0, err
    assert json.loads(out)["useSecureAuthentication"] and json.loads(out)["mtlsEnabled"]
    code, out, err = await run_cli(*base, "--secure", "off")
    assert (code, out) == (1, "") and "mTLS needs secure mode" in err
    # The way back in for admins who turned mTLS on without a certificate.
    code, out, err = await run_cli(*base, "--mtls", "off")
    assert code == 0, err
    assert json.loads(out)["mtlsEnabled"] is False
    code, _, err = await run_cli(*base)
    assert code == 2 and "nothing to change" in err


async def test_errors_are_one_line_with_the_contract_exit_codes(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"server": {"colour": "blue"}})
    code, out, err = await run_cli("init", "--config", str(config))
    assert (code, out) == (2, "")
    assert "server.colour" in err and len(err.strip().splitlines()) == 1

    (tmp_path / "ok").mkdir()
    good = write_config(tmp_path / "ok")
    for args, expected in [
        (("bogus",), 2),
        (("network", "create", "--config", str(good)), 2),  # --name missing
        (("network", "create", "--config", str(good), "--name", "x", "--region", "mars"), 2),
        (("admin", "create", "--config", str(good), "--network", "x", "--username", "u",
          "--role", "emperor", "--password-stdin"), 2),
        (("admin", "create", "--config", str(good), "--network", "missing", "--username", "u",
          "--role", "admin", "--password-stdin"), 1),
    ]:
        code, out, err = await run_cli(*args, stdin=b"pw\n")
        assert code == expected, (args, err)
        assert out == "" and len(err.strip().splitlines()) == 1, (args, err)


async def test_config_path_defaults_to_the_environment_variable(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, out, err = await run_cli("init", env={"GATEWAY_CONFIG": str(config)})
    assert code == 0, err
    assert json.loads(out)["ca"].startswith(str(tmp_path))


def test_password_hashes_are_salted_and_malformed_ones_never_match() -> None:
    first, second = hash_password("pw", log2_n=10), hash_password("pw", log2_n=10)
    assert first != second and first.startswith("scrypt$10$")
    assert verify_password("pw", first) and verify_password("pw", second)
    for stored in ["", "plain", "scrypt$x$8$1$AA==$AA==", "bcrypt$10$8$1$AA==$AA=="]:
        assert not verify_password("pw", stored)


async def test_minted_tokens_work_and_their_users_exist(tmp_path: Path) -> None:
    import csv

    import aiohttp

    from gateway.testing.process import GatewayProcess

    config = write_config(tmp_path)
    code, out, err = await run_cli("network", "create", "--config", str(config), "--name", "n")
    assert code == 0, err
    network = json.loads(out)
    minted: dict[str, list[list[str]]] = {}
    for label, flags in {"good": [], "expired": ["--expired"], "revoked": ["--revoked"]}.items():
        path = tmp_path / f"{label}.csv"
        code, out, err = await run_cli(
            "tokens", "mint", "--config", str(config), "--network", network["networkId"],
            "--users", "3", *flags, "--out", str(path))
        assert code == 0, err
        assert json.loads(out) == {"count": 3, "out": str(path)}
        rows = list(csv.reader(path.open()))
        assert rows[0] == ["userId", "token"] and len(rows) == 4
        minted[label] = rows[1:]
    code, _, err = await run_cli("admin", "create", "--config", str(config), "--network",
                                 network["networkId"], "--username", "ada", "--role", "admin",
                                 "--password-stdin", stdin=b"pw-pw-pw\n")
    assert code == 0, err
    code, out, err = await run_cli("admin", "token", "--config", str(config), "--network",
                                   network["networkId"], "--username", "ada")
    assert code == 0, err
    admin = json.loads(out)["adminToken"]

    async with GatewayProcess(config) as gateway, aiohttp.ClientSession() as session:
        async def check(token: str) -> tuple[int, str]:
            async with session.get(f"{gateway.url}/api/v3/sessions",
                                   headers={"Authorization": f"Bearer {token}"}) as response:
                return response.status, (await response.json()).get("message", "")

        assert await check(minted["good"][0][1]) == (200, "")
        assert await check(minted["expired"][0][1]) == (401, "token expired")
        assert await check(minted["revoked"][0][1]) == (401, "Invalid token")
        # The minted user exists: another user taking its device ends its token.
        async with session.post(f"{gateway.url}/api/v3/sessions",
                                headers={"x-api-key": network["apiKey"]},
                                json={"userId": "mallory", "deviceId": "loadtest-device-1"}
                                ) as response:
            assert response.status == 200
        assert await check(minted["good"][1][1]) == (401, "Invalid token")
        # An admin of the network can ban a minted user.
        async with session.post(f"{gateway.url}/api/v3/users/loadtest-access-2/ban",
                                headers={"Authorization": f"Bearer {admin}"}) as response:
            assert response.status == 200
        assert (await check(minted["good"][2][1]))[0] == 403


async def test_minted_tokens_get_the_lifetimes_the_api_gives(tmp_path: Path) -> None:
    """One write path for lifetimes: a secure network's access tokens live
    tokens.access_ttl_secure, its admin tokens its securityConfigs lifetime."""
    import csv

    import jwt

    from gateway.config import load_config
    from gateway.store import open_store

    config = write_config(tmp_path)
    code, out, err = await run_cli("network", "create", "--config", str(config), "--name", "s",
                                   "--secure")
    assert code == 0, err
    network_id = json.loads(out)["networkId"]
    store = await open_store(load_config(config, environ={}))
    try:
        await store.set_admin_token_hours(network_id, 2)
    finally:
        await store.close()
    lifetimes = {}
    for kind in ("access", "admin"):
        path = tmp_path / f"{kind}.csv"
        code, _, err = await run_cli("tokens", "mint", "--config", str(config), "--network",
                                     network_id, "--users", "1", "--kind", kind,
                                     "--out", str(path))
        assert code == 0, err
        token = list(csv.reader(path.open()))[1][1]
        claims = jwt.decode(token, options={"verify_signature": False})
        lifetimes[kind] = claims["exp"] - claims["iat"]
    assert lifetimes == {"access": 30 * 86400, "admin": 2 * 3600}
