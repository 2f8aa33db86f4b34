"""Run code through the streaming ``/code/execute`` endpoint, to its end.

Used where a server has no async runs. The events are folded into `Run` snapshots
(`sandbox_magic.client._streamed.StreamFold`) and handed to ``on_update`` as they arrive,
so the caller renders them exactly as polled runs. The server enforces the run's
``timeout``; this side waits that long plus ``grace`` for the stream to end, then
interrupts the context and reports the run as timed out. Nothing here imports IPython.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Final

from sandbox_magic.client._client import AsyncSandboxClient
from sandbox_magic.client._errors import SandboxError
from sandbox_magic.client._models import Run
from sandbox_magic.client._streamed import StreamFold

__all__ = ["STREAM_GRACE", "stream_to_end"]

#: Seconds past the run's own timeout to wait for the server to end the stream.
STREAM_GRACE: Final = 30.0


async def stream_to_end(
    client: AsyncSandboxClient,
    fold: StreamFold,
    *,
    code: str,
    envs: Mapping[str, str] | None = None,
    on_update: Callable[[Run], None] | None = None,
    grace: float = STREAM_GRACE,
) -> Run:
    """Stream ``code`` in the fold's context; returns the final (terminal) snapshot.

    A stream that breaks raises `SandboxError` naming what arrived; the output shown
    so far stays shown.
    """

    def publish() -> None:
        if on_update is not None:
            on_update(fold.snapshot())

    async def consume() -> None:
        async for event in client.execute_stream(
            fold.sandbox_id,
            code=code,
            context_id=fold.context_id,
            envs=envs,
            timeout=fold.timeout_secs,
        ):
            if fold.add(event):
                publish()

    publish()
    limit = fold.timeout_secs + grace if fold.timeout_secs else None
    try:
        await asyncio.wait_for(consume(), limit)
    except TimeoutError:
        if fold.context_id is not None:
            with contextlib.suppress(SandboxError):
                await client.interrupt_context(fold.sandbox_id, fold.context_id)
        fold.finish(
            status="failed",
            reason=f"timed out after {fold.timeout_secs} s (the server did not end the "
            f"stream within {grace:g} s more; the context was interrupted)",
        )
    except SandboxError as exc:
        fold.finish(status="failed", reason=f"the stream broke: {exc}")
        publish()
        raise SandboxError(
            f"The streamed cell lost its connection before it ended: {exc} "
            "A streamed cell cannot be re-attached; run it again."
        ) from exc
    fold.finish()
    final = fold.snapshot()
    if on_update is not None:
        on_update(final)
    return final
