"""The reliability scripts live in bench/reliability/ and import each other by module name
(`rel_common`), as they do when run as scripts; make that folder importable here."""

from __future__ import annotations

import sys

from gateway.testing.support import REPO

SCRIPTS = str(REPO / "bench" / "reliability")
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)
