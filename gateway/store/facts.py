"""Facts about the deployment a store belongs to: recorded by the first instance that
starts on the store, compared by every later one.

The CA is one: every instance must issue client certificates from the same CA and check
them against it, and nothing else would notice an instance whose CA differs (the
certificates it issued would just not chain to the others' CA).
"""

from __future__ import annotations

from gateway.store.core import StoreCore

CA_SHA256 = "ca_sha256"  # SHA-256 of the CA certificate's DER, lowercase hex
TOKEN_ISSUER = "token_issuer"  # the `iss` derived by the first instance (no tokens.issuer)

_SELECT = "SELECT value FROM deployment_facts WHERE name = $1"
_INSERT = "INSERT INTO deployment_facts (name, value, recorded_at) VALUES ($1, $2, $3)"


async def recorded_fact(store: StoreCore, name: str, value: str) -> str:
    """The value the store holds under `name`, recording `value` first if it holds none.

    Recorded in a write transaction (one at a time, on both backends): of two instances
    starting together on a new store, one records its value and the other reads it."""
    row = await store.db.fetchrow(_SELECT, name)
    if row is not None:
        return str(row["value"])
    async with store.db.transaction() as tx:
        row = await tx.fetchrow(_SELECT, name)
        if row is not None:
            return str(row["value"])
        await tx.execute(_INSERT, name, value, store.clock())
    return value
