"""The live status of a remote run, and the one-line summary it leaves behind.

One interface, `StatusView`, four implementations:

- `WidgetStatusView`: a live ipywidgets line (state dot, elapsed time, ids, latest
  output line, an optional Cancel button) for JupyterLab/Notebook.
- `HtmlStatusView`: the same line as a plain ``text/plain`` + ``text/html`` output
  updated in place; right for headless runs (nbclient, papermill), which keep no
  widget state.
- `TextStatusView`: rate-limited lines on stderr, for terminal IPython.
- `NullStatusView`: nothing at all (``--quiet``: no live view, no summary).

Every view stays invisible until the run has taken ``delay`` seconds, so fast cells
show only their output and the summary. The caller drives time: `StatusView.tick`
(and `update`) re-check the clock; no view starts a thread. When the run ends,
`finish` replaces the live output *in place* (display handle update) with a static
summary carrying only ``text/plain`` and ``text/html``, so no widget payload stays in
a saved notebook. Methods may be called from any thread (background runs); they
hold a lock briefly and do little work.

Nothing secret is shown: ids only, and every text passes through the redactor.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any, ClassVar, Final

from sandbox_magic.client import Run, parse_timestamp
from sandbox_magic.render.failures import describe_failure, ended_by_the_service
from sandbox_magic.render.publish import OutputHandle, display_bundle, display_object
from sandbox_magic.render.redact import NO_REDACTION, Redactor

__all__ = [
    "HEADLESS_ENV",
    "SUMMARY_STYLES",
    "HtmlStatusView",
    "NullStatusView",
    "RunSummary",
    "StatusView",
    "TextStatusView",
    "WidgetStatusView",
    "detect_headless",
    "format_duration",
    "format_elapsed",
    "has_widget_frontend",
    "make_status_view",
    "run_time",
]

#: Set to 1 to force headless status (no widgets), 0 to rule headless out.
HEADLESS_ENV: Final = "SANDBOX_MAGIC_HEADLESS"

_LINE_LIMIT: Final = 100
_COLOURS: Final[Mapping[str, str]] = {
    "submitting": "#9e9e9e",
    "queued": "#d9a400",
    "running": "#1e88e5",
    "cancelling": "#e65100",
}
_ICONS: Final[Mapping[str, str]] = {
    "succeeded": "✓",
    "failed": "✗",
    "error": "✗",
    "cancelled": "■",
}
_ICON_COLOURS: Final[Mapping[str, str]] = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "error": "#c62828",
    "cancelled": "#757575",
}


def format_duration(seconds: float) -> str:
    """``0.42 s``, ``12.3 s``, ``2 min 05 s``."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def format_elapsed(seconds: float) -> str:
    """Whole seconds for a live display (``7 s``, ``2 min 05 s``): changes once a second."""
    if seconds < 60:
        return f"{int(seconds)} s"
    return format_duration(seconds)


#: How much the summary says: everything, just the outcome (ids in a tooltip), or nothing.
SUMMARY_STYLES: Final = ("full", "compact", "none")


