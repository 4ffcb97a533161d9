"""Bring the token service up from the store: keys, revocations, bans, mTLS pins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from gateway.auth.keyring import KeyRing
from gateway.auth.lifetimes import Lifetimes
from gateway.auth.sealing import Sealer
from gateway.auth.state import AuthState
from gateway.auth.tokens import TokenService
from gateway.bootstrap import kek_path
from gateway.config import Config, token_issuer
from gateway.store import Clock, Store
from gateway.store.facts import TOKEN_ISSUER, recorded_fact


async def open_sealer(config: Config) -> Sealer:
    return await asyncio.to_thread(Sealer.from_file_or_env, Path(kek_path(config)))


async def load_token_service(
    config: Config, store: Store, clock: Clock,
    lifetimes: Callable[[], Lifetimes] | None = None,
) -> TokenService:
    """`lifetimes`: the current token lifetime bounds (default: those of `config`)."""
    sealer = await open_sealer(config)
    ring = KeyRing(store, sealer, config.tokens.algorithms[0], clock)
    await ring.load()
    if not ring.loaded:
        await ring.ensure_signing_key()
    state = AuthState(clock=clock, leeway=config.tokens.leeway)
    for jti, exp in await store.live_revocations():
        state.revoked[jti] = exp
    for jti, grace_until in await store.live_supersessions():
        state.superseded[jti] = grace_until
    state.banned.update(await store.banned_users())
    for network in await store.list_networks():
        state.set_mtls(network.id, network.mtls_enabled)
    for certificate in await store.all_certificates():
        state.pin(certificate.network_id, certificate.fingerprint_sha256, certificate.not_after)
    service = TokenService(
        ring, state, sealer, algorithms=config.tokens.algorithms, leeway=config.tokens.leeway,
        clock=clock, lifetimes=lifetimes or _fixed(Lifetimes.from_config(config.tokens)),
        issuer=await _issuer(config, store),
    )
    state.on_key_revoked = service.forget_key
    return service


async def _issuer(config: Config, store: Store) -> str:
    """`tokens.issuer`, else the issuer the first instance on this store derived from
    its listeners: every instance sharing a store must sign and accept the same `iss`,
    whatever its own ports."""
    if config.tokens.issuer is not None:
        return config.tokens.issuer
    return await recorded_fact(store, TOKEN_ISSUER, token_issuer(config))


def _fixed(lifetimes: Lifetimes) -> Callable[[], Lifetimes]:
    return lambda: lifetimes
