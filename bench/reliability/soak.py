"""Soak: one gateway under a steady open-loop request rate while admins change things.

    .venv/bin/python bench/reliability/soak.py --minutes 10 --rate 200
    .venv/bin/python bench/reliability/soak.py --minutes 1 --rate 100 --json soak.json

One `gateway serve` process (1 worker) on SQLite in front of a loopback upstream, all on
127.0.0.1; it stops by itself after `--minutes` and cleans up (processes, temp folder).

Requests leave on a fixed schedule (`--rate` per second, open loop: a slow answer never
delays the next request) with a mix of credentials:

- good access tokens (`gateway tokens mint`) on a proxied path and on `GET /api/v3/sessions`,
- short-lived access tokens from logins made during the run (their lifetime is
  `--session-ttl`, so they turn "token expired" while in use),
- expired (`tokens mint --expired`) and revoked (`tokens mint --revoked`) tokens,
- malformed ones (garbage, bad signature, unknown key, truncated, wrong scheme, none),
- admin tokens on `GET /api/v1/admin-token` and `GET /api/v3/networks/me`, admin tokens
  where an access token is required and the other way round.

Meanwhile admins act through the same gateway: revocations (own token, all of a user's
tokens, a device taken over by another user), bans and unbans, admin token rotations
(the old token then answers with the grace `Warning`), an admin revoking their own
token and logging in again for a new one.

Every answer is classified right or wrong against what must be true at the moment the
request was sent: a change counts from the moment its acknowledgement arrived (the
gateway applies its own changes before it answers); a request sent while a change was
in flight may see either state. Wrong: a revoked, expired or banned credential accepted,
a valid one refused, the wrong caller reported to the upstream, any 5xx, any client
error or timeout. The gateway's RSS (VmRSS) is sampled after the warm-up, every minute
and at the end. Output: a human table and a JSON summary (`--json`). Exit status 1 if
any answer was wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import csv
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from rel_common import (
    CHILDREN,
    Answer,
    GatewayProcess,
    call,
    install_stop_signals,
    jwt_claims,
    run_cli,
    run_script,
    running_upstream,
    table,
    write_config,
)

V = TypeVar("V")
PENDING = "(not known until acknowledged)"
INVALID = "Invalid token"
EXPIRED = "token expired"
UNAUTHORIZED = "Unauthorized"
BANNED = 400312
DENIED = 400301
CLOCK_MARGIN = 0.25  # seconds around a token's expiry where either answer is right
REQUEST_LIMIT = 10.0
ADMIN_PASSWORD = "soak-admin-password"


@dataclass
class Options:
    minutes: float = 10.0
    rate: float = 200.0
    warmup: float = 15.0
    seed: int | None = None
    good_tokens: int = 2000
    bad_tokens: int = 200
    registered: int = 200  # minted users also logged in once, so admins can ban them
    session_ttl: str = "90s"
    leeway: str = "2s"
    login_every: float = 0.5
    revoke_every: float = 2.0
    ban_every: float = 5.0
    unban_after: tuple[float, float] = (5.0, 15.0)
    rotate_every: float = 10.0
    admin_revoke_every: float = 60.0
    sample_every: float = 60.0
    folder: Path | None = None
    quiet: bool = False


# -- what must be true when ---------------------------------------------------------


@dataclass
class Event:
    """An admin change: sent at `sent`, acknowledged at `acked` (wall clock)."""

    sent: float
    acked: float | None = None
    failed: bool = False  # refused (non-2xx): never happened


def possible(events: list[tuple[Event, V]], initial: V, sent: float, answered: float) -> set[V]:
    """The values an entity may have had while a request sent at `sent` and answered at
    `answered` was served. Each entity's events are made one after another (the next is
    sent after the previous one's answer), so the last one acknowledged before `sent`
    holds for sure and the ones in flight during the request may or may not."""
    definite, maybe = initial, set[V]()
    for event, value in events:
        if event.failed:
            continue
        if event.acked is not None and event.acked <= sent:
            definite, maybe = value, set()
        elif event.sent < answered:
            maybe.add(value)
        else:
            break
    return {definite} | maybe


def timed(sent: float, answered: float, moment: float) -> set[bool]:
    """Whether `moment` had passed when the request was served (both, near the edge)."""
    if sent > moment + CLOCK_MARGIN:
        return {True}
    if answered < moment - CLOCK_MARGIN:
        return {False}
    return {True, False}


@dataclass
class Token:
    token: str
    subject: str
    kind: str  # access | admin
    exp: float
    device: str | None = None
    revoked: list[tuple[Event, bool]] = field(default_factory=list)
    superseded: list[tuple[Event, bool]] = field(default_factory=list)


@dataclass
class Became:
    """From `event` on, an admin's current token is `token` (None: none, all revoked;
    PENDING while the request that makes a new one has not been answered)."""

    event: Event
    token: str | None = PENDING


class Truth:
    """Everything the checks need: tokens, bans, each admin's current token."""

    def __init__(self, leeway: float) -> None:
        self.leeway = leeway
        self.bans: dict[str, list[tuple[Event, bool]]] = {}
        self.initial: dict[str, str] = {}  # admin -> token at the start
        self.current: dict[str, list[Became]] = {}
        self.admin_tokens: dict[str, list[Token]] = {}

    def expired(self, token: Token, sent: float, answered: float) -> set[bool]:
        return timed(sent, answered, token.exp + self.leeway)

    def access(self, token: Token, sent: float, answered: float) -> set[str]:
        """What the gateway may say of an access token: valid, expired, revoked, banned."""
        out = set()
        for expired in self.expired(token, sent, answered):
            if expired:
                out.add("expired")
                continue
            for revoked in possible(token.revoked, False, sent, answered):
                if revoked:
                    out.add("revoked")
                    continue
                bans = self.bans.get(token.subject, [])
                for banned in possible(bans, False, sent, answered):
                    out.add("banned" if banned else "valid")
        return out

    def admin(self, token: Token, sent: float, answered: float) -> set[str]:
        """valid | superseded (grace: 200 with Warning) | revoked."""
        out = set()
        for revoked in possible(token.revoked, False, sent, answered):
            if revoked:
                out.add("revoked")
                continue
            for superseded in possible(token.superseded, False, sent, answered):
                out.add("superseded" if superseded else "valid")
        return out

    def current_tokens(self, admin: str, sent: float, answered: float) -> set[str | None]:
        timeline = [(b.event, b.token) for b in self.current[admin]]
        return possible(timeline, self.initial[admin], sent, answered)


