"""`create_run_now`, the held submit sent from the calling thread, where it gives up.

Its happy path runs against the real server in test_live_server.py and in every
notebook test; here the cases it must hand back to the event loop's path (None).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox_magic.client import AsyncSandboxClient

SETTLE = 0.25


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP listener on 127.0.0.1 that takes requests and never answers them."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


def _submit_now(client: AsyncSandboxClient) -> object:
    return client.create_run_now(
        "sb_1", code="1", context_id="ctx_1", idempotency_key="key-1", settle=SETTLE
    )


def test_a_silent_server_is_left_to_the_loop_in_bounded_time(silent_server: str) -> None:
    client = AsyncSandboxClient(silent_server, "a-key", api_generation="0")
    started = time.monotonic()
    assert _submit_now(client) is None
    # The hold plus a one-second margin, not the client's 30 s read timeout.
    assert time.monotonic() - started < SETTLE + 3.0


def test_a_custom_transport_or_an_unknown_generation_is_never_sent_this_way() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request {request.url}")

    mocked = AsyncSandboxClient(
        "http://127.0.0.1:9", "a-key", api_generation="0", transport=httpx.MockTransport(refuse)
    )
    assert _submit_now(mocked) is None
    unprobed = AsyncSandboxClient("http://127.0.0.1:9", "a-key")  # generation not known yet
    assert _submit_now(unprobed) is None


def test_an_unreachable_server_is_left_to_the_loop() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: nothing listens there
    client = AsyncSandboxClient(f"http://127.0.0.1:{port}", None, api_generation="0")
    assert _submit_now(client) is None
