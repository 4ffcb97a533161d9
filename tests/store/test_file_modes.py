"""Files holding secrets are the owner's only (0600) whatever the umask: the SQLite store
(password hashes, sealed keys) with its -wal/-shm files, and `gateway tokens mint` output.

The umask is opened wide (000) while each test runs, so a 0600 seen here is the
gateway's doing, not the umask's."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.bootstrap import init_files
from gateway.cli_tokens import mint_tokens
from gateway.config import load_config, sqlite_path
from gateway.store import open_store
from gateway.testing.support import write_config

COMPANIONS = ("-wal", "-shm")


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _with_suffix(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


@pytest.mark.usefixtures("open_umask")
async def test_a_new_store_and_its_wal_files_are_0600(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), environ={})
    store = await open_store(config)
    try:
        await store.create_network("n", "sg", False)  # a write: the WAL is in use
        db = sqlite_path(config)
        for path in (db, *(_with_suffix(db, suffix) for suffix in COMPANIONS)):
            assert path.exists(), path
            assert mode(path) == 0o600, (path, oct(mode(path)))
    finally:
        await store.close()


@pytest.mark.usefixtures("open_umask")
async def test_an_older_store_left_readable_is_made_0600(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), environ={})
    db = sqlite_path(config)
    db.parent.mkdir(parents=True, exist_ok=True)
    # As an older version left it: made by SQLite under a permissive umask, WAL files
    # still there because another process has it open.
    other = sqlite3.connect(db, isolation_level=None)
    try:
        other.execute("PRAGMA journal_mode = WAL")
        other.execute("CREATE TABLE t (x INTEGER)")
        for path in (db, *(_with_suffix(db, suffix) for suffix in COMPANIONS)):
            os.chmod(path, 0o644)
        store = await open_store(config)
        try:
            for path in (db, *(_with_suffix(db, suffix) for suffix in COMPANIONS)):
                assert mode(path) == 0o600, (path, oct(mode(path)))
        finally:
            await store.close()
    finally:
        other.close()


@pytest.mark.usefixtures("open_umask")
async def test_minted_tokens_are_written_0600(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), environ={})
    init_files(config)  # the key-encryption key, as the command makes it
    store = await open_store(config)
    try:
        network = await store.create_network("n", "sg", False)
    finally:
        await store.close()
    out = tmp_path / "out" / "tokens.csv"
    result = await mint_tokens(config, network.id, 3, "access", expired=False, revoked=False,
                               out=out)
    assert result["count"] == 3
    assert mode(out) == 0o600
    assert out.read_text().splitlines()[0] == "userId,token"
