"""The transfer codec that runs on both sides.

Its parts, one job each (`PARTS`, in order): `base` (protocol constants, helpers,
classification), `arrow_guard` (refusing compressed Arrow IPC before pyarrow reads
it), `codecs` (the formats and the chunks on the wire) and `handlers` (the entry
points the sandbox calls). They are imported in the notebook and, joined in that
order as source text, sent to the sandbox (see `sandbox_magic.transfer.remote`, which
drops their imports of each other, strips annotations and docstrings and wraps the
whole in a function). So each part must stay self-contained but for the parts before
it: standard library only, with numpy, pandas and pyarrow imported lazily when
present; no other imports from sandbox_magic; no syntax newer than Python 3.8 once
annotations are gone.

Safety rules, the same in both directions: decoding uses JSON, NumPy ``.npy`` with
``allow_pickle=False`` (object dtypes refused before reading) and Arrow IPC
(compressed bodies refused, full validation before conversion). Nothing is unpickled
or evaluated.

Formats:

``json``         UTF-8 JSON text of a JSON-able value
``npy``          one NumPy array in ``.npy`` format (no object dtypes)
``arrow``        a pandas DataFrame or Series as an Arrow IPC stream
``pandas-npy``   a DataFrame or Series without pyarrow: a JSON header describing the
                 columns and index, followed by ``.npy`` (and JSON) blobs
"""

from __future__ import annotations

from types import ModuleType

from sandbox_magic.transfer._portable import arrow_guard, base, codecs, handlers
from sandbox_magic.transfer._portable.base import (
    ENTRY_NAME,
    FORMATS,
    KIND_DATAFRAME,
    KIND_NDARRAY,
    KIND_SERIES,
    MIME_TYPE,
    PROTOCOL,
    PROTOCOL_VERSION,
    STORE_NAME,
    SUPPORTED_TYPES,
    CodecError,
    capabilities,
    classify,
    human_size,
    sha256_hex,
)
from sandbox_magic.transfer._portable.codecs import decode, encode, pack_chunk, unpack_chunk

__all__ = [
    "ENTRY_NAME",
    "FORMATS",
    "KIND_DATAFRAME",
    "KIND_NDARRAY",
    "KIND_SERIES",
    "MIME_TYPE",
    "PARTS",
    "PROTOCOL",
    "PROTOCOL_VERSION",
    "STORE_NAME",
    "SUPPORTED_TYPES",
    "CodecError",
    "capabilities",
    "classify",
    "decode",
    "encode",
    "human_size",
    "pack_chunk",
    "sha256_hex",
    "unpack_chunk",
]

#: The parts in the order they are joined for the sandbox.
PARTS: tuple[ModuleType, ...] = (base, arrow_guard, codecs, handlers)
