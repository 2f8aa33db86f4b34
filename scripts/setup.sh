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
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian and Ubuntu ship venv support separately (python3-venv).
    rm -rf "$venv"
    if command -v apt-get >/dev/null 2>&1; then
      echo "Installing Debian's python3-venv"
      sudo_cmd=""
      if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
      $sudo_cmd apt-get update -qq
      $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    "$python" -m venv "$venv"
  fi
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
echo "Installing sandbox_magic[$extra] into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[$extra]"
if [ "$extra" = "test" ]; then
  bash scripts/install_languages.sh
fi
