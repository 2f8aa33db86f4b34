"""Saving artifacts to disk: streamed under a cap, verified, never overwriting each other."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from sandbox_magic.client import (
    Artifact,
    ArtifactIntegrityError,
    ArtifactTooLargeError,
    AsyncSandboxClient,
    RetryPolicy,
    safe_file_name,
    save_artifacts,
    unique_file_names,
)


def _artifact(data: bytes, *, sha: str | None = None, name: str = "data.bin") -> Artifact:
    return Artifact(
        id="art_1", name=name, size_bytes=len(data), sha256=sha or hashlib.sha256(data).hexdigest()
    )


def files_in(folder: Path) -> list[Path]:
    return list(folder.iterdir())


async def _client_serving(payload: bytes) -> AsyncSandboxClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=payload)

    return AsyncSandboxClient(
        "http://sandbox.test", "k", transport=httpx.MockTransport(handler), api_generation="0"
    )


@pytest.mark.anyio
async def test_save_artifacts_refuses_a_corrupted_download(tmp_path: Path) -> None:
    good = b"the real bytes"
    client = await _client_serving(b"the real bytez")  # one byte flipped in transit
    with pytest.raises(ArtifactIntegrityError, match="is corrupt: its sha256"):
        await save_artifacts(client, "sb_1", [_artifact(good)], tmp_path)
    assert files_in(tmp_path) == []  # nothing half-written is left behind
    await client.aclose()


@pytest.mark.anyio
async def test_save_artifacts_writes_verified_files(tmp_path: Path) -> None:
    data = b"payload"
    client = await _client_serving(data)
    [saved] = await save_artifacts(client, "sb_1", [_artifact(data)], tmp_path)
    assert saved.verified
    assert saved.path.read_bytes() == data
    await client.aclose()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("../../etc/passwd", "passwd"), ("/abs/x.png", "x.png"), ("..", "artifact-art_1"),
     ("dir\\evil.txt", "evil.txt"), (".hidden", "artifact-art_1")],
)  # fmt: skip
def test_artifact_names_cannot_leave_the_folder(name: str, expected: str) -> None:
    assert safe_file_name(_artifact(b"x", name=name)) == expected


async def _client_serving_by_id(payloads: dict[str, bytes]) -> AsyncSandboxClient:
    def handler(request: httpx.Request) -> httpx.Response:
        artifact_id = request.url.path.split("/")[-2]
        return httpx.Response(200, content=payloads[artifact_id])

    return AsyncSandboxClient(
        "http://sandbox.test", "k", transport=httpx.MockTransport(handler), api_generation="0"
    )


@pytest.mark.anyio
async def test_two_artifacts_of_one_name_are_both_kept(tmp_path: Path) -> None:
    payloads = {"art_a": b"first plot", "art_b": b"second plot"}
    client = await _client_serving_by_id(payloads)
    artifacts = [
        Artifact(id=i, name="plot.png", sha256=hashlib.sha256(d).hexdigest())
        for i, d in payloads.items()
    ]
    saved = await save_artifacts(client, "sb_1", artifacts, tmp_path)
    assert [s.path.name for s in saved] == ["plot.png", "plot-2.png"]
    assert [s.path.read_bytes() for s in saved] == [b"first plot", b"second plot"]
    await client.aclose()


def test_unique_names_number_only_the_repeats() -> None:
    names = ["a.txt", "b.txt", "a.txt", "a.txt", "a-2.txt"]
    artifacts = [Artifact(id=f"art_{i}", name=n) for i, n in enumerate(names)]
    assert unique_file_names(artifacts) == ["a.txt", "b.txt", "a-2.txt", "a-3.txt", "a-2-2.txt"]


@pytest.mark.anyio
async def test_a_file_without_a_hash_is_saved_and_said_unverified(tmp_path: Path) -> None:
    client = await _client_serving(b"bytes")
    [saved] = await save_artifacts(client, "sb_1", [Artifact(id="art_1", name="x")], tmp_path)
    assert not saved.verified
    assert saved.path.read_bytes() == b"bytes"
    await client.aclose()


@pytest.mark.anyio
async def test_a_download_over_the_cap_leaves_nothing(tmp_path: Path) -> None:
    client = await _client_serving(b"x" * 5000)
    with pytest.raises(ArtifactTooLargeError):
        await save_artifacts(client, "sb_1", [_artifact(b"x" * 5000)], tmp_path, max_bytes=1000)
    assert files_in(tmp_path) == []
    await client.aclose()


@pytest.mark.anyio
async def test_a_retried_download_starts_the_file_over(tmp_path: Path) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        return httpx.Response(200, content=b"whole")

    client = AsyncSandboxClient(
        "http://sandbox.test",
        "k",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(base_delay=0.0, max_delay=0.0),
        api_generation="0",  # the fake answers 0.x paths only
    )
    target = tmp_path / "out.bin"
    with target.open("w+b") as handle:
        handle.write(b"stale bytes from before")
        assert await client.download_artifact_to("sb_1", "art_1", handle) == 5
    assert calls == 2
    assert target.read_bytes() == b"whole"
    await client.aclose()
