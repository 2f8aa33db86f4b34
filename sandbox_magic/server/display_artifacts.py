"""Images a run displays become artifacts of that run, as on the hosted service.

A displayed PNG, JPEG, GIF or SVG (a matplotlib figure, ``IPython.display.SVG``...)
is stored once per display, with the run's ``execution_count``, as a ``kind=image``
artifact. It is listed, filtered and paged like a file artifact and announced on the
stream as an ``artifact`` event. Its ``metadata`` says ``{"source": "display",
"result_index": i}``: the image is also the run's ``results[i]``, so a client that
already shows results need not show it twice. Updates of a display
(``update_display_data``) add no artifact.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from sandbox_magic.server.artifacts import describe
from sandbox_magic.server.util import new_id

__all__ = ["DISPLAY_SOURCE", "image_of", "store_display_image"]

DISPLAY_SOURCE: Final = "display"

#: The image types taken from a bundle, best first: (MIME, extension, base64-encoded).
_IMAGE_TYPES: Final = (
    ("image/png", "png", True),
    ("image/svg+xml", "svg", False),
    ("image/jpeg", "jpg", True),
    ("image/gif", "gif", True),
)


def image_of(data: Mapping[str, Any]) -> tuple[str, str, bytes] | None:
    """``(mime, extension, bytes)`` of the best image in a MIME bundle, if any."""
    for mime, extension, encoded in _IMAGE_TYPES:
        value = data.get(mime)
        if isinstance(value, list):  # nbformat may split text into lines
            value = "".join(str(part) for part in value)
        if not isinstance(value, str) or not value:
            continue
        if not encoded:
            return mime, extension, value.encode("utf-8")
        try:
            return mime, extension, base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError):
            continue
    return None


def store_display_image(
    result: Mapping[str, Any],
    *,
    result_index: int,
    store_dir: Path,
    sandbox_id: str,
    context_id: str,
    execution_count: int | None,
    max_bytes: int,
) -> dict[str, Any] | None:
    """Write the image of one displayed result to the store; its Artifact record.

    None when the result holds no image, or one larger than ``max_bytes``.
    """
    data = result.get("data")
    found = image_of(data) if isinstance(data, Mapping) else None
    if found is None:
        return None
    mime, extension, content = found
    if len(content) > max_bytes:
        return None
    artifact_id = new_id("art")
    (store_dir / artifact_id).write_bytes(content)
    number = execution_count if execution_count is not None else 0
    return describe(
        artifact_id,
        sandbox_id=sandbox_id,
        context_id=context_id,
        execution_count=execution_count,
        name=f"output-{number}-{result_index + 1}.{extension}",
        mime=mime,
        kind="image",
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        metadata={"source": DISPLAY_SOURCE, "result_index": result_index},
    )
