"""`gateway tokens mint`: file format, mode, progress, and tokens signed in workers."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import stat
import sys
import time
from pathlib import Path

import pytest

from gateway import cli_tokens
from gateway.auth.loader import load_token_service
from gateway.bootstrap import init_files
from gateway.cli_tokens import mint_tokens
from gateway.config import load_config
from gateway.store import open_store
from gateway.testing.process import run_cli
from gateway.testing.support import REPO, write_config


async def _network(config: Path) -> str:
    code, out, err = await run_cli("network", "create", "--config", str(config), "--name", "n")
    assert code == 0, err
    return str(json.loads(out)["networkId"])


async def test_csv_and_jsonl_have_lf_endings_owner_only_mode_and_the_count(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    network = await _network(config)
    for fmt in ("csv", "jsonl"):
        out_path = tmp_path / "out" / f"tokens.{fmt}"
        code, out, err = await run_cli(
            "tokens", "mint", "--config", str(config), "--network", network, "--users", "5",
            "--format", fmt, "--out", str(out_path))
        assert code == 0, err
        assert json.loads(out) == {"count": 5, "out": str(out_path)}
        data = out_path.read_bytes()
        assert b"\r" not in data and data.endswith(b"\n")
        assert stat.S_IMODE(out_path.stat().st_mode) == 0o600  # live credentials
        lines = data.decode().splitlines()
        if fmt == "csv":
            assert lines[0] == "userId,token"
            rows = [line.split(",") for line in lines[1:]]
        else:
            rows = [[entry["userId"], entry["token"]] for entry in map(json.loads, lines)]
        assert [row[0] for row in rows] == [f"loadtest-access-{n}" for n in range(5)]
        assert all(row[1].count(".") == 2 for row in rows)


async def test_progress_goes_to_a_terminal(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    network = await _network(config)
    leader, follower = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "tokens", "mint", "--config", str(config),
            "--network", network, "--users", "3", "--out", str(tmp_path / "t.csv"),
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=follower,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0
        os.set_blocking(leader, False)
        shown = os.read(leader, 65536).decode()
    finally:
        os.close(leader)
        os.close(follower)
    assert "minted 3 of 3 tokens (100%" in shown
    assert json.loads(out)["count"] == 3  # stdout keeps the contract's one object


async def test_tokens_signed_in_worker_processes_verify_and_their_users_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path = write_config(tmp_path)
    network = await _network(config_path)
    config = load_config(config_path, environ={})
    init_files(config)  # the key-encryption key, as the command makes it
    monkeypatch.setattr(cli_tokens, "MINT_BATCH", 40)  # 3 chunks: the process pool is used
    out = tmp_path / "tokens.csv"
    done: list[int] = []
    result = await mint_tokens(config, network, 100, "access", expired=False, revoked=False,
                               out=out, processes=2, progress=lambda n, _total: done.append(n))
    assert result == {"count": 100, "out": str(out)} and done == [40, 80, 100]
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    store = await open_store(config)
    try:
        tokens = await load_token_service(config, store, time.time)
        for index, (user_id, token) in enumerate(rows):
            claims = await tokens.verify(token)
            assert (claims.sub, claims.did, claims.nid) == (
                user_id, f"loadtest-device-{index}", network)
        bound = await store.db.fetch(
            "SELECT device_id, user_id FROM devices WHERE network_id = $1", network)
        assert len(bound) == 100
        assert await store.get_user(network, "loadtest-access-99") is not None
    finally:
        await store.close()
