"""The ``%sandbox`` subcommands: each one's usage, help, arguments and handler together.

`subcommand` registers a handler in `SUBCOMMANDS`; the line magic parses the words
with the subcommand's parser and calls its handler with a `CommandContext`. This
module imports only light modules at load time (the magics import it on
``%load_ext``); the client comes in when a handler first runs.
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from sandbox_magic.render.table import Table
from sandbox_magic.render.text import human_size
from sandbox_magic.session.credentials import find_api_key

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
    #: Raises `UsageError` unless its argument is valid after ``%%sandbox``.
    check_options: Callable[[str], None] = lambda line: None

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


def describe_isolation(health: dict[str, Any] | None) -> str:
    """One line about a server's isolation and limits, from its ``/healthz``."""
    info = (health or {}).get("isolation")
    if not isinstance(info, dict):
        return "not reported"
    mode = str(info.get("mode", "unknown"))
    if mode == "none":
        note = str(info.get("note") or "")
        return f"none: code runs unconfined{f' ({note})' if note else ''}"
    limits = (health or {}).get("limits")
    shown = ""
    if isinstance(limits, dict):
        shown = (
            f"; per sandbox {limits.get('default_memory_mb')} MB (max "
            f"{limits.get('max_memory_mb')}), {limits.get('default_vcpus')} CPU, "
            f"{limits.get('processes')} processes"
        )
    return f"{mode} (network: {info.get('network', 'not reported')}){shown}"


@subcommand("status", "server URL (no key), sandbox, contexts, health, isolation")
def _status(cmd: CommandContext, args: argparse.Namespace) -> Table:
    """Server URL (never the key), health, sandbox and contexts."""
    from sandbox_magic.client import SandboxError
    from sandbox_magic.notebook.account_view import account_rows

    facts = cmd.session.describe()
    healthy = "not connected yet"
    isolation = "unknown"
    account: dict[str, Any] | None = None
    if facts["url"] is not None:
        try:
            details = cmd.calls.health_details()
            healthy = "ok" if details is not None else "unhealthy"
            isolation = describe_isolation(details)
            account = cmd.calls.account()
            if healthy == "ok":
                cmd.calls.api_generation()
                facts = cmd.session.describe()
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
        ["url from", "embedded local server" if facts["embedded"] else facts["url_source"]],
        ["isolation", isolation],
        ["api key", "set (hidden)" if connection.api_key else "not set"],
        ["key from", "the embedded server's token" if facts["embedded"] else facts["key_source"]],
        ["api", facts["api"]],
        *account_rows(account),
        ["sandbox", facts["sandbox"] or "none yet"],
        ["contexts", ", ".join(f"{n} ({i})" for n, i in facts["contexts"].items()) or "none yet"],
    ]
    return Table(["", "value"], rows, caption="sandbox_magic status")


@subcommand(
    "connect URL | --embedded",
    "use this server once it answers and takes the key (read where the service's "
    "tools keep it, or a prompt); --embedded: back to the embedded local server",
    argument("url", nargs="?"),
    argument("--embedded", action="store_true"),
)
def _connect(cmd: CommandContext, args: argparse.Namespace) -> None:
    """Use another server for the next cells (checked first), or the embedded one."""
    if args.embedded:
        if args.url:
            raise UsageError("%sandbox connect takes a URL or --embedded, not both.")
        _use_embedded(cmd)
        return
    if not args.url:
        raise UsageError("%sandbox connect needs a URL (or --embedded).")
    from IPython.core.error import StdinNotImplementedError

    from sandbox_magic.client import SandboxError
    from sandbox_magic.notebook.connect_check import check_server

    found = find_api_key()
    key = found.value if found else None
    if not key:
        try:
            key = getpass.getpass(f"API key for {args.url} (input hidden; empty for none): ")
        except StdinNotImplementedError:
            raise SandboxError(
                f"%sandbox connect {args.url}: no API key. This kernel cannot prompt for one "
                "(it runs headless), so set NULLSPACE_API_KEY in the kernel's environment, "
                "or `%config SandboxMagics.api_url` and `%config SandboxMagics.api_key` in "
                "the notebook."
            ) from None
        key = key or None
    timeout = cmd.settings.connection.request_timeout
    shown = cmd.controller.io.run(check_server(args.url, key, request_timeout=timeout), 60)
    cmd.connect(args.url, key)  # only now: a failed check changes nothing
    print(
        f"Connected to {shown} (it answered and accepted the key); the next %%sandbox cell uses it."
    )


def _use_embedded(cmd: CommandContext) -> None:
    cmd.connect("", None)
    print("The next %%sandbox cell uses the embedded local server.")


@subcommand("disconnect", "back to the embedded local server")
def _disconnect(cmd: CommandContext, args: argparse.Namespace) -> None:
    """Go back to the embedded local server."""
    _use_embedded(cmd)


@subcommand(
    "on [OPTIONS]",
    "run every following cell in the sandbox (as %%sandbox OPTIONS)",
    argument("options", nargs=argparse.REMAINDER),
)
def _on(cmd: CommandContext, args: argparse.Namespace) -> None:
    """Run every following cell in the sandbox, as if it began with ``%%sandbox``."""
    options = " ".join(args.options)
    if options:
        cmd.check_options(options)  # a typo fails here, not at every cell
    cmd.controller.auto.on(options)
    shown = f"%%sandbox {options}".rstrip()
    print(
        f"Every cell now runs in the sandbox (as `{shown}`); cells starting with % run "
        "here. `%sandbox off` turns this off."
    )


@subcommand("off", "run cells locally again")
def _off(cmd: CommandContext, args: argparse.Namespace) -> None:
    """Stop running every cell in the sandbox."""
    if cmd.controller.auto.off():
        print("Cells run locally again.")
    else:
        print("Cells already run locally (`%sandbox on` sends them all to the sandbox).")


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
    entry = cmd.journal.find(args.run_id)
    context = entry.context if entry else None
    return cmd.controller.attach(sandbox_id, run, cmd.settings, context_name=context)


@subcommand(
    "wait [RUN_ID ...]",
    "wait for background runs to end (without ids: those not reported yet)",
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
