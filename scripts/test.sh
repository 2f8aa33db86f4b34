#!/usr/bin/env bash
# Fresh machine to a full test run: set up, install Chromium for the browser test,
# then lint, type-check and run the whole suite. Any failure fails the script,
# including a pytest run that collected no tests.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh test || exit 1
venv="${SANDBOX_MAGIC_VENV:-.venv}"

if ! command -v chromium >/dev/null 2>&1; then
  echo "Installing Chromium (Debian package) for the browser test"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq && $sudo_cmd env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq chromium >/dev/null || { echo "Could not install chromium" >&2; exit 1; }
fi

echo "== ruff"
"$venv/bin/ruff" check sandbox_magic tests benchmarks || exit 1
"$venv/bin/ruff" format --check sandbox_magic tests benchmarks || exit 1
echo "== mypy (strict, package)"
"$venv/bin/mypy" || exit 1
# Playwright's synchronous API leaves event-loop state behind in its process, so the
# browser tests get a pytest process of their own, after everything else.
run_pytest() {
  "$venv/bin/python" -m pytest "$@"
  local status=$?
  if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests for: $*  (that is a failure)" >&2
    return 1
  fi
  return "$status"
}

echo "== pytest (all but the browser test)"
run_pytest -m "not browser" "$@"
main_status=$?
echo "== pytest (browser test: JupyterLab in headless Chromium)"
run_pytest -m browser "$@"
browser_status=$?
if [ "$main_status" -ne 0 ] || [ "$browser_status" -ne 0 ]; then
  echo "Tests failed (main suite: $main_status, browser: $browser_status)." >&2
  exit 1
fi
echo "All checks passed."
