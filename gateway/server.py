"""Runners, sites, worker processes, signals and the graceful drain.

One worker serves in this process. `--workers N` forks N worker processes that
share the listening ports through SO_REUSEPORT; the parent only supervises: it
forwards SIGTERM/SIGINT/SIGHUP and replaces a worker that dies unexpectedly. The
workers share their metrics through a directory the parent makes for the run and
removes at exit (gateway.metrics), so /metrics on any of them shows them all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import ssl
import tempfile
import time
from pathlib import Path

import uvloop
from aiohttp import web

from gateway.app import build_app
from gateway.config import Config, load_config
from gateway.dataplane.plane import DataPlane
from gateway.dataplane.site import DataPlaneSite
from gateway.keys import METRICS, RUNTIME
from gateway.metrics import worker_exited
from gateway.protocol import GatewayRunner
from gateway.store import StoreUnavailable
from gateway.tls.context import server_ssl_context

log = logging.getLogger("gateway.server")

RESPAWN_BACKOFF = 0.5
LINGERING_SECONDS = 2.0
_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def run_worker(config: Config, *, reuse_port: bool, metrics_dir: Path | None = None) -> int:
    """Serve until SIGTERM/SIGINT, then drain and return 0."""
    return uvloop.run(_serve(config, reuse_port=reuse_port, metrics_dir=metrics_dir))


async def _serve(config: Config, *, reuse_port: bool, metrics_dir: Path | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    app = build_app(config, metrics_dir=metrics_dir)
    reloads: set[asyncio.Task[None]] = set()

    async def reload() -> None:
        ok = await app[RUNTIME].reload()
        app[METRICS].observe_reload(ok)

    def on_hup() -> None:
        task = loop.create_task(reload(), name="gateway-reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    # A forked worker starts with these blocked (see supervise); from here on they are handled.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    runner = make_runner(app, config)
    try:
        await runner.setup()
    except StoreUnavailable as exc:
        log.error("cannot start: %s", exc)
        return 1
    try:
        for site in await listener_sites(runner, config, reuse_port=reuse_port):
            await site.start()
            log.info("listening on %s", site.name)
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        await runner.cleanup()
        return 1

    await stop.wait()
    grace = app[RUNTIME].current.config.server.drain_grace
    if grace > 0:
        app[RUNTIME].draining = True
        log.info("draining: /readyz answers 503; still serving for %.1fs", grace)
        await asyncio.sleep(grace)
    log.info("draining in-flight requests (at most %.0fs)", config.server.shutdown_timeout)
    # Stops accepting, lets in-flight requests finish within shutdown_timeout, then
    # cancels what is left and runs the cleanup contexts in reverse order.
    await runner.cleanup()
    log.info("stopped")
    return 0


def make_runner(app: web.Application, config: Config) -> GatewayRunner:
    return GatewayRunner(
        app,
        handle_signals=False,
        access_log=None,  # the front middleware writes the access log
        shutdown_timeout=config.server.shutdown_timeout,
        max_line_size=config.server.max_url_bytes,
        max_field_size=config.server.max_header_bytes,
        # After an early answer (413) aiohttp reads and drops the rest of the body so
        # the client sees the answer; bounded, so such a client cannot hold a drain up.
        lingering_time=LINGERING_SECONDS,
        header_timeout=config.server.header_timeout,
        body_timeout=config.server.body_timeout,
        keepalive_timeout=config.server.keepalive_timeout,
    )


async def listener_sites(
    runner: web.AppRunner, config: Config, *, reuse_port: bool
) -> list[web.BaseSite]:
    """The configured listeners: plain HTTP and HTTPS (which asks for client certificates).

    With `server.data_plane` (the default) connections start on the data plane, which
    forwards plain proxied requests itself and hands every other connection to aiohttp's
    protocol at a request boundary (docs/DATAPLANE.md); without it, aiohttp serves all."""
    server = config.server
    context: ssl.SSLContext | None = None
    if server.https is not None:
        context = await asyncio.to_thread(
            server_ssl_context,
            Path(server.https.cert),
            Path(server.https.key),
            Path(config.mtls.ca_cert),
        )
    listeners: list[tuple[str, int, ssl.SSLContext | None]] = []
    if server.http is not None:
        listeners.append((server.http.host, server.http.port, None))
    if server.https is not None:
        listeners.append((server.https.host, server.https.port, context))
    if not server.data_plane:
        return [web.TCPSite(runner, host, port, ssl_context=tls, reuse_port=reuse_port or None)
                for host, port, tls in listeners]
    assert runner.server is not None, "runner.setup() comes first"
    plane = DataPlane(runner.app, runner.server)
    return [DataPlaneSite(runner, plane, host, port, ssl_context=tls, reuse_port=reuse_port,
                          shutdown_timeout=server.shutdown_timeout)
            for host, port, tls in listeners]


def supervise(config: Config, workers: int) -> int:
    """Fork `workers` processes and keep that many running until told to stop."""
    metrics_dir = Path(tempfile.mkdtemp(prefix="gateway-metrics-"))
    log.info("workers share their metrics in %s", metrics_dir,
             extra={"fields": {"metricsDir": str(metrics_dir)}})
    try:
        return _supervise(config, workers, metrics_dir)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(config: Config, workers: int, metrics_dir: Path) -> int:
    stopping = False
    children: dict[int, int] = {}  # pid -> slot

    def spawn(slot: int) -> None:
        # Signals stay blocked across the fork until the worker's loop handles them, so
        # a SIGTERM that races a (re)start drains the worker instead of killing it.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        pid = os.fork()
        if pid == 0:  # the worker
            for signum in _SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            code = 1
            try:
                code = run_worker(load_config(config.path), reuse_port=True,
                                  metrics_dir=metrics_dir)
            except Exception:
                log.exception("worker %d failed", slot)
            finally:
                os._exit(code)
        children[pid] = slot
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        log.info("worker %d started (pid %d)", slot, pid)

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for signum in _SIGNALS:
        signal.signal(signum, forward)
    for slot in range(workers):
        spawn(slot)
    failures = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in children:
            continue
        slot = children.pop(pid)
        worker_exited(metrics_dir, pid)  # before a new worker could get its pid
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            failures += code != 0
            continue
        log.error("worker %d (pid %d) exited with %d; starting a new one", slot, pid, code)
        time.sleep(RESPAWN_BACKOFF)
        if not stopping:
            spawn(slot)
    return 1 if failures else 0
