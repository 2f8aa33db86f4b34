"""The ``%sandbox`` subcommands, one function each: ``cmd_<name>(controller, args)``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from sandbox_magic.client._errors import NotFoundError, SandboxError
from sandbox_magic.client._models import Artifact, Run, parse_timestamp
from sandbox_magic.render.artifacts import artifact_preview
from sandbox_magic.render.table import Table
from sandbox_magic.render.text import human_size

if TYPE_CHECKING:
    from sandbox_magic.notebook.controller import SandboxController

__all__ = [
    "cmd_artifacts",
    "cmd_attach",
    "cmd_cancel",
    "cmd_connect",
    "cmd_contexts",
    "cmd_interrupt",
    "cmd_preview",
    "cmd_restart",
    "cmd_runs",
    "cmd_status",
    "cmd_stop",
    "cmd_wait",
]


_PAGE_SIZE = 100


def _sandbox_or_fail(ctl: SandboxController) -> str:
    sandbox_id = ctl.session().sandbox_id
    if sandbox_id is None:
        raise UsageError("No sandbox yet: run a %%sandbox cell first.")
    return sandbox_id


def cmd_status(ctl: SandboxController, args: argparse.Namespace) -> Table:
    """Server URL (never the key), health, sandbox and contexts."""
    session = ctl.session()
    facts = session.describe()
    healthy = "not connected yet"
    if facts["url"] is not None:
        try:
            client = ctl.io.run(session.client(), 30)
            healthy = "ok" if ctl.io.run(client.health(), 30) else "unhealthy"
        except SandboxError as exc:
            healthy = f"unreachable ({exc})"
    url = facts["url"] or (
        ctl.magics.api_url or "embedded local server (starts with the first %%sandbox cell)"
    )
    rows = [
        ["server", str(url)],
        ["kind", "embedded local server" if facts["embedded"] else "remote service"],
        ["health", healthy],
        ["api key", "set (hidden)" if ctl.magics.api_key else "not set"],
        ["sandbox", facts["sandbox"] or "none yet"],
        ["contexts", ", ".join(f"{n} ({i})" for n, i in facts["contexts"].items()) or "none yet"],
    ]
    return Table(["", "value"], rows, caption="sandbox_magic status")


def cmd_connect(ctl: SandboxController, args: argparse.Namespace) -> None:
    """Use another server for the next cells."""
    ctl.connect(args.url)
    print(f"Connected to {ctl.session().settings.api_url}; the next %%sandbox cell uses it.")


def cmd_contexts(ctl: SandboxController, args: argparse.Namespace) -> Table:
    """Contexts of the session's sandbox, with the names this session gave them."""
    session = ctl.session()
    sandbox_id = _sandbox_or_fail(ctl)
    client = ctl.io.run(session.client(), 30)
    contexts = ctl.io.run(client.list_contexts(sandbox_id), 60)
    rows = [
        [session.context_name(sandbox_id, c.id) or "", c.id, c.language or "", c.cwd or ""]
        for c in contexts
    ]
    return Table(["name", "id", "language", "cwd"], rows, caption=f"contexts of {sandbox_id}")


def _context_id(ctl: SandboxController, name: str) -> tuple[str, str]:
    session = ctl.session()
    sandbox_id = _sandbox_or_fail(ctl)
    for sandbox, context_name, context in session.known_contexts():
        if sandbox == sandbox_id and (context_name == name or context.id == name):
            return sandbox_id, context.id
    known = ", ".join(n for _, n, _ in session.known_contexts()) or "none"
    raise UsageError(f"No context named {name!r} in this session (known: {known}).")


def cmd_restart(ctl: SandboxController, args: argparse.Namespace) -> None:
    """Restart a context's kernel; its variables are lost."""
    sandbox_id, context_id = _context_id(ctl, args.context)
    client = ctl.io.run(ctl.session().client(), 30)
    ctl.io.run(client.restart_context(sandbox_id, context_id), 120)
    print(f"Restarted context {args.context!r}; its variables are gone.")


def cmd_interrupt(ctl: SandboxController, args: argparse.Namespace) -> None:
    """Interrupt whatever a context is running."""
    sandbox_id, context_id = _context_id(ctl, args.context)
    client = ctl.io.run(ctl.session().client(), 30)
    ctl.io.run(client.interrupt_context(sandbox_id, context_id), 60)
    print(f"Interrupted context {args.context!r}.")


def _duration(run: Run) -> str:
    seconds = run.duration_seconds
    if seconds is None:
        start = parse_timestamp(run.created_at)
        if start is None or run.is_terminal:
            return ""
        seconds = (datetime.now(UTC) - start).total_seconds()
        return f"{seconds:.1f} s so far"
    return f"{seconds:.2f} s"


def cmd_runs(ctl: SandboxController, args: argparse.Namespace) -> Table:
    """Recent runs: from the server, or from the local journal with --local."""
    if args.limit is not None and args.limit <= 0:
        raise UsageError("--limit must be a positive number.")
    journal = {e.run_id: e for e in ctl.journal.entries()}
    session = ctl.session()
    if args.local or session.sandbox_id is None:
        entries = list(reversed(ctl.journal.entries()))[: args.limit]
        rows = [[e.run_id, e.context, e.submitted_at, e.url, e.code_head] for e in entries]
        return Table(
            ["run", "context", "submitted", "server", "code"],
            rows,
            caption="recent runs (local journal)",
            footnote="`%sandbox attach RUN_ID` shows a run again.",
        )
    client = ctl.io.run(session.client(), 30)
    context_id = _context_id(ctl, args.context)[1] if args.context else None
    runs: list[Run] = []
    cursor: str | None = None
    while len(runs) < args.limit:  # page through the server's history
        page = ctl.io.run(
            client.list_runs(
                session.sandbox_id,
                status=args.status,
                context_id=context_id,
                limit=min(args.limit - len(runs), _PAGE_SIZE),
                cursor=cursor,
            ),
            60,
        )
        runs.extend(page.items)
        cursor = page.next_cursor
        if not cursor or not page.items:
            break
    rows = []
    for run in runs[: args.limit]:
        name = session.context_name(session.sandbox_id, run.context_id or "") or run.context_id
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
        caption=f"runs of {session.sandbox_id}",
        footnote=footnote,
    )