# -- the run ------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    right: bool
    status: int  # 0: no answer (client error or timeout)
    why: str = ""


@dataclass
class Stats:
    outcomes: Counter[tuple[str, bool]] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    wrong_examples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # from the scheduled moment
    lags: list[float] = field(default_factory=list)  # how late requests left
    admin: Counter[tuple[str, bool]] = field(default_factory=Counter)
    client_errors: int = 0
    seen: Counter[str] = field(default_factory=Counter)  # credential states answered
    ambiguous: int = 0  # requests served while a change to their credential was in flight
    canary: Counter[bool] = field(default_factory=Counter)  # judged right / wrong

    def record(self, outcome: Outcome, example: str) -> None:
        if outcome.kind == "canary":  # must be judged wrong: kept out of the figures
            self.canary[outcome.right] += 1
            return
        self.outcomes[(outcome.kind, outcome.right)] += 1
        self.statuses[outcome.status] += 1
        if not outcome.right and len(self.wrong_examples) < 50:
            self.wrong_examples.append(f"{outcome.kind}: {outcome.why} [{example}]")


Judge = Callable[[Answer, float, float], Outcome]


class Soak:
    def __init__(self, options: Options, folder: Path, upstream: str) -> None:
        self.o = options
        self.folder = folder
        self.rng = random.Random(options.seed)
        self.config = write_config(folder, {
            "regions": {"default": "sg", "sg": {"hosts": [], "upstreams": [upstream]}},
        })
        self.env = {"GATEWAY_TOKENS_ACCESS_TTL_UNSECURE": options.session_ttl,
                    "GATEWAY_TOKENS_LEEWAY": options.leeway}
        self.gateway = GatewayProcess(self.config, "gateway", env=self.env)
        self.truth = Truth(_seconds(options.leeway))
        self.stats = Stats()
        self.network_id = ""
        self.api_key = ""
        self.good: list[Token] = []
        self.expired_tokens: list[str] = []
        self.revoked_tokens: list[str] = []
        self.sessions: list[Token] = []
        self.malformed: list[tuple[str, dict[str, str], str]] = []  # name, headers, message
        self.ops_token = ""
        self.rss: list[tuple[float, int]] = []
        self.rss_start: int | None = None
        self.started = 0.0
        self.end = 0.0
        self.session: aiohttp.ClientSession | None = None
        self.logins = 0
        self.exit_code: int | None = None
        self.unbans: set[asyncio.Task[None]] = set()
        self.registered: list[Token] = []
        self.canary: Token | None = None
        self.touched: list[Token] = []  # good tokens admins acted on, latest last

    # -- set-up -----------------------------------------------------------------------

    async def setup(self) -> None:
        cfg = self.config
        await run_cli(cfg, "init")
        network = await run_cli(cfg, "network", "create", "--name", "soak")
        self.network_id, self.api_key = network["networkId"], network["apiKey"]
        nid = self.network_id
        password = f"{ADMIN_PASSWORD}\n".encode()
        await asyncio.gather(*(
            run_cli(cfg, "admin", "create", "--network", nid, "--username", name,
                    "--role", "admin", "--password-stdin", stdin=password)
            for name in ("ops", "rot", "rev")))
        out = {name: self.folder / f"{name}.csv" for name in ("good", "expired", "revoked")}
        mint = ("tokens", "mint", "--network", nid)
        tokens = await asyncio.gather(
            run_cli(cfg, "admin", "token", "--network", nid, "--username", "ops"),
            run_cli(cfg, "admin", "token", "--network", nid, "--username", "rot"),
            run_cli(cfg, "admin", "token", "--network", nid, "--username", "rev"),
        )
        await asyncio.gather(
            run_cli(cfg, *mint, "--users", str(self.o.good_tokens), "--out", str(out["good"])),
            run_cli(cfg, *mint, "--users", str(self.o.bad_tokens), "--expired",
                    "--out", str(out["expired"])),
            run_cli(cfg, *mint, "--users", str(self.o.bad_tokens), "--revoked",
                    "--out", str(out["revoked"])),
        )
        self.ops_token = tokens[0]["adminToken"]
        for name, answer in (("rot", tokens[1]), ("rev", tokens[2])):
            admin_token = self._admin_token(name, answer["adminToken"])
            self.truth.initial[name] = admin_token.token
            self.truth.current[name] = []
        for user, token in _csv(out["good"]):
            claims = jwt_claims(token)
            self.good.append(Token(token, user, "access", float(claims["exp"]),
                                   device=claims.get("did")))
        self.expired_tokens = [t for _u, t in _csv(out["expired"])]
        self.revoked_tokens = [t for _u, t in _csv(out["revoked"])]
        self.malformed = malformed_tokens(self.good[0].token)
        # The canary: a good token the checks are told was revoked at the start, which it
        # never was. Every answer with it must be judged wrong, or the judging is blind.
        self.canary = self.good.pop()
        self.canary.revoked.append((Event(0.0, acked=0.0), True))
        await self.gateway.start()
        await self.register(self.good[: self.o.registered])

    async def register(self, tokens: list[Token]) -> None:
        """`tokens mint` writes tokens but no user rows: log those users in once (the
        session answers are not kept), so that bans and per-user revocations find them."""
        limit = asyncio.Semaphore(8)

        async def one(session: aiohttp.ClientSession, tok: Token) -> None:
            async with limit:
                answer = await call(session, "POST", f"{self.gateway.url}/api/v3/sessions",
                                    headers={"x-api-key": self.api_key},
                                    json_body={"userId": tok.subject,
                                               "deviceId": f"soak-pre-{tok.subject}"})
            if answer.status != 200:
                raise RuntimeError(f"login of {tok.subject}: {answer.status} {answer.body}")

        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(one(session, t) for t in tokens))
        self.registered = tokens

    def _admin_token(self, admin: str, token: str) -> Token:
        claims = jwt_claims(token)
        entry = Token(token, admin, "admin", float(claims["exp"]))
        self.truth.admin_tokens.setdefault(admin, []).append(entry)
        return entry

    # -- the load ---------------------------------------------------------------------

    async def run(self) -> None:
        duration = self.o.minutes * 60
        connector = aiohttp.TCPConnector(limit=256)
        timeout = aiohttp.ClientTimeout(total=REQUEST_LIMIT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.session = session
            loop = asyncio.get_running_loop()
            self.started = loop.time()
            self.end = self.started + duration
            actors = [
                self.every(self.o.login_every, self.login),
                self.every(self.o.revoke_every, self.revoke),
                self.every(self.o.ban_every, self.ban),
                self.every(self.o.rotate_every, self.rotate),
                self.every(self.o.admin_revoke_every, self.admin_revoke, first=0.5),
                self.sampler(),
            ]
            background = [asyncio.create_task(a) for a in actors]
            in_flight: set[asyncio.Task[None]] = set()
            i = 0
            try:
                while True:
                    due = self.started + i / self.o.rate
                    if due >= self.end:
                        break
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    self.stats.lags.append(max(0.0, loop.time() - due))
                    task = asyncio.create_task(self.one(due))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    i += 1
                if in_flight:
                    await asyncio.wait(in_flight, timeout=REQUEST_LIMIT + 5)
            finally:
                for task in [*background, *self.unbans]:
                    task.cancel()
                await asyncio.gather(*background, *self.unbans, return_exceptions=True)
            self.sample("end")
        self.exit_code = await self.gateway.stop()

    async def every(self, period: float, action: Any, first: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        next_at = self.started + (first if first is not None else period) * (
            0.5 + self.rng.random())
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if loop.time() >= self.end - 1:
                return
            try:
                await action()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.stats.admin[(getattr(action, "__name__", "action"), False)] += 1
                self.stats.wrong_examples.append(f"admin action failed: {exc!r}")
            next_at += period

    # -- one request --------------------------------------------------------------------

    async def one(self, due: float) -> None:
        kind, method, path, token, headers, judge = self.pick()
        sent = time.time()
        try:
            assert self.session is not None
            answer = await call(self.session, method, f"{self.gateway.url}{path}",
                                token=token, headers=headers)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.stats.client_errors += 1
            self.stats.record(Outcome(kind, False, 0, f"no answer: {exc!r}"), path)
            return
        answered = time.time()
        self.stats.latencies.append(asyncio.get_running_loop().time() - due)
        outcome = judge(answer, sent, answered)
        outcome.kind = kind
        if answer.status >= 500:
            outcome = Outcome(kind, False, answer.status, f"5xx: {answer.body}")
        self.stats.record(outcome, f"{method} {path}")

    def pick(self) -> tuple[str, str, str, str | None, dict[str, str] | None, Judge]:
        """A request from the mix: (kind, method, path, bearer token, headers, judge)."""
        roll = self.rng.random() * 100
        n = self.rng.randrange(1 << 20)
        proxied = f"/api/v3/soak/{n}"
        if roll < 1 and self.canary is not None:
            tok = self.canary
            return "canary", "GET", proxied, tok.token, None, self.judge_access(tok)
        if roll < 35:
            tok = self.good_token()
            return "good-proxied", "GET", proxied, tok.token, None, self.judge_access(tok)
        if roll < 40:
            tok = self.good_token()
            return ("good-verify", "GET", "/api/v3/sessions", tok.token, None,
                    self.judge_access(tok, verify=True))
        if roll < 55:
            tok = self.rng.choice(self.sessions) if self.sessions else self.rng.choice(self.good)
            return "session", "GET", proxied, tok.token, None, self.judge_access(tok)
        if roll < 62:
            return ("expired", "GET", proxied, self.rng.choice(self.expired_tokens), None,
                    self.judge_error(401, EXPIRED))
        if roll < 69:
            return ("revoked-minted", "GET", proxied, self.rng.choice(self.revoked_tokens),
                    None, self.judge_error(401, INVALID))
        if roll < 82:
            name, headers, message = self.rng.choice(self.malformed)
            return f"malformed:{name}", "GET", proxied, None, headers, self.judge_error(
                401, message)
        if roll < 90:
            admin = self.rng.choice(("rot", "rev"))
            tok = self.rng.choice(self.truth.admin_tokens[admin])
            return ("admin-token-get", "GET", "/api/v1/admin-token", tok.token, None,
                    self.judge_admin(tok, retrieve=True))
        if roll < 95:
            admin = self.rng.choice(("rot", "rev"))
            tok = self.rng.choice(self.truth.admin_tokens[admin])
            return ("admin-network", "GET", "/api/v3/networks/me", tok.token, None,
                    self.judge_admin(tok))
        if roll < 97:
            tok = self.rng.choice(self.truth.admin_tokens["rot"])
            return ("admin-as-access", "GET", "/api/v3/sessions", tok.token, None,
                    self.judge_admin(tok, as_access=True))
        tok = self.rng.choice(self.good)
        return ("access-as-admin", "GET", "/api/v1/admin-token", tok.token, None,
                self.judge_access(tok, on_admin_route=True))

    def good_token(self) -> Token:
        """Mostly any good token; often one an admin acted on lately (revoked, banned,
        unbanned), so that answers around the moment of a change are plentiful."""
        if self.touched and self.rng.random() < 0.3:
            return self.rng.choice(self.touched[-8:])
        return self.rng.choice(self.good)

    # -- judges: the answer against what may be true -------------------------------------

    def judge_error(self, status: int, message: str) -> Judge:
        def judge(answer: Answer, sent: float, answered: float) -> Outcome:
            ok = answer.status == status and answer.message == message
            return Outcome("", ok, answer.status,
                           "" if ok else f"want {status} {message!r}, got {answer.status}"
                           f" {answer.body}")
        return judge

    def judge_access(self, tok: Token, *, verify: bool = False,
                     on_admin_route: bool = False) -> Judge:
        def judge(answer: Answer, sent: float, answered: float) -> Outcome:
            states = self.truth.access(tok, sent, answered)
            if len(states) > 1:
                self.stats.ambiguous += 1
            if on_admin_route:  # the token's kind is refused before a ban is looked at
                states = {"valid" if state == "banned" else state for state in states}
            seen = access_state(answer, on_admin_route)
            self.stats.seen[f"access {seen}" if len(seen) < 10 else "access other"] += 1
            if seen not in states:
                return Outcome("", False, answer.status,
                               f"token of {tok.subject} may be {sorted(states)}, answered"
                               f" {answer.status} {answer.body}")
            if seen == "valid" and not on_admin_route:
                body = answer.body if isinstance(answer.body, dict) else {}
                who = body.get("userId") if verify else body.get("user")
                if who != tok.subject:
                    return Outcome("", False, answer.status,
                                   f"token of {tok.subject} answered as {who!r}")
            return Outcome("", True, answer.status)
        return judge

    def judge_admin(self, tok: Token, *, retrieve: bool = False, as_access: bool = False
                    ) -> Judge:
        def judge(answer: Answer, sent: float, answered: float) -> Outcome:
            states = self.truth.admin(tok, sent, answered)
            if as_access:  # an admin token where an access token is needed
                ok = answer.status == 401 and answer.message == INVALID
                return Outcome("", ok, answer.status, "" if ok else f"{answer.body}")
            if answer.status == 401 and answer.message == INVALID:
                seen = "revoked"
            elif answer.status == 200:
                seen = "superseded" if "warning" in answer.headers else "valid"
            elif (retrieve and answer.status == 403 and answer.message == "Permission denied"
                  and "warning" in answer.headers):
                # A superseded token may not read the token that replaced it (API.md 4a).
                seen = "superseded"
            else:
                seen = f"{answer.status} {answer.body}"
            self.stats.seen[f"admin {seen}" if len(seen) < 12 else "admin other"] += 1
            if len(states) > 1:
                self.stats.ambiguous += 1
            if seen not in states:
                return Outcome("", False, answer.status,
                               f"admin token of {tok.subject} may be {sorted(states)},"
                               f" answered {seen}")
            if retrieve and answer.status == 200:
                current = self.truth.current_tokens(tok.subject, sent, answered)
                got = answer.body.get("adminToken")
                if PENDING in current and isinstance(got, str) and got not in current:
                    # A rotation in flight: its token is not known yet, only whose it is.
                    current.add(got if jwt_claims(got).get("sub") == tok.subject else None)
                if got not in current:
                    return Outcome("", False, answer.status,
                                   f"GET /api/v1/admin-token of {tok.subject}: not a token"
                                   " that was current")
            return Outcome("", True, answer.status)
        return judge

    # -- admin actions --------------------------------------------------------------------

    async def act(self, name: str, method: str, path: str, *, token: str | None = None,
                  headers: dict[str, str] | None = None, body: Any = None,
                  events: Iterable[Event] = ()) -> Answer | None:
        """One admin request; its events acknowledged (or marked failed) with it."""
        assert self.session is not None
        events = list(events)
        now = time.time()
        for event in events:
            event.sent = now
        try:
            answer = await call(self.session, method, f"{self.gateway.url}{path}",
                                token=token, headers=headers, json_body=body)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.stats.admin[(name, False)] += 1
            self.stats.wrong_examples.append(f"admin {name}: no answer ({exc!r})")
            return None  # the events stay unacknowledged: either state from then on
        acked = time.time()
        ok = 200 <= answer.status < 300
        self.stats.admin[(name, ok)] += 1
        for event in events:
            if ok:
                event.acked = acked
            else:
                event.failed = True
        if not ok:
            self.stats.wrong_examples.append(f"admin {name}: {answer.status} {answer.body}")
            return None
        return answer

    async def login(self, user: str | None = None, device: str | None = None) -> Token | None:
        self.logins += 1
        user = user or f"soak-u{self.logins}"
        device = device or f"soak-d{self.logins}"
        answer = await self.act("login", "POST", "/api/v3/sessions",
                                headers={"x-api-key": self.api_key},
                                body={"userId": user, "deviceId": device})
        if answer is None:
            return None
        token = str(answer.body["accessToken"])
        entry = Token(token, user, "access", float(jwt_claims(token)["exp"]), device=device)
        self.sessions.append(entry)
        # Keep tokens a while past their expiry (they must answer "token expired").
        horizon = time.time() - 60
        self.sessions = [t for t in self.sessions if t.exp > horizon]
        return entry

    async def revoke(self) -> None:
        live = [t for t in self.sessions if not t.revoked and t.exp > time.time() + 5]
        how = self.rng.choice(("self", "user", "device"))
        if how == "device" and live:
            victim = self.rng.choice(live)
            event = Event(time.time())
            victim.revoked.append((event, True))
            # Another user registers the victim's device: its tokens are revoked.
            self.logins += 1
            taker = f"soak-u{self.logins}"  # named before the await: logins go on meanwhile
            answer = await self.act(
                "revoke-device", "POST", "/api/v3/sessions", headers={"x-api-key": self.api_key},
                body={"userId": taker, "deviceId": victim.device}, events=[event])
            if answer is not None:
                token = str(answer.body["accessToken"])
                self.sessions.append(Token(token, taker, "access",
                                           float(jwt_claims(token)["exp"]),
                                           device=victim.device))
            return
        # Own-token revocations only for users never banned (a banned user's own DELETE
        # answers 403), bans only for the even ones of the registered users (see `ban`),
        # per-user revocations for registered users (the others have no user row).
        pool = [t for t in (self.good[1::2] if how == "self" else self.registered)
                if not t.revoked]
        if not pool:
            return
        victim = self.rng.choice(pool)
        event = Event(time.time())
        victim.revoked.append((event, True))
        self.touched.append(victim)
        if how == "self":
            await self.act("revoke-self", "DELETE", "/api/v4/sessions", token=victim.token,
                           events=[event])
        else:
            await self.act("revoke-user", "DELETE", f"/api/v4/sessions/users/{victim.subject}",
                           token=self.ops_token, events=[event])

    async def ban(self) -> None:
        # Not a user already banned, nor one whose unban is still in flight (two changes
        # to one user in flight at once could be applied in either order).
        busy = {u for u, evs in self.truth.bans.items()
                if evs and (evs[-1][1] or (evs[-1][0].acked is None and not evs[-1][0].failed))}
        pool = [t for t in self.registered[::2] if t.subject not in busy]
        if not pool:
            return
        victim = self.rng.choice(pool)
        user = victim.subject
        self.touched.append(victim)
        event = Event(time.time())
        self.truth.bans.setdefault(user, []).append((event, True))
        answer = await self.act("ban", "POST", f"/api/v3/users/{user}/ban",
                                token=self.ops_token, events=[event])
        if answer is not None:
            task = asyncio.create_task(self.unban(user, self.rng.uniform(*self.o.unban_after)))
            self.unbans.add(task)
            task.add_done_callback(self.unbans.discard)

    async def unban(self, user: str, after: float) -> None:
        await asyncio.sleep(after)
        if asyncio.get_running_loop().time() >= self.end - 1:
            return
        event = Event(time.time())
        self.truth.bans[user].append((event, False))
        self.touched.extend(t for t in self.registered if t.subject == user)
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            await self.act("unban", "DELETE", f"/api/v3/users/{user}/ban",
                           token=self.ops_token, events=[event])

    async def rotate(self) -> None:
        now = time.time()
        current = self.truth.current_tokens("rot", now, now)
        old = next(t for t in self.truth.admin_tokens["rot"] if t.token in current)
        event = Event(now)
        for tok in self.truth.admin_tokens["rot"]:
            if not any(not e.failed for e, _v in tok.superseded):
                tok.superseded.append((event, True))
        became = Became(event)
        self.truth.current["rot"].append(became)
        answer = await self.act("rotate", "POST", "/api/v1/admin-token", token=old.token,
                                events=[event])
        if answer is not None:
            became.token = self._admin_token("rot", str(answer.body["adminToken"])).token

    async def admin_revoke(self) -> None:
        """The `rev` admin revokes their own token, then logs in to the console for a new one."""
        now = time.time()
        current = self.truth.current_tokens("rev", now, now)
        tok = next((t for t in self.truth.admin_tokens["rev"] if t.token in current), None)
        if tok is None:
            return
        event = Event(now)
        for t in self.truth.admin_tokens["rev"]:
            t.revoked.append((event, True))
        self.truth.current["rev"].append(Became(event, None))
        if await self.act("admin-revoke", "DELETE", "/api/v1/admin-token", token=tok.token,
                          body={"username": "rev"}, events=[event]) is None:
            return
        login = Event(time.time())
        became = Became(login)
        self.truth.current["rev"].append(became)
        answer = await self.act("console-login", "POST", "/console/v1/login",
                                headers={"x-api-key": self.api_key},
                                body={"username": "rev", "password": ADMIN_PASSWORD},
                                events=[login])
        if answer is not None:
            became.token = self._admin_token("rev", str(answer.body["adminToken"])).token

    # -- RSS --------------------------------------------------------------------------------

    def sample(self, label: str) -> None:
        kib = self.gateway.rss_kib()
        if kib is None:
            return
        elapsed = asyncio.get_running_loop().time() - self.started
        self.rss.append((round(elapsed, 1), kib))
        if label == "start":
            self.rss_start = kib
        if not self.o.quiet:
            done = sum(self.stats.outcomes.values())
            wrong = sum(n for (_k, right), n in self.stats.outcomes.items() if not right)
            print(f"[{elapsed:6.0f}s] {label:>5}: RSS {kib / 1024:.1f} MiB, {done} answers,"
                  f" {wrong} wrong", flush=True)

    async def sampler(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.started + self.o.warmup - loop.time()))
        self.sample("start")
        minute = 1
        while True:
            await asyncio.sleep(max(0.0, self.started + self.o.sample_every * minute
                                    - loop.time()))
            if loop.time() >= self.end - 0.5:
                return
            self.sample(f"{minute * self.o.sample_every / 60:g}m")
            minute += 1

    # -- the report -------------------------------------------------------------------------

    def summary(self, elapsed: float) -> dict[str, Any]:
        s = self.stats
        total = sum(s.outcomes.values())
        wrong = sum(n for (_k, right), n in s.outcomes.items() if not right)
        sent = total + sum(s.canary.values())
        admin_wrong = sum(n for (_k, ok), n in s.admin.items() if not ok)
        kinds = sorted({k for k, _r in s.outcomes})
        rss_values = [kib for _t, kib in self.rss]
        return {
            "duration_s": round(elapsed, 1),
            "target_rate": self.o.rate,
            "requests": sent,
            "achieved_rate": round(sent / (self.o.minutes * 60), 1),
            "judged": total,
            "right": total - wrong,
            "wrong": wrong,
            "status_5xx": sum(n for status, n in s.statuses.items() if status >= 500),
            "client_errors": s.client_errors,
            "statuses": {str(k): v for k, v in sorted(s.statuses.items())},
            "by_kind": {k: {"right": s.outcomes[(k, True)], "wrong": s.outcomes[(k, False)]}
                        for k in kinds},
            "admin_actions": {k: {"ok": s.admin[(k, True)], "failed": s.admin[(k, False)]}
                              for k in sorted({k for k, _ok in s.admin})},
            "admin_failures": admin_wrong,
            "latency_ms": _percentiles(s.latencies),
            "send_lag_ms": _percentiles(s.lags),
            "rss_kib": {"start": self.rss_start, "end": rss_values[-1] if rss_values else None,
                        "max": max(rss_values, default=None), "samples": self.rss},
            "logins": self.logins,
            "gateway_exit_code": self.exit_code,
            "states_answered": dict(sorted(s.seen.items())),
            "ambiguous": s.ambiguous,
            "canary": {"judged_wrong": s.canary[False], "judged_right": s.canary[True]},
            "wrong_examples": s.wrong_examples[:50],
        }


def access_state(answer: Answer, on_admin_route: bool) -> str:
    if answer.status == 401 and answer.message == EXPIRED:
        return "expired"
    if answer.status == 401 and answer.message == INVALID:
        return "revoked"
    if answer.status == 403 and answer.code == BANNED:
        return "banned"
    if on_admin_route:
        # A live access token on an admin route: 403 Permission denied (kind checked
        # before the ban), so "banned" and "valid" both answer it.
        if answer.status == 403 and answer.code == DENIED:
            return "valid"
        return f"{answer.status} {answer.body}"
    if answer.status == 200:
        return "valid"
    return f"{answer.status} {answer.body}"


def malformed_tokens(good: str) -> list[tuple[str, dict[str, str], str]]:
    """Requests whose credential is broken, with the message each must get."""
    header, payload, signature = good.split(".")
    other_key = ec.generate_private_key(ec.SECP256R1())
    claims = jwt_claims(good)
    forged = jwt.encode(claims, other_key, algorithm="ES256",
                        headers={"kid": jwt.get_unverified_header(good)["kid"]})
    unknown_kid = jwt.encode(claims, other_key, algorithm="ES256", headers={"kid": "nope"})
    tampered_claims = dict(claims, sub="someone-else")
    tampered = ".".join([header, _b64(json.dumps(tampered_claims).encode()), signature])
    none_alg = ".".join([_b64(b'{"alg":"none","typ":"JWT"}'), payload, ""])

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    return [
        ("garbage", bearer("not-a-token"), INVALID),
        ("three-dots", bearer("a.b.c"), INVALID),
        ("truncated", bearer(good[:-5]), INVALID),
        ("bad-signature", bearer(forged), INVALID),
        ("unknown-kid", bearer(unknown_kid), INVALID),
        ("tampered", bearer(tampered), INVALID),
        ("alg-none", bearer(none_alg), INVALID),
        ("no-credential", {}, UNAUTHORIZED),
        ("basic-scheme", {"Authorization": "Basic dXNlcjpwYXNz"}, UNAUTHORIZED),
    ]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _csv(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [(row["userId"], row["token"]) for row in csv.DictReader(handle)]


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if duration.endswith(unit):
            return float(duration[: -len(unit)]) * units[unit]
    return float(duration)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered) * 1000, 2),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
            "max": round(ordered[-1] * 1000, 2)}