def run_time(run: Run) -> float | None:
    """The run's own time on the server (start to end), when both are known."""
    start, end = parse_timestamp(run.started_at), parse_timestamp(run.completed_at)
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def _trim(text: str, limit: int = _LINE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ids(run_id: str | None, sandbox_id: str | None, context: str | None) -> list[str]:
    parts = []
    if run_id:
        parts.append(f"run {run_id}")
    if sandbox_id:
        parts.append(f"sandbox {sandbox_id}")
    if context:
        parts.append(f"context {context}")
    return parts


_STREAMED_NOTE = "streamed (this server has no async runs): cannot be re-attached"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """How a run ended, as one static line (``✓ succeeded in 0.42 s · run ...``)."""

    status: str
    duration: float | None = None
    run_id: str | None = None
    sandbox_id: str | None = None
    context: str | None = None
    detail: str | None = None
    #: True when ``duration`` is the run's own time as the server measured it.
    run_time: bool = False
    style: str = "full"
    notes: tuple[str, ...] = ()
    #: The run was streamed (``/code/execute``): it has no server-side id to attach to.
    streamed: bool = False

    @classmethod
    def from_run(
        cls, run: Run, *, duration: float | None = None, context: str | None = None
    ) -> RunSummary:
        """The summary of a finished run; a remote exception counts as ``error``.

        The duration is the run's own time (its start to its end on the server) when
        the server says when it started; otherwise ``duration`` (the time seen here).
        """
        error = run.execution.error
        if ended_by_the_service(run) or (run.status == "failed" and error is None):
            status, detail = run.status, describe_failure(run)
        elif error is not None:
            status, detail = "error", f"raised {error.name}"
        else:
            status, detail = run.status, None
        streamed = run.extra.get("streamed") is True
        own = run_time(run)
        if own is None:
            own = duration if duration is not None else run.duration_seconds
            measured = False
        else:
            measured = True
        return cls(
            status=status,
            duration=own,
            run_id=None if streamed else run.id,
            sandbox_id=run.sandbox_id,
            context=context or run.context_id,
            detail=detail,
            run_time=measured,
            streamed=streamed,
        )

    def redacted(self, redactor: Redactor) -> RunSummary:
        """The same summary with every text field redacted."""
        if not redactor.active:
            return self

        def r(value: str | None) -> str | None:
            return None if value is None else redactor.text(value)

        return dataclasses.replace(
            self,
            run_id=r(self.run_id),
            sandbox_id=r(self.sandbox_id),
            context=r(self.context),
            detail=r(self.detail),
            notes=tuple(redactor.text(note) for note in self.notes),
        )

    def _head(self) -> str:
        icon = _ICONS.get(self.status, "•")
        word = self.detail if self.status == "error" and self.detail else self.status
        head = f"{icon} {word}"
        if self.duration is not None:
            head += f" in {format_duration(self.duration)}"
            if self.run_time:
                head += " run time"
        if self.detail and self.status in ("failed", "cancelled"):
            head += f" ({_trim(self.detail, 160)})"
        return head

    def _parts(self) -> list[str]:
        parts = _ids(self.run_id, self.sandbox_id, self.context)
        if self.streamed:
            parts.append(_STREAMED_NOTE)
        return parts

    def _compact_head(self) -> str:
        icon = _ICONS.get(self.status, "•")
        if self.duration is None:
            return f"{icon} {self.status}"
        return f"{icon} {format_duration(self.duration)}"

    def text(self) -> str:
        """The summary as plain text (notes first, one per line)."""
        if self.style == "compact":
            line = self._compact_head()
        else:
            line = " · ".join([self._head(), *self._parts()])
        return "\n".join([*self.notes, line])

    def html(self) -> str:
        """The summary as one small HTML line (notes above it)."""
        colour = _ICON_COLOURS.get(self.status, "#616161")
        notes = "".join(_note_html(note) for note in self.notes)
        if self.style == "compact":
            title = " · ".join([self._head(), *self._parts()])
            return (
                f'{notes}<div class="sandbox-magic-summary" title="{escape(title)}" '
                'style="font-size:0.85em;opacity:0.8">'
                f'<span style="color:{colour}">{escape(self._compact_head())}</span></div>'
            )
        ids = "".join(f" · <code>{escape(part)}</code>" for part in self._parts())
        return (
            f'{notes}<div class="sandbox-magic-summary" style="font-size:0.85em;opacity:0.8">'
            f'<span style="color:{colour}">{escape(self._head())}</span>{ids}</div>'
        )

    def bundle(self) -> dict[str, str]:
        """``text/plain`` and ``text/html``, nothing else (empty for style ``none``)."""
        if self.style == "none":
            if not self.notes:
                return {"text/plain": ""}
            return {
                "text/plain": "\n".join(self.notes),
                "text/html": "".join(_note_html(note) for note in self.notes),
            }
        return {"text/plain": self.text(), "text/html": self.html()}


def _note_html(note: str) -> str:
    return (
        '<p class="sandbox-magic-note" style="opacity:0.75;font-style:italic;margin:0 0 2px">'
        f"{escape(note)}</p>"
    )


class StatusView(ABC):
    """What every status view does; subclasses only draw.

    Call order: (``tick`` while submitting) -> ``start`` -> ``update``/``tick``/
    ``cancelling`` -> ``finish``. The clock starts when the view is created.

    ``handle`` is the display output the view owns (None until it draws, and for
    views that own none); a view with ``can_cancel`` shows a Cancel control once
    ``on_cancel`` is set.
    """

    can_cancel: ClassVar[bool] = False
    handle: OutputHandle | None = None

    def __init__(
        self,
        *,
        delay: float = 0.5,
        redactor: Redactor = NO_REDACTION,
        clock: Callable[[], float] = time.monotonic,
        summary: str = "full",
    ) -> None:
        self.delay = max(0.0, delay)
        self.redactor = redactor
        self.summary_style = summary if summary in SUMMARY_STYLES else "full"
        self.notes: list[str] = []
        self._clock = clock
        self._t0 = clock()
        self._lock = threading.RLock()
        self.state = "submitting"
        self.run_id: str | None = None
        self.sandbox_id: str | None = None
        self.context: str | None = None
        self.latest_line: str | None = None
        self._cancelling = False
        self._finished = False
        self._on_cancel: Callable[[], None] | None = None

    @property
    def on_cancel(self) -> Callable[[], None] | None:
        """Called (without arguments) when the user asks to cancel, if the view can."""
        return self._on_cancel

    @on_cancel.setter
    def on_cancel(self, callback: Callable[[], None] | None) -> None:
        with self._lock:
            self._on_cancel = callback
            self._cancel_changed()

    def _cancel_changed(self) -> None:
        return

    @property
    def elapsed(self) -> float:
        """Seconds since the view was created."""
        return max(0.0, self._clock() - self._t0)

    @property
    def due(self) -> bool:
        """True once the run has taken long enough to be shown."""
        return self.elapsed >= self.delay

    def start(
        self, run: Run | None = None, *, context: str | None = None, sandbox: str | None = None
    ) -> None:
        """The run was created: remember its ids (``context`` is the user's name for it)."""
        with self._lock:
            self.context = context or self.context
            self.sandbox_id = sandbox or self.sandbox_id
            self._absorb(run)
            self._draw_if_due()

    def update(self, run: Run | None, latest_line: str | None = None) -> None:
        """A new snapshot of the run, and the last line it printed (if any new)."""
        with self._lock:
            self._absorb(run)
            if latest_line and latest_line.strip():
                self.latest_line = _trim(self.redactor.text(latest_line))
            self._draw_if_due()

    def tick(self) -> None:
        """Re-check the clock: show the view once due, refresh the elapsed time."""
        with self._lock:
            self._draw_if_due()

    def cancelling(self) -> None:
        """A cancel was sent: show "cancelling" until the run ends."""
        with self._lock:
            self._cancelling = True
            self.state = "cancelling"
            self._draw_if_due()

    def reserve(self) -> None:
        """Hold the view's place before the cell's first output (nothing shown yet).

        The live line, and then the summary, appear there however late they come.
        """
        return

    def note(self, text: str) -> bool:
        """Show a note from sandbox_magic above the live line and the summary.

        Returns False when the view has not taken its place yet: the caller then
        publishes the note itself, and it lands above the view anyway.
        """
        return False

    def outputs_cleared(self) -> None:
        """The cell's outputs were cleared: show the live view again at the next draw."""
        with self._lock:
            self._forget()

    def _forget(self) -> None:
        return

    def finish(self, final: Run | RunSummary | None) -> None:
        """The run ended: leave the static summary (or nothing, for ``None``)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            if isinstance(final, Run):
                final = RunSummary.from_run(final, duration=self.elapsed, context=self.context)
            if final is not None:
                final = dataclasses.replace(
                    final, style=self.summary_style, notes=(*final.notes, *self.notes)
                )
            self._conclude(final.redacted(self.redactor) if final is not None else None)

    def _absorb(self, run: Run | None) -> None:
        if run is None:
            return
        self.run_id = run.id
        self.sandbox_id = run.sandbox_id or self.sandbox_id
        self.context = self.context or run.context_id
        if run.cancel_requested_at and not run.is_terminal:
            self._cancelling = True
        self.state = "cancelling" if self._cancelling and not run.is_terminal else run.status

    def _draw_if_due(self) -> None:
        if not self._finished and self.due:
            self._draw()

    def line(self) -> str:
        """The live status as plain text."""
        parts = [self.state, format_elapsed(self.elapsed)]
        parts += _ids(self.run_id, self.sandbox_id, self.context)
        text = " · ".join(self.redactor.text(p) for p in parts)
        if self.latest_line:
            text += f" · {self.latest_line}"
        return f"● {text}"

    def line_html(self) -> str:
        """The live status as one HTML line with a coloured state dot."""
        colour = _COLOURS.get(self.state, "#9e9e9e")
        ids = "".join(
            f" · <code>{escape(self.redactor.text(p))}</code>"
            for p in _ids(self.run_id, self.sandbox_id, self.context)
        )
        latest = (
            f' · <span style="opacity:0.8;font-family:monospace">{escape(self.latest_line)}</span>'
            if self.latest_line
            else ""
        )
        notes = "".join(_note_html(self.redactor.text(note)) for note in self.notes)
        return (
            f'{notes}<div class="sandbox-magic-status" style="font-size:0.85em">'
            f'<span style="color:{colour}">●</span> {escape(self.state)} · '
            f"{format_elapsed(self.elapsed)}{ids}{latest}</div>"
        )

    def live_bundle(self) -> dict[str, str]:
        """The live line as ``text/plain`` + ``text/html`` (notes above it)."""
        notes = [self.redactor.text(note) for note in self.notes]
        return {"text/plain": "\n".join([*notes, self.line()]), "text/html": self.line_html()}

    @abstractmethod
    def _draw(self) -> None:
        """Show or refresh the live view (called under the lock, only when due)."""

    @abstractmethod
    def _conclude(self, summary: RunSummary | None) -> None:
        """Replace the live view with ``summary`` (called once, under the lock)."""


class NullStatusView(StatusView):
    """Shows nothing, not even a summary (``--quiet``)."""

    def _draw(self) -> None:
        return

    def _conclude(self, summary: RunSummary | None) -> None:
        return


class _HandleView(StatusView):
    """A view that owns one display output and finally replaces it with the summary."""

    #: True while the handle shows only the empty placeholder of `reserve`.
    _placeholder = False

    def reserve(self) -> None:
        with self._lock:
            if self.handle is None and not self._finished:
                self.handle = display_bundle({"text/plain": ""})
                self._placeholder = True

    def note(self, text: str) -> bool:
        with self._lock:
            if self.handle is None or self._finished:
                return False
            self.notes.append(text)
            if not self._placeholder:
                self._redraw()
            return True

    def _redraw(self) -> None:
        """Draw again now (after a note), whatever the rate limit."""
        self._draw()

    def _forget(self) -> None:
        self.handle = None
        self._placeholder = False

    def _conclude(self, summary: RunSummary | None) -> None:
        if self.handle is not None:
            self.handle.update(summary.bundle() if summary else {"text/plain": ""})
        elif summary is not None and summary.style != "none":
            display_bundle(summary.bundle())


class HtmlStatusView(_HandleView):
    """The live line as ``text/plain`` + ``text/html``, updated in place at most every
    ``min_interval`` seconds (or when the state changes)."""

    def __init__(self, *, min_interval: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_interval = min_interval
        self._drawn_at = float("-inf")
        self._drawn_state = ""

    def _draw(self) -> None:
        now = self._clock()
        if (
            self.handle is not None
            and not self._placeholder
            and (self.state == self._drawn_state and now - self._drawn_at < self.min_interval)
        ):
            return
        self._drawn_at, self._drawn_state = now, self.state
        bundle = self.live_bundle()
        if self.handle is None:
            self.handle = display_bundle(bundle)
        else:
            self.handle.update(bundle)
        self._placeholder = False

    def _redraw(self) -> None:
        self._drawn_state = ""
        self._draw()


class WidgetStatusView(_HandleView):
    """A live ipywidgets line, with a Cancel button shown once `on_cancel` is set."""

    can_cancel: ClassVar[bool] = True

    def __init__(self, *, min_interval: float = 0.25, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_interval = min_interval
        self._drawn_at = float("-inf")
        self._drawn_state = ""
        self._html: Any = None
        self._button: Any = None
        self._box: Any = None

    def _cancel_changed(self) -> None:
        self._sync_button()

    def _sync_button(self) -> None:
        if self._button is not None:
            visible = self._on_cancel is not None and self.state != "cancelling"
            self._button.layout.display = None if visible else "none"

    def _clicked(self, _button: Any) -> None:
        callback = self._on_cancel
        if callback is not None:
            callback()

    def _draw(self) -> None:
        if self._box is None:
            import ipywidgets as widgets

            self._html = widgets.HTML(value=self.line_html())
            self._button = widgets.Button(
                description="Cancel",
                tooltip="Cancel the remote run",
                layout=widgets.Layout(width="auto", height="22px", display="none"),
            )
            self._button.on_click(self._clicked)
            self._box = widgets.HBox(
                [self._html, self._button], layout=widgets.Layout(align_items="center")
            )
            self._sync_button()
            if self.handle is None:
                self.handle = display_object(self._box)
            else:
                self.handle.update_object(self._box)
            self._placeholder = False
            self._drawn_at, self._drawn_state = self._clock(), self.state
            return
        now = self._clock()
        if self.state == self._drawn_state and now - self._drawn_at < self.min_interval:
            return
        self._drawn_at, self._drawn_state = now, self.state
        value = self.line_html()
        if self._html.value != value:
            self._html.value = value
        self._sync_button()

    def _redraw(self) -> None:
        self._drawn_state = ""
        self._draw()

    def _conclude(self, summary: RunSummary | None) -> None:
        super()._conclude(summary)
        self._close_widgets()

    def _forget(self) -> None:
        super()._forget()
        self._close_widgets()

    def _close_widgets(self) -> None:
        if self._box is not None:
            for widget in (self._box, self._html, self._button):
                widget.close()
            self._box = self._html = self._button = None


class TextStatusView(StatusView):
    """Status lines on stderr for terminals: on each state change, otherwise at most
    every ``interval`` seconds; the summary as a ``text/plain`` + ``text/html`` output."""

    def __init__(self, *, interval: float = 10.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interval = interval
        self._written_at = float("-inf")
        self._written_state = ""

    def _draw(self) -> None:
        if self.state in _ICONS:
            return  # the run ended: the summary is its one line
        now = self._clock()
        if self.state == self._written_state and now - self._written_at < self.interval:
            return
        self._written_at, self._written_state = now, self.state
        sys.stderr.write(f"[sandbox] {self.line()}\n")
        sys.stderr.flush()

    def _conclude(self, summary: RunSummary | None) -> None:
        if summary is not None and summary.style != "none":
            display_bundle(summary.bundle())


def has_widget_frontend(shell: Any) -> bool:
    """True in a Jupyter kernel (``ZMQInteractiveShell``) with ipywidgets importable."""
    if not any(cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__):
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def detect_headless(shell: Any, environ: Mapping[str, str] | None = None) -> bool:
    """Best guess whether no one is watching live (nbclient, papermill, nbconvert).

    ``SANDBOX_MAGIC_HEADLESS=1``/``0`` decides when set. Otherwise: those tools send
    their execute requests with ``allow_stdin`` off, while JupyterLab, Notebook and
    VS Code allow input, so a kernel executing without stdin counts as headless. It
    is a heuristic; pass ``headless=`` (or ``%config SandboxMagics.status_view``) to
    be explicit.
    """
    env = os.environ if environ is None else environ
    flag = env.get(HEADLESS_ENV, "").strip().lower()
    if flag:
        return flag not in ("0", "false", "no", "off")
    kernel = getattr(shell, "kernel", None)
    return kernel is not None and getattr(kernel, "_allow_stdin", True) is False


def make_status_view(
    shell: Any,
    *,
    mode: str = "auto",
    quiet: bool = False,
    headless: bool | None = None,
    delay: float = 0.5,
    redactor: Redactor = NO_REDACTION,
    clock: Callable[[], float] = time.monotonic,
    summary: str = "full",
) -> StatusView:
    """The view for this frontend.

    ``mode`` is ``auto``, ``widget``, ``html`` or ``text``. ``quiet`` wins over all
    (`NullStatusView`). ``auto`` picks widgets in a live Jupyter frontend, the
    in-place HTML line in a headless kernel (``headless``, or `detect_headless` when
    None), and text lines in a terminal.
    """
    options: dict[str, Any] = {
        "delay": delay,
        "redactor": redactor,
        "clock": clock,
        "summary": summary,
    }
    if quiet:
        return NullStatusView(**options)
    if mode == "auto":
        is_kernel = any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__)
        if headless is None:
            headless = detect_headless(shell)
        if not is_kernel:
            mode = "text"
        elif headless or not has_widget_frontend(shell):
            mode = "html"
        else:
            mode = "widget"
    if mode == "widget":
        return WidgetStatusView(**options)
    if mode == "html":
        return HtmlStatusView(**options)
    return TextStatusView(**options)
