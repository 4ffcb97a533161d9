"""SIGKILL durability: acknowledged changes survive a gateway killed at a random moment.

    .venv/bin/python bench/reliability/kill_test.py --cycles 50 --store sqlite
    .venv/bin/python bench/reliability/kill_test.py --cycles 50 --store postgres

Each cycle, against a real `gateway serve` process (A) on the store:

1. Concurrent clients make changes and record each one as acknowledged (a 2xx answer
   arrived) or in flight (sent, no answer when the gateway died):
   - revokers: log a user in (`POST /api/v3/sessions`), then revoke that access token
     (`DELETE /api/v4/sessions`, or an admin's `DELETE /api/v4/sessions/users/{id}`);
   - rotators: generate admin tokens one after another (`POST /api/v1/admin-token`);
   - certifiers: upload CSRs made by `openssl req` to a secure-mode network
     (`POST /api/v3/networks/certificates`), deleting the oldest when it holds 2;
   - banners: log a user in, ban them (`POST /api/v3/users/{id}/ban`), sometimes unban.
2. SIGKILL of A at a random moment while they run; A is restarted.
3. Checks on the restarted A and on an observer gateway (B) on the same store that was
   never killed and learnt everything through the change feed:
   - every acknowledged change is there: a revoked token answers 401 "Invalid token" on a
     proxied path; a ban answers 403 400312; the newest generated admin token is what
     `GET /api/v1/admin-token` returns and it works, every older one is in its grace
     window (Warning header); uploaded certificates are listed with the fingerprint the
     upload answered and deleted ones are gone;
   - nothing is half-written: with mTLS turned on, every listed certificate is honoured
     by pinning (presented through `mtls.client_cert_header` from a trusted proxy) and
     every deleted one refused, on A and on B (B only knows pins from the feed); the
     store has a feed entry for every revoked/superseded token, certificate and ban, at
     most one current admin token per admin, at most 2 certificates per network, each
     fingerprint matching its certificate; the audit log has each acknowledged action
     once.
   - an in-flight change may be present or absent, but A and B must agree.

Counts per cycle: acknowledged, in flight (present / absent), lost (must be 0),
half-written (must be 0), audit entries missing for acknowledged actions (must be 0),
and in-flight changes that happened without their audit entry (reported: the audit
entry is written in a transaction of its own after the change). At the end every
cycle is checked again against the last gateway (nothing acknowledged may disappear
later, no in-flight outcome may flip). Exit status 1 on any loss or half-write.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rel_common import (
    CHILDREN,
    DEFAULT_PG_URL,
    Answer,
    GatewayProcess,
    call,
    drop_pg_schema,
    free_port,
    install_stop_signals,
    jwt_claims,
    run_cli,
    run_script,
    running_upstream,
    table,
    unique_schema,
    write_config,
)

from gateway.auth.loader import load_token_service
from gateway.auth.tokens import TokenService
from gateway.config import load_config
from gateway.store import Network, Store, open_store

CERT_HEADER = "x-client-cert"
PROBE = "/api/v3/probe"
INVALID = "Invalid token"
BANNED_CODE = 400312
FEED_WAIT = 10.0
CHECK_CONCURRENCY = 16
UNUSABLE_PASSWORD = "!unusable"  # admins here never log in to the console


@dataclass
class Options:
    store: str = "sqlite"
    cycles: int = 50
    seed: int | None = None
    kill_after: tuple[float, float] = (0.5, 2.5)
    revokers: int = 3
    rotators: int = 2
    certifiers: int = 2
    banners: int = 2
    observer: bool = True
    final_sweep: bool = True
    pg_url: str = DEFAULT_PG_URL
    pg_schema: str | None = None  # None: a fresh schema, dropped at the end
    folder: Path | None = None  # None: a temporary folder, removed at the end
    csr_pool: int = 8
    quiet: bool = False
    sabotage: bool = False  # self-test: break an acknowledged change, expect the checks to fail


# -- what the clients did -----------------------------------------------------------


@dataclass
class Change:
    """One change a client attempted."""

    cycle: int
    kind: str  # login | revoke | rotate | cert.add | cert.delete | ban | unban
    key: str  # the entity: user id, admin username or network id
    info: dict[str, Any] = field(default_factory=dict)
    state: str = "pending"  # acked | inflight | refused
    outcome: str | None = None  # in flight: present | absent, once checked


class Recorder:
    def __init__(self, cycle: int) -> None:
        self.cycle = cycle
        self.changes: list[Change] = []
        self.refusals: list[str] = []

    def new(self, kind: str, key: str, **info: Any) -> Change:
        change = Change(self.cycle, kind, key, dict(info))
        self.changes.append(change)
        return change

    async def attempt(self, change: Change, request: Awaitable[Answer]) -> Answer | None:
        """Await the request; the answer if 2xx (acknowledged), else None and why not."""
        try:
            answer = await request
        except (aiohttp.ClientError, OSError, TimeoutError):
            # Even a refused connection proves nothing: aiohttp retries an idempotent
            # method (DELETE) on a new connection when a kept-alive one dies mid-request,
            # so the first attempt may have reached the gateway before it was killed.
            change.state = "inflight"
            return None
        if 200 <= answer.status < 300:
            change.state = "acked"
            return answer
        change.state = "refused"
        self.refusals.append(f"{change.kind} {change.key}: {answer.status} {answer.body}")
        return None


# -- per-cycle and total figures -----------------------------------------------------


@dataclass
class Tally:
    cycle: int = 0
    kill_after: float = 0.0
    acked: int = 0
    inflight: int = 0
    present: int = 0
    absent: int = 0
    lost: int = 0
    half_written: int = 0
    audit_missing: int = 0
    unaudited: int = 0
    refused: int = 0
    restart_s: float = 0.0
    verify_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    def lose(self, why: str, n: int = 1) -> None:
        self.lost += n
        self.problems.append(f"LOST: {why}")

    def half(self, why: str, n: int = 1) -> None:
        self.half_written += n
        self.problems.append(f"HALF-WRITTEN: {why}")


# -- the run ------------------------------------------------------------------------


@dataclass
class Actor:
    network: Network
    username: str
    token: str


@dataclass
class CycleSetup:
    cert_actors: list[Actor]
    rotators: list[Actor]


class KillRun:
    def __init__(self, options: Options, folder: Path, upstream: str) -> None:
        self.o = options
        self.folder = folder
        self.upstream = upstream
        self.rng = random.Random(options.seed)
        self.schema = options.pg_schema or unique_schema("kill")
        store_section: dict[str, Any] = (
            {"url": options.pg_url, "schema": self.schema} if options.store == "postgres"
            else {"url": "sqlite:///var/gateway.db"}
        )
        common: dict[str, Any] = {
            "store": store_section,
            "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
            "mtls": {"client_cert_header": CERT_HEADER},
        }
        trusted = {"trusted_proxies": ["127.0.0.1/32"], "https": None, "shutdown_timeout": "5s"}
        self.config_a = write_config(folder, {**common, "server": {
            "http": {"host": "127.0.0.1", "port": free_port()}, **trusted}}, "a.yaml")
        self.config_b = write_config(folder, {**common, "server": {
            "http": {"host": "127.0.0.1", "port": free_port()}, **trusted}}, "b.yaml")
        self.a = GatewayProcess(self.config_a, "gateway-a")
        self.b = GatewayProcess(self.config_b, "gateway-b") if options.observer else None
        self.store: Store | None = None
        self.tokens: TokenService | None = None
        self.users: Network | None = None
        self.boss: Actor | None = None  # an admin of the users' network: bans, revokes
        self.csrs: list[str] = []
        self.cert_actors: dict[str, Actor] = {}  # network id -> its admin
        self.grace = 0.0
        self.records: list[Recorder] = []
        self.tallies: list[Tally] = []
        self.final: Tally | None = None
        self.audit_mark = 0
        self.invariant_problems: set[str] = set()

    # -- set-up -----------------------------------------------------------------------

    async def setup(self) -> None:
        await run_cli(self.config_a, "init")
        config = load_config(self.config_a, environ={})
        self.grace = config.tokens.admin_rotation_grace
        self.store = await open_store(config)
        self.tokens = await load_token_service(config, self.store, time.time)
        self.users = await self.store.create_network("kill-users", "sg", secure=False)
        self.boss = await self.actor(self.users, "boss")
        self.csrs = await asyncio.to_thread(make_csrs, self.folder / "csr", self.o.csr_pool)
        if self.b is not None:
            await self.b.start()
        await self.a.start()

    async def actor(self, network: Network, username: str) -> Actor:
        """A console admin with a current admin token, made in the store directly."""
        assert self.store is not None and self.tokens is not None
        await self.store.create_admin(network.id, username, "admin", UNUSABLE_PASSWORD)
        ttl = load_config(self.config_a, environ={}).tokens.admin_token_ttl
        token, credential = await self.tokens.issue_admin(network.id, username, "admin", ttl)
        await self.store.rotate_admin_token(credential, self.grace)
        return Actor(network, username, token)

    async def prepare(self, cycle: int) -> CycleSetup:
        assert self.store is not None and self.users is not None
        certs = []
        for w in range(self.o.certifiers):
            network = await self.store.create_network(f"kill-c{cycle}-w{w}", "sg", secure=True)
            certs.append(await self.actor(network, f"cert{cycle}w{w}"))
            self.cert_actors[network.id] = certs[-1]
        rotators = [await self.actor(self.users, f"rot{cycle}w{w}")
                    for w in range(self.o.rotators)]
        return CycleSetup(certs, rotators)

    # -- a cycle ------------------------------------------------------------------------

    async def cycle(self, n: int) -> Tally:
        assert self.store is not None
        setup = await self.prepare(n)
        self.audit_mark = await self._max_audit_id()
        rec = Recorder(n)
        self.records.append(rec)
        killed = asyncio.Event()
        tally = Tally(cycle=n)
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            workers: list[Awaitable[None]] = []
            workers += [self.revoker(session, rec, killed, w) for w in range(self.o.revokers)]
            workers += [self.rotator(session, rec, killed, a) for a in setup.rotators]
            workers += [self.certifier(session, rec, killed, a, w)
                        for w, a in enumerate(setup.cert_actors)]
            workers += [self.banner(session, rec, killed, w) for w in range(self.o.banners)]
            tasks = [asyncio.ensure_future(w) for w in workers]
            tally.kill_after = self.rng.uniform(*self.o.kill_after)
            await asyncio.sleep(tally.kill_after)
            killed.set()
            self.a.sigkill()
            await self.a.reap()
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
        if self.o.sabotage:
            await self.sabotage(rec.changes, tally)
        tally.restart_s = await self.a.start()
        tally.refused = len(rec.refusals)
        tally.problems += [f"REFUSED: {r}" for r in rec.refusals]
        checked = time.monotonic()
        await self.verify(rec.changes, tally)
        tally.verify_s = time.monotonic() - checked
        tally.acked = sum(c.state == "acked" and not c.info.get("initial") for c in rec.changes)
        tally.inflight = sum(c.state == "inflight" for c in rec.changes)
        tally.present = sum(c.outcome == "present" for c in rec.changes)
        tally.absent = sum(c.outcome == "absent" for c in rec.changes)
        return tally

    async def sabotage(self, changes: list[Change], tally: Tally) -> None:
        """Self-test of the checks: lose an acknowledged certificate and lift an acknowledged
        ban behind the gateways' backs (no feed entry); the checks must report both."""
        assert self.store is not None
        deleted = {c.info["name"] for c in changes if c.kind == "cert.delete"}
        cert = next((c for c in changes if c.kind == "cert.add" and c.state == "acked"
                     and c.info["name"] not in deleted), None)
        if cert is not None:
            await self.store.db.execute("DELETE FROM certificates WHERE id = $1",
                                        cert.info["id"])
            tally.problems.append(f"SABOTAGE: removed certificate {cert.info['name']}")
        ban = next((c for c in changes if c.kind == "ban" and c.state == "acked" and not any(
            o.key == c.key and o.kind == "unban" for o in changes)), None)
        if ban is not None:
            await self.store.db.execute(
                "UPDATE users SET is_global_banned = $1 WHERE user_id = $2", False, ban.key)
            tally.problems.append(f"SABOTAGE: lifted the ban of {ban.key}")

    # -- the clients ----------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.a.url}{path}"

    async def _login(self, session: aiohttp.ClientSession, rec: Recorder, user: str
                     ) -> str | None:
        assert self.users is not None
        api_key = self.users.api_key
        login = rec.new("login", user)
        answer = await rec.attempt(login, call(
            session, "POST", self._url("/api/v3/sessions"), headers={"x-api-key": api_key},
            json_body={"userId": user, "deviceId": f"dev-{user}"}))
        if answer is None:
            return None
        token = str(answer.body["accessToken"])
        login.info.update(token=token, jti=jwt_claims(token)["jti"])
        return token

    async def revoker(self, session: aiohttp.ClientSession, rec: Recorder,
                      killed: asyncio.Event, w: int) -> None:
        assert self.boss is not None
        i = 0
        while not killed.is_set():
            i += 1
            user = f"r{rec.cycle}w{w}n{i}"
            token = await self._login(session, rec, user)
            if token is None or killed.is_set():
                return
            by_admin = self.rng.random() < 0.25
            revoke = rec.new("revoke", user, via="admin" if by_admin else "self")
            if by_admin:
                boss = self.boss.token
                answer = await rec.attempt(revoke, call(
                    session, "DELETE", self._url(f"/api/v4/sessions/users/{user}"), token=boss))
            else:
                answer = await rec.attempt(revoke, call(
                    session, "DELETE", self._url("/api/v4/sessions"), token=token))
            if answer is None:
                return

    async def rotator(self, session: aiohttp.ClientSession, rec: Recorder,
                      killed: asyncio.Event, actor: Actor) -> None:
        rec.new("rotate", actor.username, token=actor.token, initial=True).state = "acked"
        current = actor.token
        while not killed.is_set():
            rotate = rec.new("rotate", actor.username)
            used = current
            answer = await rec.attempt(rotate, call(
                session, "POST", self._url("/api/v1/admin-token"), token=used))
            if answer is None:
                return
            current = str(answer.body["adminToken"])
            rotate.info["token"] = current

    async def certifier(self, session: aiohttp.ClientSession, rec: Recorder,
                        killed: asyncio.Event, actor: Actor, w: int) -> None:
        held: list[dict[str, Any]] = []
        k = 0
        while not killed.is_set():
            if len(held) < 2:
                k += 1
                name = f"c{rec.cycle}w{w}k{k}"
                csr = self.csrs[(rec.cycle * 7 + w * 3 + k) % len(self.csrs)]
                add = rec.new("cert.add", actor.network.id, name=name, csr=csr)
                answer = await rec.attempt(add, call(
                    session, "POST", self._url("/api/v3/networks/certificates"),
                    token=actor.token, json_body={"name": name, "csr": csr}))
                if answer is None:
                    return
                add.info.update(id=answer.body["certificateId"],
                                fp=answer.body["fingerprintSha256"],
                                pem=answer.body["certificate"])
                held.append(add.info)
            else:
                victim = held.pop(0)
                delete = rec.new("cert.delete", actor.network.id, name=victim["name"],
                                 id=victim["id"], fp=victim["fp"], pem=victim["pem"])
                answer = await rec.attempt(delete, call(
                    session, "DELETE",
                    self._url(f"/api/v3/networks/certificates/{victim['id']}"),
                    token=actor.token))
                if answer is None:
                    return

    async def banner(self, session: aiohttp.ClientSession, rec: Recorder,
                     killed: asyncio.Event, w: int) -> None:
        assert self.boss is not None
        boss = self.boss.token
        i = 0
        while not killed.is_set():
            i += 1
            user = f"b{rec.cycle}w{w}n{i}"
            if await self._login(session, rec, user) is None or killed.is_set():
                return
            url = self._url(f"/api/v3/users/{user}/ban")
            ban = rec.new("ban", user)
            if await rec.attempt(ban, call(session, "POST", url, token=boss)) is None:
                return
            if self.rng.random() < 0.5 or killed.is_set():
                continue
            unban = rec.new("unban", user)
            if await rec.attempt(unban, call(session, "DELETE", url, token=boss)) is None:
                return

    # -- checks ---------------------------------------------------------------------------

    @property
    def gateways(self) -> list[GatewayProcess]:
        return [self.a] + ([self.b] if self.b is not None else [])

    async def wait_feed(self, tally: Tally) -> None:
        """Until the observer has applied every feed entry there is now."""
        assert self.store is not None
        if self.b is None:
            return
        target = await self.store.latest_seq()
        deadline = time.monotonic() + FEED_WAIT
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    answer = await call(session, "GET", f"{self.b.url}/readyz")
                    if answer.status == 200 and int(answer.body["feedSeq"]) >= target:
                        return
                await asyncio.sleep(0.02)
        tally.problems.append(f"FEED: observer did not reach seq {target} in {FEED_WAIT}s")
        tally.half_written += 1

    async def verify(self, changes: list[Change], tally: Tally, *, final: bool = False) -> None:
        await self.wait_feed(tally)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            checker = Checker(self, session, tally, final)
            await checker.readiness()
            await checker.tokens(changes)
            await checker.bans(changes)
            await checker.rotations(changes)
            await checker.certificates(changes)
        await self.db_invariants(tally)
        if not final:
            await self.audit(changes, tally)

    async def _max_audit_id(self) -> int:
        assert self.store is not None
        row = await self.store.db.fetchrow("SELECT MAX(id) AS id FROM audit_logs")
        return int(row["id"]) if row and row["id"] is not None else 0

    async def db_invariants(self, tally: Tally) -> None:
        """Rows without their feed entries, duplicates, partial rows: anything half-written.
        The whole store is checked each time; a problem is counted once, when first seen."""
        assert self.store is not None
        seen = self.invariant_problems

        def half(why: str) -> None:
            if why not in seen:
                seen.add(why)
                tally.half(why)

        db = self.store.db
        feed = await db.fetch("SELECT seq, kind, network_id, payload FROM change_feed ORDER BY seq")
        revoked_feed: set[str] = set()
        superseded_feed: set[str] = set()
        added: Counter[tuple[str, str]] = Counter()
        deleted: Counter[tuple[str, str]] = Counter()
        last_ban: dict[tuple[str, str], bool] = {}
        for row in feed:
            payload = json.loads(row["payload"])
            kind = row["kind"]
            if kind == "tokens.revoked":
                revoked_feed.update(jti for jti, _exp in payload["tokens"])
            elif kind == "tokens.superseded":
                superseded_feed.update(jti for jti, _until in payload["tokens"])
            elif kind == "certificate.added":
                added[(row["network_id"], payload["fingerprint"])] += 1
            elif kind == "certificate.deleted":
                deleted[(row["network_id"], payload["fingerprint"])] += 1
            elif kind in ("user.banned", "user.unbanned"):
                last_ban[(row["network_id"], payload["userId"])] = kind == "user.banned"
        for key, count in added.items():
            if count > 1:
                half(f"certificate {key[1][:16]} announced {count} times on the feed")
        creds = await db.fetch(
            "SELECT jti, kind, subject, network_id, revoked_at, grace_until, expires_at"
            " FROM credentials WHERE kind IN ('access', 'admin')")
        now = time.time()
        current: Counter[tuple[str, str]] = Counter()
        for row in creds:
            if row["revoked_at"] is not None and row["jti"] not in revoked_feed:
                half(f"{row['kind']} token {row['jti'][:12]} of {row['subject']} revoked"
                           " in the store without a tokens.revoked feed entry")
            if row["grace_until"] is not None and row["jti"] not in superseded_feed:
                half(f"admin token {row['jti'][:12]} of {row['subject']} superseded"
                           " without a tokens.superseded feed entry")
            if (row["kind"] == "admin" and row["revoked_at"] is None
                    and row["grace_until"] is None and float(row["expires_at"]) > now):
                current[(row["network_id"], row["subject"])] += 1
        for (_network, subject), count in current.items():
            if count > 1:
                half(f"admin {subject} has {count} current admin tokens")
        certs = await db.fetch(
            "SELECT network_id, name, fingerprint_sha256, certificate_pem FROM certificates")
        per_network: Counter[str] = Counter()
        for row in certs:
            key = (row["network_id"], row["fingerprint_sha256"])
            per_network[row["network_id"]] += 1
            if added[key] == 0:
                half(f"certificate {row['name']} stored without its certificate.added"
                           " feed entry")
            if deleted[key]:
                half(f"certificate {row['name']} still stored after its"
                           " certificate.deleted feed entry")
            if pem_fingerprint(row["certificate_pem"]) != row["fingerprint_sha256"]:
                half(f"certificate {row['name']}: stored fingerprint does not match")
        stored = {(row["network_id"], row["fingerprint_sha256"]) for row in certs}
        for key in added:
            if key not in stored and not deleted[key]:
                half(f"certificate {key[1][:16]} announced but neither stored nor deleted")
        for network_id, count in per_network.items():
            if count > 2:
                half(f"network {network_id} holds {count} certificates")
        users = await db.fetch("SELECT network_id, user_id, is_global_banned FROM users")
        for row in users:
            banned = bool(row["is_global_banned"])
            if banned != last_ban.get((row["network_id"], row["user_id"]), False):
                half(f"user {row['user_id']}: is_global_banned={banned} but the feed's"
                           " last ban entry says otherwise")

    async def audit(self, changes: list[Change], tally: Tally) -> None:
        """Each acknowledged admin action once in the audit log; count in-flight ones that
        happened without their entry."""
        assert self.store is not None
        rows = await self.store.db.fetch(
            "SELECT action, target FROM audit_logs WHERE id > $1", self.audit_mark)
        logged = Counter((row["action"], row["target"]) for row in rows)
        acked: Counter[tuple[str, str]] = Counter()
        happened: Counter[tuple[str, str]] = Counter()
        for change in changes:
            entry = audit_entry(change)
            if entry is None:
                continue
            if change.state == "acked" and not change.info.get("initial"):
                acked[entry] += 1
            elif change.outcome == "present":
                happened[entry] += 1
        for entry in set(acked) | set(happened):
            have, need, may = logged[entry], acked[entry], acked[entry] + happened[entry]
            if have < need:
                tally.audit_missing += need - have
                tally.problems.append(f"AUDIT MISSING: {entry} acknowledged {need}x,"
                                      f" logged {have}x")
            elif have > may:
                tally.half(f"audit entry {entry} logged {have}x for {may} actions")
            elif have < may:
                tally.unaudited += may - have
                tally.problems.append(f"UNAUDITED (in flight at the kill, done, no audit"
                                      f" entry): {entry}")

    # -- the end ------------------------------------------------------------------------

    async def final_check(self) -> Tally:
        tally = Tally(cycle=-1)
        changes = [c for rec in self.records for c in rec.changes]
        await self.verify(changes, tally, final=True)
        self.final = tally
        return tally

    async def close(self) -> None:
        for gateway in self.gateways:
            if gateway.alive:
                await gateway.stop()
        if self.store is not None:
            await self.store.close()


