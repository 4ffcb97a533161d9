"""Signing keys, issued credentials, auth tokens and revocations.

Every access and admin token issued is recorded by its `jti` (never the token itself,
except an admin token sealed for retrieval), so revoking "all of a user's tokens" or
"every token bound to a device" is an exact list of ids put on the change feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.store.core import StoreCore, new_id
from gateway.store.db import Queries
from gateway.store.events import (
    ConsoleEnded,
    KeyRevoked,
    KeysRotated,
    TokensRevoked,
    TokensSuperseded,
)
from gateway.store.pending_audit import INSERT_AUDIT


@dataclass(frozen=True)
class IssuedCredential:
    jti: str
    kind: str  # "access" | "admin"
    network_id: str
    subject: str
    issued_at: float
    expires_at: float
    kid: str
    device_id: str | None = None
    sealed_token: str | None = None
    cert_sha256: str | None = None  # the client certificate it is bound to (RFC 8705)


# "unbound": bound to a client certificate (RFC 8705) the redeeming request lacks.
AuthTokenResult = Literal["ok", "invalid", "expired", "unbound"]


@dataclass(frozen=True)
class NewSigningKey:
    """A key made ready (sealed) before the transaction that may store it."""

    kid: str
    algorithm: str
    public_pem: str
    sealed_private: str


class SigningKeyError(Exception):
    """The key named cannot be revoked: unknown, or revoked already."""


class CredentialQueries(StoreCore):
    # -- signing keys ---------------------------------------------------------------

    async def add_signing_key(
        self, kid: str, algorithm: str, public_pem: str, sealed_private: str, *, rotate: bool
    ) -> bool:
        """Store a key. Without `rotate`, only if no key may sign yet; return if stored."""
        async with self.db.transaction() as tx:
            active = await tx.fetchrow(
                "SELECT kid FROM signing_keys WHERE retired_at IS NULL"
            )
            if active is not None and not rotate:
                return False
            now = self.clock()
            await tx.execute(
                "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL", now
            )
            await tx.execute(
                "INSERT INTO signing_keys (kid, algorithm, public_pem, sealed_private,"
                " created_at, max_exp) VALUES ($1, $2, $3, $4, $5, $6)",
                kid, algorithm, public_pem, sealed_private, now, 0.0,
            )
            await self.append_event(tx, KeysRotated(kid))
        return True

    async def signing_keys(self) -> list[dict[str, Any]]:
        """Every key that may still sign or verify: a revoked one is never handed out."""
        rows = await self.db.fetch(
            "SELECT kid, algorithm, sealed_private, created_at, retired_at, max_exp"
            " FROM signing_keys WHERE revoked_at IS NULL ORDER BY created_at"
        )
        return [dict(row) for row in rows]

    async def revoke_signing_key(
        self, kid: str, replacement: NewSigningKey, actor: str
    ) -> tuple[float, str | None]:
        """Revoke `kid` for good; return (when, the replacement's kid if it was stored).

        If no other key may sign, `replacement` is stored in the same transaction, so there
        is never a moment without a signer. Every network's audit log gets the entry (the
        key signed tokens of all of them), and `keys.revoked` goes out on the feed.
        """
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "SELECT revoked_at FROM signing_keys WHERE kid = $1", kid
            )
            if row is None:
                raise SigningKeyError(f"signing key {kid!r} not found")
            if row["revoked_at"] is not None:
                raise SigningKeyError(f"signing key {kid!r} is already revoked")
            now = self.clock()
            other = await tx.fetchrow(
                "SELECT kid FROM signing_keys WHERE retired_at IS NULL AND revoked_at IS NULL"
                " AND kid <> $1", kid,
            )
            added = None
            if other is None:
                await tx.execute(
                    "INSERT INTO signing_keys (kid, algorithm, public_pem, sealed_private,"
                    " created_at, max_exp) VALUES ($1, $2, $3, $4, $5, $6)",
                    replacement.kid, replacement.algorithm, replacement.public_pem,
                    replacement.sealed_private, now, 0.0,
                )
                added = replacement.kid
            # Retired too, so that code reading only `retired_at` never lets it sign.
            await tx.execute(
                "UPDATE signing_keys SET revoked_at = $2,"
                " retired_at = COALESCE(retired_at, $2) WHERE kid = $1", kid, now,
            )
            for network in await tx.fetch("SELECT id FROM networks ORDER BY id"):
                await tx.execute(INSERT_AUDIT, network["id"], now, actor, None,
                                 "signing_key.revoke", kid, None, None)
            await self.append_event(tx, KeyRevoked(kid, added))
        return now, added

    # -- issued tokens --------------------------------------------------------------

    async def record_credential(
        self, credential: IssuedCredential, *, claim_device: bool = False
    ) -> list[tuple[str, float]]:
        """Record an issued token; with `claim_device`, the device passes to its subject.

        When the device was another user's, every earlier token bound to it is revoked
        in the same transaction; those (jti, exp) pairs are returned.
        """
        revoked: list[tuple[str, float]] = []
        async with self.db.transaction() as tx:
            if claim_device and credential.device_id is not None:
                revoked = await self._claim_device(tx, credential)
            await _insert_credentials(tx, [credential])
            await tx.execute(
                "UPDATE signing_keys SET max_exp = $2 WHERE kid = $1 AND max_exp < $2",
                credential.kid, credential.expires_at,
            )
        return revoked

    async def _claim_device(
        self, tx: Queries, credential: IssuedCredential
    ) -> list[tuple[str, float]]:
        network_id, device_id = credential.network_id, credential.device_id
        owner = await tx.fetchrow(
            "SELECT user_id FROM devices WHERE network_id = $1 AND device_id = $2",
            network_id, device_id,
        )
        now = self.clock()
        revoked: list[tuple[str, float]] = []
        if owner is not None and owner["user_id"] != credential.subject:
            revoked = await self._revoke_where(
                tx, network_id,
                "kind = 'access' AND device_id = $2", device_id,
            )
        if owner is None:
            await tx.execute(
                "INSERT INTO devices (network_id, device_id, user_id, bound_at)"
                " VALUES ($1, $2, $3, $4)",
                network_id, device_id, credential.subject, now,
            )
        elif owner["user_id"] != credential.subject:
            await tx.execute(
                "UPDATE devices SET user_id = $3, bound_at = $4"
                " WHERE network_id = $1 AND device_id = $2",
                network_id, device_id, credential.subject, now,
            )
        return revoked

    async def record_credentials(
        self, credentials: Sequence[IssuedCredential], *, revoked: bool = False
    ) -> None:
        """Bulk insert (token minting for load tests), optionally already revoked. The
        access tokens' users and device bindings are created too, so bans, per-user
        revocation and device rebinding work on minted users as on logged-in ones."""
        now = self.clock()
        async with self.db.transaction() as tx:
            await _insert_credentials(tx, credentials, now if revoked else None)
            for c in credentials:
                if c.kind != "access":
                    continue
                await tx.execute(
                    "INSERT INTO users (id, network_id, user_id, display_name,"
                    " is_global_banned, created_at, updated_at)"
                    " VALUES ($1, $2, $3, NULL, $4, $5, $5)"
                    " ON CONFLICT (network_id, user_id) DO NOTHING",
                    new_id(), c.network_id, c.subject, False, now,
                )
                if c.device_id is not None:
                    await tx.execute(
                        "INSERT INTO devices (network_id, device_id, user_id, bound_at)"
                        " VALUES ($1, $2, $3, $4) ON CONFLICT (network_id, device_id)"
                        " DO NOTHING",
                        c.network_id, c.device_id, c.subject, now,
                    )
            if revoked and credentials:
                tokens = tuple((c.jti, c.expires_at) for c in credentials)
                await self.append_event(tx, TokensRevoked(credentials[0].network_id, tokens))
            if credentials:
                await tx.execute(
                    "UPDATE signing_keys SET max_exp = $2 WHERE kid = $1 AND max_exp < $2",
                    credentials[0].kid, max(c.expires_at for c in credentials),
                )

    async def current_admin_token(self, network_id: str, username: str) -> dict[str, Any] | None:
        """The admin's newest live token that is not in a grace window."""
        row = await self.db.fetchrow(
            "SELECT jti, issued_at, expires_at, sealed_token FROM credentials"
            " WHERE network_id = $1 AND subject = $2 AND kind = 'admin'"
            " AND revoked_at IS NULL AND grace_until IS NULL AND expires_at > $3"
            " ORDER BY issued_at DESC LIMIT 1",
            network_id, username, self.clock(),
        )
        return dict(row) if row else None

    async def rotate_admin_token(
        self, credential: IssuedCredential, grace: float
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """Record a new admin token; the admin's previous ones enter a grace window
        (revoked at once when `grace` is 0). Returns (superseded, revoked) (jti, time)."""
        now = self.clock()
        superseded: list[tuple[str, float]] = []
        revoked: list[tuple[str, float]] = []
        async with self.db.transaction() as tx:
            if grace > 0:
                rows = await tx.fetch(
                    "SELECT jti, expires_at FROM credentials WHERE network_id = $1"
                    " AND subject = $2 AND kind = 'admin' AND revoked_at IS NULL"
                    " AND grace_until IS NULL AND expires_at > $3",
                    credential.network_id, credential.subject, now,
                )
                until = now + grace
                superseded = [(row["jti"], min(until, float(row["expires_at"]))) for row in rows]
                for jti, grace_until in superseded:
                    await tx.execute(
                        "UPDATE credentials SET grace_until = $2 WHERE jti = $1", jti, grace_until
                    )
                if superseded:
                    await self.append_event(
                        tx, TokensSuperseded(credential.network_id, tuple(superseded)))
            else:
                revoked = await self._revoke_where(
                    tx, credential.network_id, "subject = $2 AND kind = 'admin'",
                    credential.subject,
                )
            await _insert_credentials(tx, [credential])
            await tx.execute(
                "UPDATE signing_keys SET max_exp = $2 WHERE kid = $1 AND max_exp < $2",
                credential.kid, credential.expires_at,
            )
        return superseded, revoked

    async def live_supersessions(self) -> list[tuple[str, float]]:
        rows = await self.db.fetch(
            "SELECT jti, grace_until FROM credentials WHERE grace_until IS NOT NULL"
            " AND revoked_at IS NULL AND expires_at > $1",
            self.clock(),
        )
        return [(row["jti"], float(row["grace_until"])) for row in rows]

    # -- revocation -----------------------------------------------------------------

    async def revoke_token(self, network_id: str, jti: str) -> list[tuple[str, float]]:
        async with self.db.transaction() as tx:
            return await self._revoke_where(tx, network_id, "jti = $2", jti)

    async def revoke_admin(self, network_id: str, username: str) -> None:
        """Revoke every admin token of `username` and end their console sessions in one
        transaction: no moment exists where one is done and a session could mint anew."""
        async with self.db.transaction() as tx:
            await self._revoke_where(tx, network_id, "subject = $2 AND kind = 'admin'",
                                     username)
            await end_console_sessions(self, tx, network_id, username)

    async def revoke_subject(
        self, network_id: str, subject: str, kind: str
    ) -> list[tuple[str, float]]:
        """Revoke every live token of `kind` issued to `subject` in the network."""
        async with self.db.transaction() as tx:
            return await self._revoke_where(
                tx, network_id, "subject = $2 AND kind = $3", subject, kind
            )

    async def _revoke_where(
        self, tx: Queries, network_id: str, condition: str, *args: Any
    ) -> list[tuple[str, float]]:
        return await revoke_where(self, tx, network_id, condition, *args)

    async def live_revocations(self) -> list[tuple[str, float]]:
        rows = await self.db.fetch(
            "SELECT jti, expires_at FROM credentials"
            " WHERE revoked_at IS NOT NULL AND expires_at > $1",
            self.clock() - 3600,
        )
        return [(row["jti"], float(row["expires_at"])) for row in rows]

    # -- auth tokens (secure mode) --------------------------------------------------

    async def create_auth_token(
        self, token_hash: str, network_id: str, user_id: str, expires_at: float,
        cert_sha256: str | None = None,
    ) -> None:
        """`cert_sha256`: the client certificate it was fetched with, when bound (RFC 8705)."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO credentials (jti, kind, network_id, subject, issued_at, expires_at,"
                " cert_sha256) VALUES ($1, 'auth', $2, $3, $4, $5, $6)",
                token_hash, network_id, user_id, self.clock(), expires_at, cert_sha256,
            )

    async def consume_auth_token(
        self, token_hash: str, network_id: str, user_id: str, leeway: float,
        cert_sha256: str | None = None,
    ) -> AuthTokenResult:
        """Use an auth token up: it must be this network's and user's, unused, unexpired,
        and presented with the certificate it is bound to, if any (`cert_sha256` is the
        request's). A bound one presented without it stays unused: its holder may still
        redeem it."""
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "SELECT network_id, subject, expires_at, revoked_at, cert_sha256"
                " FROM credentials WHERE jti = $1 AND kind = 'auth'",
                token_hash,
            )
            if row is None or row["network_id"] != network_id or row["subject"] != user_id:
                return "invalid"
            if row["revoked_at"] is not None:
                return "invalid"
            if row["cert_sha256"] is not None and row["cert_sha256"] != cert_sha256:
                return "unbound"
            now = self.clock()
            if float(row["expires_at"]) + leeway < now:
                return "expired"
            await tx.execute(
                "UPDATE credentials SET revoked_at = $2 WHERE jti = $1", token_hash, now
            )
        return "ok"


async def _insert_credentials(
    tx: Queries, credentials: Sequence[IssuedCredential], revoked_at: float | None = None
) -> None:
    await tx.executemany(
        "INSERT INTO credentials (jti, kind, network_id, subject, device_id, issued_at,"
        " expires_at, sealed_token, revoked_at, cert_sha256)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [
            (c.jti, c.kind, c.network_id, c.subject, c.device_id, c.issued_at, c.expires_at,
             c.sealed_token, revoked_at, c.cert_sha256)
            for c in credentials
        ],
    )


async def revoke_where(
    core: StoreCore, tx: Queries, network_id: str, condition: str, *args: Any
) -> list[tuple[str, float]]:
    """Revoke the network's live tokens matching `condition` (its parameters from $2) in
    `tx`, and put them on the feed; return their (jti, exp)."""
    now = core.clock()
    placeholders = len(args) + 2
    rows = await tx.fetch(
        f"SELECT jti, expires_at FROM credentials WHERE network_id = $1 AND {condition}"
        f" AND revoked_at IS NULL AND expires_at > ${placeholders}",
        network_id, *args, now,
    )
    tokens = [(row["jti"], float(row["expires_at"])) for row in rows]
    if not tokens:
        return []
    await tx.execute(
        f"UPDATE credentials SET revoked_at = ${placeholders + 1} WHERE network_id = $1"
        f" AND {condition} AND revoked_at IS NULL AND expires_at > ${placeholders}",
        network_id, *args, now, now,
    )
    await core.append_event(tx, TokensRevoked(network_id, tuple(tokens)))
    return tokens


async def end_console_sessions(
    core: StoreCore, tx: Queries, network_id: str, username: str
) -> list[str]:
    """End `username`'s open console sessions in `tx` and put that on the feed."""
    rows = await tx.fetch(
        "SELECT id FROM console_sessions WHERE network_id = $1 AND username = $2"
        " AND ended_at IS NULL",
        network_id, username,
    )
    ended = [row["id"] for row in rows]
    if ended:
        await tx.execute(
            "UPDATE console_sessions SET ended_at = $3 WHERE network_id = $1"
            " AND username = $2 AND ended_at IS NULL",
            network_id, username, core.clock(),
        )
        await core.append_event(tx, ConsoleEnded(network_id, tuple(ended)))
    return ended


async def end_certificate_bindings(
    core: StoreCore, tx: Queries, network_id: str, fingerprint: str
) -> None:
    """End every credential of the network bound to the certificate `fingerprint`, in the
    caller's transaction (the certificate's deletion): tokens are revoked and console
    sessions ended through the feed, so live connections close on every instance."""
    await revoke_where(core, tx, network_id, "cert_sha256 = $2 AND kind <> 'auth'",
                       fingerprint)
    now = core.clock()
    # Auth tokens are checked in the store when redeemed, never on the feed: spending
    # them is enough.
    await tx.execute(
        "UPDATE credentials SET revoked_at = $3 WHERE network_id = $1"
        " AND cert_sha256 = $2 AND kind = 'auth' AND revoked_at IS NULL",
        network_id, fingerprint, now,
    )
    rows = await tx.fetch(
        "SELECT id FROM console_sessions WHERE network_id = $1 AND cert_sha256 = $2"
        " AND ended_at IS NULL", network_id, fingerprint,
    )
    sessions = tuple(row["id"] for row in rows)
    if sessions:
        await tx.execute(
            "UPDATE console_sessions SET ended_at = $3 WHERE network_id = $1"
            " AND cert_sha256 = $2 AND ended_at IS NULL", network_id, fingerprint, now,
        )
        await core.append_event(tx, ConsoleEnded(network_id, sessions))


class ConsoleQueries(StoreCore):
    async def create_console_session(
        self, session_hash: str, network_id: str, username: str, role: str, expires_at: float,
        cert_sha256: str | None = None,
    ) -> None:
        """`cert_sha256`: the client certificate it is bound to (RFC 8705), if any."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO console_sessions (id, network_id, username, role, created_at,"
                " expires_at, cert_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                session_hash, network_id, username, role, self.clock(), expires_at,
                cert_sha256,
            )

    async def console_session(self, session_hash: str) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            "SELECT network_id, username, role, expires_at, cert_sha256 FROM console_sessions"
            " WHERE id = $1 AND ended_at IS NULL AND expires_at > $2",
            session_hash, self.clock(),
        )
        return dict(row) if row else None

    async def end_console_session(self, session_hash: str) -> None:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                "SELECT network_id FROM console_sessions WHERE id = $1 AND ended_at IS NULL",
                session_hash,
            )
            if row is None:
                return
            await tx.execute(
                "UPDATE console_sessions SET ended_at = $2 WHERE id = $1",
                session_hash, self.clock(),
            )
            await self.append_event(tx, ConsoleEnded(row["network_id"], (session_hash,)))
