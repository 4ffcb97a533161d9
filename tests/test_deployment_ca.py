"""One CA per deployment: the first instance to start on a store records its CA's
fingerprint there, and an instance with another CA refuses to start (exit status 1, one
line on stderr), as one with another key-encryption key does. Without the check nothing
would notice: the certificates it issued would just not chain to the others' CA."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from gateway.bootstrap import OtherCA, ca_fingerprint, check_ca, init_files
from gateway.config import load_config, sqlite_path
from gateway.store import Store
from gateway.store.facts import CA_SHA256, recorded_fact
from gateway.testing.process import GatewayProcess, gateway_command
from gateway.testing.support import REPO, write_config

REFUSED = "is not the CA of this store's deployment"


async def _run(config: Path, *args: str, limit: float = 60) -> tuple[int, str]:
    """`gateway <args> --config <config>`: (exit status, stderr); killed past `limit`."""
    proc = await asyncio.create_subprocess_exec(
        *gateway_command(*args, "--config", str(config)), cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"gateway {' '.join(args)} still running after {limit}s") from None
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_an_instance_with_another_ca_refuses_to_start(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with GatewayProcess(config):  # first start: init makes the CA, the store records it
        pass
    certs = tmp_path / "certs"
    first = ca_fingerprint(certs / "ca.pem")
    shutil.move(certs, tmp_path / "certs-first")  # another instance's empty folder

    status, err = await _run(config, "serve")
    assert status == 1, err
    lines = err.strip().splitlines()
    assert REFUSED in lines[-1], err
    assert first in lines[-1] and ca_fingerprint(certs / "ca.pem") in lines[-1]
    status, err = await _run(config, "init")
    assert status == 1 and REFUSED in err, err

    # With the deployment's CA back, it starts again.
    shutil.rmtree(certs)
    shutil.move(tmp_path / "certs-first", certs)
    async with GatewayProcess(config) as gateway:
        assert gateway.proc is not None and gateway.proc.returncode is None


async def test_the_first_ca_is_recorded_and_another_refused(
    store: Store, store_config: Path, tmp_path: Path
) -> None:
    config = load_config(store_config, environ={})
    init_files(config)
    await check_ca(config, store)  # the first: recorded
    ours = ca_fingerprint(Path(config.mtls.ca_cert))
    assert await recorded_fact(store, CA_SHA256, "anything else") == ours
    await check_ca(config, store)  # the same again: fine

    # A second instance on the same store, in a folder (and with a CA) of its own.
    other_folder = tmp_path / "other"
    other_folder.mkdir()
    same_store = (
        {"url": f"sqlite:///{sqlite_path(config)}"} if store.dialect == "sqlite"
        else {"url": config.store.url, "schema": config.store.schema}
    )
    other = load_config(write_config(other_folder, {"store": same_store}), environ={})
    init_files(other)
    assert other.mtls.ca_cert != config.mtls.ca_cert
    with pytest.raises(OtherCA, match=REFUSED):
        await check_ca(other, store)
    assert await recorded_fact(store, CA_SHA256, "x") == ours  # nothing was overwritten
