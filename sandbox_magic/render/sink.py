"""`OutputSink`: where one cell's remote outputs go, in the order they arrive.

The magic creates one sink per cell and feeds it the outputs of
`sandbox_magic.client.OutputCursor.advance`. Stream chunks are written to the
cell's stdout/stderr, results are published as display outputs, and the main result
(``is_main_result``) is kept as a `RemoteValue` for the magic to return as ``Out[n]``.
All settings (JavaScript, size limit, redaction) live here, so the magic does not
repeat them on every call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sandbox_magic.client import (
    Artifact,
    ExecutionError,
    RemoteExecutionError,
    Result,
    Run,
    RunFailedError,
    SandboxError,
)
from sandbox_magic.render.artifacts import artifacts_bundle
from sandbox_magic.render.bundle import DEFAULT_MAX_OUTPUT_BYTES, note_html, result_bundle
from sandbox_magic.render.carried import NOT_CARRIED, carried_value
from sandbox_magic.render.composite import as_stream
from sandbox_magic.render.display_ids import DisplayIds, is_update, remote_display_id
from sandbox_magic.render.failures import cell_exception, remote_error, run_error
from sandbox_magic.render.publish import clear_outputs, publish_bundle, update_bundle
from sandbox_magic.render.redact import NO_REDACTION, Redactor
from sandbox_magic.render.streams import StreamWriter
from sandbox_magic.render.value import RemoteValue

__all__ = ["OutputSink", "Publisher"]

#: Publishes one display output: ``publish(data, metadata, display_id)``.
Publisher = Callable[[dict[str, Any], dict[str, Any], str | None], None]


def _publish(data: dict[str, Any], metadata: dict[str, Any], display_id: str | None) -> None:
    publish_bundle(data, metadata, display_id=display_id)


class OutputSink:
    """Renders one cell's remote outputs; see the module docstring."""

    def __init__(
        self,
        *,
        allow_javascript: bool = False,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        redactor: Redactor = NO_REDACTION,
        publish: Publisher = _publish,
        display_ids: DisplayIds | None = None,
    ) -> None:
        self.allow_javascript = allow_javascript
        self.max_output_bytes = max_output_bytes
        self.redactor = redactor
        self._publish = publish
        self.display_ids = display_ids if display_ids is not None else DisplayIds()
        self._streams = StreamWriter(max_bytes=max_output_bytes, redactor=redactor)
        self._main: RemoteValue | None = None
        self._main_value: Any = NOT_CARRIED
        #: Remote cell numbers -> local ones, for the tracebacks (`relabel_cells`).
        self.cell_numbers: dict[int, int] = {}

    # -- outputs, as they arrive ---------------------------------------------

    def emit(self, output: object) -> str | None:
        """Render one output; returns a stream chunk's last line for the status view."""
        if isinstance(output, Result):
            self.show_result(output)
            return None
        stream = as_stream(output)
        if stream is None:
            return None
        return self._streams.write(*stream)

    def bundle(self, result: Result) -> tuple[dict[str, Any], dict[str, Any]]:
        """The cleaned MIME bundle of ``result`` under this sink's settings."""
        return result_bundle(
            result,
            allow_javascript=self.allow_javascript,
            max_bytes=self.max_output_bytes,
            redactor=self.redactor,
        )

    def show_result(self, result: Result) -> None:
        """Publish a display result now, or keep the main result for ``Out[n]``."""
        data, metadata = self.bundle(result)
        if result.is_main_result:
            self._main = RemoteValue(data, metadata)
            self._main_value = carried_value(result, self.redactor)
            return
        self._streams.flush()
        remote_id = remote_display_id(result)
        if remote_id is not None and is_update(result):
            known = self.display_ids.known(remote_id)
            if known is not None:  # an update of an output an earlier cell showed
                update_bundle(data, metadata, known)
                return
        local_id = self.display_ids.local(remote_id) if remote_id is not None else None
        self._publish(data, metadata, local_id)

    def update_result(self, result: Result) -> None:
        """A result shown earlier under a display id changed: update it in place."""
        remote_id = remote_display_id(result)
        if remote_id is None or result.is_main_result:
            return
        data, metadata = self.bundle(result)
        update_bundle(data, metadata, self.display_ids.local(remote_id))

    def notice(self, text: str) -> None:
        """A one-line note from sandbox_magic itself (muted, not an error)."""
        self._streams.flush()
        text = self.redactor.text(text)
        self._publish({"text/plain": text, "text/html": note_html(text)}, {}, None)

    def clear(self, *, wait: bool = True) -> None:
        """The remote code cleared its outputs (``OutputCursor.cleared``): do the same.

        Stream budgets start afresh. This also clears the status view's output: call
        `StatusView.outputs_cleared` so that it shows itself again.
        """
        self._streams.reset()
        clear_outputs(wait=wait)

    # -- the end of the cell ---------------------------------------------------

    def close(self) -> None:
        """Flush held stream text and report dropped bytes (idempotent)."""
        self._streams.close()

    def artifacts(
        self,
        artifacts: Sequence[Artifact],
        *,
        previews: Mapping[str, bytes] | None = None,
        base_url: str | None = None,
        link_needs_auth: bool = True,
    ) -> None:
        """Show the run's artifacts as one compact list (nothing when there are none)."""
        self.close()
        bundle = artifacts_bundle(
            artifacts,
            previews=previews,
            base_url=base_url,
            link_needs_auth=link_needs_auth,
            redactor=self.redactor,
            max_bytes=self.max_output_bytes,
        )
        if bundle is not None:
            self._publish(dict(bundle), {}, None)

    def remote_error(self, error: ExecutionError, run_id: str | None) -> RemoteExecutionError:
        """The exception to raise for a remote exception (redacted, bounded)."""
        self.close()
        return remote_error(
            error,
            run_id,
            redactor=self.redactor,
            max_bytes=self.max_output_bytes,
            cell_numbers=self.cell_numbers,
        )

    def run_error(self, run: Run) -> RunFailedError:
        """The exception to raise for a failed or cancelled run."""
        self.close()
        return run_error(run, redactor=self.redactor)

    def exception_for(self, run: Run) -> SandboxError | None:
        """The exception that should fail the cell for a finished run, or None.

        A cancelled run, or one that failed with a reason (a timeout), gives
        `RunCancelledError`/`RunFailedError` even when the interrupt also left a
        remote ``KeyboardInterrupt``; otherwise a remote exception gives
        `RemoteExecutionError`.
        """
        self.close()
        return cell_exception(
            run,
            redactor=self.redactor,
            max_bytes=self.max_output_bytes,
            cell_numbers=self.cell_numbers,
        )

    def show_error(self, error: RemoteExecutionError) -> None:
        """Show a remote traceback without failing the cell (``--no-raise``)."""
        self.close()
        sys.stderr.write("\n".join(error._render_traceback_()) + "\n")
        sys.stderr.flush()

    def main_value(self) -> Any:
        """The remote ``Out[n]`` value, if the run had one; closes the streams.

        The value itself when the sandbox sent it as plain data (`carried_value`),
        else a `RemoteValue` showing the remote representation.
        """
        self.close()
        if self._main is not None and self._main_value is not NOT_CARRIED:
            return self._main_value
        return self._main
