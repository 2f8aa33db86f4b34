#!/usr/bin/env bash
# Fresh machine to a rendered quickstart: set up, then execute notebooks/quickstart.ipynb
# headless against the embedded local sandbox server and write its HTML rendering.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
exec "${SANDBOX_MAGIC_VENV:-.venv}/bin/sandbox-magic" demo --output-dir notebooks "$@"