def render(summary: dict[str, Any]) -> str:
    rss = summary["rss_kib"]

    def mib(kib: int | None) -> str:
        return "-" if kib is None else f"{kib / 1024:.1f} MiB"

    lines = [table(["figure", "value"], [
        ["wall time (set-up included)", f"{summary['duration_s']} s"],
        ["requests", summary["requests"]],
        ["rate (target / achieved)", f"{summary['target_rate']:g} / "
                                     f"{summary['achieved_rate']:g} req/s"],
        ["right / wrong", f"{summary['right']} / {summary['wrong']}"],
        ["5xx", summary["status_5xx"]],
        ["client errors / timeouts", summary["client_errors"]],
        ["latency p50 / p99 / max", "{p50} / {p99} / {max} ms".format(**summary["latency_ms"])],
        ["send lag p99 / max", "{p99} / {max} ms".format(**summary["send_lag_ms"])],
        ["admin actions ok / failed",
         f"{sum(v['ok'] for v in summary['admin_actions'].values())} / "
         f"{summary['admin_failures']}"],
        ["RSS start / end / max", f"{mib(rss['start'])} / {mib(rss['end'])} / "
                                  f"{mib(rss['max'])}"],
        ["gateway exit code (SIGTERM)", summary["gateway_exit_code"]],
        ["served during a change (either answer right)", summary["ambiguous"]],
        ["canary judged wrong / right (must be all wrong)",
         f"{summary['canary']['judged_wrong']} / {summary['canary']['judged_right']}"],
    ])]
    lines.append("")
    lines.append(table(["credential state answered", "count"],
                       [[k, v] for k, v in summary["states_answered"].items()]))
    lines.append("")
    lines.append(table(["request kind", "right", "wrong"],
                       [[k, v["right"], v["wrong"]] for k, v in summary["by_kind"].items()]))
    lines.append("")
    lines.append(table(["admin action", "ok", "failed"],
                       [[k, v["ok"], v["failed"]] for k, v in summary["admin_actions"].items()]))
    lines.append("")
    lines.append(table(["t (s)", "RSS"], [[t, mib(kib)] for t, kib in rss["samples"]]))
    if summary["wrong_examples"]:
        lines.append("\nwrong answers (first 50):")
        lines += [f"  {w}" for w in summary["wrong_examples"]]
    lines.append("RESULT: " + ("FAIL" if failed(summary) else "PASS"))
    return "\n".join(lines)


