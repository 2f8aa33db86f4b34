"""The two API generations the local server speaks, and how their answers differ.

The same handlers serve both; only paths and a few shapes differ:

- error body: 0.x nests it, ``{"error": {"message", "code", "request_id",
  "retryable"}}``; 1.x is flat, ``{"error": "...", "code", "request_id", "retryable"}``;
- list of sandboxes: 0.x a JSON array; 1.x ``{"items", "has_next", "next_token"}``;
- sandbox object: 0.x sends ``null`` for unknown timestamps; 1.x leaves them out (the
  1.x SDK parses machines strictly and fails on a ``null`` timestamp);
- artifact links: ``/v1/sandboxes/...`` or ``/v1/machines/...``.

Runs carry both ``sandbox_id`` and ``machine_id`` in either generation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

__all__ = [
    "ASYNC_RUNS_UNAVAILABLE",
    "GENERATION_CHOICES",
    "MACHINES",
    "SANDBOXES",
    "Generation",
    "error_body_for",
    "generation_of",
    "machine_list",
    "machine_view",
    "prefixes_for",
    "run_view",
    "with_links",
]

Generation = Literal["0", "1"]

SANDBOXES: Final = "/v1/sandboxes"
MACHINES: Final = "/v1/machines"

#: ``--api`` choices of ``sandbox-magic serve``: which prefixes are mounted.
GENERATION_CHOICES: Final[Mapping[str, tuple[str, ...]]] = {
    "both": (SANDBOXES, MACHINES),
    "sandboxes": (SANDBOXES,),
    "machines": (MACHINES,),
}

#: What a hosted deployment without async runs answers ``POST .../code/runs`` with.
ASYNC_RUNS_UNAVAILABLE: Final = "async code runs require Supabase configuration"


def prefixes_for(choice: str) -> tuple[str, ...]:
    """The path prefixes to mount for an ``--api`` choice."""
    return GENERATION_CHOICES[choice]


def generation_of(path: str) -> Generation:
    """Which generation a request path belongs to (anything not 1.x is 0.x)."""
    return "1" if path == MACHINES or path.startswith(MACHINES + "/") else "0"


def error_body_for(
    generation: Generation, code: str, message: str, request_id: str, *, retryable: bool
) -> dict[str, Any]:
    """The error body in the shape of a generation."""
    if generation == "1":
        return {"error": message, "code": code, "request_id": request_id, "retryable": retryable}
    return {
        "error": {
            "message": message,
            "code": code,
            "request_id": request_id,
            "retryable": retryable,
        }
    }


def machine_view(sandbox: Mapping[str, Any]) -> dict[str, Any]:
    """A sandbox as a 1.x machine: fields without a value are left out."""
    return {key: value for key, value in sandbox.items() if value is not None}


def machine_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The 1.x listing of machines (the local server returns them all at once)."""
    return {"items": [machine_view(item) for item in items], "has_next": False, "next_token": None}


def with_links(artifact: Mapping[str, Any], generation: Generation) -> dict[str, Any]:
    """An artifact whose preview and download links use the generation's prefix."""
    shown = dict(artifact)
    if generation == "1":
        for key in ("preview_url", "download_url"):
            link = shown.get(key)
            if isinstance(link, str) and link.startswith(SANDBOXES + "/"):
                shown[key] = MACHINES + link[len(SANDBOXES) :]
    return shown


def run_view(run: Mapping[str, Any], generation: Generation) -> dict[str, Any]:
    """A run with both ``sandbox_id`` and ``machine_id``, and links for the generation."""
    shown = dict(run)
    owner = shown.get("sandbox_id") or shown.get("machine_id")
    shown["sandbox_id"] = owner
    shown["machine_id"] = owner
    execution = shown.get("execution")
    if generation == "1" and isinstance(execution, Mapping):
        artifacts = execution.get("artifacts")
        if isinstance(artifacts, list):
            shown["execution"] = dict(
                execution,
                artifacts=[
                    with_links(a, generation) if isinstance(a, Mapping) else a for a in artifacts
                ],
            )
    return shown
