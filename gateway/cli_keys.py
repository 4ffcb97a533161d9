"""`gateway keys revoke KID`: take a signing key out of service at once, everywhere.

Revoking the key that signs now first makes a new one (in the same transaction), so an
operator with a leaked key needs one command and logins never stop.
"""

from __future__ import annotations

import getpass
from typing import Any

from gateway.auth.keyring import KeyRing
from gateway.auth.loader import open_sealer
from gateway.config import Config
from gateway.store import open_store
from gateway.timefmt import iso


def cli_actor() -> str:
    """Who the audit log names for a command-line action: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "cli"


async def revoke_key(config: Config, kid: str) -> dict[str, Any]:
    """Revoke `kid`; raises gateway.store.SigningKeyError if unknown or revoked already."""
    store = await open_store(config)
    try:
        ring = KeyRing(store, await open_sealer(config), config.tokens.algorithms[0])
        revoked_at, added = await ring.revoke(kid, cli_actor())
        signer = ring.signer().kid
    finally:
        await store.close()
    return {"kid": kid, "revokedAt": iso(revoked_at), "signingKid": signer,
            "newSigningKey": added is not None}
