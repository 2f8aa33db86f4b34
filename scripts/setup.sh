#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install the project into it.
# Usage: scripts/setup.sh [EXTRA]   e.g. scripts/setup.sh test
set -euo pipefail
cd "$(dirname "$0")/.."

extra="${1:-demo}"
venv="${SANDBOX_MAGIC_VENV:-.venv}"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "sandbox_magic needs Python 3.11 or newer ($python is $("$python" --version 2>&1))." >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "Creating the virtual environment in $venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
echo "Installing sandbox_magic[$extra] into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$extra]"
