"""Client certificates uploaded for mTLS: at most a few per network, names unique in it."""

from __future__ import annotations

from gateway.store.core import AlreadyExists, StoreCore, new_id
from gateway.store.credentials import end_certificate_bindings
from gateway.store.db import Row
from gateway.store.events import CertificateAdded, CertificateDeleted
from gateway.store.models import Certificate


class CertificateLimit(Exception):
    """The network already holds as many certificates as it may."""


_COLUMNS = (
    "id, network_id, name, certificate_pem, fingerprint_sha256, not_before, not_after,"
    " created_at"
)


class CertificateQueries(StoreCore):
    async def add_certificate(
        self,
        network_id: str,
        name: str,
        certificate_pem: str,
        fingerprint_sha256: str,
        not_before: float,
        not_after: float,
        *,
        limit: int,
    ) -> Certificate:
        """Store a signed certificate; `CertificateLimit` or `AlreadyExists` says why not.

        The count and the name are checked inside the write transaction (which every
        writer serialises on), so two uploads racing for the last slot cannot both win.
        """
        certificate = Certificate(
            id=new_id(),
            network_id=network_id,
            name=name,
            certificate_pem=certificate_pem,
            fingerprint_sha256=fingerprint_sha256,
            not_before=not_before,
            not_after=not_after,
            created_at=self.clock(),
        )
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT name FROM certificates WHERE network_id = $1", network_id
            )
            if len(rows) >= limit:
                raise CertificateLimit(f"the network already has {limit} certificates")
            if any(row["name"] == name for row in rows):
                raise AlreadyExists(f"a certificate named {name!r} already exists")
            await tx.execute(
                f"INSERT INTO certificates ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                certificate.id,
                network_id,
                name,
                certificate_pem,
                fingerprint_sha256,
                not_before,
                not_after,
                certificate.created_at,
            )
            await self.append_event(
                tx, CertificateAdded(network_id, fingerprint_sha256, not_after))
        return certificate

    async def list_certificates(self, network_id: str) -> list[Certificate]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM certificates WHERE network_id = $1 ORDER BY created_at, id",
            network_id,
        )
        return [_certificate(row) for row in rows]

    async def all_certificates(self) -> list[Certificate]:
        """Every network's certificates: what the listener pins, loaded once at start."""
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM certificates")
        return [_certificate(row) for row in rows]

    async def certificate_count(self, network_id: str) -> int:
        row = await self.db.fetchrow(
            "SELECT COUNT(*) AS n FROM certificates WHERE network_id = $1", network_id
        )
        return int(row["n"]) if row else 0

    async def delete_certificate(self, network_id: str, certificate_id: str) -> Certificate | None:
        """Delete a certificate and, in the same transaction, end every credential bound
        to it (RFC 8705): a deleted certificate must not leave a token only it unlocks."""
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                f"SELECT {_COLUMNS} FROM certificates WHERE id = $1 AND network_id = $2",
                certificate_id,
                network_id,
            )
            if row is None:
                return None
            certificate = _certificate(row)
            await tx.execute("DELETE FROM certificates WHERE id = $1", certificate_id)
            await self.append_event(
                tx, CertificateDeleted(network_id, certificate.fingerprint_sha256))
            await end_certificate_bindings(self, tx, network_id, certificate.fingerprint_sha256)
        return certificate


def _certificate(row: Row) -> Certificate:
    return Certificate(
        id=row["id"],
        network_id=row["network_id"],
        name=row["name"],
        certificate_pem=row["certificate_pem"],
        fingerprint_sha256=row["fingerprint_sha256"],
        not_before=float(row["not_before"]),
        not_after=float(row["not_after"]),
        created_at=float(row["created_at"]),
    )
