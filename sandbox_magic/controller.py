"""What the magics do: one controller per extension load, owning the session.

The controller turns the magics' parsed arguments into work on the I/O loop
(`sandbox_magic.loop`) and into output in the notebook (`sandbox_magic.sink`,
`sandbox_magic.status`). It rebuilds its session when the connection settings
change, and tears everything down on unload or interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from sandbox_magic.api.errors import SandboxError
from sandbox_magic.api.models import Run
from sandbox_magic.cellrun import CellRun, FollowSettings
from sandbox_magic.journal import Journal
from sandbox_magic.loop import IOLoopThread
from sandbox_magic.options import RunOptions
from sandbox_magic.poller import PollPolicy
from sandbox_magic.redact import Redactor
from sandbox_magic.render.sink import OutputSink
from sandbox_magic.session import ConnectionSettings, SandboxSession
from sandbox_magic.status import StatusView, make_status_view

if TYPE_CHECKING:
    from sandbox_magic.magics import SandboxMagics

__all__ = ["SandboxController"]


class SandboxController:
    """Owns the I/O loop, the session and the journal for one loaded extension."""

    def __init__(self, magics: SandboxMagics) -> None:
        self.magics = magics
        self.io = IOLoopThread()
        self._session: SandboxSession | None = None
        self._settings: ConnectionSettings | None = None
        self._closed = False
        self._embedded_state_dir: Path | None = None
        atexit.register(self.close)

    # -- configuration ---------------------------------------------------------

    def _current_settings(self) -> ConnectionSettings:
        m = self.magics
        return ConnectionSettings(
            api_url=m.api_url or None,
            api_key=m.api_key.reveal() if m.api_key else None,
            template=m.template or None,
            embedded=m.embedded,
            embedded_state_dir=self._embedded_state_dir,
        )

    @property
    def journal(self) -> Journal:
        path = self.magics.journal_path
        return Journal(Path(path) if path else None)

    def session(self) -> SandboxSession:
        """The live session, rebuilt when the URL, key or template changed."""
        if self._closed:
            raise SandboxError("The sandbox_magic extension was unloaded; load it again.")
        settings = self._current_settings()
        if self._session is None or settings != self._settings:
            self._close_session()
            self._session = SandboxSession(settings, self.journal)
            self._settings = settings
        return self._session

    def redactor(self, options: RunOptions | None = None) -> Redactor:
        """Hides the API key and the run's secret environment values in any output."""
        secrets = [self.magics.api_key.reveal()] if self.magics.api_key else []
        if options is not None:
            secrets.extend(options.secret_values)
        return Redactor(secrets)

    def sink(self, options: RunOptions) -> OutputSink:
        return OutputSink(
            allow_javascript=self.magics.allow_javascript,
            max_output_bytes=self.magics.max_output_bytes,
            redactor=self.redactor(options),
        )

    def status_view(self, options: RunOptions) -> StatusView:
        return make_status_view(
            self.magics.shell,
            mode=self.magics.status_view,
            quiet=options.quiet or not self.magics.show_status,
            delay=self.magics.status_delay,
            redactor=self.redactor(options),
        )

    def follow_settings(self) -> FollowSettings:
        m = self.magics
        return FollowSettings(
            poll=PollPolicy(min_interval=m.poll_min_interval, max_interval=m.poll_max_interval)
        )

    # -- %%sandbox -------------------------------------------------------------

    def run_cell(self, code: str, options: RunOptions) -> Any:
        """Run a cell remotely; returns the remote ``Out`` value, if any."""
        session = self.session()
        sink = self.sink(options)
        view = self.status_view(options)
        cell = CellRun(self.io, session, sink, view, self.follow_settings())
        timeout = options.timeout if options.timeout is not None else self.magics.default_timeout
        submit = self.io.submit(
            session.submit(
                code,
                context=options.context,
                language=options.language,
                sandbox=options.sandbox,
                envs=options.envs or None,
                run_timeout=timeout,
            )
        )
        run = self._wait_for_submit(cell, submit, view)
        for notice in session.take_notices():
            sink.notice(notice)
        view.start(run, context=options.context)
        final = cell.follow(run)
        view.finish(final)
        if options.out and self.magics.shell is not None:
            self.magics.shell.user_ns[options.out] = final
        return self._conclude(final, sink, options)

    def _wait_for_submit(self, cell: CellRun, submit: Any, view: StatusView) -> Run:
        try:
            run: Run = cell.wait(submit, view.tick)
        except KeyboardInterrupt:
            # The submit may still land: wait briefly for it, then cancel that run.
            with contextlib.suppress(Exception):
                created: Run = submit.result(10)
                client = self.io.run(self.session().client())
                self.io.run(client.cancel_run(created.sandbox_id or "", created.id), 10)
            raise
        return run

    def _conclude(self, run: Run, sink: OutputSink, options: RunOptions) -> Any:
        sink.artifacts(run.execution.artifacts)
        error = run.execution.error
        if error is not None:
            remote = sink.remote_error(error, run.id)
            if not options.no_raise:
                raise remote
            sink.show_error(remote)
        elif run.status in ("failed", "cancelled"):
            failure = sink.run_error(run)
            if not options.no_raise:
                raise failure
            sink.notice(str(failure))
        return sink.main_value()

    # -- %sandbox ----------------------------------------------------------------

    def line_command(self, name: str, args: Any) -> Any:
        """Dispatch ``%sandbox <name>``."""
        from sandbox_magic import commands

        handler = getattr(commands, f"cmd_{name}", None)
        if handler is None:
            raise UsageError(f"%sandbox {name} is not available.")
        return handler(self, args)

    def use_embedded_state(self, state_dir: str) -> None:
        """Start the embedded server on an earlier state directory (to re-attach runs)."""
        path = Path(state_dir)
        if path.is_dir() and not self.magics.api_url:
            self._embedded_state_dir = path

    def attach(self, sandbox_id: str, run: Run) -> Any:
        """Render a run again; follow it first while it is still going."""
        options = RunOptions(no_raise=True)
        session = self.session()
        sink = self.sink(options)
        view = self.status_view(options)
        cell = CellRun(self.io, session, sink, view, self.follow_settings())
        if run.is_terminal:
            cell.render(run)
        else:
            name = session.context_name(sandbox_id, run.context_id or "") or run.context_id
            view.start(run, context=name or "")
            run = cell.follow(run)
        view.finish(run)
        return self._conclude(run, sink, options)

    def connect(self, url: str) -> None:
        """Point the session at another server; the key comes from env or a prompt."""
        key = os.environ.get("NULLSPACE_API_KEY")
        if not key:
            key = getpass.getpass(f"API key for {url} (input hidden; empty for none): ") or None
        self.magics.api_url = url
        self.magics.api_key = key

    # -- lifetime ----------------------------------------------------------------

    def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        with contextlib.suppress(Exception):
            if session.created_sandbox and not self.magics.keep_sandbox and not session.is_embedded:
                self.io.run(session.delete_sandbox(), 10)
        with contextlib.suppress(Exception):
            self.io.run(session.close(), 30)

    def close(self) -> None:
        """Stop everything this controller started; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._close_session()
        self.io.stop()
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
