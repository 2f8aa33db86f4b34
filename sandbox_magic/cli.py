"""The ``sandbox-magic`` command: one subcommand per entry of `COMMANDS`.

Keep this module thin: each subcommand parses its arguments and calls into the
package (``serve`` -> `sandbox_magic.server.main.serve`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS", "build_parser", "main"]

#: ``name -> (add its arguments to a subparser, run it)``. Add subcommands here.
Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    from sandbox_magic.server.config import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FILE_BYTES

    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port to bind; 0 picks a free one (default 8765)"
    )
    parser.add_argument(
        "--token",
        default=None,
        help="bearer token to require (default: $SANDBOX_MAGIC_TOKEN, else a new random "
        "one, printed once). Prefer the variable: command lines are visible to other users.",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where runs, artifacts and sandbox directories live "
        "(default ~/.local/state/sandbox-magic)",
    )
    parser.add_argument(
        "--warm-kernels", type=int, default=1, help="idle kernels kept ready (default 1)"
    )
    parser.add_argument(
        "--run-timeout",
        type=int,
        default=300,
        help="seconds a run may take when it does not say (default 300)",
    )
    parser.add_argument(
        "--interrupt-grace",
        type=float,
        default=3.0,
        help="seconds an interrupted kernel gets before it is restarted (default 3)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest accepted request body (default {DEFAULT_MAX_BODY_BYTES})",
    )
    _quota_arguments(parser)
    parser.add_argument(
        "--no-cpu-demotion",
        action="store_true",
        help="do not lower the CPU priority of long CPU-bound runs (for comparisons)",
    )
    parser.add_argument(
        "--api",
        default="both",
        choices=["both", "sandboxes", "machines"],
        help="API generations to serve: 0.x /v1/sandboxes, 1.x /v1/machines, or both "
        "(default both)",
    )
    parser.add_argument(
        "--disable-async-runs",
        action="store_true",
        help="answer POST .../code/runs as a hosted deployment without async runs does "
        "(503 feature_unavailable); streaming /code/execute keeps working",
    )
    parser.add_argument(
        "--isolation",
        default=os.environ.get("SANDBOX_MAGIC_ISOLATION") or "auto",
        choices=["auto", "bwrap", "none"],
        help="confine kernels with bubblewrap (bwrap), not at all (none), or bwrap when "
        "this machine allows it, else none with a warning (default: auto, or "
        "$SANDBOX_MAGIC_ISOLATION)",
    )
    parser.add_argument(
        "--no-internet",
        action="store_true",
        help="give no confined sandbox a network, even one created with internet_access "
        "(by default such a sandbox reaches the internet through slirp4netns, never this "
        "machine's loopback)",
    )
    parser.add_argument(
        "--default-memory-mb", type=int, default=1024, help="a sandbox's memory (default 1024)"
    )
    parser.add_argument(
        "--max-memory-mb", type=int, default=4096, help="most memory a sandbox may ask for"
    )
    parser.add_argument(
        "--default-vcpus", type=int, default=1, help="CPUs of a sandbox (default 1)"
    )
    parser.add_argument(
        "--default-disk-mb",
        type=int,
        default=1024,
        help="size of a confined sandbox's /workspace (default 1024)",
    )
    parser.add_argument(
        "--max-disk-mb", type=int, default=8192, help="largest disk_mb a sandbox may ask for"
    )
    parser.add_argument(
        "--max-processes",
        type=int,
        default=256,
        help="processes and threads per sandbox (default 256)",
    )
    parser.add_argument(
        "--server-max-contexts",
        type=int,
        default=32,
        help="most live contexts (kernels) of the whole server; more get 503 "
        "capacity_exceeded (default 32)",
    )
    parser.add_argument(
        "--idle-timeout-ms",
        type=int,
        default=0,
        help="stop sandboxes idle (no runs) this long, unless they set "
        "inactivity_timeout_ms (default 0: never)",
    )
    parser.add_argument(
        "--pass-env",
        action="append",
        default=[],
        metavar="NAME",
        help="let confined kernels see this variable of the server's environment (repeatable)",
    )
    parser.add_argument(
        "--max-file-bytes",
        type=int,
        default=DEFAULT_MAX_FILE_BYTES,
        help=f"largest file PUT .../file accepts (default {DEFAULT_MAX_FILE_BYTES})",
    )
    parser.add_argument(
        "--no-long-poll",
        dest="long_poll",
        action="store_false",
        help="answer run reads at once, never held open (as the hosted service does)",
    )
    parser.add_argument(
        "--no-file-endpoints",
        dest="file_endpoints",
        action="store_false",
        help="do not offer PUT/GET .../file (push and pull then travel as code)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="server log level (default warning)",
    )


def _quota_arguments(parser: argparse.ArgumentParser) -> None:
    from sandbox_magic.server.classroom.quotas import Quotas

    defaults = Quotas()
    group = parser.add_argument_group(
        "quotas of student keys", "each key may override them (sandbox-magic keys quota)"
    )
    for name, meaning in (
        ("sandboxes", "live sandboxes"),
        ("contexts", "live contexts (kernels)"),
        ("concurrent-runs", "runs queued or running at once"),
        ("run-timeout", "the longest run timeout, in seconds"),
        ("output-bytes", "output of one run"),
        ("artifact-bytes", "artifact bytes kept"),
        ("requests-per-second", "requests per second, sustained (bursts of twice that)"),
    ):
        default = getattr(defaults, name.replace("-", "_"))
        group.add_argument(
            f"--max-{name}",
            type=int,
            default=default,
            metavar="N",
            help=f"{meaning} per student key (default {default})",
        )


def _student_quotas(args: argparse.Namespace) -> Any:
    from sandbox_magic.server.classroom.quotas import Quotas

    return Quotas(
        sandboxes=args.max_sandboxes,
        contexts=args.max_contexts,
        concurrent_runs=args.max_concurrent_runs,
        run_timeout=args.max_run_timeout,
        output_bytes=args.max_output_bytes,
        artifact_bytes=args.max_artifact_bytes,
        requests_per_second=args.max_requests_per_second,
    )


def _serve(args: argparse.Namespace) -> int:
    from sandbox_magic.server.confinement import LimitPolicy
    from sandbox_magic.server.main import ServeOptions, serve

    return serve(
        ServeOptions(
            host=args.host,
            port=args.port,
            token=args.token,
            state_dir=args.state_dir,
            warm_kernels=args.warm_kernels,
            default_run_timeout=args.run_timeout,
            interrupt_grace=args.interrupt_grace,
            max_body_bytes=args.max_body_bytes,
            log_level=args.log_level,
            api=args.api,
            async_runs=not args.disable_async_runs,
            max_file_bytes=args.max_file_bytes,
            long_poll=args.long_poll,
            file_endpoints=args.file_endpoints,
            isolation=args.isolation,
            limits=LimitPolicy(
                default_vcpus=args.default_vcpus,
                default_memory_mb=args.default_memory_mb,
                max_memory_mb=args.max_memory_mb,
                processes=args.max_processes,
                default_disk_mb=args.default_disk_mb,
                max_disk_mb=args.max_disk_mb,
            ),
            pass_env=tuple(args.pass_env),
            internet=not args.no_internet,
            max_contexts=args.server_max_contexts,
            idle_timeout_ms=args.idle_timeout_ms,
            student_quotas=_student_quotas(args),
            cpu_demotion=not args.no_cpu_demotion,
        )
    )


def _keys_arguments(parser: argparse.ArgumentParser) -> None:
    from sandbox_magic.server.classroom.cli import add_arguments

    add_arguments(parser)


def _keys(args: argparse.Namespace) -> int:
    from sandbox_magic.server.classroom.cli import run

    return run(args)


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--notebook",
        type=Path,
        default=None,
        help="notebook to execute (default: the quickstart notebook shipped with the package)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where to run the notebook and write it executed, with its HTML "
        "(default: the current folder)",
    )


def _demo(args: argparse.Namespace) -> int:
    try:
        from sandbox_magic.demo import run_demo
    except ImportError as exc:
        print(
            f"The demo needs the [demo] extra ({exc.name} is missing): "
            "pip install 'sandbox-magic[demo]'",
            file=sys.stderr,
        )
        return 2
    return run_demo(args.notebook, args.output_dir)


COMMANDS: dict[str, Command] = {
    "serve": (_serve_arguments, _serve),
    "demo": (_demo_arguments, _demo),
    "keys": (_keys_arguments, _keys),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandbox-magic", description="Tools of the %%sandbox Jupyter extension."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "serve": "run the local sandbox server (real Jupyter kernels)",
        "demo": "execute the quickstart notebook headless and render it to HTML",
        "keys": "add, list or revoke the keys of a class (a key per student)",
    }
    for name, (add_arguments, _run) in COMMANDS.items():
        add_arguments(subparsers.add_parser(name, help=helps.get(name)))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sandbox-magic`` console script."""
    args = build_parser().parse_args(argv)
    _add_arguments, run = COMMANDS[args.command]
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
