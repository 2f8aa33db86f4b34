"""What the magics do: one controller per extension load, owning the session.

The controller turns the magics' parsed arguments into work on the I/O loop
(`sandbox_magic.session.loop`) and into output in the notebook (`sandbox_magic.render`,
`sandbox_magic.notebook.status`). It rebuilds its session when the connection settings
change, and tears everything down on unload or interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import getpass
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from sandbox_magic.client._download import SavedArtifact, save_artifacts
from sandbox_magic.client._errors import RemoteExecutionError, SandboxError
from sandbox_magic.client._models import Run
from sandbox_magic.client._poller import PollPolicy
from sandbox_magic.notebook.background import BackgroundRuns
from sandbox_magic.notebook.cellrun import CellRun, FollowSettings
from sandbox_magic.notebook.options import RunOptions
from sandbox_magic.notebook.status import RunSummary, StatusView, make_status_view
from sandbox_magic.render.artifacts import wants_preview
from sandbox_magic.render.failures import remote_error, run_error
from sandbox_magic.render.redact import Redactor
from sandbox_magic.render.sink import OutputSink
from sandbox_magic.session.journal import Journal
from sandbox_magic.session.loop import IOLoopThread
from sandbox_magic.session.sandbox_session import ConnectionSettings, SandboxSession
from sandbox_magic.transfer import pull, push
from sandbox_magic.transfer.files import FileChannel, pull_via_file, push_via_file

if TYPE_CHECKING:
    from sandbox_magic.notebook.magics import SandboxMagics

__all__ = ["SandboxController"]

_MAX_PREVIEWS = 8


class SandboxController:
    """Owns the I/O loop, the session and the journal for one loaded extension."""

    def __init__(self, magics: SandboxMagics) -> None:
        self.magics = magics
        self.io = IOLoopThread()
        self._session: SandboxSession | None = None
        self._settings: ConnectionSettings | None = None
        self._closed = False
        self._embedded_state_dir: Path | None = None
        self._session_lock = threading.RLock()
        self.background = BackgroundRuns(self)
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
            request_timeout=m.request_timeout,
        )

    @property
    def journal(self) -> Journal:
        path = self.magics.journal_path
        return Journal(Path(path) if path else None)

    def session(self) -> SandboxSession:
        """The live session, rebuilt when the URL, key or template changed."""
        with self._session_lock:
            if self._closed:
                raise SandboxError("The sandbox_magic extension was unloaded; load it again.")
            settings = self._current_settings()
            if self._session is None or settings != self._settings:
                self._close_session()
                self._session = SandboxSession(settings, self.journal)
                self._settings = settings
            return self._session

    def prestart(self) -> None:
        """Begin connecting (starting the embedded server) without waiting for it.

        A failure here is not reported: the first cell connects again and says what
        went wrong.
        """
        with contextlib.suppress(Exception):
            future = self.io.submit(self.session().client())
            future.add_done_callback(lambda f: f.exception())

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
        """The live view for a run; a background run's shows at once (it holds the
        place where the run's outputs will land)."""
        return make_status_view(
            self.magics.shell,
            mode=self.magics.status_view,
            quiet=(options.quiet or not self.magics.show_status) and not options.background,
            delay=0.0 if options.background else self.magics.status_delay,
            redactor=self.redactor(options),
        )

    def follow_settings(self) -> FollowSettings:
        m = self.magics
        return FollowSettings(
            poll=PollPolicy(
                min_interval=m.poll_min_interval,
                max_interval=m.poll_max_interval,
                max_outage=m.poll_max_outage,
            )
        )

    # -- %%sandbox -------------------------------------------------------------

    def run_cell(self, code: str, options: RunOptions) -> Any:
        """Run a cell remotely; returns the remote ``Out`` value, if any."""
        session = self.session()
        sink = self.sink(options)
        view = self.status_view(options)
        cell = CellRun(self.io, session, sink, view, self.follow_settings())
        if options.push:
            try:
                self._push(cell, session, options, view)
            except BaseException:
                view.finish(None)  # nothing was submitted: take the live line away
                raise
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
        if options.background:
            self.background.start(run, view, options)
            return None
        view.start(run, context=options.context)
        final = cell.follow(run)
        view.finish(final)
        if options.out and self.magics.shell is not None:
            # Redacted like every output: displaying the record must not show secrets.
            self.magics.shell.user_ns[options.out] = self.redactor(options).record(final)
        if options.save_artifacts and final.execution.artifacts:
            self._save_artifacts(cell, session, final, options, view)
        if options.pull and final.status == "succeeded" and final.execution.error is None:
            self._pull(cell, session, options, view)
        return self._conclude(final, sink, options)

    # -- data and files ----------------------------------------------------------

    def _transfer_runner(self, session: SandboxSession, options: RunOptions) -> Any:
        """``run_code(code) -> bundles`` for the transfer module, in the cell's context."""
        policy = self.follow_settings().poll

        async def run_code(code: str) -> list[dict[str, Any]]:
            run = await session.run_to_end(
                code,
                policy=policy,
                context=options.context,
                language=options.language,
                sandbox=options.sandbox,
                run_timeout=self.magics.default_timeout,
            )
            if run.execution.error is not None:
                raise remote_error(run.execution.error, run.id)
            if run.status != "succeeded":
                raise run_error(run)
            return [result.mime_bundle() for result in run.execution.results]

        return run_code

    async def _file_channel(
        self, session: SandboxSession, options: RunOptions
    ) -> FileChannel | None:
        """The sandbox's raw file endpoints, if its server advertises them."""
        sandbox_id = await session.ensure_sandbox(options.sandbox)
        context = await session.ensure_context(sandbox_id, options.context, options.language)
        client = await session.client()  # it has heard the server's features by now
        if not client.features.has_files or not (context.cwd or "").startswith("/"):
            return None

        async def put(path: str, data: bytes) -> None:
            await client.put_file(sandbox_id, path, data)

        async def get(path: str, max_bytes: int) -> bytes:
            return await client.get_file(sandbox_id, path, max_bytes=max_bytes)

        return FileChannel(put=put, get=get, cwd=context.cwd or "/")

    async def _push_one(
        self, session: SandboxSession, options: RunOptions, name: str, value: object
    ) -> None:
        run_code = self._transfer_runner(session, options)
        limit = self.magics.max_transfer_bytes
        channel = await self._file_channel(session, options)
        if channel is not None:
            await push_via_file(run_code, channel, name, value, max_bytes=limit)
        else:
            await push(run_code, name, value, max_bytes=limit)

    async def _pull_one(self, session: SandboxSession, options: RunOptions, name: str) -> object:
        run_code = self._transfer_runner(session, options)
        limit = self.magics.max_transfer_bytes
        channel = await self._file_channel(session, options)
        if channel is not None:
            return await pull_via_file(run_code, channel, name, max_bytes=limit)
        return await pull(run_code, name, max_bytes=limit)

    def _push(
        self, cell: CellRun, session: SandboxSession, options: RunOptions, view: StatusView
    ) -> None:
        namespace = self.magics.shell.user_ns if self.magics.shell is not None else {}
        missing = [name for name in options.push if name not in namespace]
        if missing:
            raise UsageError(f"--push: no local variable named {', '.join(missing)}.")
        for name in options.push:
            cell.wait(
                self.io.submit(self._push_one(session, options, name, namespace[name])),
                view.tick,
            )

    def _pull(
        self, cell: CellRun, session: SandboxSession, options: RunOptions, view: StatusView
    ) -> None:
        for name in options.pull:
            value = cell.wait(self.io.submit(self._pull_one(session, options, name)), view.tick)
            if self.magics.shell is not None:
                self.magics.shell.user_ns[name] = value

    def _save_artifacts(
        self,
        cell: CellRun,
        session: SandboxSession,
        run: Run,
        options: RunOptions,
        view: StatusView,
    ) -> None:
        assert options.save_artifacts is not None
        folder = Path(options.save_artifacts).expanduser()

        async def download() -> list[SavedArtifact]:
            client = await session.client()
            sandbox_id = run.sandbox_id or session.sandbox_id or ""
            return await save_artifacts(client, sandbox_id, run.execution.artifacts, folder)

        saved = cell.wait(self.io.submit(download()), view.tick)
        names = ", ".join(item.path.name for item in saved)
        cell.sink.notice(f"Saved {len(saved)} artifact(s) to {folder} (sha256 verified): {names}")

    def _wait_for_submit(self, cell: CellRun, submit: Any, view: StatusView) -> Run:
        try:
            run: Run = cell.wait(submit, view.tick)
        except Exception:
            view.finish(None)  # no run: take the live "submitting" line away
            raise
        except KeyboardInterrupt:
            view.finish(None)
            # The submit may still land: wait briefly for it, then cancel that run.
            with contextlib.suppress(Exception):
                created: Run = submit.result(10)
                client = self.io.run(self.session().client())
                self.io.run(client.cancel_run(created.sandbox_id or "", created.id), 10)
            raise
        return run

    def _conclude(self, run: Run, sink: OutputSink, options: RunOptions) -> Any:
        """Show the artifacts, then fail the cell the way the run ended (or return Out)."""
        if run.execution.artifacts:
            sink.artifacts(
                run.execution.artifacts,
                previews=self._previews(run),
                base_url=self.session().url,
            )
        failure = sink.exception_for(run)
        if failure is not None:
            if not options.no_raise:
                raise failure
            if isinstance(failure, RemoteExecutionError):
                sink.show_error(failure)
            else:
                sink.notice(str(failure))
        return sink.main_value()

    def _previews(self, run: Run) -> dict[str, bytes]:
        """Bytes of the small image artifacts, to show them inline."""
        wanted = [a for a in run.execution.artifacts if wants_preview(a)][:_MAX_PREVIEWS]
        if not wanted:
            return {}
        session = self.session()

        async def fetch() -> dict[str, bytes]:
            client = await session.client()
            sandbox_id = run.sandbox_id or session.sandbox_id or ""
            found: dict[str, bytes] = {}
            for artifact in wanted:
                with contextlib.suppress(SandboxError):
                    found[artifact.id] = await client.download_artifact(
                        sandbox_id, artifact.id, max_bytes=artifact.size_bytes
                    )
            return found

        return self.io.run(fetch(), 60)

    # -- %sandbox ----------------------------------------------------------------

    def line_command(self, name: str, args: Any) -> Any:
        """Dispatch ``%sandbox <name>``."""
        from sandbox_magic.notebook import commands

        handler = getattr(commands, f"cmd_{name}", None)
        if handler is None:
            raise UsageError(f"%sandbox {name} is not available.")
        return handler(self, args)

    def use_embedded_state(self, state_dir: str) -> None:
        """Use the embedded server of an earlier state directory (to re-attach runs).

        A server already starting (the prestart after ``%load_ext``) usually took that
        very directory: wait for it, and switch only if it took another one.
        """
        path = Path(state_dir)
        if not path.is_dir() or self.magics.api_url:
            return
        session = self._session
        if session is not None and session.settings.api_url is None:
            with contextlib.suppress(Exception):
                self.io.run(session.client(), 120)
            current = session.embedded.state_dir if session.embedded is not None else None
            if current is not None and current.resolve() == path.resolve():
                return
        self._embedded_state_dir = path

    def attach(self, sandbox_id: str, run: Run) -> Any:
        """Render a run again; follow it first while it is still going."""
        options = RunOptions(no_raise=True)
        session = self.session()
        sink = self.sink(options)
        view = self.status_view(options)
        cell = CellRun(self.io, session, sink, view, self.follow_settings())
        name = session.context_name(sandbox_id, run.context_id or "") or run.context_id
        if run.is_terminal:
            cell.render(run)
            # The server's own timing: the view's clock only saw this re-rendering.
            view.finish(RunSummary.from_run(run, context=name))
        else:
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
