"""config.yaml -> frozen, typed dataclasses, validated once with messages that name the key.

The loader is driven by the dataclass field types, so adding a key is one line in a
dataclass: its type decides how the YAML value is checked and converted.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NewType
from urllib.parse import urlsplit

import yaml

from gateway.cors import normalize_origin
from gateway.policy.paths import normalize_host

Seconds = NewType("Seconds", float)
"""A duration in seconds, written in YAML as `30s`, `10m`, `24h`, `1d` or `0` (and `50ms`)."""

FilePath = NewType("FilePath", str)
"""A path resolved against the config file's folder."""

Url = NewType("Url", str)
"""An http(s) URL."""

Cidr = NewType("Cidr", str)
"""An IPv4 or IPv6 network such as `10.0.0.0/8` or a single address."""

Origin = NewType("Origin", str)
"""A browser origin `scheme://host[:port]`, `*` (any) or `null`."""

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SECTION_KEY = re.compile(r"^GATEWAY_([A-Z0-9]+)_([A-Z0-9_]+)$")
# tokens.leeway stretches every token past its exp (revoked ones are remembered only that
# long too); clocks on NTP differ by milliseconds, so minutes are never needed.
MAX_LEEWAY = 300.0


class ConfigError(ValueError):
    """A config problem: the message names the key, the value and what was expected."""


