"""Typed keys of the application's state (aiohttp AppKey): no string keys anywhere."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from gateway.accesslog import AccessLog
from gateway.auth.ratelimit import LoginLimiter
from gateway.auth.state import AuthState
from gateway.auth.tokens import TokenService
from gateway.metrics import Metrics
from gateway.notices.delivery import Deliveries
from gateway.proxy.live import LiveSockets
from gateway.proxy.upstream_client import UpstreamPool
from gateway.push import PushHeaders
from gateway.runtime import Runtime
from gateway.store import FeedTailer, Store
from gateway.tls import CertificateAuthority
from gateway.tracing.tracer import Tracing

RUNTIME = web.AppKey("runtime", Runtime)
STORE = web.AppKey("store", Store)
FEED = web.AppKey("feed", FeedTailer)
METRICS = web.AppKey("metrics", Metrics)
CLIENT = web.AppKey("client", aiohttp.ClientSession)
AUTH_STATE = web.AppKey("auth_state", AuthState)
TOKENS = web.AppKey("tokens", TokenService)
ACCESS_LOG = web.AppKey("access_log", AccessLog)
UPSTREAMS = web.AppKey("upstreams", UpstreamPool)
LOGIN_LIMITER = web.AppKey("login_limiter", LoginLimiter)
PUSH_HEADERS = web.AppKey("push_headers", PushHeaders)
CA = web.AppKey("ca", CertificateAuthority)
LIVE_SOCKETS = web.AppKey("live_sockets", LiveSockets)
NOTICES = web.AppKey("notices", Deliveries)
TRACING = web.AppKey("tracing", Tracing)
