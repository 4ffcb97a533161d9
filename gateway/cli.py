"""The `gateway` command (API.md section 5).

Commands that create something print one JSON object on stdout. Errors are one line
on stderr; the exit status is 2 for bad usage or configuration and 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from gateway.auth.passwords import hash_password
from gateway.bootstrap import init_files, init_store
from gateway.build import build_kind
from gateway.cli_help import COMMAND_HELP
from gateway.cli_keys import revoke_key
from gateway.cli_tokens import NotFound, admin_token, mint_tokens, rotate_keys
from gateway.config import Config, ConfigError, load_config, sqlite_path
from gateway.defaults import CONFIG, write_defaults
from gateway.logs import LOG_FORMATS, LOG_LEVELS, configure_logging
from gateway.policy import PolicyError, load_policies
from gateway.store import AlreadyExists, SigningKeyError, StoreUnavailable, open_store

log = logging.getLogger("gateway.cli")

ROLES = ("super-admin", "admin", "moderator")
USAGE_ERROR = 2
FAILURE = 1


class UsageError(Exception):
    """Bad arguments or configuration: exit status 2."""


class CommandError(Exception):
    """The command could not do its work: exit status 1."""


class _Parser(argparse.ArgumentParser):
    """Every parser of the command: its description and examples come from
    gateway.cli_help, and given no subcommand it prints its help (exit status 0)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        doc = COMMAND_HELP.get(self.prog.removeprefix("gateway").strip())
        if doc is not None:
            self.description, self.epilog = doc.description, doc.epilog
            self.formatter_class = argparse.RawDescriptionHelpFormatter
        self.set_defaults(run=self._show_help)  # a command's own set_defaults replaces it

    def _show_help(self, _args: argparse.Namespace) -> int:
        self.print_help()
        return 0

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def package_version() -> str:
    try:
        return importlib.metadata.version("gateway")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was not installed
        from gateway import __version__

        return __version__


def _default_config() -> str:
    return os.environ.get("GATEWAY_CONFIG", "config.yaml")


def _add_config(parser: argparse.ArgumentParser) -> None:
    """The options every subcommand takes after its name."""
    parser.add_argument(
        "--config", metavar="PATH", default=_default_config(),
        help="config file (default: $GATEWAY_CONFIG, else ./config.yaml)",
    )
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, default=None,
        help="log lines on stderr: text, or json (one object per line); default: text when "
             "stderr is a terminal, else json",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info",
        help="the least severe log lines shown (default: info)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gateway")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {package_version()} ({build_kind()})",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    init = commands.add_parser("init", help="create the CA, certificates, keys and schema")
    _add_config(init)
    init.add_argument(
        "--config-dir", metavar="DIR",
        help="first write DIR/config.yaml and DIR/policies/default.yaml where absent (never "
             "overwritten), then use DIR/config.yaml",
    )
    # None: --config was not given, so --config-dir may choose the file.
    init.set_defaults(run=cmd_init, config=None)

    serve = commands.add_parser("serve", help="run the gateway until SIGTERM or SIGINT")
    _add_config(serve)
    serve.add_argument("--workers", type=int, help="worker processes (default: server.workers)")
    serve.set_defaults(run=cmd_serve)

    network = commands.add_parser("network", help="manage networks").add_subparsers(
        dest="action", parser_class=_Parser, metavar="ACTION"
    )
    create_network = network.add_parser("create", help="create a network and its API key")
    _add_config(create_network)
    create_network.add_argument("--name", required=True, help="display name, 1-100 characters")
    create_network.add_argument(
        "--region", default=None, help="a region of the config (default: regions.default)"
    )
    create_network.add_argument("--secure", action="store_true", help="turn secure mode on")
    create_network.set_defaults(run=cmd_network_create)

    admin = commands.add_parser("admin", help="manage console users").add_subparsers(
        dest="action", parser_class=_Parser, metavar="ACTION"
    )
    create_admin = admin.add_parser("create", help="create a console user")
    _add_config(create_admin)
    create_admin.add_argument("--network", required=True, metavar="ID", help="network id")
    create_admin.add_argument("--username", required=True, help="login name (1-100 characters)")
    create_admin.add_argument("--role", required=True, choices=ROLES, help="what the user may do")
    create_admin.add_argument(
        "--password-stdin", action="store_true", required=True,
        help="read the password from the first line of standard input",
    )
    create_admin.set_defaults(run=cmd_admin_create)

    update_network = network.add_parser("update", help="change a network's settings")
    _add_config(update_network)
    update_network.add_argument("--network", required=True, metavar="ID", help="network id")
    update_network.add_argument("--secure", choices=("on", "off"), help="secure mode")
    update_network.add_argument(
        "--mtls", choices=("on", "off"),
        help="client-certificate pinning (the way back in for admins locked out by it)",
    )
    update_network.set_defaults(run=cmd_network_update)

    token = admin.add_parser("token", help="issue an admin token for a console user")
    _add_config(token)
    token.add_argument("--network", required=True, metavar="ID", help="network id")
    token.add_argument("--username", required=True, help="an existing console user")
    token.set_defaults(run=cmd_admin_token)

    tokens = commands.add_parser("tokens", help="credentials for load tests").add_subparsers(
        dest="action", parser_class=_Parser, metavar="ACTION"
    )
    mint = tokens.add_parser("mint", help="write N tokens to a file (userId,token)")
    _add_config(mint)
    mint.add_argument("--network", required=True, metavar="ID", help="network id")
    mint.add_argument("--users", required=True, type=int, metavar="N",
                      help="how many tokens (one per user)")
    mint.add_argument(
        "--kind", choices=("access", "admin"), default="access",
        help="user access tokens or admin tokens (default: access)",
    )
    mint.add_argument("--expired", action="store_true", help="tokens already past expiry")
    mint.add_argument("--revoked", action="store_true", help="tokens already revoked")
    mint.add_argument("--out", required=True, metavar="FILE",
                      help="file to write (replaced if it exists)")
    mint.add_argument(
        "--format", choices=("csv", "jsonl"), default="csv",
        help='csv: a "userId,token" header, then one row per token; jsonl: one '
             '{"userId": ..., "token": ...} object per line (default: csv)',
    )
    mint.set_defaults(run=cmd_tokens_mint)

    keys = commands.add_parser("keys", help="token signing keys").add_subparsers(
        dest="action", parser_class=_Parser, metavar="ACTION"
    )
    rotate = keys.add_parser("rotate", help="a new signing key signs from now on")
    _add_config(rotate)
    rotate.set_defaults(run=cmd_keys_rotate)
    revoke = keys.add_parser(
        "revoke", help="a key stops verifying and signing at once (a new one signs if needed)"
    )
    _add_config(revoke)
    revoke.add_argument("kid", help="the key's id (`kid` in token headers and the JWKS)")
    revoke.set_defaults(run=cmd_keys_revoke)
    return parser