def parse_duration(value: object) -> float:
    """`30s`, `10m`, `24h`, `1d` or `0` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 30s, 10m, 24h, 1d or 0")
    if isinstance(value, int) and value == 0:
        return 0.0
    if isinstance(value, str):
        text = value.strip()
        if text == "0":
            return 0.0
        match = _DURATION.match(text)
        if match:
            return float(int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    raise ValueError("a duration such as 30s, 10m, 24h, 1d or 0")


@dataclass(frozen=True)
class Listener:
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True)
class TlsListener:
    host: str = "127.0.0.1"
    port: int = 8443
    cert: FilePath = FilePath("certs/server.pem")
    key: FilePath = FilePath("certs/server.key")


@dataclass(frozen=True)
class ServerConfig:
    http: Listener | None = field(default_factory=Listener)
    https: TlsListener | None = field(default_factory=TlsListener)
    workers: int = 1
    trusted_proxies: tuple[Cidr, ...] = ()
    max_body_bytes: int = 1_048_576
    max_url_bytes: int = 8190
    max_header_bytes: int = 8190
    cors_origins: tuple[Origin, ...] = ()
    shutdown_timeout: Seconds = Seconds(30.0)
    # After SIGTERM, /readyz answers 503 while requests are still served for this long, so
    # a load balancer's health check takes the instance out before its listener closes.
    drain_grace: Seconds = Seconds(5.0)
    # A request head (or a new connection's first one) must arrive within this: slowloris.
    header_timeout: Seconds = Seconds(20.0)
    # A request body still on its way must keep arriving (1 KiB, or its end, within this),
    # else 408 or a closed connection: a stalled or trickled upload holds nothing for long.
    body_timeout: Seconds = Seconds(30.0)
    # A client must read its answers: while the gateway's send buffer to it stays full
    # this long, the connection is cut (data plane connections).
    send_timeout: Seconds = Seconds(60.0)
    # An idle keep-alive connection is closed after this.
    keepalive_timeout: Seconds = Seconds(75.0)
    access_log: bool = True
    # Proxied requests on the protocol-level data plane (docs/DATAPLANE.md); false: every
    # request through aiohttp's server, as before.
    data_plane: bool = True
    # Open client connections this process accepts, in all and from one address; beyond
    # them a new connection is closed before any work.
    max_connections: int = 20000
    max_connections_per_address: int = 4096
    # From this many exchanges in flight, the data plane holds its writes to the end of
    # the loop iteration and sends them back to back (gateway/proxy/write_batch.py); 0:
    # never. Read at start.
    hold_writes_from: int = 8


@dataclass(frozen=True)
class ProxyConfig:
    connect_timeout: Seconds = Seconds(5.0)
    read_timeout: Seconds = Seconds(60.0)
    max_body_bytes: int = 1_073_741_824
    upstream_cooldown: Seconds = Seconds(10.0)
    # WebSockets (and MQTT connections) one token may hold open at once; more get 429.
    max_websockets_per_token: int = 20


Refuse = typing.Literal["refuse", "forward"]


@dataclass(frozen=True)
class PathsConfig:
    """Request-path spellings that upstream servers disagree about (docs/ROUTING.md).

    Refused with 400 by default: a spelling the route table and an upstream could read as
    two different resources is how a request slips past a rule.
    """

    semicolons: Refuse = "refuse"  # `/a;jsessionid=x/b`: servlet stacks drop `;...`
    trailing_dots: Refuse = "refuse"  # `/admin.`: some servers drop a segment's trailing dot
    encoded_slashes: Refuse = "refuse"  # `%2F`, `%5C`: forwarded unchanged when allowed
    # `/API/v3/...`: refused when another letter case would match another route
    letter_case: typing.Literal["refuse_ambiguous", "sensitive"] = "refuse_ambiguous"


@dataclass(frozen=True)
class StoreConfig:
    url: str = "sqlite:///var/gateway.db"
    schema: str = "public"
    pool_size: int = 10
    feed_poll_interval: Seconds = Seconds(0.05)
    feed_max_lag: Seconds = Seconds(5.0)
    # How long token checks trust the in-memory state while the change feed cannot be
    # read (store down): past it they answer 503, unless a rule says `stale: serve`.
    max_staleness: Seconds = Seconds(30.0)


@dataclass(frozen=True)
class TokensConfig:
    signing_keys: FilePath = FilePath("certs/keys")
    access_ttl_unsecure: Seconds = Seconds(86400.0)
    access_ttl_secure: Seconds = Seconds(30 * 86400.0)
    auth_token_ttl: Seconds = Seconds(600.0)
    admin_token_ttl: Seconds = Seconds(365 * 86400.0)
    admin_rotation_grace: Seconds = Seconds(86400.0)
    leeway: Seconds = Seconds(30.0)
    algorithms: tuple[str, ...] = ("ES256",)
    # The `iss` of new tokens and the OAuth metadata's issuer (RFC 8414): an https URL
    # with no path, query or fragment. None: derived from the listeners (token_issuer).
    issuer: Url | None = None


@dataclass(frozen=True)
class ConsoleConfig:
    session_ttl: Seconds = Seconds(12 * 3600.0)
    # `auto`: the cookie is Secure when the request came over HTTPS (directly, or through a
    # trusted proxy saying so); `always`: whatever the request (TLS terminated elsewhere).
    cookie_secure: str = "auto"


@dataclass(frozen=True)
class LimitsConfig:
    """Console login abuse: failed attempts per fixed window, shared by every process (the
    store's database, or Redis), and the per-process pool that checks passwords."""

    window: Seconds = Seconds(300.0)
    failures_per_username: int = 5
    failures_per_address: int = 10
    failures_per_prefix: int = 50  # an IPv4 /24 or an IPv6 /64
    # Password checks at once in one process. One: a flood costs at most a core per worker,
    # and the event loop keeps one to answer everyone else (bench/login_flood.py).
    hash_concurrency: int = 1
    hash_queue: int = 32  # checks waiting for a slot; beyond it -> 429
    redis_url: str | None = None  # redis://host:port/db: counters there, not in the store
    redis_namespace: str = "gateway-login"


@dataclass(frozen=True)
class MtlsConfig:
    certificate_validity: Seconds = Seconds(365 * 86400.0)
    client_cert_header: str | None = None
    ca_cert: FilePath = FilePath("certs/ca.pem")
    ca_key: FilePath = FilePath("certs/ca.key")
    # RFC 8705: credentials issued over a connection with one of the network's pinned
    # certificates carry its thumbprint and work with that certificate only.
    bind_tokens: bool = False


@dataclass(frozen=True)
class NoticesConfig:
    """Webhook notices to a network's admins (docs/WEBHOOKS.md)."""

    # An admin token this close to its end is announced once (`admin_token.expiring`).
    expiry_warning: Seconds = Seconds(30 * 86400.0)
    scan_interval: Seconds = Seconds(60.0)  # how often time-based notices are looked for
    poll_interval: Seconds = Seconds(1.0)  # how often the outbox is read for due deliveries
    delivery_timeout: Seconds = Seconds(10.0)  # one attempt, connect to the answer's head
    retry_initial: Seconds = Seconds(10.0)  # doubled after every failed attempt ...
    retry_max: Seconds = Seconds(3600.0)  # ... up to this
    max_attempts: int = 12  # then given up (1.7 to 3.4 hours of trying with the defaults)
    # Deliveries to loopback, private, link-local or reserved addresses are refused unless
    # set: the admin of one network must not make the gateway call inside its own network.
    allow_private_targets: bool = False


@dataclass(frozen=True)
class TracingConfig:
    """W3C trace context and span export (README "Tracing"). The `traceparent` of every
    request is handled whatever these say; spans exist only with an endpoint."""

    # The collector's OTLP/HTTP base URL (`http://collector:4318`; `/v1/traces` is added
    # unless the URL ends with it). None: no span is recorded or exported.
    otlp_endpoint: Url | None = None
    service_name: str = "gateway"  # the spans' `service.name`
    # Share of the traces the gateway starts that are recorded (0 to 1); a caller's
    # `sampled` flag decides for the traces it started.
    sample_ratio: float = 1.0


@dataclass(frozen=True)
class Region:
    name: str
    hosts: tuple[str, ...]
    upstreams: tuple[Url, ...]
    connect_timeout: float | None = None  # None: proxy.connect_timeout
    read_timeout: float | None = None  # None: proxy.read_timeout
    # MQTT over WebSocket (/mqtt) goes here when set: the hosted service runs its broker
    # on another host (sse.<region>) than its API.
    mqtt_upstreams: tuple[Url, ...] = ()


@dataclass(frozen=True)
class RegionsConfig:
    default: str
    regions: Mapping[str, Region]

    def for_host(self, host: str | None) -> Region:
        """The region serving `host` (case-insensitive, port ignored), else the default."""
        if host:
            name = normalize_host(host)  # the same spelling rules are matched with
            for region in self.regions.values():
                if name in region.hosts:
                    return region
        return self.regions[self.default]


@dataclass(frozen=True)
class Config:
    path: Path
    server: ServerConfig
    proxy: ProxyConfig
    store: StoreConfig
    tokens: TokensConfig
    console: ConsoleConfig
    mtls: MtlsConfig
    regions: RegionsConfig
    paths: PathsConfig
    policies: tuple[FilePath, ...]
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    notices: NoticesConfig = field(default_factory=NoticesConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)

    @property
    def base_dir(self) -> Path:
        return self.path.parent


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "proxy": ProxyConfig,
    "store": StoreConfig,
    "tokens": TokensConfig,
    "console": ConsoleConfig,
    "mtls": MtlsConfig,
    "limits": LimitsConfig,
    "paths": PathsConfig,
    "notices": NoticesConfig,
    "tracing": TracingConfig,
}


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment and validate config.yaml; raise ConfigError."""
    config_path = Path(path).resolve()
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {config_path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {config_path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {config_path} is not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {config_path}: expected a mapping of sections")
    raw = _apply_environment(raw, os.environ if environ is None else environ)
    return _build_config(config_path, raw)


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """GATEWAY_<SECTION>_<KEY> overrides a two-level key; other variables are ignored."""
    merged = {key: (dict(val) if isinstance(val, dict) else val) for key, val in raw.items()}
    for name, text in environ.items():
        match = _SECTION_KEY.match(name)
        if not match:
            continue
        section, key = match.group(1).lower(), match.group(2).lower()
        section_type = _SECTIONS.get(section)
        if section_type is None or key not in {f.name for f in dataclasses.fields(section_type)}:
            continue
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            continue
        target[key] = yaml.safe_load(text) if text.strip() else text
    return merged


def _build_config(config_path: Path, raw: dict[str, Any]) -> Config:
    known = set(_SECTIONS) | {"regions", "policies"}
    for key in raw:
        if key not in known:
            raise ConfigError(
                f"unknown key '{key}' in {config_path.name}: expected one of {sorted(known)}"
            )
    base = config_path.parent
    sections = {
        name: _build_dataclass(cls, raw.get(name) or {}, name, base)
        for name, cls in _SECTIONS.items()
    }
    regions = _build_regions(raw.get("regions"), base)
    policies = raw.get("policies", ["policies/default.yaml"])
    if not isinstance(policies, list) or not policies:
        raise ConfigError(f"policies: got {policies!r}, expected a non-empty list of files")
    policy_paths = tuple(
        _convert(FilePath, item, f"policies[{i}]", base) for i, item in enumerate(policies)
    )
    for index, policy in enumerate(policy_paths):
        if not Path(policy).is_file():
            raise ConfigError(f"policies[{index}]: file {policy} not found")
    config = Config(path=config_path, regions=regions, policies=policy_paths, **sections)
    _check_consistency(config)
    return config


def _build_dataclass(cls: type[Any], raw: object, where: str, base: Path) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: got {raw!r}, expected a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"unknown key '{where}.{key}': expected one of {sorted(names)}")
    values = {
        key: _convert(hints[key], value, f"{where}.{key}", base) for key, value in raw.items()
    }
    for item in dataclasses.fields(cls):
        if item.name not in values:
            default = _resolved_default(item, hints[item.name], f"{where}.{item.name}", base)
            if default is not _KEEP_DEFAULT:
                values[item.name] = default
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where}: {exc}") from None


_KEEP_DEFAULT = object()


def _resolved_default(item: dataclasses.Field[Any], hint: Any, where: str, base: Path) -> Any:
    """Defaults that are paths, or dataclasses holding paths, resolve against `base` too."""
    if hint is FilePath and isinstance(item.default, str):
        return _convert(FilePath, item.default, where, base)
    if item.default_factory is not dataclasses.MISSING:
        options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        if dataclasses.is_dataclass(options[0]):
            return _build_dataclass(typing.cast(type[Any], options[0]), {}, where, base)
    return _KEEP_DEFAULT


def _convert(hint: Any, value: object, where: str, base: Path) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, where, base)
    if dataclasses.is_dataclass(hint):
        return _build_dataclass(typing.cast(type[Any], hint), value, where, base)
    if origin is tuple:
        (item_hint, _ellipsis) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: got {value!r}, expected a list")
        return tuple(
            _convert(item_hint, item, f"{where}[{i}]", base) for i, item in enumerate(value)
        )
    if hint is Seconds:
        try:
            return Seconds(parse_duration(value))
        except ValueError as exc:
            raise ConfigError(f"{where}: got {value!r}, expected {exc}") from None
    if hint is FilePath:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: got {value!r}, expected a file path")
        return FilePath(str((base / value).resolve()))
    if hint is Url:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: got {value!r}, expected an http:// or https:// URL")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}: got {value!r}, expected an http:// or https:// URL")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ConfigError(f"{where}: got {value!r}, expected a valid port") from None
        return Url(value.rstrip("/"))
    if hint is Cidr:
        try:
            return Cidr(str(ipaddress.ip_network(str(value), strict=False)))
        except ValueError:
            raise ConfigError(f"{where}: got {value!r}, expected an IP address or CIDR") from None
    if hint is Origin:
        if value == "*" or (isinstance(value, str) and normalize_origin(value) is not None):
            return Origin(value)
        raise ConfigError(
            f"{where}: got {value!r}, expected an origin scheme://host[:port] (no path), "
            '"*" or "null"'
        )
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{where}: got {value!r}, expected one of {', '.join(choices)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: got {value!r}, expected a number")
        return float(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: got {value!r}, expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}: got {value!r}, expected a non-negative integer")
        return value
    if hint is str:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ConfigError(f"{where}: got {value!r}, expected a string")
        return str(value)
    raise ConfigError(f"{where}: unsupported value {value!r}")  # pragma: no cover


def _build_regions(raw: object, base: Path) -> RegionsConfig:
    if raw is None:
        raise ConfigError("regions: missing; expected at least one region and a default")
    if not isinstance(raw, dict):
        raise ConfigError(f"regions: got {raw!r}, expected a mapping")
    default = raw.get("default")
    regions: dict[str, Region] = {}
    for name, body in raw.items():
        if name == "default":
            continue
        where = f"regions.{name}"
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: got {body!r}, expected {{hosts: [...], upstreams: [...]}}")
        allowed = ("hosts", "upstreams", "mqtt_upstreams", "connect_timeout", "read_timeout")
        for key in body:
            if key not in allowed:
                raise ConfigError(f"unknown key '{where}.{key}': expected one of {list(allowed)}")
        hosts = _convert(tuple[str, ...], body.get("hosts", []), f"{where}.hosts", base)
        upstreams = _convert(tuple[Url, ...], body.get("upstreams"), f"{where}.upstreams", base)
        if not upstreams:
            raise ConfigError(f"{where}.upstreams: got [], expected at least one URL")
        mqtt_upstreams = _convert(
            tuple[Url, ...], body.get("mqtt_upstreams", []), f"{where}.mqtt_upstreams", base
        )
        timeouts = {
            key: _convert(Seconds, body[key], f"{where}.{key}", base)
            for key in ("connect_timeout", "read_timeout")
            if body.get(key) is not None
        }
        regions[str(name)] = Region(
            name=str(name),
            hosts=tuple(normalize_host(h) for h in hosts),
            upstreams=upstreams,
            mqtt_upstreams=mqtt_upstreams,
            **timeouts,
        )
    if not regions:
        raise ConfigError("regions: expected at least one region")
    if default not in regions:
        raise ConfigError(f"regions.default: got {default!r}, expected one of {sorted(regions)}")
    return RegionsConfig(default=str(default), regions=regions)


def _check_consistency(config: Config) -> None:
    server = config.server
    if server.http is None and server.https is None:
        raise ConfigError("server: expected at least one of http or https")
    for name, listener in (("http", server.http), ("https", server.https)):
        if listener is not None and not 0 < listener.port < 65536:
            raise ConfigError(
                f"server.{name}.port: got {listener.port!r}, expected an integer in 1-65535"
            )
    if server.workers < 1:
        raise ConfigError(f"server.workers: got {server.workers}, expected at least 1")
    url = config.store.url
    if not (url.startswith("sqlite:///") or url.startswith(("postgresql://", "postgres://"))):
        raise ConfigError(
            f"store.url: got {url!r}, expected sqlite:///PATH or postgresql://user@host:port/db"
        )
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", config.store.schema):
        raise ConfigError(
            f"store.schema: got {config.store.schema!r}, expected a lowercase SQL identifier"
        )
    _check_limits(config)
    _check_notices(config.notices)
    _check_tracing(config.tracing)
    allowed = {"EdDSA", "ES256", "RS256", "PS256"}
    for alg in config.tokens.algorithms:
        if alg not in allowed:
            raise ConfigError(f"tokens.algorithms: got {alg!r}, expected one of {sorted(allowed)}")
    if config.tokens.leeway > MAX_LEEWAY:
        raise ConfigError(
            f"tokens.leeway: got {config.tokens.leeway:g}s, expected at most 5m (300s)"
        )
    _check_issuer(config.tokens.issuer)


def _check_issuer(issuer: str | None) -> None:
    """RFC 8414: https, no query or fragment; no path either, because the metadata is
    served at the root's /.well-known/oauth-authorization-server only."""
    if issuer is None:
        return
    parts = urlsplit(issuer)
    if parts.scheme != "https" or parts.path or parts.query or parts.fragment or (
            "@" in parts.netloc):
        raise ConfigError(
            f"tokens.issuer: got {issuer!r}, expected an https://host[:port] URL"
            " (no path, query or fragment)"
        )


