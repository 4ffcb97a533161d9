"""Reproducer: a change that took effect without its audit entry, after a crash.

    .venv/bin/python bench/reliability/audit_gap.py        # needs PostgreSQL (trust auth)

Admin handlers used to commit the change (certificate, ban, token rotation, ...) in one
transaction and write the audit entry in a second one afterwards, so a gateway that died
between the two left a change in force that the audit log never mentions. kill_test.py
saw it at random ("unaudited" column); this script makes it deterministic on PostgreSQL:

1. another connection locks the `audit_logs` table, so the audit INSERT waits;
2. an admin uploads a certificate: the certificate row commits, the request hangs;
3. SIGKILL of the gateway, the lock is released, the gateway restarted;
4. the certificate is listed (and pinned) but `GET /api/v3/audit-logs` has no
   `certificate.create` entry.

Exit status 1 when the gap is there (the bug), 0 when the certificate and its audit
entry are both there or both absent. Since the entry is written in the certificate's own
transaction (gateway/store/pending_audit.py), the certificate waits for the lock with it
and neither is there after the kill.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

import aiohttp
import asyncpg
from kill_test import make_csrs
from rel_common import (
    CHILDREN,
    DEFAULT_PG_URL,
    GatewayProcess,
    call,
    drop_pg_schema,
    run_cli,
    unique_schema,
    write_config,
)


async def reproduce(folder: Path, pg_url: str, schema: str) -> bool:
    """True when the certificate is in force without its audit entry."""
    config = write_config(folder, {"store": {"url": pg_url, "schema": schema}})
    await run_cli(config, "init")
    network = await run_cli(config, "network", "create", "--name", "gap", "--secure")
    nid = network["networkId"]
    await run_cli(config, "admin", "create", "--network", nid, "--username", "alice",
                  "--role", "admin", "--password-stdin", stdin=b"pw-alice-123\n")
    token = (await run_cli(config, "admin", "token", "--network", nid,
                           "--username", "alice"))["adminToken"]
    csr = (await asyncio.to_thread(make_csrs, folder / "csr", 1))[0]
    gateway = GatewayProcess(config, "gateway")
    await gateway.start()
    locker = await asyncpg.connect(pg_url)
    watcher = await asyncpg.connect(pg_url)
    try:
        lock = locker.transaction()
        await lock.start()
        await locker.execute(f'LOCK TABLE "{schema}".audit_logs IN ACCESS EXCLUSIVE MODE')
        async with aiohttp.ClientSession() as session:
            upload = asyncio.create_task(call(
                session, "POST", f"{gateway.url}/api/v3/networks/certificates", token=token,
                json_body={"name": "gap", "csr": csr}))
            committed = False
            for _ in range(60):  # does the certificate commit while its audit entry waits?
                if await watcher.fetchval(
                        f'SELECT COUNT(*) FROM "{schema}".certificates') == 1:
                    committed = True
                    break
                await asyncio.sleep(0.05)
            print("certificate committed while its audit entry waited:", committed,
                  "| request still unanswered:", not upload.done())
            gateway.sigkill()
            await gateway.reap()
            with contextlib.suppress(aiohttp.ClientError, OSError):
                await upload
        await lock.rollback()
        await gateway.start()
        async with aiohttp.ClientSession() as session:
            listed = await call(session, "GET", f"{gateway.url}/api/v3/networks/certificates",
                                token=token)
            logs = await call(session, "GET", f"{gateway.url}/api/v3/audit-logs", token=token)
        names = [c["name"] for c in listed.body["certificates"]]
        actions = [entry["action"] for entry in logs.body["auditLogs"]]
        print("after restart: certificates listed", names, "| audit actions", actions)
        return ("gap" in names) != ("certificate.create" in actions)
    finally:
        await locker.close()
        await watcher.close()
        if gateway.alive:
            await gateway.stop()


async def main() -> int:
    pg_url = DEFAULT_PG_URL
    schema = unique_schema("auditgap")
    folder = Path(tempfile.mkdtemp(prefix="gateway-audit-gap-"))
    try:
        gap = await reproduce(folder, pg_url, schema)
    finally:
        await CHILDREN.kill_all()
        with contextlib.suppress(Exception):
            await drop_pg_schema(pg_url, schema)
        shutil.rmtree(folder, ignore_errors=True)
    print("BUG: the certificate and the audit log disagree" if gap
          else "OK: the certificate and its audit entry stand or fall together")
    return 1 if gap else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
