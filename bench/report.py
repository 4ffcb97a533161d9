"""Helpers for bench/run.sh: parse wrk output, write the results table, read the gateway log.

    report.py port                       print a free TCP port on 127.0.0.1
    report.py table --manifest FILE --out FILE --command CMD --reproduce CMD [--note TEXT]...
    report.py gateway-log FILE           status counts and the non-access log lines, summarised

The manifest is tab-separated, one row per target: slug, label, wrk command, wrk output file.
The row whose slug is `nginx-proxy` is the baseline of the ratio column.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import re
import socket
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BASELINE = "nginx-proxy"

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)$")
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+(\S+)\s*$")
_RPS = re.compile(r"^\s*Requests/sec:\s+([0-9.]+)\s*$")
_TOTAL = re.compile(r"^\s*([0-9]+) requests in (\S+), ")
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+([0-9]+)\s*$")
_SOCKET = re.compile(
    r"^\s*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)\s*$"
)


class WrkParseError(ValueError):
    """The wrk output lacks a figure the table needs."""


def parse_duration(text: str) -> float:
    """wrk's latency figures (`850.00us`, `1.23ms`, `2.00s`, `1.00m`) -> seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise WrkParseError(f"unrecognised duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class WrkResult:
    requests_per_sec: float
    p50: float  # seconds
    p99: float  # seconds
    requests: int = 0
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    def errors_text(self) -> str:
        parts = [f"{self.non_2xx} non-2xx"] if self.non_2xx else []
        parts += [f"{count} {kind}" for kind, count in self.socket_errors.items() if count]
        return ", ".join(parts) if parts else "0"


def parse_wrk(text: str) -> WrkResult:
    """Read the figures of one `wrk --latency` run."""
    percentiles: dict[str, float] = {}
    rps: float | None = None
    requests = non_2xx = 0
    sockets: dict[str, int] = {}
    for line in text.splitlines():
        if m := _PERCENTILE.match(line):
            percentiles[m.group(1)] = parse_duration(m.group(2))
        elif m := _RPS.match(line):
            rps = float(m.group(1))
        elif m := _TOTAL.match(line):
            requests = int(m.group(1))
        elif m := _NON_2XX.match(line):
            non_2xx = int(m.group(1))
        elif m := _SOCKET.match(line):
            kinds = ("connect", "read", "write", "timeout")
            sockets = {kind: int(value) for kind, value in zip(kinds, m.groups(), strict=True)}
    if rps is None:
        raise WrkParseError("no 'Requests/sec:' line (did wrk fail?)")
    missing = [p for p in ("50", "99") if p not in percentiles]
    if missing:
        raise WrkParseError(f"no {'/'.join(missing)}% latency (was wrk run with --latency?)")
    return WrkResult(
        requests_per_sec=rps,
        p50=percentiles["50"],
        p99=percentiles["99"],
        requests=requests,
        non_2xx=non_2xx,
        socket_errors=sockets,
    )


@dataclass(frozen=True)
class Row:
    slug: str
    label: str
    command: str
    result: WrkResult


def read_manifest(path: Path) -> list[Row]:
    rows: list[Row] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise WrkParseError(f"{path}:{number}: expected 4 tab-separated fields")
        slug, label, command, output = fields
        try:
            result = parse_wrk(Path(output).read_text(encoding="utf-8", errors="replace"))
        except WrkParseError as exc:
            raise WrkParseError(f"{label}: {exc}") from None
        rows.append(Row(slug, label, command, result))
    return rows


def _ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def render_table(rows: list[Row]) -> str:
    baseline = next((r.result.requests_per_sec for r in rows if r.slug == BASELINE), None)
    lines = [
        "| target | requests/s | p50 | p99 | ratio to nginx-proxy req/s | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        res = row.result
        ratio = f"{res.requests_per_sec / baseline:.2f}x" if baseline else "n/a"
        lines.append(
            f"| {row.label} | {res.requests_per_sec:,.0f} | {_ms(res.p50)} | {_ms(res.p99)} "
            f"| {ratio} | {res.errors_text()} |"
        )
    return "\n".join(lines)


def render_report(rows: list[Row], command: str, reproduce: str, notes: list[str]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    parts = [
        "# Gateway passthrough benchmark",
        "",
        f"Command: `{command}`",
        "",
        f"Settings: `{reproduce}`",
        "",
        f"Run {now} on {platform.node() or 'unknown host'}, {platform.system()} "
        f"{platform.release()}, {platform.machine()}.",
        "",
        render_table(rows),
        "",
        "wrk runs (each after an unrecorded warm-up with the same settings):",
        "",
        *[f"- {row.label}: `{row.command}`" for row in rows],
    ]
    if notes:
        parts += ["", "Notes:", "", *[f"- {' '.join(note.split())}" for note in notes]]
    return "\n".join(parts) + "\n"


def summarise_gateway_log(path: Path, top: int = 10) -> str:
    """Access-log status counts plus the most frequent other messages of a gateway log."""
    statuses: collections.Counter[str] = collections.Counter()
    messages: collections.Counter[str] = collections.Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if line.strip():
                messages[f"(not JSON) {line.strip()[:200]}"] += 1
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("logger") == "gateway.access":
            statuses[str(entry.get("status"))] += 1
            continue
        text = f"{entry.get('level')} {entry.get('logger')}: {entry.get('message')}"
        exception = entry.get("exception")
        if isinstance(exception, str) and exception.strip():
            text += f" | {exception.strip().splitlines()[-1]}"
        messages[text[:300]] += 1
    out = [f"gateway log {path}:"]
    if statuses:
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        out.append(f"  access-log statuses: {counts}")
    else:
        out.append("  no access-log lines (access log off?)")
    out.append("  other messages (count, text):" if messages else "  no other messages")
    out += [f"  {n:>7}  {text}" for text, n in messages.most_common(top)]
    return "\n".join(out)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("port", help="print a free TCP port on 127.0.0.1")
    table = commands.add_parser("table", help="print and write the results table")
    table.add_argument("--manifest", type=Path, required=True)
    table.add_argument("--out", type=Path, required=True)
    table.add_argument("--command", required=True, help="the command line as invoked")
    table.add_argument("--reproduce", required=True, help="the command with every setting")
    table.add_argument("--note", action="append", default=[])
    log = commands.add_parser("gateway-log", help="summarise a gateway log")
    log.add_argument("file", type=Path)
    args = parser.parse_args(argv)

    if args.command == "port":
        print(free_port())
        return 0
    if args.command == "gateway-log":
        print(summarise_gateway_log(args.file))
        return 0
    try:
        rows = read_manifest(args.manifest)
    except (OSError, WrkParseError) as exc:
        print(f"report.py: {exc}", file=sys.stderr)
        return 1
    report = render_report(rows, args.command, args.reproduce, args.note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