def _locate_run(ctl: SandboxController, run_id: str) -> tuple[str, Run]:
    """Find a run by id in the session's sandbox or, failing that, via the journal."""
    session = ctl.session()
    entry = ctl.journal.find(run_id)
    candidates = [s for s in (session.sandbox_id, entry.sandbox_id if entry else None) if s]
    if not candidates:
        raise UsageError(
            f"Run {run_id} is not in this session or the local journal; "
            "`%sandbox runs --local` lists the runs the journal knows."
        )
    if entry is not None and entry.embedded_state_dir and session.sandbox_id is None:
        ctl.use_embedded_state(entry.embedded_state_dir)
        session = ctl.session()
    client = ctl.io.run(session.client(), 60)
    for sandbox_id in dict.fromkeys(candidates):
        try:
            return sandbox_id, ctl.io.run(client.get_run(sandbox_id, run_id), 60)
        except NotFoundError:
            continue
    raise SandboxError(f"The server at {session.url} does not know run {run_id}.")


def cmd_cancel(ctl: SandboxController, args: argparse.Namespace) -> None:
    """Ask the server to cancel a run."""
    sandbox_id, run = _locate_run(ctl, args.run_id)
    if run.is_terminal:
        print(f"Run {run.id} already ended {run.status}.")
        return
    client = ctl.io.run(ctl.session().client(), 30)
    run = ctl.io.run(client.cancel_run(sandbox_id, run.id), 60)
    print(f"Cancel requested for run {run.id} (now {run.status}).")


def cmd_attach(ctl: SandboxController, args: argparse.Namespace) -> Any:
    """Show a run's outputs again, following it first if it is still going."""
    sandbox_id, run = _locate_run(ctl, args.run_id)
    return ctl.attach(sandbox_id, run)


def cmd_wait(ctl: SandboxController, args: argparse.Namespace) -> None:
    """Block until the given (or all) background runs end."""
    ctl.background.wait(args.run_ids, timeout=args.timeout)


def cmd_artifacts(ctl: SandboxController, args: argparse.Namespace) -> Table:
    """Artifacts of the sandbox, or of one run."""
    session = ctl.session()
    if args.run_id:
        sandbox_id, run = _locate_run(ctl, args.run_id)
        artifacts = list(run.execution.artifacts)
    else:
        sandbox_id = _sandbox_or_fail(ctl)
        client = ctl.io.run(session.client(), 30)
        context_id = _context_id(ctl, args.context)[1] if args.context else None
        artifacts, cursor = [], None
        while True:
            page = ctl.io.run(
                client.list_artifacts(sandbox_id, context_id=context_id, cursor=cursor), 60
            )
            artifacts.extend(page.items)
            cursor = page.next_cursor
            if not cursor or len(artifacts) >= 1000:
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


def cmd_preview(ctl: SandboxController, args: argparse.Namespace) -> Any:
    """Show one artifact inline: an image, HTML (sanitised), a PDF or text."""
    session = ctl.session()
    sandbox_id = _sandbox_or_fail(ctl)
    client = ctl.io.run(session.client(), 30)
    artifact = _find_artifact(ctl, sandbox_id, args.artifact)
    limit = ctl.magics.max_output_bytes
    if artifact.size_bytes is not None and artifact.size_bytes > limit:
        raise UsageError(
            f"{artifact.name or artifact.id} is {human_size(artifact.size_bytes)}, over the "
            f"preview limit of {human_size(limit)} (SandboxMagics.max_output_bytes); "
            "download it with --save-artifacts instead."
        )
    data = ctl.io.run(client.download_artifact(sandbox_id, artifact.id, max_bytes=limit), 120)
    return artifact_preview(
        artifact, data, allow_javascript=ctl.magics.allow_javascript, redactor=ctl.redactor()
    )


def _find_artifact(ctl: SandboxController, sandbox_id: str, wanted: str) -> Artifact:
    """An artifact of the sandbox by id or by name (the newest of that name)."""
    client = ctl.io.run(ctl.session().client(), 30)
    cursor: str | None = None
    while True:
        page = ctl.io.run(client.list_artifacts(sandbox_id, cursor=cursor), 60)
        for artifact in page.items:
            if wanted in (artifact.id, artifact.name):
                return artifact
        cursor = page.next_cursor
        if not cursor:
            raise UsageError(
                f"No artifact {wanted!r} in sandbox {sandbox_id}; `%sandbox artifacts` lists them."
            )


def cmd_stop(ctl: SandboxController, args: argparse.Namespace) -> None:
    """Delete the sandbox this session created (its contexts and files go with it)."""
    deleted = ctl.io.run(ctl.session().delete_sandbox(), 60)
    if deleted is None:
        print("This session has not created a sandbox; nothing to stop.")
    else:
        print(f"Deleted sandbox {deleted}.")
