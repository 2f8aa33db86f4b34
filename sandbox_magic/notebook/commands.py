"""The ``%sandbox`` subcommands: each one's usage, help, arguments and handler together.

`subcommand` registers a handler in `SUBCOMMANDS`; the line magic parses the words
with the subcommand's parser and calls its handler with a `CommandContext`. This
module imports only light modules at load time (the magics import it on
``%load_ext``); the client comes in when a handler first runs.
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from sandbox_magic.render.table import Table
from sandbox_magic.render.text import human_size

if TYPE_CHECKING:
    from sandbox_magic.client import Artifact, Run
    from sandbox_magic.notebook.controller import SandboxController
    from sandbox_magic.notebook.settings import NotebookSettings
    from sandbox_magic.session.blocking import BlockingSession
    from sandbox_magic.session.journal import Journal
    from sandbox_magic.session.sandbox_session import SandboxSession

__all__ = ["SUBCOMMANDS", "CommandContext", "Subcommand", "summary"]

_PAGE_SIZE = 100
_MAX_ARTIFACTS = 1000


@dataclass(frozen=True)
class CommandContext:
    """What a subcommand works with: the controller and this cell's settings.

    ``connect(url, key)`` points the magics at another server and returns the
    settings that then apply.
    """

    controller: SandboxController
    settings: NotebookSettings
    connect: Callable[[str, str | None], NotebookSettings]

    @property
    def session(self) -> SandboxSession:
        return self.controller.session(self.settings)

    @property
    def calls(self) -> BlockingSession:
        return self.controller.blocking(self.settings)

    @property
    def journal(self) -> Journal:
        return self.controller.journal(self.settings)


Handler = Callable[[CommandContext, argparse.Namespace], Any]
Argument = tuple[tuple[str, ...], dict[str, Any]]


@dataclass(frozen=True)
class Subcommand:
    """One ``%sandbox`` subcommand."""

    name: str
    usage: str
    help: str
    handler: Handler
    parser: MagicArgumentParser

    def line(self) -> str:
        """Its line in the summary: usage, then help from column 35."""
        if len(self.usage) <= 30:
            return f"  {self.usage:<31} {self.help}"
        return f"  {self.usage}   {self.help}"


SUBCOMMANDS: dict[str, Subcommand] = {}


def argument(*flags: str, **kwargs: Any) -> Argument:
    """One argument of a subcommand, as for ``ArgumentParser.add_argument``."""
    return flags, kwargs


def subcommand(usage: str, help: str, *arguments: Argument) -> Callable[[Handler], Handler]:
    """Register the decorated handler as ``%sandbox <usage>``."""

    def register(handler: Handler) -> Handler:
        name = usage.split()[0]
        parser = MagicArgumentParser(prog=f"%sandbox {name}", add_help=False)
        for flags, kwargs in arguments:
            parser.add_argument(*flags, **kwargs)
        SUBCOMMANDS[name] = Subcommand(name, f"%sandbox {usage}", help, handler, parser)
        return handler

    return register


def summary() -> str:
    """Every subcommand with its one-line help."""
    return "Subcommands::\n\n" + "\n".join(c.line() for c in SUBCOMMANDS.values())


def _sandbox_or_fail(cmd: CommandContext) -> str:
    sandbox_id = cmd.session.sandbox_id
    if sandbox_id is None:
        raise UsageError("No sandbox yet: run a %%sandbox cell first.")
    return sandbox_id


@subcommand("status", "server URL (no key), sandbox, contexts, health")
def _status(cmd: CommandContext, args: argparse.Namespace) -> Table:
    """Server URL (never the key), health, sandbox and contexts."""
    from sandbox_magic.client import SandboxError

    facts = cmd.session.describe()
    healthy = "not connected yet"
    if facts["url"] is not None:
        try:
            healthy = "ok" if cmd.calls.health() else "unhealthy"
        except SandboxError as exc:
            healthy = f"unreachable ({exc})"
    connection = cmd.settings.connection
    url = facts["url"] or (
        connection.api_url or "embedded local server (starts with the first %%sandbox cell)"
    )
    rows = [
        ["server", str(url)],
        ["kind", "embedded local server" if facts["embedded"] else "remote service"],
        ["health", healthy],
        ["api key", "set (hidden)" if connection.api_key else "not set"],
        ["sandbox", facts["sandbox"] or "none yet"],
        ["contexts", ", ".join(f"{n} ({i})" for n, i in facts["contexts"].items()) or "none yet"],
    ]
    return Table(["", "value"], rows, caption="sandbox_magic status")


@subcommand(
    "connect URL",
    "use this server (key from $NULLSPACE_API_KEY or a prompt)",
    argument("url"),
)
def _connect(cmd: CommandContext, args: argparse.Namespace) -> None:
    """Use another server for the next cells."""
    key = os.environ.get("NULLSPACE_API_KEY")
    if not key:
        key = getpass.getpass(f"API key for {args.url} (input hidden; empty for none): ") or None
    settings = cmd.connect(args.url, key)
    session = cmd.controller.session(settings)
    print(f"Connected to {session.settings.api_url}; the next %%sandbox cell uses it.")


@subcommand("contexts", "contexts of the sandbox")
def _contexts(cmd: CommandContext, args: argparse.Namespace) -> Table:
    """Contexts of the session's sandbox, with the names this session gave them."""
    sandbox_id = _sandbox_or_fail(cmd)
    session = cmd.session
    rows = [
        [session.context_name(sandbox_id, c.id) or "", c.id, c.language or "", c.cwd or ""]
        for c in cmd.calls.list_contexts(sandbox_id)
    ]
    return Table(["name", "id", "language", "cwd"], rows, caption=f"contexts of {sandbox_id}")


