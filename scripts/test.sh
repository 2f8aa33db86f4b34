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

# The local server confines sandboxes with bubblewrap (and gives those created with
# internet_access a network through slirp4netns); the suite runs with isolation on.
if ! command -v bwrap >/dev/null 2>&1 || ! command -v slirp4netns >/dev/null 2>&1; then
  echo "Installing bubblewrap and slirp4netns (Debian packages) for sandbox isolation"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq && $sudo_cmd env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq bubblewrap slirp4netns util-linux >/dev/null \
    || { echo "Could not install bubblewrap and slirp4netns" >&2; exit 1; }
fi

echo "== ruff"
"$venv/bin/ruff" check sandbox_magic tests benchmarks || exit 1
"$venv/bin/ruff" format --check sandbox_magic tests benchmarks || exit 1
echo "== mypy (strict, package)"
"$venv/bin/mypy" || exit 1
# Playwright's synchronous API leaves event-loop state behind in its process, so the
# browser tests get a pytest process of their own, after everything else.
echo "== the built wheel runs the demo from an empty folder"
bash scripts/wheel_demo.sh || exit 1
# The whole suite runs with isolation on (bubblewrap, as the local server's default
# picks wherever it works); the server and classroom suites run again with
# --isolation none, which keeps that path tested.
echo "== pytest (all but the browser test, --isolation bwrap)"
SANDBOX_MAGIC_ISOLATION=bwrap "$venv/bin/python" -m pytest -m "not browser" "$@"
main_status=$?
echo "== pytest (server and classroom suites, --isolation none)"
SANDBOX_MAGIC_ISOLATION=none "$venv/bin/python" -m pytest tests/server tests/classroom -m "not browser" "$@"
none_status=$?
# The service SDK's own code-interpreter integration suites (0.1.9 and 1.0.3, each in a
# venv of its own) against a local server started with its default options.
sdk_status=0
if [ "$#" -eq 0 ]; then
  echo "== SDK integration suites against the local server"
  "$venv/bin/python" scripts/sdk_suites.py
  sdk_status=$?
fi
echo "== pytest (browser test: JupyterLab in headless Chromium)"
"$venv/bin/python" -m pytest -m browser "$@"
browser_status=$?

# pytest exits 5 when it collected no tests. With no filter given, that is a failure
# of either half; with a filter (e.g. -k magic) only both halves being empty is.
failed=0
for status in "$main_status" "$none_status" "$browser_status"; do
  if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then failed=1; fi
  if [ "$status" -eq 5 ] && [ "$#" -eq 0 ]; then failed=1; fi
done
if [ "$main_status" -eq 5 ] && [ "$browser_status" -eq 5 ]; then failed=1; fi
if [ "$sdk_status" -ne 0 ]; then failed=1; fi
if [ "$failed" -ne 0 ]; then
  echo "Tests failed or none ran (main suite exit $main_status, unconfined server suite" \
    "exit $none_status, browser exit $browser_status, SDK suites exit $sdk_status)." >&2
  exit 1
fi
echo "All checks passed."
