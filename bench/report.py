"""Helpers for bench/run.sh and bench/tls.sh: parse wrk and ab output, account CPU, write the
table, read gateway logs.

    report.py port                       print a free TCP port on 127.0.0.1
    report.py cpu-busy [SECONDS]         how busy each CPU is now; last line: the busiest, in %
    report.py snapshot --pid server=PID --pid upstream=PID --out FILE
                                         CPU counters of every core and of each process tree
    report.py record --manifest FILE ...  append one measured row (see --help)
    report.py table --manifest FILE --out FILE --command CMD --reproduce CMD
                    [--title TEXT] [--ratio-header TEXT] [--ratio-to SLUG=HEADER]...
                    [--note TEXT]... [--appendix FILE]...
    report.py gateway-log FILE           status counts and the other log lines, summarised
    report.py jwks-pem --jwks FILE --token JWT --out FILE
                                         the PEM public key of the JWKS key that signed JWT;
                                         prints its kid and algorithm

The manifest holds one JSON object per measured target: its load command and output (wrk,
or ApacheBench with `record --tool ab`), the load tool's CPU time, the cores of the server
(one, or several: `--server-core 0,1`), the load tool and the upstream, and the CPU
snapshots taken just before and after the measured run: the server's CPU time per request
comes from them, and CPU time nobody in the benchmark accounts for is reported. The row
whose slug is `nginx-proxy` is the baseline of the ratio column, unless a row was recorded
with `--baseline SLUG` (each gateway TLS row against its nginx TLS row); `table --ratio-to`
adds columns with other baselines. The ratios the project is held to (`TARGETS`) follow
the table when both of their rows ran.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import platform
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BASELINE = "nginx-proxy"
OTHER_LOAD_WARNING = 10.0  # % of a core used outside the benchmark, or stolen, or idle


@dataclass(frozen=True)
class Target:
    """A ratio of two rows' requests/s the project is held to: at least `minimum`."""

    name: str
    numerator: str  # slug
    denominator: str  # slug
    minimum: float


TARGETS = (
    Target("token-checked-warm / gateway-passthrough", "gateway-token-warm", "gateway", 0.85),
    Target("token-checked-warm / haproxy-jwt", "gateway-token-warm", "haproxy-jwt", 1.5),
    Target("token-checked-warm / aiohttp-floor", "gateway-token-warm", "aiohttp-floor", 3.0),
    Target("gateway-passthrough / nginx-proxy", "gateway", "nginx-proxy", 0.3),
)

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)$")
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+(\S+)\s*$")
_RPS = re.compile(r"^\s*Requests/sec:\s+([0-9.]+)\s*$")
_TOTAL = re.compile(r"^\s*([0-9]+) requests in (\S+), ")
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+([0-9]+)\s*$")
_SOCKET = re.compile(
    r"^\s*Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)\s*$"
)


class ReportError(ValueError):
    """A wrk output, manifest or snapshot lacks what the table needs."""


# --- wrk -------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """wrk's latency figures (`850.00us`, `1.23ms`, `2.00s`, `1.00m`) -> seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ReportError(f"unrecognised duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class WrkResult:
    requests_per_sec: float
    p50: float  # seconds
    p99: float  # seconds
    requests: int = 0
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    silent_runs: int = 0  # runs that completed no request at all (a stalled server)

    @property
    def error_count(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values()) + self.silent_runs

    def errors_text(self) -> str:
        parts = [f"{self.silent_runs} run(s) without a response"] if self.silent_runs else []
        parts += [f"{self.non_2xx} non-2xx"] if self.non_2xx else []
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
        raise ReportError("no 'Requests/sec:' line (did wrk fail?)")
    missing = [p for p in ("50", "99") if p not in percentiles]
    if missing:
        raise ReportError(f"no {'/'.join(missing)}% latency (was wrk run with --latency?)")
    return WrkResult(
        requests_per_sec=rps,
        p50=percentiles["50"],
        p99=percentiles["99"],
        requests=requests,
        non_2xx=non_2xx,
        socket_errors=sockets,
        silent_runs=int(requests == 0),
    )


_AB_RPS = re.compile(r"^Requests per second:\s+([0-9.]+)\s")
_AB_COMPLETE = re.compile(r"^Complete requests:\s+([0-9]+)\s*$")
_AB_COUNTS = re.compile(r"^(Failed requests|Non-2xx responses|Write errors):\s+([0-9]+)\s*$")
_AB_PERCENTILE = re.compile(r"^\s*(50|99)%\s+([0-9]+)\s*$")


def parse_ab(text: str) -> WrkResult:
    """Read the figures of one ApacheBench run (percentiles in whole milliseconds).

    `Failed requests` (connect, receive, length, exceptions) count as errors, under the
    name `failed`; `Write errors` as `write`.
    """
    percentiles: dict[str, float] = {}
    rps: float | None = None
    requests = 0
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if m := _AB_PERCENTILE.match(line):
            percentiles[m.group(1)] = int(m.group(2)) / 1000
        elif m := _AB_RPS.match(line):
            rps = float(m.group(1))
        elif m := _AB_COMPLETE.match(line):
            requests = int(m.group(1))
        elif m := _AB_COUNTS.match(line):
            counts[m.group(1)] = int(m.group(2))
    if rps is None:
        raise ReportError("no 'Requests per second:' line (did ab fail?)")
    missing = [p for p in ("50", "99") if p not in percentiles]
    if missing:
        raise ReportError(f"no {'/'.join(missing)}% latency (was ab run with -d?)")
    return WrkResult(
        requests_per_sec=rps,
        p50=percentiles["50"],
        p99=percentiles["99"],
        requests=requests,
        non_2xx=counts.get("Non-2xx responses", 0),
        socket_errors={
            "failed": counts.get("Failed requests", 0),
            "write": counts.get("Write errors", 0),
        },
        silent_runs=int(requests == 0),
    )


PARSERS = {"wrk": parse_wrk, "ab": parse_ab}


# --- CPU accounting --------------------------------------------------------------------


def core_counters() -> dict[str, list[int]]:
    """cpuN -> jiffies: user nice system idle iowait irq softirq steal."""
    cores: dict[str, list[int]] = {}
    for line in Path("/proc/stat").read_text(encoding="ascii").splitlines():
        name, *values = line.split()
        if re.fullmatch(r"cpu[0-9]+", name):
            cores[name] = [int(v) for v in values[:8]]
    return cores


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return text[text.rfind(")") + 2 :].split()


def tree_jiffies(root: int) -> int:
    """utime + stime of `root` and every live descendant (e.g. nginx's workers)."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        # After the name: state(0) ppid(1) ... utime(11) stime(12).
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = int(fields[11]) + int(fields[12])
    members = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in members and pid not in members:
                members.add(pid)
                grew = True
    return sum(times.get(pid, 0) for pid in members)


def snapshot(pids: dict[str, int]) -> dict[str, Any]:
    """Counters of every core and, per name, of a process with its descendants."""
    return {
        "cores": core_counters(),
        "trees": {name: tree_jiffies(pid) for name, pid in pids.items()},
        "pids": pids,
    }


Cores = tuple[int, ...]


def parse_cores(value: object) -> Cores:
    """A core (`1`) or a `taskset -c` list of cores (`0,1`) -> the cores, sorted."""
    try:
        cores = tuple(sorted({int(part) for part in str(value).split(",")}))
    except ValueError:
        raise ReportError(f"bad core list {value!r}") from None
    if not cores or cores[0] < 0:
        raise ReportError(f"bad core list {value!r}")
    return cores


def cores_text(cores: Cores) -> str:
    """`CPU 1`, or `CPUs 0+1` for a group of cores accounted together."""
    return f"CPU {cores[0]}" if len(cores) == 1 else f"CPUs {'+'.join(map(str, cores))}"


@dataclass(frozen=True)
class CpuUse:
    """CPU use over one measured run, by group of cores: each core alone, except the cores
    of a server pinned to several, which are accounted together (their split is unknown)."""

    server: float  # % of its cores' time used by the server under test (and its children)
    server_seconds: float  # user + system seconds of the server (and its children)
    server_cores: Cores
    others: dict[Cores, float]  # cores -> % used by processes outside the benchmark
    steal: dict[Cores, float]  # cores -> % taken by the hypervisor
    idle: dict[Cores, float]  # cores -> % idle

    def disturbed(self, cores: Cores, taken: dict[Cores, float]) -> bool:
        """Was time the benchmark needed taken? Off the server's cores: only if they were full."""
        needed = cores == self.server_cores or self.idle[cores] < OTHER_LOAD_WARNING
        return needed and taken[cores] >= OTHER_LOAD_WARNING

    def detail(self) -> str:
        groups = sorted(self.others)
        outside = ", ".join(f"{cores_text(c)} {self.others[c]:.0f}%" for c in groups)
        steal = ", ".join(f"{cores_text(c)} {self.steal[c]:.0f}%" for c in groups)
        idle = ", ".join(f"{cores_text(c)} {self.idle[c]:.0f}%" for c in groups)
        return f"outside load: {outside}; steal: {steal}; idle: {idle}"


def _delta(before: dict[str, Any], after: dict[str, Any], cores: Cores) -> list[int]:
    """The jiffies of /proc/stat's columns spent by `cores` together between two snapshots."""
    total = [0] * 8
    for core in cores:
        name = f"cpu{core}"
        for i, (a, b) in enumerate(zip(before["cores"][name], after["cores"][name], strict=True)):
            total[i] += b - a
    return total


def cpu_use(entry: dict[str, Any]) -> CpuUse:
    """Who used the cores of one row: the server, wrk, the upstream nginx, or others."""
    try:
        before, after = _read_json(entry["before"]), _read_json(entry["after"])
        trees = {name: after["trees"][name] - before["trees"][name] for name in before["trees"]}
        pids: dict[str, int] = before["pids"]
        server_cores = parse_cores(entry["server_core"])
        wrk_core, upstream_core = int(entry["wrk_core"]), int(entry["upstream_core"])
        ticks = os.sysconf("SC_CLK_TCK")
        wrk = float(entry["wrk_cpu_seconds"]) * ticks

        def group(core: int) -> Cores:
            return server_cores if core in server_cores else (core,)

        known: dict[Cores, float] = collections.defaultdict(float)
        known[server_cores] += trees["server"]
        known[group(wrk_core)] += wrk
        if pids.get("upstream") != pids.get("server"):
            known[group(upstream_core)] += trees["upstream"]
        deltas = {cores: _delta(before, after, cores) for cores in known}
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"CPU accounting: missing or bad {exc}") from None
    others: dict[Cores, float] = {}
    steal: dict[Cores, float] = {}
    idle: dict[Cores, float] = {}
    for cores, delta in deltas.items():
        total = max(sum(delta), 1)
        busy = delta[0] + delta[1] + delta[2]
        others[cores] = max(0.0, 100.0 * (busy - known[cores]) / total)
        steal[cores] = 100.0 * delta[7] / total
        idle[cores] = 100.0 * (delta[3] + delta[4]) / total
    return CpuUse(
        server=100.0 * trees["server"] / max(sum(deltas[server_cores]), 1),
        server_seconds=trees["server"] / ticks,
        server_cores=server_cores,
        others=others,
        steal=steal,
        idle=idle,
    )


def cpu_busy(seconds: float) -> dict[str, float]:
    """Percent busy per CPU over the next `seconds` (iowait counts as idle)."""
    before = core_counters()
    time.sleep(seconds)
    busy: dict[str, float] = {}
    for name, end in core_counters().items():
        delta = [b - a for a, b in zip(before.get(name, end), end, strict=True)]
        busy[name] = 100.0 * (sum(delta) - delta[3] - delta[4]) / max(sum(delta), 1)
    return busy


# --- the table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    slug: str
    label: str
    command: str
    result: WrkResult
    cpu: CpuUse
    runs: int = 1
    errors: str = ""  # over every run of the target; the result's own when empty
    tool: str = "wrk"
    baseline: str = BASELINE  # slug of the row the ratio column divides by


def best_runs(runs: list[Row]) -> list[Row]:
    """Per target (first-seen order), its run with the most requests/s; errors of all runs."""
    by_slug: dict[str, list[Row]] = {}
    for run in runs:
        by_slug.setdefault(run.slug, []).append(run)
    rows = []
    for group in by_slug.values():
        best = max(group, key=lambda run: run.result.requests_per_sec)
        total = WrkResult(
            0.0,
            0.0,
            0.0,
            non_2xx=sum(run.result.non_2xx for run in group),
            silent_runs=sum(run.result.silent_runs for run in group),
        )
        for run in group:
            for kind, count in run.result.socket_errors.items():
                total.socket_errors[kind] = total.socket_errors.get(kind, 0) + count
        rows.append(dataclasses.replace(best, runs=len(group), errors=total.errors_text()))
    return rows


def _read_json(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: not a JSON object")
    return data


def read_manifest(path: Path) -> list[Row]:
    """One JSON object per line, as written by `record`."""
    rows: list[Row] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            label = str(entry["label"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ReportError(f"{path}:{number}: bad manifest line ({exc})") from None
        try:
            tool = str(entry.get("tool") or "wrk")
            if tool not in PARSERS:
                raise ReportError(f"unknown load tool {tool!r}")
            text = Path(entry["wrk_output"]).read_text(encoding="utf-8", errors="replace")
            result = PARSERS[tool](text)
            cpu = cpu_use(entry)
            row = Row(
                str(entry["slug"]),
                label,
                str(entry["command"]),
                result,
                cpu,
                tool=tool,
                baseline=str(entry.get("baseline") or BASELINE),
            )
        except (ReportError, OSError, KeyError, ValueError) as exc:
            raise ReportError(f"{label}: {exc}") from None
        rows.append(row)
    return rows


_TIMES = re.compile(r"([0-9]+)m([0-9.]+)s")


def children_cpu_seconds(times_output: str) -> float:
    """User + system seconds of reaped children, from the second line of bash's `times`."""
    lines = times_output.strip().splitlines()
    values = _TIMES.findall(lines[-1]) if lines else []
    if len(values) != 2:
        raise ReportError(f"unexpected `times` output {times_output!r}")
    return sum(int(minutes) * 60 + float(seconds) for minutes, seconds in values)


def record(args: argparse.Namespace) -> None:
    """Append one row to the manifest."""
    before, after = (
        children_cpu_seconds(path.read_text(encoding="ascii")) for path in args.wrk_times
    )
    entry = {
        "slug": args.slug,
        "label": args.label,
        "command": args.wrk_command,
        "wrk_output": str(args.wrk_output),
        "wrk_cpu_seconds": max(after - before, 0.0),
        "server_core": args.server_core,
        "wrk_core": args.wrk_core,
        "upstream_core": args.upstream_core,
        "before": str(args.before),
        "after": str(args.after),
    }
    if args.tool != "wrk":
        entry["tool"] = args.tool
    if args.baseline:
        entry["baseline"] = args.baseline
    with args.manifest.open("a", encoding="utf-8") as manifest:
        manifest.write(json.dumps(entry) + "\n")


def _ms(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


DEFAULT_RATIO_HEADER = "ratio to nginx-proxy req/s"


def _ratio(value: float, baseline: float | None) -> str:
    return f"{value / baseline:.2f}x" if baseline else "n/a"


def cpu_per_request(row: Row) -> str:
    """Microseconds of the server's CPU time (user + system, children too) per request."""
    if not row.result.requests:
        return "n/a"
    return f"{row.cpu.server_seconds * 1e6 / row.result.requests:,.0f}"


def render_table(
    rows: list[Row],
    ratio_header: str = DEFAULT_RATIO_HEADER,
    ratios_to: list[tuple[str, str]] | None = None,
) -> str:
    """The results table. `ratios_to`: (slug, header) of more ratio columns, each row's
    requests/s over that row's; a column whose row was not measured is left out."""
    rates = {r.slug: r.result.requests_per_sec for r in rows}
    extra = [(slug, header) for slug, header in ratios_to or [] if rates.get(slug)]
    headers = ["target", "requests/s", "p50", "p99", ratio_header]
    headers += [header for _, header in extra]
    headers += ["errors", "server CPU", "server CPU us/request"]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|---|" + "---:|" * (len(headers) - 1),
    ]
    for row in rows:
        res = row.result
        cells = [
            row.label,
            f"{res.requests_per_sec:,.0f}",
            _ms(res.p50),
            _ms(res.p99),
            _ratio(res.requests_per_sec, rates.get(row.baseline)),
            *(_ratio(res.requests_per_sec, rates[slug]) for slug, _ in extra),
            row.errors or res.errors_text(),
            f"{row.cpu.server:.0f}% of {cores_text(row.cpu.server_cores)}",
            cpu_per_request(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_targets(rows: list[Row]) -> list[str]:
    """The TARGETS whose two rows were measured, as a table (no lines if none was)."""
    rates = {row.slug: row.result.requests_per_sec for row in rows}
    labels = {row.slug: row.label for row in rows}
    lines = []
    for target in TARGETS:
        numerator, denominator = rates.get(target.numerator), rates.get(target.denominator)
        if numerator is None or not denominator:
            continue
        ratio = numerator / denominator
        lines.append(
            f"| {target.name} | {labels[target.numerator]} / {labels[target.denominator]} "
            f"| {ratio:.2f} | >= {target.minimum:.2f} "
            f"| {'met' if ratio >= target.minimum else 'missed'} |"
        )
    if not lines:
        return []
    return [
        "Ratios the project is held to (requests/s of this run's rows):",
        "",
        "| ratio | rows | value | target | |",
        "|---|---|---:|---:|---|",
        *lines,
        "",
    ]


def load_notes(rows: list[Row]) -> list[str]:
    """Rows during which something else ran on the server's core."""
    notes = []
    for row in rows:
        busy = [
            f"processes outside the benchmark used {share:.0f}% of {cores_text(core)}"
            for core, share in sorted(row.cpu.others.items())
            if row.cpu.disturbed(core, row.cpu.others)
        ] + [
            f"the hypervisor took (steal) {share:.0f}% of {cores_text(core)}"
            for core, share in sorted(row.cpu.steal.items())
            if row.cpu.disturbed(core, row.cpu.steal)
        ]
        if busy:
            notes.append(f"During '{row.label}' {' and '.join(busy)}: that row is likely low.")
    return notes


def render_report(
    rows: list[Row],
    command: str,
    reproduce: str,
    notes: list[str],
    appendices: list[Path],
    title: str = "Gateway proxy benchmark",
    ratio_header: str = DEFAULT_RATIO_HEADER,
    ratios_to: list[tuple[str, str]] | None = None,
) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    tools = " and ".join(dict.fromkeys(row.tool for row in rows)) or "wrk"
    parts = [
        f"# {title}",
        "",
        f"Command: `{command}`",
        "",
        f"Settings: `{reproduce}`",
        "",
        f"Run {now} on {platform.node() or 'unknown host'}, {platform.system()} "
        f"{platform.release()}, {platform.machine()}, {os.cpu_count()} CPUs.",
        "",
        render_table(rows, ratio_header, ratios_to),
        "",
        *render_targets(rows),
        *(
            [
                f"Each row is the best of {rows[0].runs} measured runs (most requests/s); its "
                "errors are those of all runs.",
                "",
            ]
            if rows and rows[0].runs > 1
            else []
        ),
        "`server CPU`: user + system time of the server under test (all its processes) over",
        "the measured run, as a share of the core it is pinned to (of all its cores together",
        "when it has several: 100% is every one of them busy); softirq time (loopback",
        "networking) is not in it. `server CPU us/request`: that time in microseconds over the",
        "requests the load tool completed in the run (from `/proc/PID/stat` before and after,",
        "in clock ticks of 10 ms: short runs round it).",
        "",
        *(
            [
                "wrk runs (each after an unrecorded warm-up with the same settings), with the "
                "CPU time",
                "of their cores used outside the benchmark (neither the server, wrk nor the "
                "upstream),",
                "stolen by the hypervisor, and left idle:",
            ]
            if tools == "wrk"
            else [
                f"{tools} runs (each after an unrecorded warm-up with the same settings), with "
                "the CPU",
                "time of their cores used outside the benchmark (neither the server, the load "
                "tool nor",
                "the upstream), stolen by the hypervisor, and left idle:",
            ]
        ),
        "",
        *[f"- {row.label}: `{row.command}` ({row.cpu.detail()})" for row in rows],
    ]
    notes = load_notes(rows) + notes
    if notes:
        parts += ["", "Notes:", "", *[f"- {' '.join(note.split())}" for note in notes]]
    for appendix in appendices:
        text = appendix.read_text(encoding="utf-8", errors="replace").rstrip()
        parts += ["", "```", text, "```"]
    return "\n".join(parts) + "\n"


# --- the gateway's log -----------------------------------------------------------------


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
        # Access lines: fields only; older versions logged them as `gateway.access`.
        if entry.get("logger") == "gateway.access" or (
            "logger" not in entry and "status" in entry and "requestId" in entry
        ):
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


# --- the signing key ---------------------------------------------------------------------


def jwks_pem(jwks: dict[str, Any], token: str) -> tuple[str, str, bytes]:
    """(kid, algorithm, PEM public key) of the JWKS key named by the token's `kid`."""
    import jwt
    from cryptography.hazmat.primitives import serialization

    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise ReportError(f"token: {exc}") from None
    keys = jwks.get("keys")
    found = [
        key
        for key in (keys if isinstance(keys, list) else [])
        if isinstance(key, dict) and key.get("kid") == kid
    ]
    if len(found) != 1:
        raise ReportError(f"JWKS: {len(found)} keys with the token's kid {kid!r}")
    try:
        jwk = jwt.PyJWK.from_dict(found[0])
    except jwt.PyJWTError as exc:
        raise ReportError(f"JWKS key {kid!r}: {exc}") from None
    pem: bytes = jwk.key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return str(kid), str(found[0].get("alg") or jwk.algorithm_name), pem


# --- command line ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("port", help="print a free TCP port on 127.0.0.1")
    busy = commands.add_parser("cpu-busy", help="print `cpuN=PERCENT` per CPU, then the max")
    busy.add_argument("seconds", type=float, nargs="?", default=1.0)
    snap = commands.add_parser("snapshot", help="write CPU counters for `record`")
    snap.add_argument(
        "--pid",
        action="append",
        required=True,
        metavar="NAME=PID",
        help="server=PID and upstream=PID",
    )
    snap.add_argument("--out", type=Path, required=True)
    rec = commands.add_parser("record", help="append a measured row to the manifest")
    rec.add_argument("--manifest", type=Path, required=True)
    rec.add_argument("--slug", required=True)
    rec.add_argument("--label", required=True)
    rec.add_argument(
        "--tool", choices=sorted(PARSERS), default="wrk", help="the load tool (default wrk)"
    )
    rec.add_argument(
        "--baseline", default=None, help=f"slug of the ratio's denominator (default {BASELINE})"
    )
    rec.add_argument("--wrk-command", "--load-command", dest="wrk_command", required=True)
    rec.add_argument("--wrk-output", "--load-output", dest="wrk_output", type=Path, required=True)
    rec.add_argument(
        "--wrk-times",
        "--load-times",
        dest="wrk_times",
        type=Path,
        nargs=2,
        required=True,
        metavar=("BEFORE", "AFTER"),
        help="bash `times` output before and after the load tool ran",
    )
    rec.add_argument(
        "--server-core",
        required=True,
        help="the server's core, or its cores as `taskset -c` takes them (0,1)",
    )
    rec.add_argument("--wrk-core", type=int, required=True)
    rec.add_argument("--upstream-core", type=int, required=True)
    rec.add_argument("--before", type=Path, required=True)
    rec.add_argument("--after", type=Path, required=True)
    table = commands.add_parser("table", help="print and write the results table")
    table.add_argument("--manifest", type=Path, required=True)
    table.add_argument("--out", type=Path, required=True)
    table.add_argument("--command", required=True, help="the command line as invoked")
    table.add_argument("--reproduce", required=True, help="the command with every setting")
    table.add_argument("--title", default="Gateway proxy benchmark")
    table.add_argument("--ratio-header", default=DEFAULT_RATIO_HEADER)
    table.add_argument(
        "--ratio-to",
        action="append",
        default=[],
        metavar="SLUG=HEADER",
        help="one more ratio column: requests/s over SLUG's (left out when SLUG did not run)",
    )
    table.add_argument("--note", action="append", default=[])
    table.add_argument(
        "--appendix",
        type=Path,
        action="append",
        default=[],
        help="a text file to add verbatim at the end",
    )
    log = commands.add_parser("gateway-log", help="summarise a gateway log")
    log.add_argument("file", type=Path)
    pem = commands.add_parser(
        "jwks-pem", help="write the PEM public key that verifies a token; print `KID ALG`"
    )
    pem.add_argument("--jwks", type=Path, required=True, help="a JWKS document (JSON)")
    pem.add_argument("--token", required=True, help="a JWT signed by one of its keys")
    pem.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "port":
        print(free_port())
        return 0
    if args.command == "cpu-busy":
        figures = cpu_busy(args.seconds)
        print(" ".join(f"{name}={value:.0f}%" for name, value in figures.items()))
        print(f"{max(figures.values(), default=0.0):.0f}")
        return 0
    if args.command == "snapshot":
        pids = dict(item.split("=", 1) for item in args.pid)
        counters = snapshot({name: int(pid) for name, pid in pids.items()})
        args.out.write_text(json.dumps(counters), encoding="utf-8")
        return 0
    if args.command == "record":
        try:
            record(args)
        except (OSError, ReportError) as exc:
            print(f"report.py: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "gateway-log":
        print(summarise_gateway_log(args.file))
        return 0
    if args.command == "jwks-pem":
        try:
            kid, algorithm, key = jwks_pem(_read_json(str(args.jwks)), args.token)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_bytes(key)
        except (OSError, ReportError) as exc:
            print(f"report.py: {exc}", file=sys.stderr)
            return 1
        print(kid, algorithm)
        return 0
    try:
        rows = best_runs(read_manifest(args.manifest))
    except (OSError, ReportError) as exc:
        print(f"report.py: {exc}", file=sys.stderr)
        return 1
    try:
        report = render_report(
            rows,
            args.command,
            args.reproduce,
            args.note,
            args.appendix,
            title=args.title,
            ratio_header=args.ratio_header,
            ratios_to=[
                (slug, header)
                for slug, _, header in (item.partition("=") for item in args.ratio_to)
            ],
        )
    except OSError as exc:
        print(f"report.py: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
