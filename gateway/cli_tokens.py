"""`gateway tokens mint`, `gateway keys rotate`, `gateway admin token`: credential commands."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

from gateway.auth.loader import load_token_service
from gateway.config import Config
from gateway.store import IssuedCredential, Store, open_store

MINT_BATCH = 5000


class NotFound(Exception):
    pass


async def mint_tokens(
    config: Config, network_id: str, users: int, kind: str, *, expired: bool, revoked: bool,
    out: Path,
) -> dict[str, Any]:
    """Sign `users` tokens and record them in batches; CSV `userId,token` to `out`."""
    store = await open_store(config)
    try:
        if await store.get_network(network_id) is None:
            raise NotFound(f"network {network_id!r} not found")
        tokens = await load_token_service(config, store, time.time)
        ttl = config.tokens.access_ttl_unsecure if kind == "access" else (
            config.tokens.admin_token_ttl)
        # An expired set is issued in the past, so every claim is still consistent.
        now = time.time() - (ttl + config.tokens.leeway + 3600) if expired else None
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["userId", "token"])
            batch: list[IssuedCredential] = []
            for index in range(users):
                user_id = f"loadtest-{kind}-{index}"
                token, credential = await tokens.issue(
                    kind=kind, network_id=network_id, subject=user_id, ttl=ttl, now=now,
                    device_id=f"loadtest-device-{index}" if kind == "access" else None,
                    role="admin" if kind == "admin" else None,
                )
                writer.writerow([user_id, token])
                batch.append(credential)
                if len(batch) >= MINT_BATCH:
                    await _record(store, batch, revoked)
                    batch = []
            await _record(store, batch, revoked)
    finally:
        await store.close()
    return {"count": users, "out": str(out)}


async def _record(store: Store, batch: list[IssuedCredential], revoked: bool) -> None:
    if not batch:
        return
    await store.record_credentials(batch, revoked=revoked)


async def rotate_keys(config: Config) -> dict[str, Any]:
    store = await open_store(config)
    try:
        tokens = await load_token_service(config, store, time.time)
        kid = await tokens.ring.rotate()
    finally:
        await store.close()
    return {"kid": kid, "algorithm": config.tokens.algorithms[0]}


async def admin_token(config: Config, network_id: str, username: str) -> dict[str, Any]:
    """Issue an admin token for an existing console user (for scripts and tests)."""
    from gateway.timefmt import iso

    store = await open_store(config)
    try:
        admin = await store.admin_by_username(network_id, username)
        if admin is None:
            raise NotFound(f"username {username!r} not found in network {network_id!r}")
        tokens = await load_token_service(config, store, time.time)
        token, credential = await tokens.issue_admin(
            network_id, username, admin.role, config.tokens.admin_token_ttl
        )
        await store.rotate_admin_token(  # running gateways learn of it from the feed
            credential, config.tokens.admin_rotation_grace
        )
    finally:
        await store.close()
    return {"adminToken": token, "issuedAt": iso(credential.issued_at),
            "expiresAt": iso(credential.expires_at)}