def history(ops: list[Change]) -> str:
    return ", ".join(f"{op.kind} {op.info.get('name', '')} {op.state}" for op in ops[-6:])


def audit_entry(change: Change) -> tuple[str, str] | None:
    info = change.info
    if change.kind == "cert.add" and info.get("fp"):
        return "certificate.create", f"{info['name']} ({info['fp']})"
    if change.kind == "cert.delete":
        return "certificate.delete", f"{info['name']} ({info['fp']})"
    if change.kind in ("ban", "unban"):
        return f"user.{change.kind}", change.key
    if change.kind == "rotate":
        return "admin_token.generate", change.key
    if change.kind == "revoke" and info.get("via") == "admin":
        return "sessions.revoke_user", change.key
    return None


class Checker:
    """The checks of one verification pass, on the restarted gateway and the observer."""

    def __init__(self, run: KillRun, session: aiohttp.ClientSession, tally: Tally,
                 final: bool) -> None:
        self.run = run
        self.session = session
        self.tally = tally
        self.final = final
        self.limit = asyncio.Semaphore(CHECK_CONCURRENCY)

    async def get(self, gateway: GatewayProcess, method: str, path: str, *,
                  token: str | None = None, headers: dict[str, str] | None = None,
                  json_body: Any = None) -> Answer:
        async with self.limit:
            return await call(self.session, method, f"{gateway.url}{path}", token=token,
                              headers=headers, json_body=json_body)

    def settle(self, change: Change, present: bool, what: str) -> None:
        """Record an in-flight change's outcome; later passes must see the same."""
        outcome = "present" if present else "absent"
        if change.outcome is None:
            change.outcome = outcome
        elif change.outcome != outcome:
            self.tally.lose(f"{what}: in-flight {change.kind} was {change.outcome}, now"
                            f" {outcome}")

    async def readiness(self) -> None:
        for gateway in self.run.gateways:
            answer = await self.get(gateway, "GET", "/readyz")
            if answer.status != 200:
                self.tally.problems.append(f"NOT READY: {gateway.name}: {answer.body}")

    async def token_view(self, gateway: GatewayProcess, token: str, user: str) -> str:
        answer = await self.get(gateway, "GET", PROBE, token=token)
        if answer.status == 200:
            seen = answer.body.get("user") if isinstance(answer.body, dict) else None
            return "valid" if seen == user else f"valid but upstream saw {seen!r}"
        if answer.status == 401 and answer.message == INVALID:
            return "revoked"
        if answer.status == 403 and answer.code == BANNED_CODE:
            return "banned"
        return f"{answer.status} {answer.body}"

    async def views(self, token: str, user: str) -> list[str]:
        return list(await asyncio.gather(
            *(self.token_view(g, token, user) for g in self.run.gateways)))

    def agree(self, views: list[str], what: str) -> str | None:
        """The one view every gateway has; None (half-written) when they differ."""
        if len(set(views)) > 1:
            names = [g.name for g in self.run.gateways]
            self.tally.half(f"{what}: gateways disagree {dict(zip(names, views, strict=True))}")
            return None
        return views[0]

    # -- tokens: logins and revocations -------------------------------------------------

    async def tokens(self, changes: list[Change]) -> None:
        by_user: dict[str, list[Change]] = {}
        for change in changes:
            if change.kind in ("login", "revoke") and change.key.startswith("r"):
                by_user.setdefault(change.key, []).append(change)
        await asyncio.gather(*(self.token_user(user, ops) for user, ops in by_user.items()))

    async def login_stored(self, login: Change) -> None:
        """An acknowledged login has its credential row; an in-flight one may or may not."""
        assert self.run.store is not None
        if login.state == "acked":
            row = await self.run.store.db.fetchrow(
                "SELECT jti FROM credentials WHERE jti = $1", login.info["jti"])
            if row is None:
                self.tally.lose(f"login of {login.key}: no credential row for its token")
        elif login.state == "inflight":
            row = await self.run.store.db.fetchrow(
                "SELECT COUNT(*) AS n FROM credentials WHERE subject = $1 AND kind = 'access'",
                login.key)
            n = int(row["n"]) if row else 0
            if n > 1:
                self.tally.half(f"login of {login.key}: {n} credentials")
            self.settle(login, n == 1, f"login of {login.key}")

    async def token_user(self, user: str, ops: list[Change]) -> None:
        login = ops[0]
        await self.login_stored(login)
        if login.state != "acked":
            return
        revoke = ops[1] if len(ops) > 1 else None
        expected = {"valid"}
        if revoke is not None and revoke.state == "acked":
            expected = {"revoked"}
        elif revoke is not None and revoke.state == "inflight":
            expected = {"valid", "revoked"}
        view = self.agree(await self.views(login.info["token"], user), f"token of {user}")
        if view is None:
            return
        if view not in expected:
            if "revoked" in expected or view.startswith("valid but"):
                self.tally.lose(f"token of {user}: expected {sorted(expected)}, got {view}")
            else:
                self.tally.half(f"token of {user}: expected {sorted(expected)}, got {view}")
            return
        if revoke is not None and revoke.state == "inflight":
            self.settle(revoke, view == "revoked", f"revocation of {user}")

    # -- bans -----------------------------------------------------------------------------

    async def bans(self, changes: list[Change]) -> None:
        by_user: dict[str, list[Change]] = {}
        for change in changes:
            if change.key.startswith("b") and change.kind in ("login", "ban", "unban"):
                by_user.setdefault(change.key, []).append(change)
        await asyncio.gather(*(self.ban_user(user, ops) for user, ops in by_user.items()))

    async def ban_user(self, user: str, ops: list[Change]) -> None:
        login = ops[0]
        await self.login_stored(login)
        if login.state != "acked":
            return
        banned = False
        pending: Change | None = None
        for op in ops[1:]:
            if op.state == "acked":
                banned = op.kind == "ban"
            elif op.state == "inflight":
                pending = op
        expected = {"banned" if banned else "valid"}
        if pending is not None:
            expected.add("banned" if pending.kind == "ban" else "valid")
        view = self.agree(await self.views(login.info["token"], user), f"ban of {user}")
        if view is None:
            return
        if view not in expected:
            self.tally.lose(f"ban state of {user}: expected {sorted(expected)}, got {view}")
            return
        if pending is not None:
            self.settle(pending, view == ("banned" if pending.kind == "ban" else "valid"),
                        f"{pending.kind} of {user}")

    # -- admin tokens -----------------------------------------------------------------------

    async def rotations(self, changes: list[Change]) -> None:
        by_admin: dict[str, list[Change]] = {}
        for change in changes:
            if change.kind == "rotate":
                by_admin.setdefault(change.key, []).append(change)
        await asyncio.gather(*(self.rotation(admin, ops) for admin, ops in by_admin.items()))

    async def rotation(self, admin: str, ops: list[Change]) -> None:
        assert self.run.store is not None and self.run.users is not None
        acked = [op.info["token"] for op in ops if op.state == "acked"]
        pending = next((op for op in ops if op.state == "inflight"), None)
        last = acked[-1]
        answer = await self.get(self.run.a, "GET", "/api/v1/admin-token", token=last)
        current: str | None
        if answer.status == 403 and "warning" in answer.headers and pending is not None:
            # The rotation in flight at the kill committed: `last` is in its grace now and
            # may no longer read the token that replaced it (API.md section 4a), a token
            # no client saw.
            current = None
        elif answer.status != 200:
            self.tally.lose(f"admin {admin}: newest acknowledged token refused on GET"
                            f" /api/v1/admin-token: {answer.status} {answer.body}")
            return
        else:
            current = str(answer.body["adminToken"])
        if current is not None and current in acked[:-1]:
            self.tally.lose(f"admin {admin}: GET /api/v1/admin-token returns an older token"
                            f" (#{acked.index(current)} of {len(acked)})")
            return
        if current is not None and current != last:
            if pending is None:
                self.tally.half(f"admin {admin}: current token is none the clients saw")
                return
            claims = jwt_claims(current)
            if claims.get("sub") != admin or claims.get("kind") != "admin":
                self.tally.half(f"admin {admin}: current token has claims {claims}")
                return
        if pending is not None:
            self.settle(pending, current != last, f"rotation of {admin}")
        row = await self.run.store.db.fetchrow(
            "SELECT COUNT(*) AS n FROM credentials WHERE network_id = $1 AND subject = $2"
            " AND kind = 'admin' AND revoked_at IS NULL AND grace_until IS NULL",
            self.run.users.id, admin)
        if row is None or int(row["n"]) != 1:
            self.tally.half(f"admin {admin}: {row['n'] if row else 0} current tokens stored")
        superseded = [t for t in acked if t != current]
        checks = [(t, True) for t in superseded] + ([(current, False)] if current else [])
        for gateway in self.run.gateways:
            results = await asyncio.gather(*(
                self.get(gateway, "GET", "/api/v3/networks/me", token=t) for t, _ in checks))
            for (token, in_grace), result in zip(checks, results, strict=True):
                which = "current" if token == current else f"#{acked.index(token)}"
                if result.status != 200:
                    self.tally.lose(f"admin {admin} token {which} on {gateway.name}:"
                                    f" {result.status} {result.body}")
                elif ("warning" in result.headers) != in_grace:
                    self.tally.half(f"admin {admin} token {which} on {gateway.name}: grace"
                                    f" warning {'missing' if in_grace else 'unexpected'}")

    # -- certificates ---------------------------------------------------------------------

    async def certificates(self, changes: list[Change]) -> None:
        by_network: dict[str, list[Change]] = {}
        for change in changes:
            if change.kind in ("cert.add", "cert.delete"):
                by_network.setdefault(change.key, []).append(change)
        await asyncio.gather(*(self.network_certs(nid, ops, self.run.cert_actors[nid].token)
                               for nid, ops in by_network.items()))

    async def network_certs(self, network_id: str, ops: list[Change], token: str) -> None:
        expected: dict[str, str] = {}  # name -> fingerprint
        pending: Change | None = None
        for op in ops:
            if op.state == "acked":
                if op.kind == "cert.add":
                    expected[op.info["name"]] = op.info["fp"]
                else:
                    expected.pop(op.info["name"], None)
            elif op.state == "inflight":
                pending = op
        gateway = self.run.a
        answer = await self.get(gateway, "GET", "/api/v3/networks/certificates", token=token)
        if answer.status != 200:
            self.tally.problems.append(f"CHECK: list certificates: {answer.status}"
                                       f" {answer.body}")
            self.tally.half_written += 1
            return
        listed = {c["name"]: c for c in answer.body["certificates"]}
        for name, cert in listed.items():
            if pem_fingerprint(cert["certificate"]) != cert["fingerprintSha256"]:
                self.tally.half(f"certificate {name}: fingerprint does not match its PEM")
        for name, fp in expected.items():
            if name not in listed:
                if pending is not None and pending.kind == "cert.delete" and (
                        pending.info["name"] == name):
                    continue
                self.tally.lose(f"certificate {name} (acknowledged upload) not listed; listed"
                                f" {sorted(listed)}; ops {history(ops)}")
            elif listed[name]["fingerprintSha256"] != fp:
                self.tally.half(f"certificate {name} listed with another fingerprint")
        for name in listed:
            if name in expected:
                continue
            if pending is not None and pending.kind == "cert.add" and (
                    pending.info["name"] == name):
                if pending.outcome is None:  # the upload went through: learn what it made
                    pending.info.update(id=listed[name]["certificateId"],
                                        fp=listed[name]["fingerprintSha256"],
                                        pem=listed[name]["certificate"])
                    if not same_key(listed[name]["certificate"], pending.info["csr"]):
                        self.tally.half(f"certificate {name}: not signed from the CSR sent")
                continue
            deleted = any(op.kind == "cert.delete" and op.state == "acked"
                          and op.info["name"] == name for op in ops)
            if deleted:
                self.tally.lose(f"certificate {name}: acknowledged deletion undone")
            else:
                self.tally.half(f"certificate {name} listed but never uploaded by a client")
        if pending is not None:
            present = pending.info["name"] in listed
            self.settle(pending, present if pending.kind == "cert.add" else not present,
                        f"{pending.kind} {pending.info['name']}")
        await self.pins(network_id, ops, listed, token)

    async def pins(self, network_id: str, ops: list[Change], listed: dict[str, Any],
                   token: str) -> None:
        """mTLS on: each listed certificate honoured, each other one refused, on A and B."""
        assert self.run.store is not None
        on = await self.get(self.run.a, "PUT", "/api/v3/networks/me", token=token,
                            json_body={"mtlsEnabled": True})
        if on.status != 200:
            self.tally.problems.append(f"CHECK: mTLS on: {on.status} {on.body}")
            return
        await self.run.wait_feed(self.tally)
        gone = {op.info["name"]: op.info["pem"] for op in ops
                if op.info.get("pem") and op.info["name"] not in listed}
        present = {name: cert["certificate"] for name, cert in listed.items()}
        for gateway in self.run.gateways:
            none = await self.get(gateway, "GET", "/api/v3/networks/me", token=token)
            if none.status != 401 or none.message != "client certificate required":
                self.tally.half(f"{gateway.name}: mTLS on but a call without a certificate"
                                f" answers {none.status} {none.body}")
            for name, pem in present.items():
                result = await self.get(gateway, "GET", "/api/v3/networks/me", token=token,
                                        headers={CERT_HEADER: quote(pem)})
                if result.status != 200:
                    self.tally.half(f"certificate {name} listed but not pinned on"
                                    f" {gateway.name}: {result.status} {result.body}")
            for name, pem in gone.items():
                result = await self.get(gateway, "GET", "/api/v3/networks/me", token=token,
                                        headers={CERT_HEADER: quote(pem)})
                if result.status != 403:
                    self.tally.half(f"certificate {name} gone but still pinned on"
                                    f" {gateway.name}: {result.status}")
        if present:
            pem = next(iter(present.values()))
            off = await self.get(self.run.a, "PUT", "/api/v3/networks/me", token=token,
                                 headers={CERT_HEADER: quote(pem)},
                                 json_body={"mtlsEnabled": False})
            if off.status != 200:
                self.tally.problems.append(f"CHECK: mTLS off: {off.status} {off.body}")
        else:  # locked out by design (no certificate): the operator's way back
            await self.run.store.set_network_flags(network_id, mtls=False)


