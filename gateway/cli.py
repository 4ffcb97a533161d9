"""The `gateway` command (API.md section 5).

Commands that create something print one JSON object on stdout. Errors are one line
on stderr; the exit status is 2 for bad usage or configuration and 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from gateway.auth.passwords import hash_password
from gateway.bootstrap import init_files, init_store
from gateway.config import Config, ConfigError, load_config
from gateway.logs import configure_logging
from gateway.policy import PolicyError, load_policies
from gateway.store import AlreadyExists, StoreUnavailable, open_store

ROLES = ("super-admin", "admin", "moderator")
USAGE_ERROR = 2
FAILURE = 1


class UsageError(Exception):
    """Bad arguments or configuration: exit status 2."""


class CommandError(Exception):
    """The command could not do its work: exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("GATEWAY_CONFIG", "config.yaml"),
        help="config file (default: $GATEWAY_CONFIG, else ./config.yaml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gateway", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    init = commands.add_parser("init", help="create the CA, certificates, keys and schema")
    _add_config(init)
    init.set_defaults(run=cmd_init)

    serve = commands.add_parser("serve", help="run the gateway until SIGTERM or SIGINT")
    _add_config(serve)
    serve.add_argument("--workers", type=int, help="worker processes (default: server.workers)")
    serve.set_defaults(run=cmd_serve)

    network = commands.add_parser("network", help="manage networks").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    create_network = network.add_parser("create", help="create a network and its API key")
    _add_config(create_network)
    create_network.add_argument("--name", required=True)
    create_network.add_argument("--region", default=None, help="default: regions.default")
    create_network.add_argument("--secure", action="store_true", help="turn secure mode on")
    create_network.set_defaults(run=cmd_network_create)

    admin = commands.add_parser("admin", help="manage console users").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    create_admin = admin.add_parser("create", help="create a console user")
    _add_config(create_admin)
    create_admin.add_argument("--network", required=True, help="network id")
    create_admin.add_argument("--username", required=True)
    create_admin.add_argument("--role", required=True, choices=ROLES)
    create_admin.add_argument(
        "--password-stdin", action="store_true", required=True,
        help="read the password from the first line of standard input",
    )
    create_admin.set_defaults(run=cmd_admin_create)
    return parser


def _config(args: argparse.Namespace) -> Config:
    try:
        return load_config(args.config)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _print(result: dict[str, Any]) -> None:
    print(json.dumps(result), flush=True)


def cmd_init(args: argparse.Namespace) -> int:
    config = _config(args)
    result = init_files(config)
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
    init_files(config)
    asyncio.run(init_store(config))
    if workers == 1:
        return run_worker(config, reuse_port=False)
    return supervise(config, workers)


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


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    try:
        args = build_parser().parse_args(argv)
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
