"""Safe data transfer between the notebook and the sandbox (``--push`` / ``--pull``).

Values travel as code: a push embeds the encoded value (base64, in chunks) in
snippets that rebuild it in the sandbox; a pull runs snippets that display the
encoded value as results of MIME type `MIME_TYPE`, which are checked (size limit,
sha256, format) and decoded here without pickle or eval. Supported values: JSON-able
values, numpy arrays (not object dtype), pandas DataFrame and Series.

```
receipt = await push(run_code, "df", df)
df2 = await pull(run_code, "df")
```

``run_code(code) -> list of MIME bundles`` submits one snippet and returns the run's
results; it raises `RemoteExecutionError` when the code raised.
"""

from __future__ import annotations

from sandbox_magic.transfer.codec import (
    DEFAULT_MAX_BYTES,
    FORMATS,
    SUPPORTED_TYPES,
    Encoded,
    check_name,
    classify,
    decode_value,
    encode_value,
    local_formats,
    parse_names,
)
from sandbox_magic.transfer.errors import TransferError
from sandbox_magic.transfer.exchange import (
    DEFAULT_CHUNK_BYTES,
    MAX_CHUNK_BYTES,
    MIME_TYPE,
    Bundle,
    PullAssembler,
    PushPlan,
    PushReceipt,
    RemoteCapabilities,
    RunCode,
    encode_for_push,
    parse_probe,
    plan_push,
    probe,
    probe_code,
    pull,
    push,
)

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_MAX_BYTES",
    "FORMATS",
    "MAX_CHUNK_BYTES",
    "MIME_TYPE",
    "SUPPORTED_TYPES",
    "Bundle",
    "Encoded",
    "PullAssembler",
    "PushPlan",
    "PushReceipt",
    "RemoteCapabilities",
    "RunCode",
    "TransferError",
    "check_name",
    "classify",
    "decode_value",
    "encode_for_push",
    "encode_value",
    "local_formats",
    "parse_names",
    "parse_probe",
    "plan_push",
    "probe",
    "probe_code",
    "pull",
    "push",
]
