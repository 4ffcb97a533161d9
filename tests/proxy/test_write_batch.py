"""Writes held to the end of the loop iteration under load (gateway/proxy/write_batch.py):
the outbox's order and flush rules on a recording transport, then the data plane on real
sockets with writes held, its answers unchanged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.keys import RUNTIME, UPSTREAMS
from gateway.proxy.write_batch import BUSY, MAX_HELD, Outbox, WriteBatch
from gateway.testing.support import free_port
from gateway.testing.upstream import running_upstream
from tests.proxy.conftest import in_process_gateway, proxy_config


class RecordingTransport(asyncio.Transport):
    """What reaches the transport, write by write."""

    def __init__(self, fails: bool = False) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False
        self.aborted = False
        self.fails = fails

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closing, "written after close"
        if self.fails:
            raise RuntimeError("broken on purpose")
        self.writes.append(bytes(data))

    def abort(self) -> None:
        self.aborted = self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


def outbox(in_flight: int) -> tuple[WriteBatch, Outbox, RecordingTransport]:
    batch = WriteBatch()
    batch.in_flight = in_flight
    transport = RecordingTransport()
    return batch, Outbox(batch, transport), transport


async def next_iteration() -> None:
    await asyncio.sleep(0)  # the batch's flush was scheduled before this wake-up


async def test_below_busy_a_write_goes_out_at_once() -> None:
    batch, box, transport = outbox(BUSY - 1)
    box.write(b"a")
    assert transport.writes == [b"a"]
    assert batch.held_writes == 0


async def test_from_busy_writes_wait_for_the_end_of_the_iteration_in_order() -> None:
    batch, box, transport = outbox(BUSY)
    box.write(b"a")
    box.write(b"b")
    assert transport.writes == []
    await next_iteration()
    assert transport.writes == [b"ab"]  # one write, in order
    assert batch.held_writes == 1  # the second joined what the outbox already held


async def test_a_write_after_held_ones_goes_after_them_even_when_load_drops() -> None:
    batch, box, transport = outbox(BUSY)
    box.write(b"first")
    batch.in_flight = 0  # below busy now: still behind what is held
    box.write(b"second")
    assert transport.writes == []
    await next_iteration()
    assert transport.writes == [b"firstsecond"]
    box.write(b"third")  # nothing held: at once
    assert transport.writes == [b"firstsecond", b"third"]


async def test_several_outboxes_are_flushed_together() -> None:
    batch = WriteBatch()
    batch.in_flight = BUSY
    transports = [RecordingTransport() for _ in range(3)]
    for n, transport in enumerate(transports):
        Outbox(batch, transport).write(b"%d" % n)
    assert all(t.writes == [] for t in transports)
    batch.flush()
    assert [t.writes for t in transports] == [[b"0"], [b"1"], [b"2"]]


async def test_past_max_held_bytes_an_outbox_sends_at_once() -> None:
    """So that the transport's buffer limits see them: a client pipelining requests
    answered inline, reading none of it, is paused as it would be without holding."""
    _, box, transport = outbox(BUSY)
    box.write(b"a" * (MAX_HELD - 1))
    assert transport.writes == []
    box.write(b"b")
    assert transport.writes == [b"a" * (MAX_HELD - 1) + b"b"]
    box.write(b"c")  # held again, after them
    await next_iteration()
    assert transport.writes[1:] == [b"c"]


async def test_a_failing_transport_is_aborted_and_the_others_still_flushed() -> None:
    batch = WriteBatch()
    batch.in_flight = BUSY
    broken, fine = RecordingTransport(fails=True), RecordingTransport()
    Outbox(batch, broken).write(b"lost")
    Outbox(batch, fine).write(b"sent")
    batch.flush()
    assert broken.aborted
    assert fine.writes == [b"sent"]


async def test_flush_sends_now_and_drop_forgets() -> None:
    _, box, transport = outbox(BUSY)
    box.write(b"answer")
    box.flush()  # before a close or a hand-off
    assert transport.writes == [b"answer"]
    box.write(b"abandoned")
    box.drop()  # an abort
    await next_iteration()
    assert transport.writes == [b"answer"]


async def test_held_writes_for_a_transport_closed_meanwhile_are_dropped() -> None:
    _, box, transport = outbox(BUSY)
    box.write(b"late")
    transport.close()  # the peer went away before the iteration ended
    await next_iteration()  # no write after the close (RecordingTransport asserts it)
    assert transport.writes == []


# --- the data plane on real sockets --------------------------------------------------


@contextlib.asynccontextmanager
async def gateway(tmp_path: Path, hold_writes_from: int | None,
                  setting: int | None = None) -> AsyncIterator[tuple[str, web.Application]]:
    """A gateway in front of real upstreams (sg by default), holding writes from
    `hold_writes_from` exchanges in flight (None: as `server.hold_writes_from` says,
    `setting` if given, else its default)."""
    extra = {"server": {"hold_writes_from": setting}} if setting is not None else None
    async with running_upstream("eu") as eu, running_upstream("sg") as sg, \
            running_upstream("us") as us:
        config = proxy_config(tmp_path, {"eu": eu, "sg": sg, "us": us}, free_port(), extra)
        async with in_process_gateway(config, hold_writes_from=hold_writes_from) as found:
            yield found


async def _burst(url: str, client: aiohttp.ClientSession) -> None:
    """2 x BUSY slow requests at once, every answer checked."""
    async def one(n: int) -> dict[str, object]:
        async with client.get(f"{url}/pub/slow?delay=0.3&n={n}") as response:
            assert response.status == 200
            body: dict[str, object] = json.loads(await response.read())
            return body

    answers = await asyncio.gather(*(one(n) for n in range(2 * BUSY)))
    assert all(a == {"upstream": "sg", "slow": True} for a in answers)


async def test_many_requests_in_flight_are_answered_with_writes_held(tmp_path: Path) -> None:
    """Production settings (the config's default): a burst of slow requests puts enough
    in flight that their writes are held; every answer is still the right one."""
    async with gateway(tmp_path, None) as (url, app), aiohttp.ClientSession() as client:
        batch = app[UPSTREAMS].writes
        assert batch.busy == BUSY
        await _burst(url, client)
        assert batch.held_writes > 0
        assert batch.in_flight == 0  # every exchange counted out again


async def test_hold_writes_from_0_never_holds(tmp_path: Path) -> None:
    async with gateway(tmp_path, None, setting=0) as (url, app), \
            aiohttp.ClientSession() as client:
        await _burst(url, client)
        assert app[UPSTREAMS].writes.held_writes == 0


async def test_one_request_at_a_time_is_never_held(tmp_path: Path) -> None:
    async with gateway(tmp_path, BUSY) as (url, app), \
            aiohttp.ClientSession() as client:
        for _ in range(5):
            async with client.get(f"{url}/pub/echo") as response:
                assert response.status == 200
        assert app[UPSTREAMS].writes.held_writes == 0


@pytest.mark.parametrize("close", [False, True])
async def test_held_answers_reach_the_client_before_a_close(tmp_path: Path,
                                                             close: bool) -> None:
    """Every write held (hold from 1): pipelined answers arrive whole and in order, and
    with `Connection: close` the last one arrives before the connection closes."""
    async with gateway(tmp_path, 1) as (url, app):
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        last = b"Connection: close\r\n" if close else b""
        writer.write(b"".join(
            b"GET /pub/n%d HTTP/1.1\r\nHost: api.sg.amity.co\r\n%s\r\n"
            % (n, last if n == 2 else b"") for n in range(3)))
        await writer.drain()
        paths = []
        for _ in range(3):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 ")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            paths.append(json.loads(await reader.readexactly(length))["path"])
        assert paths == ["/pub/n0", "/pub/n1", "/pub/n2"]
        if close:
            assert await asyncio.wait_for(reader.read(), 5) == b""  # then the close
        writer.close()
        assert app[UPSTREAMS].writes.held_writes >= 3  # the answers, at least


async def test_a_reload_says_hold_writes_from_needs_a_restart(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with gateway(tmp_path, None) as (_url, app):
        config = app[RUNTIME].current.config.path
        config.write_text(config.read_text().replace(
            "server:", "server:\n  hold_writes_from: 0", 1))
        with caplog.at_level(logging.WARNING, logger="gateway"):
            assert await app[RUNTIME].reload()
        assert "server.hold_writes_from changed; it takes effect after a restart" \
            in caplog.text
        assert app[UPSTREAMS].writes.busy == BUSY  # unchanged until then
