"""Which API generation a server speaks, and what it can do, learnt once per server.

The hosted service renamed its paths between SDK generations: 0.x says
``/v1/sandboxes/...``, 1.x says ``/v1/machines/...`` (runs then carry ``machine_id``).
The client builds every path in the 0.x form and `ServerFacts.path` rewrites it for a
1.x server. Which one a server speaks is found by one cheap probe,
``GET /v1/machines?limit=1`` (200: 1.x; 404: 0.x), or forced by the caller.

Some deployments have no async runs: ``POST .../code/runs`` answers that they are
unavailable, while streaming ``POST .../code/execute`` works. `runs_unavailable`
recognises those answers; `ServerFacts.async_runs` remembers the outcome so later cells
go straight to streaming.

`ServerFactsBook` keeps the facts per base URL for as long as its owner lives (a
notebook session keeps one across reconnects), so a server is probed once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final, Literal

from sandbox_magic.client._errors import SandboxAPIError

__all__ = [
    "GENERATION_CHOICES",
    "MACHINES_PREFIX",
    "SANDBOXES_PREFIX",
    "ApiGeneration",
    "ServerFacts",
    "ServerFactsBook",
    "runs_unavailable",
]

ApiGeneration = Literal["0", "1"]
#: Accepted by the client and the ``api_generation`` trait.
GENERATION_CHOICES: Final = ("auto", "0", "1")

SANDBOXES_PREFIX: Final = "/v1/sandboxes"
MACHINES_PREFIX: Final = "/v1/machines"

#: Codes a server uses to say a feature is not offered there (compared in lower case).
_UNAVAILABLE_CODES: Final = frozenset({"not_implemented", "feature_unavailable"})
#: Messages the service's own SDK test helpers treat as "async runs are not available".
_UNAVAILABLE_MESSAGES: Final = (
    ("async code runs require supabase configuration",),
    ("async code runs requires runtime host", "remote routing is not implemented yet"),
)


def runs_unavailable(error: SandboxAPIError) -> bool:
    """True when an answer to ``POST .../code/runs`` says async runs are not offered."""
    if error.status_code == 501:
        return True
    if (error.code or "").lower() in _UNAVAILABLE_CODES:
        return True
    message = error.message.lower()
    return any(all(part in message for part in parts) for parts in _UNAVAILABLE_MESSAGES)


@dataclass
class ServerFacts:
    """What one server is known to speak; None means not found out yet."""

    generation: ApiGeneration | None = None
    #: False once the server said it has no async runs (then cells are streamed).
    async_runs: bool | None = None
    #: True when ``generation`` was set by the caller rather than probed.
    forced: bool = False

    @property
    def prefix(self) -> str:
        return MACHINES_PREFIX if self.generation == "1" else SANDBOXES_PREFIX

    def path(self, path: str) -> str:
        """A 0.x-form path as this server spells it."""
        if self.generation == "1" and (
            path == SANDBOXES_PREFIX or path.startswith(SANDBOXES_PREFIX + "/")
        ):
            return MACHINES_PREFIX + path[len(SANDBOXES_PREFIX) :]
        return path

    def describe(self) -> str:
        """One line describing the server, for status displays."""
        if self.generation is None:
            api = "not probed yet"
        else:
            api = f"{self.generation}.x ({self.prefix})" + (" (forced)" if self.forced else "")
        if self.async_runs is False:
            runs = "async runs unavailable: cells are streamed (/code/execute)"
        elif self.async_runs:
            runs = "async runs"
        else:
            runs = "async runs not tried yet"
        return f"{api}; {runs}"


class ServerFactsBook:
    """`ServerFacts` per base URL; thread-safe."""

    def __init__(self) -> None:
        self._facts: dict[str, ServerFacts] = {}
        self._lock = threading.Lock()

    def facts(self, base_url: str) -> ServerFacts:
        key = base_url.rstrip("/")
        with self._lock:
            if (found := self._facts.get(key)) is None:
                found = self._facts[key] = ServerFacts()
            return found
