"""The admin console's web UI: `/console/` and its static files (no build step).

The files in gateway/console_ui/static/ are read once, on a worker thread at start-up,
and answered from memory: no file is read on the event loop, and only names found
there at start are served (no path ever reaches the file system). Every answer carries
a Content-Security-Policy that allows scripts, styles and requests to this origin only
(no inline script, no framing), and `X-Content-Type-Options: nosniff`.

Routes: `GET|HEAD /console` and `/console/` answer index.html; `/console/{file}` a
static file. `/console/{file}` is one path segment, so it never shadows
`POST /console/v1/login` or `/console/v1/logout`.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gateway.api.routes import endpoint, path_param
from gateway.errors import not_found

STATIC_DIR = Path(__file__).resolve().parent.parent / "console_ui" / "static"
INDEX = "index.html"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none';"
    " base-uri 'none'; form-action 'self'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # The files change with the gateway, not their names: revalidate (cheap, ETag).
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


CONSOLE_FILES = web.AppKey("console_files", dict[str, StaticFile])


def load_files(folder: Path = STATIC_DIR) -> dict[str, StaticFile]:
    """Every file of a served type directly in `folder`, by name (blocking: run it in a thread)."""
    files: dict[str, StaticFile] = {}
    if not folder.is_dir():
        return files
    for path in sorted(folder.iterdir()):
        content_type = CONTENT_TYPES.get(path.suffix.lower())
        if content_type is None or not path.is_file() or path.name.startswith("."):
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        files[path.name] = StaticFile(body, content_type, etag)
    return files


async def _load(app: web.Application) -> None:
    app[CONSOLE_FILES] = await asyncio.to_thread(load_files)


def _answer(request: web.Request, name: str) -> web.Response:
    static = request.app[CONSOLE_FILES].get(name)
    if static is None:
        raise not_found()
    headers = {**SECURITY_HEADERS, "ETag": static.etag}
    if static.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = static.content_type
    return web.Response(body=static.body, headers=headers)


async def index(request: web.Request) -> web.Response:
    return _answer(request, INDEX)


async def static_file(request: web.Request) -> web.Response:
    return _answer(request, path_param(request, "file"))


def setup(app: web.Application) -> None:
    app.on_startup.append(_load)


ENDPOINTS = (
    endpoint("GET", "/console", index),
    endpoint("GET", "/console/{file}", static_file),
)