# -- helpers ------------------------------------------------------------------------


def make_csrs(folder: Path, count: int) -> list[str]:
    """`count` EC P-256 keys and CSRs made by `openssl req` (in parallel)."""
    folder.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> str:
        key, csr = folder / f"client-{i}.key", folder / f"client-{i}.csr"
        subprocess.run(
            ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-subj", f"/CN=kill test client {i}", "-keyout", str(key),
             "-out", str(csr)],
            check=True, capture_output=True, timeout=60,
        )
        return csr.read_text()

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def pem_fingerprint(pem: str) -> str:
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def same_key(certificate_pem: str, csr_pem: str) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    cert = x509.load_pem_x509_certificate(certificate_pem.encode()).public_key()
    csr = x509.load_pem_x509_csr(csr_pem.encode()).public_key()
    return cert.public_bytes(*spki) == csr.public_bytes(*spki)


@dataclass
class Report:
    store: str
    cycles: list[Tally]
    final: Tally | None
    seed: int
    seconds: float

    def totals(self) -> dict[str, float]:
        keys = ("acked", "inflight", "present", "absent", "lost", "half_written",
                "audit_missing", "unaudited", "refused")
        out: dict[str, float] = {k: sum(getattr(t, k) for t in self.cycles) for k in keys}
        if self.final is not None:
            out["lost"] += self.final.lost
            out["half_written"] += self.final.half_written
        restarts = [t.restart_s for t in self.cycles]
        out["restart_max_s"] = round(max(restarts, default=0.0), 2)
        return out

    @property
    def failed(self) -> bool:
        t = self.totals()
        # An unaudited change (in force, no entry) is a half-written one since audit
        # entries commit with their change (gateway/store/pending_audit.py).
        return bool(t["lost"] or t["half_written"] or t["audit_missing"] or t["unaudited"]
                    or t["refused"])

    def render(self) -> str:
        headers = ["cycle", "kill at s", "acked", "in flight", "present", "absent", "lost",
                   "half-written", "audit missing", "unaudited", "refused", "restart s"]
        rows: list[list[object]] = [
            [t.cycle, f"{t.kill_after:.2f}", t.acked, t.inflight, t.present, t.absent,
             t.lost, t.half_written, t.audit_missing, t.unaudited, t.refused,
             f"{t.restart_s:.2f}"] for t in self.cycles]
        tot = self.totals()
        rows.append(["total", "", int(tot["acked"]), int(tot["inflight"]), int(tot["present"]),
                     int(tot["absent"]), int(tot["lost"]), int(tot["half_written"]),
                     int(tot["audit_missing"]), int(tot["unaudited"]), int(tot["refused"]),
                     f"max {tot['restart_max_s']:.2f}"])
        lines = [f"kill test: store={self.store} cycles={len(self.cycles)} seed={self.seed}"
                 f" ({self.seconds:.0f} s)", table(headers, rows)]
        if self.final is not None:
            lines.append(f"final re-check of every cycle: lost={self.final.lost}"
                         f" half-written={self.final.half_written}")
        problems = [p for t in [*self.cycles, *([self.final] if self.final else [])]
                    for p in t.problems]
        groups: dict[str, list[str]] = {}
        for problem in problems:
            groups.setdefault(problem.split(":", 1)[0], []).append(problem)
        for name, items in groups.items():
            lines.append(f"{name}: {len(items)} (first 5)")
            lines += [f"  {p}" for p in items[:5]]
        lines.append("RESULT: " + ("FAIL" if self.failed else "PASS"))
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {"store": self.store, "seed": self.seed, "seconds": round(self.seconds, 1),
                "totals": self.totals(), "failed": self.failed,
                "cycles": [asdict(t) for t in self.cycles],
                "final": asdict(self.final) if self.final else None}


