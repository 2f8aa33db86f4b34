"""The ``sandbox-magic`` command: one subcommand per entry of `COMMANDS`.

Keep this module thin: each subcommand parses its arguments and calls into the
package (``serve`` -> `sandbox_magic.server.main.serve`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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


def _serve(args: argparse.Namespace) -> int:
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
            max_file_bytes=args.max_file_bytes,
            long_poll=args.long_poll,
            file_endpoints=args.file_endpoints,
        )
    )


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--notebook",
        type=Path,
        default=None,
        help="notebook to execute (default: notebooks/quickstart.ipynb of the checkout)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where to write the executed notebook and its HTML (default: beside it)",
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
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandbox-magic", description="Tools of the %%sandbox Jupyter extension."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "serve": "run the local sandbox server (real Jupyter kernels)",
        "demo": "execute the quickstart notebook headless and render it to HTML",
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