def _context_id(cmd: CommandContext, name: str) -> tuple[str, str]:
    session = cmd.session
    sandbox_id = _sandbox_or_fail(cmd)
    for sandbox, context_name, context in session.known_contexts():
        if sandbox == sandbox_id and (context_name == name or context.id == name):
            return sandbox_id, context.id
    known = ", ".join(n for _, n, _ in session.known_contexts()) or "none"
    raise UsageError(f"No context named {name!r} in this session (known: {known}).")


@subcommand(
    "restart [CONTEXT]",
    "restart a context's kernel (variables are lost)",
    argument("context", nargs="?", default="default"),
)
def _restart(cmd: CommandContext, args: argparse.Namespace) -> None:
    """Restart a context's kernel; its variables are lost."""
    cmd.calls.restart_context(*_context_id(cmd, args.context))
    print(f"Restarted context {args.context!r}; its variables are gone.")


@subcommand(
    "interrupt [CONTEXT]",
    "interrupt what a context is running",
    argument("context", nargs="?", default="default"),
)
def _interrupt(cmd: CommandContext, args: argparse.Namespace) -> None:
    """Interrupt whatever a context is running."""
    cmd.calls.interrupt_context(*_context_id(cmd, args.context))
    print(f"Interrupted context {args.context!r}.")


def _duration(run: Run) -> str:
    from sandbox_magic.client import parse_timestamp

    seconds = run.duration_seconds
    if seconds is None:
        start = parse_timestamp(run.created_at)
        if start is None or run.is_terminal:
            return ""
        seconds = (datetime.now(UTC) - start).total_seconds()
        return f"{seconds:.1f} s so far"
    return f"{seconds:.2f} s"


@subcommand(
    "runs [--status S] [--limit N] [--context C]",
    "recent runs as a table",
    argument("--status"),
    argument("--context"),
    argument("--limit", type=int, default=20),
    argument("--local", action="store_true"),
)
def _runs(cmd: CommandContext, args: argparse.Namespace) -> Table:
    """Recent runs: from the server, or from the local journal with --local."""
    if args.limit is not None and args.limit <= 0:
        raise UsageError("--limit must be a positive number.")
    journal = {e.run_id: e for e in cmd.journal.entries()}
    session = cmd.session
    sandbox_id = session.sandbox_id
    if args.local or sandbox_id is None:
        entries = list(reversed(cmd.journal.entries()))[: args.limit]
        rows = [[e.run_id, e.context, e.submitted_at, e.url, e.code_head] for e in entries]
        return Table(
            ["run", "context", "submitted", "server", "code"],
            rows,
            caption="recent runs (local journal)",
            footnote="`%sandbox attach RUN_ID` shows a run again.",
        )
    context_id = _context_id(cmd, args.context)[1] if args.context else None
    runs: list[Run] = []
    cursor: str | None = None
    while len(runs) < args.limit:  # page through the server's history
        page = cmd.calls.list_runs(
            sandbox_id,
            status=args.status,
            context_id=context_id,
            limit=min(args.limit - len(runs), _PAGE_SIZE),
            cursor=cursor,
        )
        runs.extend(page.items)
        cursor = page.next_cursor
        if not cursor or not page.items:
            break
    rows = []
    for run in runs[: args.limit]:
        name = session.context_name(sandbox_id, run.context_id or "") or run.context_id
        entry = journal.get(run.id)
        rows.append(
            [run.id, run.status, _duration(run), name or "", entry.code_head if entry else ""]
        )
    footnote = "`%sandbox attach RUN_ID` shows a run again."
    if cursor:
        footnote = f"More runs exist; raise --limit to see them. {footnote}"
    return Table(
        ["run", "status", "duration", "context", "code"],
        rows,
        caption=f"runs of {sandbox_id}",
        footnote=footnote,
    )


def _locate_run(cmd: CommandContext, run_id: str) -> tuple[str, Run]:
    """Find a run by id in the session's sandbox or, failing that, via the journal."""
    from sandbox_magic.client import SandboxError

    session = cmd.session
    entry = cmd.journal.find(run_id)
    candidates = [s for s in (session.sandbox_id, entry.sandbox_id if entry else None) if s]
    if not candidates:
        raise UsageError(
            f"Run {run_id} is not in this session or the local journal; "
            "`%sandbox runs --local` lists the runs the journal knows."
        )
    if entry is not None and entry.embedded_state_dir and session.sandbox_id is None:
        cmd.controller.use_embedded_state(entry.embedded_state_dir, cmd.settings)
    found = cmd.calls.find_run(candidates, run_id)
    if found is None:
        raise SandboxError(f"The server at {cmd.session.url} does not know run {run_id}.")
    return found