async def run(options: Options) -> Report:
    """The whole test: set-up, `cycles` kill cycles, the final re-check, clean-up."""
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
    options = Options(**{**asdict(options), "seed": seed})
    started = time.monotonic()
    folder = options.folder or Path(tempfile.mkdtemp(prefix="gateway-kill-"))
    kill_run: KillRun | None = None
    try:
        async with running_upstream() as upstream:
            kill_run = KillRun(options, folder, upstream)
            await kill_run.setup()
            for n in range(1, options.cycles + 1):
                tally = await kill_run.cycle(n)
                kill_run.tallies.append(tally)
                if not options.quiet:
                    print(f"cycle {n}/{options.cycles}: killed at {tally.kill_after:.2f}s,"
                          f" acked {tally.acked}, in flight {tally.inflight}"
                          f" ({tally.present} present), lost {tally.lost}, half-written"
                          f" {tally.half_written}, restart {tally.restart_s:.2f}s, checks"
                          f" {tally.verify_s:.2f}s",
                          flush=True)
            if options.final_sweep:
                await kill_run.final_check()
            return Report(options.store, kill_run.tallies, kill_run.final, seed,
                          time.monotonic() - started)
    finally:
        if kill_run is not None:
            with contextlib.suppress(Exception):
                await kill_run.close()
        await CHILDREN.kill_all()
        if options.store == "postgres" and options.pg_schema is None and kill_run is not None:
            with contextlib.suppress(Exception):
                await drop_pg_schema(options.pg_url, kill_run.schema)
        if options.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


