"""Networks, end users and console admins."""

from __future__ import annotations

import secrets

from gateway.store.core import AlreadyExists, StoreCore, new_id
from gateway.store.db import Row
from gateway.store.events import NetworkChanged, UserBanned, UserUnbanned
from gateway.store.models import Admin, Network, User


class IdentityQueries(StoreCore):
    # -- networks -------------------------------------------------------------------

    async def create_network(self, name: str, region: str, secure: bool) -> Network:
        network = Network(
            id=new_id(),
            name=name,
            region=region,
            api_key=secrets.token_hex(24),
            use_secure_authentication=secure,
            mtls_enabled=False,
            created_at=self.clock(),
        )
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO networks (id, name, region, api_key, use_secure_authentication,"
                " mtls_enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                network.id,
                network.name,
                network.region,
                network.api_key,
                network.use_secure_authentication,
                network.mtls_enabled,
                network.created_at,
            )
            await self.append_event(tx, NetworkChanged(network.id, secure, False, created=True,
                                                       region=region))
        return network

    async def get_network(self, network_id: str) -> Network | None:
        row = await self.db.fetchrow(f"SELECT {_NETWORK_COLUMNS} FROM networks WHERE id = $1",
                                     network_id)
        return _network(row) if row else None

    async def network_by_api_key(self, api_key: str) -> Network | None:
        row = await self.db.fetchrow(
            f"SELECT {_NETWORK_COLUMNS} FROM networks WHERE api_key = $1", api_key
        )
        return _network(row) if row else None

    async def list_networks(self) -> list[Network]:
        rows = await self.db.fetch(f"SELECT {_NETWORK_COLUMNS} FROM networks ORDER BY created_at")
        return [_network(row) for row in rows]

    # -- admins ---------------------------------------------------------------------

    async def create_admin(
        self, network_id: str, username: str, role: str, password_hash: str
    ) -> Admin:
        admin = Admin(
            id=new_id(),
            network_id=network_id,
            username=username,
            role=role,
            password_hash=password_hash,
            created_at=self.clock(),
        )
        async with self.db.transaction() as tx:
            taken = await tx.fetchrow(
                "SELECT id FROM admins WHERE network_id = $1 AND username = $2",
                network_id,
                username,
            )
            if taken:
                raise AlreadyExists(f"username {username!r} already exists in this network")
            await tx.execute(
                "INSERT INTO admins (id, network_id, username, role, password_hash, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                admin.id,
                admin.network_id,
                admin.username,
                admin.role,
                admin.password_hash,
                admin.created_at,
            )
        return admin

    async def admin_by_username(self, network_id: str, username: str) -> Admin | None:
        row = await self.db.fetchrow(
            f"SELECT {_ADMIN_COLUMNS} FROM admins WHERE network_id = $1 AND username = $2",
            network_id,
            username,
        )
        return _admin(row) if row else None

    async def list_admins(self, network_id: str) -> list[Admin]:
        """The network's console users, oldest first."""
        rows = await self.db.fetch(
            f"SELECT {_ADMIN_COLUMNS} FROM admins WHERE network_id = $1"
            " ORDER BY created_at, username",
            network_id,
        )
        return [_admin(row) for row in rows]

    async def set_network_flags(
        self, network_id: str, *, secure: bool | None = None, mtls: bool | None = None
    ) -> Network | None:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                f"SELECT {_NETWORK_COLUMNS} FROM networks WHERE id = $1", network_id
            )
            if row is None:
                return None
            current = _network(row)
            secure = current.use_secure_authentication if secure is None else secure
            mtls = current.mtls_enabled if mtls is None else mtls
            await tx.execute(
                "UPDATE networks SET use_secure_authentication = $2, mtls_enabled = $3"
                " WHERE id = $1",
                network_id, secure, mtls,
            )
            await self.append_event(tx, NetworkChanged(network_id, secure, mtls))
        return Network(**{**current.__dict__, "use_secure_authentication": secure,
                          "mtls_enabled": mtls})

    async def set_admin_token_hours(self, network_id: str, hours: int) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE networks SET admin_token_expires_hours = $2 WHERE id = $1",
                network_id, hours,
            )

    # -- server keys ----------------------------------------------------------------

    async def set_server_key_hash(self, network_id: str, key_hash: str, by: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE networks SET server_key_hash = $2, server_key_updated_at = $3,"
                " server_key_updated_by = $4 WHERE id = $1",
                network_id, key_hash, self.clock(), by,
            )

    async def network_by_server_key_hash(self, key_hash: str) -> Network | None:
        row = await self.db.fetchrow(
            f"SELECT {_NETWORK_COLUMNS} FROM networks WHERE server_key_hash = $1", key_hash
        )
        return _network(row) if row else None

    async def server_key_info(self, network_id: str) -> tuple[float | None, str | None]:
        row = await self.db.fetchrow(
            "SELECT server_key_updated_at, server_key_updated_by FROM networks WHERE id = $1",
            network_id,
        )
        if row is None or row["server_key_updated_at"] is None:
            return None, None
        return float(row["server_key_updated_at"]), row["server_key_updated_by"]

    # -- end users ------------------------------------------------------------------

    async def get_user(self, network_id: str, user_id: str) -> User | None:
        row = await self.db.fetchrow(
            f"SELECT {_USER_COLUMNS} FROM users WHERE network_id = $1 AND user_id = $2",
            network_id, user_id,
        )
        return _user(row) if row else None

    async def upsert_user(self, network_id: str, user_id: str, display_name: str | None) -> User:
        """Create the user on first sight; a display name given later updates it."""
        now = self.clock()
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                f"SELECT {_USER_COLUMNS} FROM users WHERE network_id = $1 AND user_id = $2",
                network_id, user_id,
            )
            if row is None:
                user = User(id=new_id(), network_id=network_id, user_id=user_id,
                            display_name=display_name, is_global_banned=False,
                            created_at=now, updated_at=now)
                await tx.execute(
                    "INSERT INTO users (id, network_id, user_id, display_name, is_global_banned,"
                    " created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    user.id, network_id, user_id, display_name, False, now, now,
                )
                return user
            user = _user(row)
            if display_name is not None and display_name != user.display_name:
                await tx.execute(
                    "UPDATE users SET display_name = $2, updated_at = $3 WHERE id = $1",
                    user.id, display_name, now,
                )
                user = User(**{**user.__dict__, "display_name": display_name, "updated_at": now})
            return user

    async def set_banned(self, network_id: str, user_id: str, banned: bool) -> User | None:
        async with self.db.transaction() as tx:
            row = await tx.fetchrow(
                f"SELECT {_USER_COLUMNS} FROM users WHERE network_id = $1 AND user_id = $2",
                network_id, user_id,
            )
            if row is None:
                return None
            now = self.clock()
            await tx.execute(
                "UPDATE users SET is_global_banned = $2, updated_at = $3 WHERE id = $1",
                row["id"], banned, now,
            )
            event = (UserBanned if banned else UserUnbanned)(network_id, user_id)
            await self.append_event(tx, event)
        return User(**{**_user(row).__dict__, "is_global_banned": banned, "updated_at": now})

    async def banned_users(self) -> list[tuple[str, str]]:
        rows = await self.db.fetch(
            "SELECT network_id, user_id FROM users WHERE is_global_banned = $1", True
        )
        return [(row["network_id"], row["user_id"]) for row in rows]


_NETWORK_COLUMNS = (
    "id, name, region, api_key, use_secure_authentication, mtls_enabled, created_at,"
    " admin_token_expires_hours"
)


def _network(row: Row) -> Network:
    return Network(
        id=row["id"],
        name=row["name"],
        region=row["region"],
        api_key=row["api_key"],
        use_secure_authentication=bool(row["use_secure_authentication"]),
        mtls_enabled=bool(row["mtls_enabled"]),
        created_at=float(row["created_at"]),
        admin_token_expires_hours=row["admin_token_expires_hours"],
    )


_ADMIN_COLUMNS = "id, network_id, username, role, password_hash, created_at"


def _admin(row: Row) -> Admin:
    return Admin(
        id=row["id"],
        network_id=row["network_id"],
        username=row["username"],
        role=row["role"],
        password_hash=row["password_hash"],
        created_at=float(row["created_at"]),
    )


_USER_COLUMNS = (
    "id, network_id, user_id, display_name, is_global_banned, created_at, updated_at"
)


def _user(row: Row) -> User:
    return User(
        id=row["id"],
        network_id=row["network_id"],
        user_id=row["user_id"],
        display_name=row["display_name"],
        is_global_banned=bool(row["is_global_banned"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )
