"""The compiled build: which modules it compiles, and whether this process runs them.

With GATEWAY_COMPILE=1, setup.py compiles these modules to C extensions with mypyc
(mypy's compiler, from the type annotations `make test` checks). They are the data
plane's request path: a proxied request is a few hundred Python calls of glue between
C parsers and sockets, and compiled that glue costs about half the CPU (README
"Benchmarks", docs/DATAPLANE.md "The compiled build"). The same sources run
interpreted without it. Modules that only run at start-up or on the control plane stay
interpreted: compiling them would only lengthen the build.
"""

from __future__ import annotations

import importlib.util

# In the order a proxied request meets them.
COMPILED_MODULES = (
    "gateway.dataplane.plane",
    "gateway.dataplane.connection",
    "gateway.dataplane.request",
    "gateway.dataplane.admission",
    "gateway.auth.decision",
    "gateway.auth.state",
    "gateway.auth.claims",
    "gateway.policy.model",
    "gateway.auth.gate",
    "gateway.auth.tokens",
    "gateway.auth.principal",
    "gateway.push",
    "gateway.proxy.headers",
    "gateway.proxy.deadline",
    "gateway.proxy.upstreams",
    "gateway.proxy.outbound",
    "gateway.proxy.upstream_client",
    "gateway.proxy.write_batch",
    "gateway.tracing.context",
    "gateway.tracing.request",
    "gateway.accesslog",
    "gateway.metrics",
)


def source_paths() -> list[str]:
    """The modules' source files, relative to the project root (for mypyc)."""
    return [name.replace(".", "/") + ".py" for name in COMPILED_MODULES]


def compiled_modules() -> list[str]:
    """Those of COMPILED_MODULES this process would import from an extension module."""
    found = []
    for name in COMPILED_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None and not spec.origin.endswith(".py"):
            found.append(name)
    return found


def build_kind() -> str:
    """'compiled' (every module), 'interpreted' (none) or 'partly compiled (k of n)'."""
    compiled = len(compiled_modules())
    if compiled == len(COMPILED_MODULES):
        return "compiled"
    if compiled == 0:
        return "interpreted"
    return f"partly compiled ({compiled} of {len(COMPILED_MODULES)} modules)"
