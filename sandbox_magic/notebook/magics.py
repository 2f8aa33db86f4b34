"""``%%sandbox`` and ``%sandbox``: argument parsing and configuration, then delegation."""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import All, Bool, Enum, Float, Int, List, Unicode, default, observe

from sandbox_magic.notebook.commands import SUBCOMMANDS, CommandContext, summary
from sandbox_magic.notebook.options import parse_run_options
from sandbox_magic.notebook.secret import Secret, SecretStr
from sandbox_magic.session.credentials import find_api_key, find_api_url, source_of

if TYPE_CHECKING:
    from sandbox_magic.notebook.controller import SandboxController
    from sandbox_magic.notebook.settings import NotebookSettings

__all__ = ["SandboxMagics"]


@magics_class
class SandboxMagics(Magics):
    """Run cells in a remote code sandbox.

    Every trait below can be set with ``%config SandboxMagics.<name> = value`` or in
    ``ipython_config.py`` as ``c.SandboxMagics.<name> = value``.
    """

    api_url = Unicode(
        None,
        allow_none=True,
        help="Base URL of the sandbox API. Default: where the service's SDK finds it "
        "($NULLSPACE_API_URL, $NULLSPACE_BASE_URL, .env, ~/.config/nullspace/config.json, "
        "~/.nullspace/config.json); when none has one, the embedded local server is used.",
    ).tag(config=True)
    api_key = Secret(
        help="API key sent as a bearer token. Default: where the service's SDK finds it "
        "($NULLSPACE_API_KEY, $NULLSPACE_TOKEN, .env, the SDK's config files). Never shown."
    ).tag(config=True)
    api_generation = Enum(
        ["auto", "0", "1"],
        default_value="auto",
        help="API generation of the server: '0' (/v1/sandboxes), '1' (/v1/machines), or "
        "'auto' to find out with one probe per server.",
    ).tag(config=True)
    template = Unicode("code-interpreter", help="Template of sandboxes this session creates.").tag(
        config=True
    )
    internet_access = Bool(
        None,
        allow_none=True,
        help="Ask for outbound internet in sandboxes this session creates (for `!pip "
        "install`); None leaves it to the server (the local server gives none).",
    ).tag(config=True)
    default_timeout = Int(
        300, help="Seconds a run may take before the server stops it (--timeout overrides)."
    ).tag(config=True)
    poll_min_interval = Float(0.02, help="First interval between polls of a run, in seconds.").tag(
        config=True
    )
    poll_max_interval = Float(1.0, help="Longest interval between polls of a run, in seconds.").tag(
        config=True
    )
    poll_max_outage = Float(
        60.0,
        help="Seconds the polls of a run may keep failing (server unreachable or in "
        "error) before the cell stops waiting; the run can be re-attached later.",
    ).tag(config=True)
    request_timeout = Float(
        30.0,
        help="Seconds to wait for each answer from the server; a request that gets "
        "none in time is retried (retries of one request stop after 30 s).",
    ).tag(config=True)
    show_status = Bool(True, help="Show the live status view and summary line.").tag(config=True)
    status_delay = Float(
        0.5, help="Seconds a run must take before the live status view appears."
    ).tag(config=True)
    status_view = Enum(
        ["auto", "widget", "html", "text"],
        default_value="auto",
        help="How to show live status: 'widget' (ipywidgets), 'html' (an output updated "
        "in place), 'text' (terminal lines), or 'auto' to pick from the frontend.",
    ).tag(config=True)
    summary = Enum(
        ["full", "compact", "none"],
        default_value="full",
        help="What a finished run leaves at the top of its cell: 'full' (outcome, run "
        "time, run, sandbox and context ids), 'compact' (e.g. '✓ 0.03 s', the ids in "
        "a tooltip) or 'none'.",
    ).tag(config=True)
    allow_javascript = Bool(
        False, help="Execute JavaScript outputs from the sandbox (off: shown as text)."
    ).tag(config=True)
    max_output_bytes = Int(
        10 * 1024 * 1024, help="Largest output shown per cell; larger ones are truncated."
    ).tag(config=True)
    max_transfer_bytes = Int(
        200 * 1024 * 1024, help="Largest value --push or --pull moves, in bytes."
    ).tag(config=True)
    max_download_bytes = Int(
        1 << 30, help="Largest artifact --save-artifacts writes, in bytes (streamed to disk)."
    ).tag(config=True)
    embedded = Bool(True, help="Start the local sandbox server when no api_url is configured.").tag(
        config=True
    )
    prestart_embedded = Bool(
        True,
        help="Start the embedded server in the background right after the cell that "
        "loaded the extension, so the first %%sandbox cell waits less.",
    ).tag(config=True)
    secret_env = List(
        Unicode(),
        help="Names of local environment variables sent to every run and redacted "
        "from every output (like --secret-env).",
    ).tag(config=True)
    keep_sandbox = Bool(
        True,
        help="Keep the sandbox this session created when the kernel exits, so its runs "
        "can be re-attached from a new kernel (it still ends at its own timeout; "
        "`%sandbox stop` deletes it at once). False deletes it at exit.",
    ).tag(config=True)
    journal_path = Unicode(
        None, allow_none=True, help="File listing recent runs (default: Jupyter's data dir)."
    ).tag(config=True)

    @default("api_url")
    def _default_api_url(self) -> str | None:
        found = find_api_url()
        return found.value if found else None

    @default("api_key")
    def _default_api_key(self) -> SecretStr | None:
        found = find_api_key()
        return SecretStr(found.value) if found else None

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._controller: SandboxController | None = None
        self._controller_lock = threading.Lock()
        # The last snapshot, with the URL and key found outside the traits for it.
        self._snapshot: tuple[object, NotebookSettings] | None = None

    @observe(All)
    def _forget_snapshot(self, _change: object) -> None:
        self._snapshot = None

    @property
    def controller(self) -> SandboxController:
        """The controller, made on first use: its imports (httpx and the rest) would
        otherwise add a few hundred milliseconds to ``%load_ext``."""
        with self._controller_lock:
            if self._controller is None:
                from sandbox_magic.notebook.controller import SandboxController

                self._controller = SandboxController(self.shell)
            return self._controller

    @property
    def started(self) -> bool:
        """True once the controller exists (the first cell or prestart made it)."""
        return self._controller is not None

    def settings(self) -> NotebookSettings:
        """The current configuration as one immutable snapshot (made again only once a
        setting, or the URL or key found in the environment or files, has changed)."""
        found = (find_api_url(), find_api_key())
        if self._snapshot is not None and self._snapshot[0] == found:
            return self._snapshot[1]
        snapshot = self._take_snapshot()
        self._snapshot = (found, snapshot)
        return snapshot

    def _take_snapshot(self) -> NotebookSettings:
        from sandbox_magic.client import PollPolicy
        from sandbox_magic.notebook.settings import NotebookSettings
        from sandbox_magic.session.sandbox_session import ConnectionSettings

        api_key = self.api_key.reveal() if self.api_key else None
        return NotebookSettings(
            connection=ConnectionSettings(
                api_url=self.api_url or None,
                api_key=api_key,
                template=self.template or None,
                internet_access=self.internet_access,
                embedded=self.embedded,
                request_timeout=self.request_timeout,
                api_generation=self.api_generation,
                url_source=source_of(self.api_url, find_api_url(), setting="SandboxMagics.api_url"),
                key_source=source_of(api_key, find_api_key(), setting="SandboxMagics.api_key"),
            ),
            default_timeout=self.default_timeout,
            poll=PollPolicy(
                min_interval=self.poll_min_interval,
                max_interval=self.poll_max_interval,
                max_outage=self.poll_max_outage,
            ),
            show_status=self.show_status,
            status_delay=self.status_delay,
            status_view=self.status_view,
            summary=self.summary,
            allow_javascript=self.allow_javascript,
            max_output_bytes=self.max_output_bytes,
            max_transfer_bytes=self.max_transfer_bytes,
            max_download_bytes=self.max_download_bytes,
            keep_sandbox=self.keep_sandbox,
            journal_path=self.journal_path or None,
        )

    def _connect(self, url: str, key: str | None) -> NotebookSettings:
        self.api_url = url
        self.api_key = key
        return self.settings()

    def prestart(self) -> None:
        """Start the embedded server in the background, if it is what the next cell uses.

        Called once the cell that loaded the extension has finished: by then any
        ``%config`` of a URL in that cell has taken effect. The first ``%%sandbox`` cell
        then finds the server starting or ready instead of waiting for all of it.
        """
        if self.api_url or not self.embedded or not self.prestart_embedded:
            return
        threading.Thread(
            target=lambda: self.controller.prestart(self.settings()),
            name="sandbox-magic-prestart",
            daemon=True,
        ).start()

    @magic_arguments(name="%sandbox")  # usage line: %%sandbox (IPython adds one %)
    @argument("--context", "-c", default="default", help="Named persistent context to run in.")
    @argument("--timeout", "-t", type=int, help="Seconds the run may take.")
    @argument("--env", "-e", action="append", default=[], metavar="KEY=VALUE",
              help="Environment variable for this run (repeatable).")  # fmt: skip
    @argument("--secret-env", action="append", default=[], metavar="NAME",
              help="Send local env variable NAME; its value is redacted from output.")  # fmt: skip
    @argument("--sandbox", metavar="ID", help="Run in this existing sandbox.")
    @argument("--language", "-l", metavar="NAME", help="Language of the context (e.g. python).")
    @argument("--out", "-o", metavar="NAME",
              help="Store the finished run record in this variable.")  # fmt: skip
    @argument("--no-raise", action="store_true",
              help="Show a remote error without failing the cell.")  # fmt: skip
    @argument("--quiet", "-q", action="store_true", help="No status view or summary.")
    @argument("--background", "-b", action="store_true",
              help="Return at once; outputs land in this cell when the run ends.")  # fmt: skip
    @argument("--push", metavar="NAME[,NAME]", action="append", default=[],
              help="Send these local variables to the context before the run.")  # fmt: skip
    @argument("--pull", metavar="NAME[,NAME]", action="append", default=[],
              help="Bring these remote variables back after the run.")  # fmt: skip
    @argument("--save-artifacts", metavar="DIR",
              help="Download the run's artifacts to DIR and verify their sha256.")  # fmt: skip
    @cell_magic("sandbox")  # type: ignore[arg-type]  # IPython types this too narrowly
    def sandbox_cell(self, line: str, cell: str) -> Any:
        """Run this cell's code in the remote sandbox and show its outputs here."""
        options = parse_run_options(
            parse_argstring(self.sandbox_cell, line),
            os.environ,
            default_secret_env=self.secret_env,
        )
        with _hints():
            return self.controller.run_cell(cell, options, self.settings())

    @line_magic("sandbox")  # type: ignore[arg-type]
    def sandbox_line(self, line: str) -> Any:
        """Manage the sandbox session (the subcommands are listed below)."""
        words = shlex.split(line)
        if not words:
            raise UsageError(f"%sandbox needs a subcommand.\n{summary()}")
        name, rest = words[0], words[1:]
        command = SUBCOMMANDS.get(name)
        if command is None:
            raise UsageError(f"Unknown subcommand {name!r}.\n{summary()}")
        args = command.parser.parse_args(rest)
        context = CommandContext(
            self.controller, self.settings(), self._connect, self.check_cell_options
        )
        with _hints():
            return command.handler(context, args)

    def check_cell_options(self, line: str) -> None:
        """Raise `UsageError` unless ``line`` is valid after ``%%sandbox``."""
        parse_run_options(
            parse_argstring(self.sandbox_cell, line),
            os.environ,
            default_secret_env=self.secret_env,
        )

    def close(self) -> None:
        """Stop background runs, close connections, stop the embedded server."""
        if self._controller is not None:
            self._controller.close()


@contextlib.contextmanager
def _hints() -> Iterator[None]:
    """Add the notebook's hint to a sandbox error leaving a magic."""
    try:
        yield
    except Exception as exc:
        from sandbox_magic.notebook.hints import with_hint

        with_hint(exc)
        raise


SandboxMagics.sandbox_line.__doc__ = f"Manage the sandbox session.\n\n{summary()}\n"  # type: ignore[assignment]
