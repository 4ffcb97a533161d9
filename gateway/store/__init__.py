"""The durable store (SQLite by default, PostgreSQL for several instances) and its feed."""

from __future__ import annotations

from gateway.config import Config, sqlite_path
from gateway.store.acting import Caller, CallerNotLive
from gateway.store.certificates import CertificateLimit
from gateway.store.core import AlreadyExists, Clock
from gateway.store.credentials import (
    AuthTokenResult,
    IssuedCredential,
    NewSigningKey,
    SigningKeyError,
)
from gateway.store.db import Database, StoreUnavailable
from gateway.store.feed import FeedTailer
from gateway.store.models import Admin, Certificate, Change, Network, User
from gateway.store.store import Store

__all__ = [
    "Admin",
    "AlreadyExists",
    "AuthTokenResult",
    "Caller",
    "CallerNotLive",
    "Certificate",
    "CertificateLimit",
    "Change",
    "Clock",
    "FeedTailer",
    "IssuedCredential",
    "Network",
    "NewSigningKey",
    "SigningKeyError",
    "Store",
    "StoreUnavailable",
    "User",
    "open_store",
]


async def open_store(config: Config, *, migrate: bool = True) -> Store:
    """Connect to the configured store and bring its schema up to date."""
    from gateway.store.postgres import PostgresDatabase
    from gateway.store.sqlite import SqliteDatabase

    if config.store.url.startswith("sqlite:///"):
        db: Database = await SqliteDatabase.open(sqlite_path(config))
    else:
        db = await PostgresDatabase.open(
            config.store.url, config.store.schema, config.store.pool_size
        )
    store = Store(db)
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store
