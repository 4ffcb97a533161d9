#!/usr/bin/env bash
# compiled_tree.sh DEST [PYTHON]: a copy of the package sources in DEST with the compiled
# build (setup.py, gateway/build.py) made in place, for a process to run with
# PYTHONPATH=DEST (and for the tests to run from: tests/ beside gateway/). Tracked files
# only; nothing is written to the working tree. PYTHON: a Python with the `compile`
# extra installed (default: the project's .venv).
set -euo pipefail
dest=${1:?usage: compiled_tree.sh DEST [PYTHON]}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${2:-$root/.venv/bin/python}
rm -rf "$dest"
mkdir -p "$dest"
git -C "$root" ls-files -z --cached --others --exclude-standard | \
    tar -C "$root" --null --no-recursion --ignore-failed-read -T - -cf - | tar -xf - -C "$dest"
cd "$dest"
GATEWAY_COMPILE=1 "$python" setup.py --quiet build_ext --inplace >build.log 2>&1 || {
    tail -n 40 build.log >&2
    echo "compiled_tree.sh: the compiled build failed (log: $dest/build.log)" >&2
    exit 1
}
PYTHONPATH=$dest "$python" -c \
    'import sys; from gateway.build import build_kind; k = build_kind(); print(k); sys.exit(k != "compiled")'
