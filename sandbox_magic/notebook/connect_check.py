"""``%sandbox connect URL``: check a server before the session switches to it.

`check_server` asks ``/healthz`` first (is anything there?), then one authenticated
call (is the key right?), with the same errors a cell would raise, so a wrong URL or
key fails at ``connect`` and not at the next cell.
"""

from __future__ import annotations

from sandbox_magic.client import (
    AsyncSandboxClient,
    RetryPolicy,
    SandboxConnectionError,
    SandboxError,
)

__all__ = ["check_server"]

#: A quick verdict: a couple of attempts within a few seconds.
_CHECK_RETRY = RetryPolicy(max_attempts=2, total_timeout=5.0)


async def check_server(url: str, key: str | None, *, request_timeout: float = 10.0) -> str:
    """Check that ``url`` serves the sandbox API and accepts ``key``; its display URL.

    Raises `SandboxError` (a malformed URL), `SandboxConnectionError` (nothing answers,
    or not the sandbox API), or the authentication error a cell would get.
    """
    try:
        client = AsyncSandboxClient(
            url,
            key,
            read_timeout=request_timeout,
            connect_timeout=min(request_timeout, 5.0),
            retry=_CHECK_RETRY,
        )
    except ValueError as exc:
        raise SandboxError(f"{exc} (got {url!r})") from None
    async with client:
        if not await client.health():
            raise SandboxConnectionError(
                client.base_url, "no sandbox server answered its health check (/healthz)"
            )
        await client.list_sandboxes()
        return client.base_url
