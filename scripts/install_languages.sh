#!/usr/bin/env bash
# The Debian side of the local server's languages: R with IRkernel, and a JDK (jshell).
# The Python side (bash_kernel, deno) comes with `pip install sandbox-magic[languages]`.
# Each language is optional at run time; the tests need them all.
set -euo pipefail

missing=()
if ! command -v R >/dev/null 2>&1 || ! R --slave -e "quit(status = !requireNamespace('IRkernel', quietly = TRUE))" >/dev/null 2>&1; then
  missing+=(r-cran-irkernel)
fi
if ! command -v jshell >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  missing+=(default-jdk-headless)
fi
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Not a Debian system: install ${missing[*]} by hand for those languages." >&2
  exit 0
fi
echo "Installing Debian packages for the server's languages: ${missing[*]}"
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
$sudo_cmd apt-get update -qq
$sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
