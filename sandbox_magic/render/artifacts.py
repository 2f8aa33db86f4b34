"""A compact list of the files a run produced: name, size, kind, link, image previews.

Links: the artifact's ``download_url`` (made absolute against the server's base URL
when relative), with any user:password part and credential-like query parameters
(``token``, ``api_key``, ...) removed; a link that still contains a secret is not
shown at all. On a server that needs the API key to download (the hosted service
does, as a bearer header), the link is informative: opening it in a browser gets a
401. Pre-signed storage URLs (signature parameters) are kept as the server gave them.

Image previews are inlined only when the caller passes their bytes.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Mapping, Sequence
from html import escape
from typing import Final
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from sandbox_magic.client import Artifact
from sandbox_magic.render.bundle import DEFAULT_MAX_OUTPUT_BYTES
from sandbox_magic.render.markup_sanitiser import clean_html, clean_svg
from sandbox_magic.render.redact import NO_REDACTION, Redactor
from sandbox_magic.render.text import human_size
from sandbox_magic.render.value import RemoteValue

__all__ = [
    "AUTH_NOTE",
    "PREVIEW_LIMIT",
    "artifact_mime",
    "artifact_preview",
    "artifacts_bundle",
    "files_only",
    "safe_link",
    "wants_preview",
]

#: Largest image inlined as a preview by default.
PREVIEW_LIMIT: Final = 2 * 1024 * 1024

AUTH_NOTE: Final = (
    "Download links need the API key (an Authorization header), so a browser cannot open "
    "them directly; they are shown for reference."
)

_CREDENTIAL_PARAMS: Final = frozenset(
    {"token", "api_key", "apikey", "api-key", "key", "access_token", "auth", "password", "secret"}
)
_PREVIEW_TYPES: Final = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"}
)


def files_only(artifacts: Sequence[Artifact]) -> list[Artifact]:
    """The artifacts that are files, leaving out images the run displayed.

    A server that keeps displayed images as artifacts marks them ``metadata.source ==
    "display"``; the cell already shows them as outputs.
    """
    return [a for a in artifacts if a.metadata.get("source") != "display"]


def artifact_mime(artifact: Artifact) -> str | None:
    """The artifact's MIME type, from the server or guessed from its name."""
    if artifact.mime_type:
        return artifact.mime_type.split(";")[0].strip().lower()
    if artifact.name:
        return mimetypes.guess_type(artifact.name)[0]
    return None


def wants_preview(artifact: Artifact, limit: int = PREVIEW_LIMIT) -> bool:
    """True for an image small enough to inline; the caller then fetches its bytes."""
    size = artifact.size_bytes
    return artifact_mime(artifact) in _PREVIEW_TYPES and size is not None and 0 < size <= limit


def safe_link(
    url: str | None, *, base_url: str | None = None, redactor: Redactor = NO_REDACTION
) -> str | None:
    """``url`` made absolute and stripped of credentials; None if it cannot be shown."""
    if not url:
        return None
    if base_url:
        url = urljoin(base_url.rstrip("/") + "/", url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k.lower() not in _CREDENTIAL_PARAMS
        ]
    )
    clean = urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    return clean if redactor.text(clean) == clean else None


def _preview_html(artifact: Artifact, data: bytes | None, max_bytes: int) -> str:
    mime = artifact_mime(artifact)
    if data is None or mime not in _PREVIEW_TYPES or len(data) > max_bytes:
        return ""
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f'<br><img src="data:{mime};base64,{encoded}" alt="{escape(artifact.name or "")}" '
        'style="max-width:360px;max-height:240px;margin-top:4px">'
    )


def _row(artifact: Artifact, link: str | None, redactor: Redactor) -> tuple[str, str, str, str]:
    return (
        redactor.text(artifact.name or artifact.id),
        human_size(artifact.size_bytes) if artifact.size_bytes is not None else "?",
        redactor.text(artifact.kind or artifact_mime(artifact) or "file"),
        link or "",
    )