def token_issuer(config: Config) -> str:
    """`tokens.issuer`, else the HTTPS listener's https://host[:port]; with no HTTPS
    listener (TLS ends in front of the gateway), https://<HTTP listener host>."""
    if config.tokens.issuer is not None:
        return config.tokens.issuer
    https, http = config.server.https, config.server.http
    host, port = (https.host, https.port) if https is not None else (
        http.host if http is not None else "localhost", 443)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"https://{host}" if port == 443 else f"https://{host}:{port}"


def _check_limits(config: Config) -> None:
    if config.console.cookie_secure not in ("auto", "always"):
        raise ConfigError(
            f"console.cookie_secure: got {config.console.cookie_secure!r}, expected auto or always"
        )
    limits = config.limits
    if limits.window <= 0:
        raise ConfigError(f"limits.window: got {limits.window!r}, expected more than 0")
    for name in ("failures_per_username", "failures_per_address", "failures_per_prefix",
                 "hash_concurrency"):
        if getattr(limits, name) < 1:
            raise ConfigError(f"limits.{name}: got {getattr(limits, name)}, expected at least 1")
    url = limits.redis_url
    if url is not None and (urlsplit(url).scheme not in ("redis", "rediss")
                            or not urlsplit(url).hostname):
        raise ConfigError(f"limits.redis_url: got {url!r}, expected redis://host[:port][/db]")


