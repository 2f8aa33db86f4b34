#!/usr/bin/env bash
# Build the wheel, install it (with the demo extra) into a fresh virtual environment and
# run `sandbox-magic demo` in an empty folder: the demo must work from the installed
# package alone, not from the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SANDBOX_MAGIC_VENV:-.venv}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$venv/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$work/dist" .
wheel="$(ls "$work"/dist/sandbox_magic-*.whl)"
"$venv/bin/python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${wheel}[demo]"

mkdir "$work/empty"
cd "$work/empty"
"$work/venv/bin/sandbox-magic" demo
test -s quickstart.executed.ipynb
test -s quickstart.executed.html
echo "The installed wheel ran the demo: $(ls)"
