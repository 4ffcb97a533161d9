"""`gateway` with the per-request access log switched off, for the benchmark only.

The gateway has no setting for this: the front middleware writes one JSON line per
request whenever the `gateway.access` logger is enabled for INFO. Raising that logger's
level before the CLI starts skips the line (and the work of building it); everything
else, including the other log messages, is the unchanged `gateway` command.

    .venv/bin/python bench/gateway_quiet.py serve --config FILE
"""

from __future__ import annotations

import logging
import sys

from gateway.cli import main

if __name__ == "__main__":
    logging.getLogger("gateway.access").setLevel(logging.WARNING)
    sys.exit(main())
