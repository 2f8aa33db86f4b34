"""What the magics do: one controller per extension load, owning the session.

The controller turns a cell's parsed options and settings snapshot into work on the
I/O loop (`sandbox_magic.session.loop`) and into output in the notebook
(`sandbox_magic.render`, `sandbox_magic.notebook.status`). It rebuilds its session
when the connection settings change, and tears everything down on unload or
interpreter exit. It never reads the magics: every call brings its `NotebookSettings`.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import threading
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from sandbox_magic.client import (
    RemoteExecutionError,
    Run,
    SandboxError,
    SavedArtifact,
    save_artifacts,
)
from sandbox_magic.client._generation import ServerFactsBook
from sandbox_magic.notebook.autosandbox import AutoSandbox
from sandbox_magic.notebook.background import BackgroundRuns
from sandbox_magic.notebook.cellrun import CellRun, FollowSettings
from sandbox_magic.notebook.options import RunOptions
from sandbox_magic.notebook.settings import NotebookSettings
from sandbox_magic.notebook.status import RunSummary, StatusView, make_status_view
from sandbox_magic.notebook.streamcell import follow_streamed
from sandbox_magic.render.artifacts import files_only, wants_preview
from sandbox_magic.render.cell_numbers import CellNumbers
from sandbox_magic.render.display_ids import DisplayIds
from sandbox_magic.render.failures import remote_error, run_error
from sandbox_magic.render.sink import OutputSink
from sandbox_magic.session.blocking import BlockingSession
from sandbox_magic.session.journal import Journal
from sandbox_magic.session.loop import IOLoopThread
from sandbox_magic.session.sandbox_session import (
    RunRequest,
    RunsUnavailableError,
    SandboxSession,
)
from sandbox_magic.transfer import pull, push
from sandbox_magic.transfer.files import FileChannel, pull_via_file, push_via_file

__all__ = ["SandboxController", "describe_verification"]

_MAX_PREVIEWS = 8


class SandboxController:
    """Owns the I/O loop, the session and the journal for one loaded extension."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.io = IOLoopThread()
        self._session: SandboxSession | None = None
        self._closed = False
        self._embedded_state_dir: Path | None = None
        self._keep_sandbox = True
        self._journal: Journal | None = None
        self._journal_setting: str | None = None
        self._session_lock = threading.RLock()
        #: What each server speaks (API generation, async runs), kept across sessions.
        self.server_facts = ServerFactsBook()
        self.background = BackgroundRuns(self.io)
        self.display_ids = DisplayIds()
        self.cell_numbers = CellNumbers()
        self.auto = AutoSandbox(shell)
        atexit.register(self.close)

    # -- session ---------------------------------------------------------------

    def journal(self, settings: NotebookSettings) -> Journal:
        """The journal at the configured path (one object per path, so one lock)."""
        with self._session_lock:
            if self._journal is None or self._journal_setting != settings.journal_path:
                path = settings.journal_path
                self._journal = Journal(Path(path) if path else None)
                self._journal_setting = path
            return self._journal

    def session(self, settings: NotebookSettings) -> SandboxSession:
        """The live session, rebuilt when the URL, key or template changed."""
        connection = dataclasses.replace(
            settings.connection, embedded_state_dir=self._embedded_state_dir
        )
        with self._session_lock:
            if self._closed:
                raise SandboxError("The sandbox_magic extension was unloaded; load it again.")
            self._keep_sandbox = settings.keep_sandbox
            if self._session is None or connection != self._session.settings:
                self._close_session()
                self._session = SandboxSession(
                    connection, self.journal(settings), self.server_facts
                )
            return self._session

    @property
    def active_session(self) -> SandboxSession | None:
        """The session made so far, if any (never connects)."""
        return self._session

    def blocking(self, settings: NotebookSettings) -> BlockingSession:
        """The session behind plain blocking calls, for the ``%sandbox`` subcommands."""
        return BlockingSession(self.io, self.session(settings))

    def prestart(self, settings: NotebookSettings) -> None:
        """Begin connecting (starting the embedded server) without waiting for it.

        A failure here is not reported: the first cell connects again and says what
        went wrong.
        """
        with contextlib.suppress(Exception):
            future = self.io.submit(self.session(settings).client())
            future.add_done_callback(lambda f: f.exception())

    def use_embedded_state(self, state_dir: str, settings: NotebookSettings) -> None:
        """Use the embedded server of an earlier state directory (to re-attach runs).

        A server already starting (the prestart after ``%load_ext``) usually took that
        very directory: wait for it, and switch only if it took another one.
        """
        path = Path(state_dir)
        if not path.is_dir() or settings.connection.api_url:
            return
        session = self._session
        if session is not None and session.settings.api_url is None:
            with contextlib.suppress(Exception):
                self.io.run(session.client(), 120)
            current = session.embedded.state_dir if session.embedded is not None else None
            if current is not None and current.resolve() == path.resolve():
                return
        self._embedded_state_dir = path

    # -- one cell's pieces -------------------------------------------------------

    def _sink(self, options: RunOptions, settings: NotebookSettings) -> OutputSink:
        return OutputSink(
            allow_javascript=settings.allow_javascript,
            max_output_bytes=settings.max_output_bytes,
            redactor=settings.redactor(options.secret_values),
            display_ids=self.display_ids,
        )

    def _status_view(self, options: RunOptions, settings: NotebookSettings) -> StatusView:
        """The live view for a run; a background run's shows at once (it holds the
        place where the run's outputs will land)."""
        return make_status_view(
            self.shell,
            mode=settings.status_view,
            quiet=(options.quiet or not settings.show_status) and not options.background,
            delay=0.0 if options.background else settings.status_delay,
            redactor=settings.redactor(options.secret_values),
            summary=settings.summary,
        )

    def _cell(self, options: RunOptions, settings: NotebookSettings) -> CellRun:
        return CellRun(
            self.io,
            self.session(settings),
            self._sink(options, settings),
            self._status_view(options, settings),
            FollowSettings(poll=settings.poll),
        )

    # -- %%sandbox -------------------------------------------------------------

    def run_cell(self, code: str, options: RunOptions, settings: NotebookSettings) -> Any:
        """Run a cell remotely; returns the remote ``Out`` value, if any."""
        with self._cell(options, settings) as cell:
            session = cell.session
            if options.push:
                self._push(cell, options, settings)
            timeout = options.timeout if options.timeout is not None else settings.default_timeout
            if session.streams:
                return self._run_streamed(cell, code, options, settings, timeout)
            request = RunRequest(
                code,
                context=options.context,
                language=options.language,
                sandbox=options.sandbox,
                envs=options.envs or None,
                run_timeout=timeout,
            )
            try:
                run = cell.submit(request)
                to_background = options.background and not cell.stop_requested
                if not to_background:
                    self._notices(cell, session)
                    cell.view.start(run, context=options.context)
            except RunsUnavailableError:
                return self._run_streamed(None, code, options, settings, timeout)
            except KeyboardInterrupt:  # a stop landing around the submit: cancel its run
                run, to_background = cell.stop_made_run(), False
            if to_background:
                self._notices(cell, session)
                view = cell.hand_over()
                self.background.start(session, run, view, options, cell.sink, settings.poll)
                return None
            final = cell.follow(run)
            cell.finish(final)
            return self._finish_cell(cell, final, options, settings)

    @staticmethod
    def _notices(cell: CellRun, session: SandboxSession) -> None:
        """Show what the session noticed while submitting (above the status line)."""
        for notice in session.take_notices():
            if not cell.view.note(notice):
                cell.sink.notice(notice)

    def _run_streamed(
        self,
        cell: CellRun | None,
        code: str,
        options: RunOptions,
        settings: NotebookSettings,
        timeout: int,
    ) -> Any:
        """The cell on a server without async runs: streamed through ``/code/execute``.

        ``cell`` is the cell's `CellRun` while its view is still live; None when a
        refused submission already took the view away (a new one is made).
        """
        if options.background:
            options = dataclasses.replace(options, background=False)
            notice = (
                "--background: this server has no async runs, so cells cannot run in the "
                "background here. This cell runs now, streamed; it cannot be re-attached."
            )
        else:
            notice = None
        if cell is None or notice is not None:
            if cell is not None:
                cell.finish(None)
            cell = self._cell(options, settings)
        with cell:
            if notice is not None:
                cell.sink.notice(notice)
            session = cell.session
            fold = cell.wait(
                session.prepare_stream(
                    context=options.context,
                    language=options.language,
                    sandbox=options.sandbox,
                    run_timeout=timeout,
                )
            )
            for line in session.take_notices():
                cell.sink.notice(line)
            client = cell.wait(session.client())
            cell.view.start(fold.snapshot(), context=options.context)
            final = follow_streamed(cell, client, fold, code=code, envs=options.envs or None)
            cell.finish(final)
            return self._finish_cell(cell, final, options, settings)

    def _finish_cell(
        self, cell: CellRun, final: Run, options: RunOptions, settings: NotebookSettings
    ) -> Any:
        """Store ``--out``, save artifacts, ``--pull``, then show how the run ended."""
        self._number_cells(final, cell.sink)
        if options.out and self.shell is not None:
            # Redacted like every output: displaying the record must not show secrets.
            self.shell.user_ns[options.out] = cell.sink.redactor.record(final)
        if options.save_artifacts and final.execution.artifacts:
            self._save_artifacts(cell, final, options.save_artifacts, settings)
        if options.pull and final.status == "succeeded" and final.execution.error is None:
            try:
                self._pull(cell, options, settings)
            except BaseException:
                # Show what the cell produced (and its Out[n]) before the pull's error.
                value = self._conclude(cell, final, options)
                if value is not None and self.shell is not None:
                    self.shell.displayhook(value)
                raise
        return self._conclude(cell, final, options)

    def _number_cells(self, run: Run, sink: OutputSink) -> None:
        """Let the run's tracebacks name local cells (``Cell In[n]`` as in the prompt)."""
        key = f"{run.sandbox_id}/{run.context_id}"
        # The prompt's number (IPython 9 counts the cell before running it, 8 after).
        local = getattr(getattr(self.shell, "displayhook", None), "prompt_count", None)
        self.cell_numbers.record(key, run.execution.execution_count, local)
        sink.cell_numbers = self.cell_numbers.of(key)

    # -- data and files ----------------------------------------------------------

    def _transfer_runner(self, cell: CellRun, options: RunOptions, timeout: int) -> Any:
        """``run_code(code) -> bundles`` for the transfer module, in the cell's context."""
        session, policy = cell.session, cell.settings.poll

        async def run_code(code: str) -> list[dict[str, Any]]:
            run = await session.run_to_end(
                code,
                policy=policy,
                context=options.context,
                language=options.language,
                sandbox=options.sandbox,
                run_timeout=timeout,
            )
            if run.execution.error is not None:
                raise remote_error(run.execution.error, run.id)
            if run.status != "succeeded":
                raise run_error(run)
            return [result.mime_bundle() for result in run.execution.results]

        return run_code

    @staticmethod
    async def _file_channel(session: SandboxSession, options: RunOptions) -> FileChannel | None:
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

    def _push(self, cell: CellRun, options: RunOptions, settings: NotebookSettings) -> None:
        namespace = self.shell.user_ns if self.shell is not None else {}
        missing = [name for name in options.push if name not in namespace]
        if missing:
            raise UsageError(f"--push: no local variable named {', '.join(missing)}.")
        run_code = self._transfer_runner(cell, options, settings.default_timeout)
        limit = settings.max_transfer_bytes

        async def push_one(name: str, value: object) -> None:
            channel = await self._file_channel(cell.session, options)
            if channel is not None:  # raw bytes through the file endpoints
                await push_via_file(run_code, channel, name, value, max_bytes=limit)
            else:  # code chunks, on any server
                await push(run_code, name, value, max_bytes=limit)

        for name in options.push:
            cell.wait(push_one(name, namespace[name]))

    def _pull(self, cell: CellRun, options: RunOptions, settings: NotebookSettings) -> None:
        run_code = self._transfer_runner(cell, options, settings.default_timeout)
        limit = settings.max_transfer_bytes

        async def pull_one(name: str) -> object:
            channel = await self._file_channel(cell.session, options)
            if channel is not None:
                return await pull_via_file(run_code, channel, name, max_bytes=limit)
            return await pull(run_code, name, max_bytes=limit)

        for name in options.pull:
            value = cell.wait(pull_one(name))
            if self.shell is not None:
                self.shell.user_ns[name] = value

    def _save_artifacts(
        self, cell: CellRun, run: Run, folder_name: str, settings: NotebookSettings
    ) -> None:
        folder = Path(folder_name).expanduser()
        session = cell.session

        async def download() -> list[SavedArtifact]:
            client = await session.client()
            sandbox_id = run.sandbox_id or session.sandbox_id or ""
            return await save_artifacts(
                client,
                sandbox_id,
                run.execution.artifacts,
                folder,
                max_bytes=settings.max_download_bytes,
            )

        saved = cell.wait(download())
        names = ", ".join(item.path.name for item in saved)
        cell.sink.notice(
            f"Saved {len(saved)} artifact(s) to {folder} ({describe_verification(saved)}): {names}"
        )

    def _conclude(self, cell: CellRun, run: Run, options: RunOptions) -> Any:
        """Show the artifacts, then fail the cell the way the run ended (or return Out)."""
        sink = cell.sink
        if files := files_only(run.execution.artifacts):
            sink.artifacts(
                files,
                previews=self._previews(cell.session, run),
                base_url=cell.session.url,
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

    def _previews(self, session: SandboxSession, run: Run) -> dict[str, bytes]:
        """Bytes of the small image artifacts, to show them inline."""
        wanted = [a for a in files_only(run.execution.artifacts) if wants_preview(a)]
        wanted = wanted[:_MAX_PREVIEWS]
        if not wanted:
            return {}

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

    # -- %sandbox attach -----------------------------------------------------------

    def attach(
        self,
        sandbox_id: str,
        run: Run,
        settings: NotebookSettings,
        *,
        context_name: str | None = None,
    ) -> Any:
        """Render a run again; follow it first while it is still going.

        ``context_name`` is the name the journal recorded, for a run of another kernel.
        """
        options = RunOptions(no_raise=True)
        with self._cell(options, settings) as cell:
            name = cell.session.context_name(sandbox_id, run.context_id or "") or context_name
            name = name or run.context_id
            if run.is_terminal:
                cell.render(run)
                # The server's own timing: the view's clock only saw this re-rendering.
                cell.finish(RunSummary.from_run(run, context=name))
            else:
                cell.view.start(run, context=name or "")
                run = cell.follow(run)
                cell.finish(run)
            return self._conclude(cell, run, options)

    # -- lifetime ----------------------------------------------------------------

    def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        with contextlib.suppress(Exception):
            if session.created_sandbox and not self._keep_sandbox and not session.is_embedded:
                self.io.run(session.delete_sandbox(), 10)
        with contextlib.suppress(Exception):
            self.io.run(session.close(), 30)

    def close(self) -> None:
        """Stop everything this controller started; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.auto.off()
        self._close_session()
        self.io.stop()
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)


def describe_verification(saved: list[SavedArtifact]) -> str:
    """What the sha256 check covered: all, none or some of the files."""
    checked = sum(item.verified for item in saved)
    if checked == len(saved):
        return "sha256 verified"
    if checked == 0:
        return "no sha256 from the server to verify"
    return f"sha256 verified for {checked} of {len(saved)}; the server gave none for the rest"