def failed(summary: dict[str, Any]) -> bool:
    return bool(summary["wrong"] or summary["admin_failures"]
                or summary["gateway_exit_code"] not in (0, None)
                or summary["canary"]["judged_right"])


async def run(options: Options) -> dict[str, Any]:
    """Set up, soak, summarise; every process and the folder are gone afterwards."""
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
    options.seed = seed
    folder = options.folder or Path(tempfile.mkdtemp(prefix="gateway-soak-"))
    started = time.monotonic()
    soak: Soak | None = None
    try:
        async with running_upstream() as upstream:
            soak = Soak(options, folder, upstream)
            await soak.setup()
            await soak.run()
            summary = soak.summary(time.monotonic() - started)
            summary["seed"] = seed
            return summary
    finally:
        if soak is not None and soak.gateway.alive:
            with contextlib.suppress(Exception):
                await soak.gateway.stop()
        await CHILDREN.kill_all()
        if options.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


def parse(argv: Iterable[str] | None = None) -> tuple[Options, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--warmup", type=float, default=15.0,
                        help="seconds before the first RSS sample")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--good-tokens", type=int, default=2000)
    parser.add_argument("--registered", type=int, default=200,
                        help="how many of the good tokens' users log in once (bannable)")
    parser.add_argument("--session-ttl", default="90s",
                        help="lifetime of tokens from logins during the run")
    parser.add_argument("--json", type=Path, default=None, help="write the JSON summary here")
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this folder and keep it (gateway log, SQLite file)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.minutes <= 0 or args.rate <= 0:
        parser.error("--minutes and --rate must be positive")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    return Options(minutes=args.minutes, rate=args.rate, warmup=args.warmup, seed=args.seed,
                   good_tokens=args.good_tokens, registered=args.registered,
                   session_ttl=args.session_ttl,
                   folder=args.keep, quiet=args.quiet), args.json


async def _main(options: Options, json_path: Path | None) -> int:
    task = asyncio.current_task()
    assert task is not None
    install_stop_signals(task)
    summary = await run(options)
    print(render(summary))
    print(json.dumps({k: v for k, v in summary.items() if k != "wrong_examples"}))
    if json_path is not None:
        await asyncio.to_thread(json_path.write_text, json.dumps(summary, indent=2))
    return 1 if failed(summary) else 0


def main() -> int:
    options, json_path = parse()
    return run_script(lambda: _main(options, json_path))


if __name__ == "__main__":
    sys.exit(main())