@subcommand("cancel RUN_ID", "cancel a run", argument("run_id"))
def _cancel(cmd: CommandContext, args: argparse.Namespace) -> None:
    """Ask the server to cancel a run."""
    sandbox_id, run = _locate_run(cmd, args.run_id)
    if run.is_terminal:
        print(f"Run {run.id} already ended {run.status}.")
        return
    run = cmd.calls.cancel_run(sandbox_id, run.id)
    print(f"Cancel requested for run {run.id} (now {run.status}).")


@subcommand("attach RUN_ID", "render a run again, or follow a running one", argument("run_id"))
def _attach(cmd: CommandContext, args: argparse.Namespace) -> Any:
    """Show a run's outputs again, following it first if it is still going."""
    sandbox_id, run = _locate_run(cmd, args.run_id)
    return cmd.controller.attach(sandbox_id, run, cmd.settings)


@subcommand(
    "wait [RUN_ID ...]",
    "wait for background runs to end",
    argument("run_ids", nargs="*"),
    argument("--timeout", type=float),
)
def _wait(cmd: CommandContext, args: argparse.Namespace) -> None:
    """Block until the given (or all) background runs end."""
    cmd.controller.background.wait(args.run_ids, timeout=args.timeout)


@subcommand(
    "artifacts [--run RUN_ID]",
    "artifacts with name, kind, size and sha256",
    argument("--run", dest="run_id"),
    argument("--context"),
)
def _artifacts(cmd: CommandContext, args: argparse.Namespace) -> Table:
    """Artifacts of the sandbox, or of one run."""
    if args.run_id:
        sandbox_id, run = _locate_run(cmd, args.run_id)
        artifacts = list(run.execution.artifacts)
    else:
        sandbox_id = _sandbox_or_fail(cmd)
        context_id = _context_id(cmd, args.context)[1] if args.context else None
        artifacts, cursor = [], None
        while True:
            page = cmd.calls.list_artifacts(sandbox_id, context_id=context_id, cursor=cursor)
            artifacts.extend(page.items)
            cursor = page.next_cursor
            if not cursor or len(artifacts) >= _MAX_ARTIFACTS:
                break
    rows = [
        [
            a.name or a.id,
            a.kind or "",
            human_size(a.size_bytes) if a.size_bytes is not None else "",
            (a.sha256 or "")[:16],
            a.created_at or "",
            a.id,
        ]
        for a in artifacts
    ]
    return Table(
        ["name", "kind", "size", "sha256", "created", "id"],
        rows,
        caption=f"artifacts of {args.run_id or sandbox_id}",
    )


@subcommand(
    "preview ARTIFACT",
    "show an artifact inline (image, HTML, PDF, text)",
    argument("artifact", metavar="ARTIFACT"),
)
def _preview(cmd: CommandContext, args: argparse.Namespace) -> Any:
    """Show one artifact inline: an image, HTML (sanitised), a PDF or text."""
    from sandbox_magic.render.artifacts import artifact_preview

    sandbox_id = _sandbox_or_fail(cmd)
    artifact = _find_artifact(cmd, sandbox_id, args.artifact)
    limit = cmd.settings.max_output_bytes
    if artifact.size_bytes is not None and artifact.size_bytes > limit:
        raise UsageError(
            f"{artifact.name or artifact.id} is {human_size(artifact.size_bytes)}, over the "
            f"preview limit of {human_size(limit)} (SandboxMagics.max_output_bytes); "
            "download it with --save-artifacts instead."
        )
    data = cmd.calls.download_artifact(sandbox_id, artifact.id, limit)
    return artifact_preview(
        artifact,
        data,
        allow_javascript=cmd.settings.allow_javascript,
        redactor=cmd.settings.redactor(),
    )


def _find_artifact(cmd: CommandContext, sandbox_id: str, wanted: str) -> Artifact:
    """An artifact of the sandbox by id or by name (the newest of that name)."""
    cursor: str | None = None
    while True:
        page = cmd.calls.list_artifacts(sandbox_id, cursor=cursor)
        for artifact in page.items:
            if wanted in (artifact.id, artifact.name):
                return artifact
        cursor = page.next_cursor
        if not cursor:
            raise UsageError(
                f"No artifact {wanted!r} in sandbox {sandbox_id}; `%sandbox artifacts` lists them."
            )


@subcommand("stop", "delete the sandbox this session created")
def _stop(cmd: CommandContext, args: argparse.Namespace) -> None:
    """Delete the sandbox this session created (its contexts and files go with it)."""
    deleted = cmd.calls.delete_sandbox()
    if deleted is None:
        print("This session has not created a sandbox; nothing to stop.")
    else:
        print(f"Deleted sandbox {deleted}.")
