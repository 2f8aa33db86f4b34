"""The Arrow stream guard: refuse compressed IPC bodies before pyarrow reads them.

It walks the stream's flatbuffer messages by hand, so a hostile payload is refused
without pyarrow ever decompressing it."""

from __future__ import annotations

import struct

from sandbox_magic.transfer._portable.base import CodecError


def _u(fmt: str, buf: bytes, pos: int) -> int:
    if pos < 0 or pos + struct.calcsize(fmt) > len(buf):
        raise CodecError("malformed Arrow message metadata")
    value: int = struct.unpack_from(fmt, buf, pos)[0]
    return value


def _fb_field(buf: bytes, table: int, index: int) -> int | None:
    """Absolute position of field `index` of the flatbuffer table at `table`, if set."""
    vtable = table - _u("<i", buf, table)
    slot = 4 + 2 * index
    if slot + 2 > _u("<H", buf, vtable):
        return None
    offset = _u("<H", buf, vtable + slot)
    return table + offset if offset else None


def _fb_table(buf: bytes, pos: int) -> int:
    return pos + _u("<I", buf, pos)


def _arrow_check_uncompressed(data: bytes) -> None:
    """Walk the IPC stream's messages and refuse compressed bodies (decompression bombs).

    Reads just enough of each message's flatbuffer: Message.header_type (field 1),
    Message.header (2), Message.bodyLength (3); RecordBatch.compression (3);
    DictionaryBatch.data (1).
    """
    pos, end = 0, len(data)
    while pos + 4 <= end:
        size = _u("<i", data, pos)
        pos += 4
        if size == -1:
            size = _u("<i", data, pos)
            pos += 4
        if size == 0:
            return
        if size < 0 or pos + size > end:
            raise CodecError("malformed Arrow stream framing")
        meta = data[pos : pos + size]
        pos += size
        root = _fb_table(meta, 0)
        type_pos = _fb_field(meta, root, 1)
        header_type = meta[type_pos] if type_pos is not None and type_pos < len(meta) else 0
        header_pos = _fb_field(meta, root, 2)
        body_pos = _fb_field(meta, root, 3)
        body = _u("<q", meta, body_pos) if body_pos is not None else 0
        batch: int | None = None
        if header_pos is not None and header_type == 3:  # RecordBatch
            batch = _fb_table(meta, header_pos)
        elif header_pos is not None and header_type == 2:  # DictionaryBatch
            data_pos = _fb_field(meta, _fb_table(meta, header_pos), 1)
            batch = _fb_table(meta, data_pos) if data_pos is not None else None
        if batch is not None and _fb_field(meta, batch, 3) is not None:
            raise CodecError("compressed Arrow buffers are refused")
        if body < 0 or pos + body > end:
            raise CodecError("malformed Arrow stream: a body runs past the end")
        pos += body
    if pos != end:
        raise CodecError("malformed Arrow stream: trailing bytes")
