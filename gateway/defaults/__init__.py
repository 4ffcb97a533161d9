"""The files `gateway init --config-dir DIR` writes: an annotated config.yaml and the
default policy, shipped inside the package so that an installed gateway needs no source
checkout. `policies/default.yaml` here is a copy of the repository's
(tests/test_packaging.py keeps the two identical)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

CONFIG = "config.yaml"
POLICY = "policies/default.yaml"
# Under the names `gateway init` reports them by, in the order they are written.
FILES = {"config": CONFIG, "policy": POLICY}


def default_file(name: str) -> bytes:
    """A shipped file's bytes, `name` relative to this package (`policies/default.yaml`)."""
    return resources.files(__package__).joinpath(*name.split("/")).read_bytes()


def write_defaults(folder: Path) -> dict[str, Path]:
    """Write each shipped file that is absent from `folder`; never overwrite one, even
    one that appears meanwhile. Returns what was written, by name."""
    written: dict[str, Path] = {}
    for name, relative in FILES.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as handle:
            handle.write(default_file(relative))
        written[name] = target
    return written
