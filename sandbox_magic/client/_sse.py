"""Server-sent events as the code API streams them: ``data: {json}`` lines.

Only ``data:`` fields matter (the service's own SDK reads nothing else); an event's
data may span several ``data:`` lines, joined with newlines, and ends at a blank
line. Comments (``:``) and other fields (``event:``, ``id:``, ``retry:``) are skipped.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from sandbox_magic.client._errors import SandboxProtocolError

__all__ = ["read_events"]

_MAX_EVENT_CHARS = 64 * 1024 * 1024


async def read_events(lines: AsyncIterable[str]) -> AsyncIterator[dict[str, Any]]:
    """Each JSON object event of a stream; `SandboxProtocolError` on one that is not JSON."""
    data: list[str] = []
    size = 0
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                event = _decode("\n".join(data))
                data, size = [], 0
                if event is not None:
                    yield event
            continue
        if line.startswith("data:"):
            value = line[5:]
            value = value[1:] if value.startswith(" ") else value
            size += len(value)
            if size > _MAX_EVENT_CHARS:
                raise SandboxProtocolError(
                    "The sandbox server streamed an event larger than "
                    f"{_MAX_EVENT_CHARS} characters."
                )
            data.append(value)
    if data:
        event = _decode("\n".join(data))
        if event is not None:
            yield event


def _decode(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise SandboxProtocolError(
            f"The sandbox server streamed an event that is not valid JSON ({len(text)} characters)."
        ) from None
    return value if isinstance(value, dict) else None
