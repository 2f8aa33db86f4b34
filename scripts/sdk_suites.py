"""Run the service SDK's own code-interpreter integration suites against the local server.

For each pinned SDK version: download its sdist (which carries the suites), install
it into a virtual environment of its own, start ``sandbox-magic serve`` with its
default options on a free port, and run the two code-interpreter suites in their
env-gated live mode pointed at that server. 0.1.9 speaks ``/v1/sandboxes``, 1.0.3
``/v1/machines``.

The only change on the test side is `sdk_suite_plug` (beside this file), which
skips the suites' port-8888 readiness probe. A suite passes only if every test in
it passed: a failure, an error or a skip fails it.

Usage: python scripts/sdk_suites.py [--version 0.1.9] [--work-dir .sdk-suites]
Needs the project's virtual environment (``sandbox-magic`` on the same interpreter).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

VERSIONS = ("0.1.9", "1.0.3")
SUITES = (
    "tests/test_firecracker_code_interpreter_integration.py",
    "tests/test_firecracker_code_interpreter_sdk_sync_async.py",
)
TEST_TOOLS = ("pytest>=8", "pytest-asyncio>=0.24", "pytest-timeout>=2.3", "zstandard>=0.23")
READY_PREFIX = "sandbox-magic server ready at "
ROOT = Path(__file__).resolve().parent.parent
SUITE_TIMEOUT_S = 1500


@dataclass
class Outcome:
    version: str
    tests: int
    failed: int
    skipped: int
    seconds: float
    #: Routes the server does not serve yet, so the suite was not run.
    not_served: list[str] | None = None

    @property
    def passed(self) -> int:
        return self.tests - self.failed - self.skipped

    @property
    def ok(self) -> bool:
        return self.tests > 0 and self.failed == 0 and self.skipped == 0

    def line(self) -> str:
        if self.not_served:
            return (
                f"nullspace-sdk {self.version}: NOT RUN, the server does not serve "
                f"{', '.join(self.not_served)} yet"
            )
        return (
            f"nullspace-sdk {self.version}: {self.passed} passed, {self.failed} failed, "
            f"{self.skipped} skipped in {self.seconds:.0f} s"
        )


def _run(command: list[str], **kwargs: object) -> None:
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]


def prepare(version: str, work: Path) -> tuple[Path, Path]:
    """The unpacked sdist and the venv's python for one SDK version (cached in ``work``)."""
    downloads = work / "sdists"
    sdist = downloads / f"nullspace_sdk-{version}.tar.gz"
    if not sdist.exists():
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"nullspace-sdk=={version}",
                "-d",
                str(downloads),
            ]
        )
    source = work / f"nullspace_sdk-{version}"
    if not (source / "tests").is_dir():
        with tarfile.open(sdist) as archive:
            archive.extractall(work, filter="data")
    venv = work / f"venv-{version}"
    python = venv / "bin" / "python"
    marker = venv / ".sdk-suite-ready"
    if not marker.exists():
        shutil.rmtree(venv, ignore_errors=True)
        _run([sys.executable, "-m", "venv", str(venv)])
        _run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                str(sdist),
                *TEST_TOOLS,
            ]
        )
        marker.touch()
    return source, python


class LocalServer:
    """``sandbox-magic serve`` with default options, on a free loopback port."""

    def __init__(self, state_dir: Path) -> None:
        self.token = secrets.token_urlsafe(24)
        env = dict(os.environ, SANDBOX_MAGIC_TOKEN=self.token)
        command = [
            sys.executable,
            "-m",
            "sandbox_magic",
            "serve",
            "--port",
            "0",
            "--state-dir",
            str(state_dir),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.url = self._wait_ready()

    def _wait_ready(self) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + 120
        for line in self.process.stdout:
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].strip()
            if time.monotonic() > deadline:
                break
        self.stop()
        raise RuntimeError("the local server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def missing_routes(url: str, token: str, version: str) -> list[str]:
    """Routes the suites of ``version`` need that this server does not serve (404)."""
    import httpx

    needed = ["/v1/machines" if version.startswith("1.") else "/v1/sandboxes"]
    if os.environ.get("NULLSPACE_ASSUME_REMOTE_TEMPLATES") != "1":  # the suites' own switch
        needed.append("/v1/templates")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        return [path for path in needed if client.get(path).status_code == 404]


def run_suite(version: str, work: Path, extra: list[str]) -> Outcome:
    source, python = prepare(version, work)
    report = work / f"junit-{version}.xml"
    report.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="sdk-suite-state-") as state:
        server = LocalServer(Path(state))
        try:
            env = dict(
                os.environ,
                NULLSPACE_INTEGRATION="1",
                NULLSPACE_TEST_BACKEND="firecracker",
                NULLSPACE_FIRECRACKER_SOAK="1",
                NULLSPACE_API_URL=server.url,
                NULLSPACE_API_KEY=server.token,
                PYTHONPATH=str(ROOT / "scripts"),
            )
            for name in ("NULLSPACE_TOKEN", "NULLSPACE_BASE_URL"):
                env.pop(name, None)
            print(f"== nullspace-sdk {version} against {server.url}", flush=True)
            missing = missing_routes(server.url, server.token, version)
            if missing:
                return Outcome(version, 0, 0, 0, 0.0, not_served=missing)
            started = time.monotonic()
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pytest",
                    *SUITES,
                    "-p",
                    "sdk_suite_plug",
                    "-p",
                    "no:cacheprovider",
                    "-rA",
                    "-q",
                    f"--junitxml={report}",
                    "--timeout",
                    "600",
                    *extra,
                ],
                cwd=source,
                env=env,
                check=False,
                timeout=SUITE_TIMEOUT_S,
            )
            seconds = time.monotonic() - started
        finally:
            server.stop()
    if not report.exists():
        return Outcome(version, 0, 0, 0, seconds)
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite") or suite
    tests = int(suite.get("tests", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return Outcome(version, tests, failed, int(suite.get("skipped", 0)), seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="append", choices=VERSIONS, help="default: all")
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".sdk-suites")
    parser.add_argument(
        "--require-all",
        action="store_true",
        help="fail when a suite cannot run because the server lacks its routes",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="print the counts but succeed while the suites are known not to pass completely",
    )
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = parser.parse_args()
    work: Path = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    outcomes = [run_suite(v, work, args.pytest_args) for v in args.version or VERSIONS]
    print("== SDK integration suites against the local server")
    for outcome in outcomes:
        print(outcome.line())
    if args.require_all and any(outcome.not_served for outcome in outcomes):
        return 1
    if args.report_only:
        return 0
    return 0 if all(outcome.ok or outcome.not_served for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
