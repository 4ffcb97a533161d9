"""Versioned schema. Each migration is applied once, in order, inside a transaction.

The DDL is written once with a few placeholders for what differs between SQLite and
PostgreSQL. Times are epoch seconds (floating point) in both, so no backend-specific
timestamp handling leaks into the code above.
"""

from __future__ import annotations

from typing import Final

DIALECTS: Final = {
    "sqlite": {"serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "bool": "INTEGER", "real": "REAL"},
    "postgres": {"serial": "BIGSERIAL PRIMARY KEY", "bool": "BOOLEAN", "real": "DOUBLE PRECISION"},
}

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the contract's entities and the change feed.
    (
        """CREATE TABLE networks (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            region TEXT NOT NULL,
            api_key TEXT NOT NULL UNIQUE,
            use_secure_authentication {bool} NOT NULL DEFAULT FALSE,
            mtls_enabled {bool} NOT NULL DEFAULT FALSE,
            admin_token_expires_hours INTEGER,
            server_key_hash TEXT,
            server_key_updated_at {real},
            server_key_updated_by TEXT,
            created_at {real} NOT NULL
        )""",
        """CREATE TABLE users (
            id TEXT PRIMARY KEY,
            network_id TEXT NOT NULL REFERENCES networks(id),
            user_id TEXT NOT NULL,
            display_name TEXT,
            is_global_banned {bool} NOT NULL DEFAULT FALSE,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL,
            UNIQUE (network_id, user_id)
        )""",
        """CREATE TABLE admins (
            id TEXT PRIMARY KEY,
            network_id TEXT NOT NULL REFERENCES networks(id),
            username TEXT NOT NULL,
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created_at {real} NOT NULL,
            UNIQUE (network_id, username)
        )""",
        """CREATE TABLE credentials (
            jti TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            network_id TEXT NOT NULL REFERENCES networks(id),
            subject TEXT NOT NULL,
            device_id TEXT,
            issued_at {real} NOT NULL,
            expires_at {real} NOT NULL,
            revoked_at {real},
            grace_until {real},
            sealed_token TEXT
        )""",
        "CREATE INDEX credentials_subject ON credentials (network_id, subject, kind)",
        """CREATE TABLE certificates (
            id TEXT PRIMARY KEY,
            network_id TEXT NOT NULL REFERENCES networks(id),
            name TEXT NOT NULL,
            certificate_pem TEXT NOT NULL,
            fingerprint_sha256 TEXT NOT NULL,
            not_before {real} NOT NULL,
            not_after {real} NOT NULL,
            created_at {real} NOT NULL,
            UNIQUE (network_id, name)
        )""",
        """CREATE TABLE settings (
            network_id TEXT NOT NULL REFERENCES networks(id),
            name TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_at {real} NOT NULL,
            PRIMARY KEY (network_id, name)
        )""",
        """CREATE TABLE change_feed (
            seq {serial},
            kind TEXT NOT NULL,
            network_id TEXT,
            payload TEXT NOT NULL,
            created_at {real} NOT NULL
        )""",
    ),
    # 2: the token service: signing keys (private halves sealed), device ownership.
    (
        """CREATE TABLE signing_keys (
            kid TEXT PRIMARY KEY,
            algorithm TEXT NOT NULL,
            public_pem TEXT NOT NULL,
            sealed_private TEXT NOT NULL,
            created_at {real} NOT NULL,
            retired_at {real},
            max_exp {real} NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE devices (
            network_id TEXT NOT NULL REFERENCES networks(id),
            device_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            bound_at {real} NOT NULL,
            PRIMARY KEY (network_id, device_id)
        )""",
        "CREATE INDEX credentials_device ON credentials (network_id, device_id)",
        "CREATE INDEX credentials_revoked ON credentials (revoked_at, expires_at)",
    ),
    # 3: console sessions (cookie), stored by the hash of the cookie value.
    (
        """CREATE TABLE console_sessions (
            id TEXT PRIMARY KEY,
            network_id TEXT NOT NULL REFERENCES networks(id),
            username TEXT NOT NULL,
            role TEXT NOT NULL,
            created_at {real} NOT NULL,
            expires_at {real} NOT NULL,
            ended_at {real}
        )""",
        "CREATE INDEX console_sessions_user ON console_sessions (network_id, username)",
    ),
    # 4: the audit log of admin actions.
    (
        """CREATE TABLE audit_logs (
            id {serial},
            network_id TEXT NOT NULL,
            time {real} NOT NULL,
            actor TEXT NOT NULL,
            actor_role TEXT,
            action TEXT NOT NULL,
            target TEXT,
            request_id TEXT,
            source_address TEXT
        )""",
        "CREATE INDEX audit_logs_network ON audit_logs (network_id, id)",
    ),
    # 5: emergency key revocation; a revoked key never verifies or signs again.
    (
        "ALTER TABLE signing_keys ADD COLUMN revoked_at {real}",
    ),
    # 6: console login limits. Failure counters shared by every process (one row per key,
    # its current fixed window), and failed logins folded into one audit entry per
    # (username, address, minute): `aggregate_key` names it, `count` says how many.
    (
        """CREATE TABLE login_counters (
            key TEXT PRIMARY KEY,
            window_start {real} NOT NULL,
            count INTEGER NOT NULL
        )""",
        "CREATE INDEX login_counters_window ON login_counters (window_start)",
        "ALTER TABLE audit_logs ADD COLUMN count INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE audit_logs ADD COLUMN aggregate_key TEXT",
        "CREATE UNIQUE INDEX audit_logs_aggregate ON audit_logs (aggregate_key)",
    ),
    # 7: facts about the deployment, recorded by the first instance that starts on the
    # store and checked by every later one: the CA's fingerprint (gateway/store/facts.py).
    (
        """CREATE TABLE deployment_facts (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            recorded_at {real} NOT NULL
        )""",
    ),
    # 8: webhook notices to admins (docs/WEBHOOKS.md). Subscriptions keep their signing
    # secret sealed (the gateway must compute HMACs with it). The outbox holds one row per
    # (notice, subscription), written in the transaction of the change it announces;
    # `claimed_until` is the lease of the process delivering it, `dedupe_key` makes the
    # periodic scan's notices (one per subscription, token and kind) idempotent.
    (
        """CREATE TABLE webhook_subscriptions (
            id TEXT PRIMARY KEY,
            network_id TEXT NOT NULL REFERENCES networks(id),
            url TEXT NOT NULL,
            events TEXT NOT NULL,
            sealed_secret TEXT NOT NULL,
            created_at {real} NOT NULL,
            created_by TEXT NOT NULL
        )""",
        "CREATE INDEX webhook_subscriptions_network ON webhook_subscriptions (network_id)",
        """CREATE TABLE notice_outbox (
            id TEXT PRIMARY KEY,
            subscription_id TEXT NOT NULL,
            network_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            body TEXT NOT NULL,
            dedupe_key TEXT UNIQUE,
            created_at {real} NOT NULL,
            next_attempt_at {real} NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            claimed_until {real},
            last_attempt_at {real},
            last_error TEXT,
            delivered_at {real},
            failed_at {real}
        )""",
        "CREATE INDEX notice_outbox_due ON notice_outbox (next_attempt_at)"
        " WHERE delivered_at IS NULL AND failed_at IS NULL",
        "CREATE INDEX notice_outbox_subscription ON notice_outbox (subscription_id, created_at)",
        # The periodic scan reads live admin tokens near their end (or their grace's)
        # without walking every access token that expires in the same window.
        "CREATE INDEX credentials_kind_expiry ON credentials (kind, revoked_at, expires_at)",
    ),
    # 9: certificate-bound credentials (RFC 8705, `mtls.bind_tokens`): the SHA-256 (hex)
    # of the client certificate a token, auth token or console session was issued over,
    # so that deleting the certificate ends exactly those. Partial indexes: almost every
    # row is unbound.
    (
        "ALTER TABLE credentials ADD COLUMN cert_sha256 TEXT",
        "ALTER TABLE console_sessions ADD COLUMN cert_sha256 TEXT",
        "CREATE INDEX credentials_cert ON credentials (network_id, cert_sha256)"
        " WHERE cert_sha256 IS NOT NULL",
        "CREATE INDEX console_sessions_cert ON console_sessions (network_id, cert_sha256)"
        " WHERE cert_sha256 IS NOT NULL",
    ),
)


def migration_statements(dialect: str, version: int) -> list[str]:
    """The DDL of migration `version` (1-based) for `dialect`."""
    names = DIALECTS[dialect]
    return [statement.format(**names) for statement in MIGRATIONS[version - 1]]
