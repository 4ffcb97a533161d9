"""What `gateway ... --help` says about each command: a description and examples.

Kept apart from the parser's wiring so that the texts read as one document; every
command the parser has must have an entry (tests/cli/test_help.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandHelp:
    description: str
    examples: str

    @property
    def epilog(self) -> str:
        return f"examples:\n{self.examples}"


# Keyed by the words after `gateway` ("" is the command itself).
COMMAND_HELP: dict[str, CommandHelp] = {
    "": CommandHelp(
        "An async reverse proxy that owns an API's authentication plane: it issues and\n"
        "checks credentials, serves the admin plane and forwards everything else to the\n"
        "API's regional upstreams.\n\n"
        "Every command takes --config PATH after its name (default: $GATEWAY_CONFIG, else\n"
        "./config.yaml). Commands that create something print one JSON object on stdout;\n"
        "errors are one line on stderr, exit status 2 for bad usage or configuration, 1\n"
        "otherwise. Reference: docs/API.md (section 5: this command and config.yaml).",
        "  gateway serve                          # init if needed, then HTTP :8080, HTTPS :8443\n"
        "  gateway network create --name acme     # a network and its API key\n"
        "  gateway tokens mint --help             # each command explains itself",
    ),
    "init": CommandHelp(
        "Create what is missing: the CA, the server certificate, the key-encryption key and\n"
        "the store's schema. Never overwrites anything, so it is safe to run again (serve\n"
        "runs it on every start). With --config-dir DIR it first writes an annotated\n"
        "DIR/config.yaml and DIR/policies/default.yaml (both shipped with the package)\n"
        "where they are absent, then uses DIR/config.yaml. Prints {config, ca,\n"
        "server_certificate, kek, created, store, schema_version}; `created` lists what\n"
        "this run made (config and policy included). Configuration keys: docs/API.md,\n"
        "section 5.",
        "  gateway init --config config.yaml\n"
        "  gateway init --config-dir /etc/gateway     # a new installation: config, policy, keys",
    ),
    "serve": CommandHelp(
        "Run init, then serve until SIGTERM or SIGINT (Ctrl-C); then drain in-flight\n"
        "requests and exit 0. SIGHUP reloads config.yaml and the policies (an invalid new\n"
        "config is refused and the old one keeps serving). Logs its pid, the URLs it\n"
        "listens on and, on a first start, what init created.\n\n"
        "Before closing the listeners a drain waits server.drain_grace (5s) for load\n"
        "balancers; set it to 0 to stop at once on Ctrl-C (`make run` does).",
        "  gateway serve --config config.yaml\n"
        "  GATEWAY_SERVER_DRAIN_GRACE=0 gateway serve --log-level debug     # development\n"
        "  gateway serve --workers 2 --log-format json 2>>var/gateway.log",
    ),
    "network": CommandHelp(
        "Networks: each has its API key, a region and its own security settings.",
        "  gateway network create --name acme --region eu\n"
        "  gateway network update --network 5ccf45e1685b3fa75e5fb299 --secure on",
    ),
    "network create": CommandHelp(
        "Create a network and its API key. Prints {networkId, apiKey, region,\n"
        "useSecureAuthentication}.",
        "  gateway network create --name acme\n"
        "  gateway network create --name acme-eu --region eu --secure",
    ),
    "network update": CommandHelp(
        "Turn secure mode or client-certificate pinning (mTLS) on or off; mTLS needs secure\n"
        "mode on. Also the way back in for admins locked out by mTLS. Prints {networkId,\n"
        "useSecureAuthentication, mtlsEnabled}.",
        "  gateway network update --network 5ccf45e1685b3fa75e5fb299 --secure on\n"
        "  gateway network update --network 5ccf45e1685b3fa75e5fb299 --mtls off",
    ),
    "admin": CommandHelp(
        "Console users of a network, and their admin tokens.",
        "  echo 's3cret-pass' | gateway admin create --network ID --username alice \\\n"
        "      --role admin --password-stdin",
    ),
    "admin create": CommandHelp(
        "Create a console user. The password is the first line of standard input and is\n"
        "stored as an scrypt hash. Prints {username, role, networkId}.",
        "  echo 's3cret-pass' | gateway admin create --network 5ccf45e1685b3fa75e5fb299 \\\n"
        "      --username alice --role admin --password-stdin",
    ),
    "admin token": CommandHelp(
        "Issue an admin token for an existing console user (for scripts and tests). The\n"
        "user's previous token keeps working for tokens.admin_rotation_grace. Prints\n"
        "{adminToken, issuedAt, expiresAt}.",
        "  gateway admin token --network 5ccf45e1685b3fa75e5fb299 --username alice",
    ),
    "tokens": CommandHelp(
        "Credentials for load tests, written straight from the store.",
        "  gateway tokens mint --network 5ccf45e1685b3fa75e5fb299 --users 1000 \\\n"
        "      --out var/tokens.csv",
    ),
    "tokens mint": CommandHelp(
        "Sign tokens for the users loadtest-<kind>-0 .. N-1 and record them, with their\n"
        "users and device bindings, as if they had logged in. Writes `userId,token` rows\n"
        "to --out (readable by its owner only: they are live credentials), as CSV with\n"
        "that header or as JSON lines, and prints {count, out}. Progress goes to stderr\n"
        "when it is a terminal. Signing runs in one process per core.",
        "  gateway tokens mint --network 5ccf45e1685b3fa75e5fb299 --users 100000 \\\n"
        "      --out var/tokens.csv\n"
        "  gateway tokens mint --network 5ccf45e1685b3fa75e5fb299 --users 1000 --expired \\\n"
        "      --format jsonl --out var/expired.jsonl",
    ),
    "keys": CommandHelp(
        "The token signing keys every gateway on the store shares.",
        "  gateway keys rotate",
    ),
    "keys rotate": CommandHelp(
        "A new signing key signs from now on, on every running gateway within the change\n"
        "feed's bound; older keys verify until the last token they signed has expired.\n"
        "Prints {kid, algorithm}.",
        "  gateway keys rotate --config config.yaml",
    ),
    "keys revoke": CommandHelp(
        "Take a signing key out of service at once: tokens it signed stop verifying on\n"
        "every running gateway within the feed's bound. Revoking the key that signs makes\n"
        "a new one first, so logins never stop. Prints {kid, revokedAt, signingKid,\n"
        "newSigningKey}.",
        "  gateway keys revoke 9f3c2a71d04b8e65      # the kid from a token's header or the JWKS",
    ),
}