def _check_tracing(tracing: TracingConfig) -> None:
    if not 0.0 <= tracing.sample_ratio <= 1.0:
        raise ConfigError(
            f"tracing.sample_ratio: got {tracing.sample_ratio:g}, expected from 0 to 1")
    if not tracing.service_name.strip():
        raise ConfigError("tracing.service_name: got '', expected a name")


def _check_notices(notices: NoticesConfig) -> None:
    for name in ("scan_interval", "poll_interval", "delivery_timeout", "retry_initial"):
        if getattr(notices, name) <= 0:
            raise ConfigError(f"notices.{name}: got 0, expected more than 0")
    if notices.retry_max < notices.retry_initial:
        raise ConfigError(
            f"notices.retry_max: got {notices.retry_max:g}s, expected at least"
            f" notices.retry_initial ({notices.retry_initial:g}s)"
        )
    if notices.max_attempts < 1:
        raise ConfigError(f"notices.max_attempts: got {notices.max_attempts}, expected at least 1")


def sqlite_path(config: Config) -> Path:
    """`sqlite:///var/x.db` is relative to the config folder, `sqlite:////abs/x.db` absolute."""
    rest = config.store.url[len("sqlite:///") :]
    return (config.base_dir / rest).resolve() if not rest.startswith("/") else Path(rest)