def artifacts_bundle(
    artifacts: Sequence[Artifact],
    *,
    previews: Mapping[str, bytes] | None = None,
    base_url: str | None = None,
    link_needs_auth: bool = True,
    redactor: Redactor = NO_REDACTION,
    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
) -> dict[str, str] | None:
    """One ``text/plain`` + ``text/html`` bundle listing ``artifacts``; None if empty.

    ``previews`` maps artifact ids to image bytes to inline (see `wants_preview`).
    """
    if not artifacts:
        return None
    previews = previews or {}
    rows = [
        (a, _row(a, safe_link(a.download_url, base_url=base_url, redactor=redactor), redactor))
        for a in artifacts
    ]
    count = f"{len(artifacts)} artifact" + ("s" if len(artifacts) != 1 else "")
    width = max(len(row[0]) for _, row in rows)
    lines = [f"{count}:"] + [
        f"  {name:<{width}}  {size:>9}  {kind:<8}  {link}".rstrip()
        for _, (name, size, kind, link) in rows
    ]
    has_links = any(row[3] for _, row in rows)
    if has_links and link_needs_auth:
        lines.append(AUTH_NOTE)
    html_rows = "".join(
        "<tr>"
        f'<td style="text-align:left">{escape(name)}'
        f"{_preview_html(a, previews.get(a.id), max_bytes)}</td>"
        f'<td style="text-align:right">{escape(size)}</td>'
        f'<td style="text-align:left">{escape(kind)}</td>'
        + (
            f'<td><a href="{escape(link)}" target="_blank" rel="noopener noreferrer">'
            "download</a></td>"
            if link
            else "<td></td>"
        )
        + "</tr>"
        for a, (name, size, kind, link) in rows
    )
    note = (
        f'<div style="opacity:0.7;font-size:0.85em">{escape(AUTH_NOTE)}</div>'
        if has_links and link_needs_auth
        else ""
    )
    html = (
        f'<div class="sandbox-magic-artifacts"><b>{escape(count)}</b>'
        f'<table style="margin:2px 0">{html_rows}</table>{note}</div>'
    )
    return {"text/plain": "\n".join(lines), "text/html": html}


_TEXT_TYPES: Final = frozenset(
    {"application/json", "application/xml", "application/javascript", "application/x-yaml"}
)


def artifact_preview(
    artifact: Artifact,
    data: bytes,
    *,
    allow_javascript: bool = False,
    redactor: Redactor = NO_REDACTION,
) -> RemoteValue:
    """An artifact's bytes as something to show inline (``%sandbox preview``).

    Images show as images, HTML and SVG as markup (sanitised unless JavaScript is
    allowed), PDF as ``application/pdf`` (JupyterLab renders it), text as text; any
    other type as a one-line description.
    """
    mime = artifact_mime(artifact) or "application/octet-stream"
    label = f"{artifact.name or artifact.id} ({human_size(len(data))}, {mime})"
    bundle: dict[str, str] = {"text/plain": redactor.text(label)}
    if (mime in _PREVIEW_TYPES and mime != "image/svg+xml") or mime == "application/pdf":
        bundle[mime] = base64.b64encode(data).decode("ascii")
    elif mime in ("text/html", "image/svg+xml"):
        markup = redactor.text(data.decode("utf-8", errors="replace"))
        if allow_javascript:
            bundle[mime] = markup
        else:
            cleaned = clean_svg(markup) if mime == "image/svg+xml" else clean_html(markup)
            if cleaned.note is None:
                bundle[mime] = cleaned.markup
            else:
                bundle["text/plain"] += "\n" + cleaned.note
    elif mime.startswith("text/") or mime in _TEXT_TYPES:
        bundle["text/plain"] = redactor.text(data.decode("utf-8", errors="replace"))
    else:
        bundle["text/plain"] += " has no inline preview; `--save-artifacts DIR` downloads it."
    return RemoteValue(bundle)