def parse(argv: Iterable[str] | None = None) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--kill-after", type=float, nargs=2, default=(0.5, 2.5),
                        metavar=("MIN", "MAX"), help="seconds into the clients' run (random)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--no-observer", action="store_true",
                        help="no second gateway checking what the change feed carried")
    parser.add_argument("--no-final-sweep", action="store_true")
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this folder and keep it (logs, SQLite file)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--sabotage", action="store_true",
                        help="self-test: undo acknowledged changes in the store while the"
                        " gateway is down; the run must then FAIL")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.cycles < 1:
        parser.error("--cycles must be at least 1")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    return Options(store=args.store, cycles=args.cycles, seed=args.seed,
                   kill_after=(args.kill_after[0], args.kill_after[1]), pg_url=args.pg_url,
                   observer=not args.no_observer, final_sweep=not args.no_final_sweep,
                   folder=args.keep, quiet=args.quiet, sabotage=args.sabotage), args.json


async def _main(options: Options, json_path: Path | None) -> int:
    task = asyncio.current_task()
    assert task is not None
    install_stop_signals(task)
    report = await run(options)
    print(report.render())
    if json_path is not None:
        await asyncio.to_thread(json_path.write_text, json.dumps(report.as_json(), indent=2))
    return 1 if report.failed else 0


def main() -> int:
    options, json_path = parse()
    return run_script(lambda: _main(options, json_path))


if __name__ == "__main__":
    sys.exit(main())