def _config(args: argparse.Namespace) -> Config:
    try:
        return load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _print(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


def cmd_init(args: argparse.Namespace) -> int:
    written: dict[str, Path] = {}
    if args.config_dir is not None:
        folder = Path(args.config_dir)
        if args.config is not None and Path(args.config).resolve() != (folder / CONFIG).resolve():
            raise UsageError("gateway init: --config-dir DIR uses DIR/config.yaml; "
                             "give --config or --config-dir, not both")
        written = write_defaults(folder)
        args.config = str(folder / CONFIG)
    elif args.config is None:
        args.config = _default_config()
    config = _config(args)
    result: dict[str, Any] = {"config": str(config.path)}
    result.update({name: str(path.resolve()) for name, path in written.items()})
    files = init_files(config)
    files["created"] = [*written, *files["created"]]
    result.update(files)
    result.update(asyncio.run(init_store(config)))
    _print(result)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.server import run_worker, supervise

    config = _config(args)
    workers = args.workers if args.workers is not None else config.server.workers
    if workers < 1:
        raise UsageError("gateway serve: --workers must be at least 1")
    try:
        load_policies(config.policies)  # refuse broken policies before anything starts
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    new_store = config.store.url.startswith("sqlite") and not sqlite_path(config).exists()
    files = init_files(config)
    store = asyncio.run(init_store(config))
    _log_start(config, workers, files, store["store"] if new_store else None)
    if workers == 1:
        return run_worker(config, reuse_port=False)
    return supervise(config, workers)


def _log_start(
    config: Config, workers: int, files: dict[str, Any], new_store: str | None
) -> None:
    """Who is starting and where to reach it, then (on a first start) what init made."""
    urls = [f"{scheme}://{_host(listener.host)}:{listener.port}"
            for scheme, listener in (("http", config.server.http), ("https", config.server.https))
            if listener is not None]
    log.info("gateway %s (%s) starting: pid %d, %d worker%s, config %s, listeners %s",
             package_version(), build_kind(), os.getpid(), workers,
             "" if workers == 1 else "s", config.path, " ".join(urls) or "none",
             extra={"fields": {"pid": os.getpid(), "urls": urls, "workers": workers}})
    # init names what it made ("ca", "kek", ...) and reports each one's path under that name.
    created = {name: str(files.get(name, "")) for name in files.get("created", [])}
    if new_store is not None:
        created["store"] = new_store
    if created:
        log.info("first start: init created %s",
                 ", ".join(f"{name} {path}" for name, path in created.items()),
                 extra={"fields": {"created": created}})
    grace = config.server.drain_grace
    if grace > 0 and sys.stdin.isatty():
        log.info("Ctrl-C drains for %gs before stopping (server.drain_grace); "
                 "GATEWAY_SERVER_DRAIN_GRACE=0 stops at once", grace)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def cmd_network_create(args: argparse.Namespace) -> int:
    config = _config(args)
    region = args.region or config.regions.default
    if region not in config.regions.regions:
        raise UsageError(
            f"gateway network create: --region {region!r} is not one of "
            f"{sorted(config.regions.regions)}"
        )
    if not args.name.strip() or len(args.name) > 100:
        raise UsageError("gateway network create: --name must be 1-100 characters")

    async def create() -> dict[str, Any]:
        store = await open_store(config)
        try:
            network = await store.create_network(args.name, region, args.secure)
        finally:
            await store.close()
        return {
            "networkId": network.id,
            "apiKey": network.api_key,
            "region": network.region,
            "useSecureAuthentication": network.use_secure_authentication,
        }

    _print(asyncio.run(create()))
    return 0


def cmd_admin_create(args: argparse.Namespace) -> int:
    config = _config(args)
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("gateway admin create: no password on standard input")
    if not 1 <= len(args.username) <= 100:
        raise UsageError("gateway admin create: --username must be 1-100 characters")
    password_hash = hash_password(password)

    async def create() -> dict[str, Any]:
        store = await open_store(config)
        try:
            if await store.get_network(args.network) is None:
                raise CommandError(f"gateway admin create: network {args.network!r} not found")
            admin = await store.create_admin(args.network, args.username, args.role, password_hash)
        finally:
            await store.close()
        return {"username": admin.username, "role": admin.role, "networkId": admin.network_id}

    try:
        _print(asyncio.run(create()))
    except AlreadyExists as exc:
        raise CommandError(f"gateway admin create: {exc}") from None
    return 0


def cmd_network_update(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.secure is None and args.mtls is None:
        raise UsageError(
            "gateway network update: nothing to change (use --secure on|off, --mtls on|off)"
        )

    def flag(value: str | None) -> bool | None:
        return None if value is None else value == "on"

    async def update() -> dict[str, Any]:
        store = await open_store(config)
        try:
            current = await store.get_network(args.network)
            if current is None:
                raise CommandError(f"gateway network update: network {args.network!r} not found")
            secure = flag(args.secure)
            mtls = flag(args.mtls)
            new_secure = current.use_secure_authentication if secure is None else secure
            new_mtls = current.mtls_enabled if mtls is None else mtls
            if new_mtls and not new_secure:  # the API's rule (API.md "Network settings")
                raise CommandError("gateway network update: mTLS needs secure mode on")
            network = await store.set_network_flags(args.network, secure=secure, mtls=mtls)
        finally:
            await store.close()
        assert network is not None
        return {"networkId": network.id, "useSecureAuthentication":
                network.use_secure_authentication, "mtlsEnabled": network.mtls_enabled}

    _print(asyncio.run(update()))
    return 0


def _signing_config(args: argparse.Namespace) -> Config:
    """The config, with the keys a signing command needs made if missing (as init would)."""
    config = _config(args)
    init_files(config)
    return config


def cmd_admin_token(args: argparse.Namespace) -> int:
    config = _signing_config(args)
    try:
        _print(asyncio.run(admin_token(config, args.network, args.username)))
    except NotFound as exc:
        raise CommandError(f"gateway admin token: {exc}") from None
    return 0


def cmd_tokens_mint(args: argparse.Namespace) -> int:
    config = _signing_config(args)
    if not 1 <= args.users <= 10_000_000:
        raise UsageError("gateway tokens mint: --users must be 1-10000000")
    try:
        result = asyncio.run(mint_tokens(
            config, args.network, args.users, args.kind, expired=args.expired,
            revoked=args.revoked, out=Path(args.out), fmt=args.format,
            progress=_progress_on_terminal(),
        ))
    except NotFound as exc:
        raise CommandError(f"gateway tokens mint: {exc}") from None
    _print(result)
    return 0


def _progress_on_terminal() -> Callable[[int, int], None] | None:
    """A progress line on stderr, rewritten in place: for a person watching, not for logs."""
    if not sys.stderr.isatty():
        return None
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        rate = done / max(time.monotonic() - started, 1e-6)
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\rminted {done:,} of {total:,} tokens ({done * 100 // total}%, "
                         f"{rate:,.0f}/s){end}")
        sys.stderr.flush()
    return show


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    _print(asyncio.run(rotate_keys(_signing_config(args))))
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    try:
        _print(asyncio.run(revoke_key(_signing_config(args), args.kid)))
    except SigningKeyError as exc:
        raise CommandError(f"gateway keys revoke: {exc}") from None
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help and --version print and stop here
            return exc.code if isinstance(exc.code, int) else 0
        configure_logging(args.log_level if "log_level" in args else "info",
                          args.log_format if "log_format" in args else None)
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except UsageError as exc:
        return _fail(str(exc), USAGE_ERROR)
    except ConfigError as exc:
        return _fail(str(exc), USAGE_ERROR)
    except (CommandError, StoreUnavailable, OSError, ValueError) as exc:
        return _fail(str(exc), FAILURE)
    except KeyboardInterrupt:
        return FAILURE


def _fail(message: str, status: int) -> int:
    print(" ".join(message.split()), file=sys.stderr)
    return status
