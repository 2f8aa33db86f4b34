"""The output bridge: what a remote run produced -> native IPython output.

Pure functions build MIME bundles; thin functions publish them. The pieces live in
`sandbox_magic.render`; this module is the public surface the magic uses:

- `OutputSink`: one per cell; ``emit(output)`` for each item of
  ``OutputCursor.advance(...)`` (streams to the cell's stdout/stderr, results as
  display outputs), then ``main_value()`` for ``Out[n]``, ``artifacts(...)``,
  ``remote_error(...)`` / ``run_error(...)`` for the exception that fails the cell.
- `result_bundle`, `composite_bundle`, `artifacts_bundle`: the pure builders.
- `RemoteValue`: the remote ``Out[n]`` (``_repr_mimebundle_``).

Trust model: remote code is untrusted. Unless ``allow_javascript`` is on, remote
``application/javascript`` is shown as text, and remote HTML, SVG and Markdown are
made inert (no scripts, event handlers or ``javascript:`` URLs) before display,
because JupyterLab runs scripts in outputs of the live kernel. With it on, remote
outputs are displayed exactly like local ones. Binary images are not scanned for
secrets; all text is.
"""

from __future__ import annotations

from sandbox_magic.client._models import Result
from sandbox_magic.render.artifacts import artifacts_bundle, safe_link, wants_preview
from sandbox_magic.render.bundle import DEFAULT_MAX_OUTPUT_BYTES, result_bundle
from sandbox_magic.render.composite import composite_bundle
from sandbox_magic.render.failures import (
    cell_exception,
    describe_failure,
    remote_error,
    run_error,
)
from sandbox_magic.render.publish import publish_bundle
from sandbox_magic.render.redact import NO_REDACTION, Redactor
from sandbox_magic.render.sink import OutputSink
from sandbox_magic.render.text import human_size
from sandbox_magic.render.value import RemoteValue

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "OutputSink",
    "RemoteValue",
    "artifacts_bundle",
    "cell_exception",
    "composite_bundle",
    "describe_failure",
    "display_result",
    "human_size",
    "remote_error",
    "result_bundle",
    "run_error",
    "safe_link",
    "wants_preview",
]


def display_result(
    result: Result,
    *,
    allow_javascript: bool = False,
    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    redactor: Redactor = NO_REDACTION,
) -> RemoteValue | None:
    """Publish ``result`` as a display output; the main result is returned instead.

    The caller returns the `RemoteValue` from the magic so that it becomes ``Out[n]``.
    """
    data, metadata = result_bundle(
        result, allow_javascript=allow_javascript, max_bytes=max_bytes, redactor=redactor
    )
    if result.is_main_result:
        return RemoteValue(data, metadata)
    publish_bundle(data, metadata)
    return None
