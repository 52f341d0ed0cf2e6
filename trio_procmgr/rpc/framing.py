"""Length-prefixed msgpack frames (RPC.md §1), sans-IO.

A frame is a 4-byte big-endian length N (1 <= N <= max_frame) followed by N bytes holding
exactly one msgpack value. :class:`FrameDecoder` is fed bytes and hands out values; it
rejects an oversized announced length as soon as the 4-byte header is in, before any of
the body is buffered, so a peer cannot make us allocate more than ``max_frame``.

Imports only ``struct`` and ``msgpack``: the blocking client shares this module.
"""

from __future__ import annotations

import struct

import msgpack

TYPE_CHECKING = False  # typing costs ~3 ms of every CLI run; annotations only
if TYPE_CHECKING:
    from typing import Any

HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 8 * 1024 * 1024
#: Deepest nesting of arrays and maps a frame may hold (the schema needs fewer than 10).
MAX_DEPTH = 64


class FramingError(Exception):
    """The peer sent bytes that are not a valid frame (its fault: answer PROTOCOL_ERROR)."""

    code = "PROTOCOL_ERROR"


class FrameTooLarge(FramingError):
    """A frame longer than the receiver's (or, when sending, the peer's) maximum."""


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by :meth:`FrameDecoder.next_frame` when no complete frame is buffered.
NEED_DATA: Any = _NeedData()


def _reject_ext(code: int, data: bytes) -> Any:
    raise FramingError(f"msgpack extension type {code} is not part of the protocol")


def pack(value: Any) -> bytes:
    """msgpack bytes of ``value`` (str as str, bytes as bin)."""
    return msgpack.packb(value, use_bin_type=True)


def unpack(body: bytes) -> Any:
    """Exactly one msgpack value from ``body``, nested at most MAX_DEPTH deep; raises
    FramingError otherwise."""
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True,
                                ext_hook=_reject_ext, timestamp=0)
    except FramingError:
        raise
    except msgpack.ExtraData as exc:
        raise FramingError("frame holds more than one msgpack value") from exc
    except Exception as exc:  # msgpack raises ValueError, TypeError, UnicodeDecodeError...
        raise FramingError(f"frame body is not valid msgpack: {exc}") from exc
    check_depth(value)
    return value


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse arrays and maps nested deeper than ``limit``: a deep value would exhaust the
    recursion of whatever walks it next (repr, validation, encoding). Iterative, one
    nesting level at a time; msgpack makes exact ``list``/``dict`` objects, so a class
    test suffices (a ``list`` answer of 1000 records is ~20,000 values to look at)."""
    level = [value]
    depth = 1
    while level:
        if depth > limit:
            raise FramingError(f"frame nests arrays or maps more than {limit} deep")
        deeper: list[Any] = []
        for item in level:
            cls = item.__class__
            if cls is dict:
                deeper += [x for x in item.values() if x.__class__ is dict or x.__class__ is list]
            elif cls is list:
                deeper += [x for x in item if x.__class__ is dict or x.__class__ is list]
        level = deeper
        depth += 1


def encode_frame(value: Any, max_frame: int | None = None) -> bytes:
    """The frame carrying ``value``; raises FrameTooLarge if it exceeds ``max_frame``."""
    body = pack(value)
    if max_frame is not None and len(body) > max_frame:
        raise FrameTooLarge(f"frame of {len(body)} bytes exceeds the peer's maximum of {max_frame}")
    return HEADER.pack(len(body)) + body


class FrameDecoder:
    """Bytes in, msgpack values out. Holds at most one partial frame plus what was fed."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes | bytearray) -> None:
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed as a whole frame (non-zero at EOF = truncated)."""
        return len(self._buf) - self._pos

    def next_frame(self) -> Any:
        """The next complete value, or NEED_DATA; raises FramingError for a bad frame."""
        available = len(self._buf) - self._pos
        if available < HEADER.size:
            return NEED_DATA
        (length,) = HEADER.unpack_from(self._buf, self._pos)
        if length == 0:
            raise FramingError("zero-length frame")
        if length > self.max_frame:
            raise FrameTooLarge(f"announced frame of {length} bytes exceeds the maximum of "
                                f"{self.max_frame}")
        if available < HEADER.size + length:
            return NEED_DATA
        start = self._pos + HEADER.size
        body = bytes(self._buf[start:start + length])
        self._pos = start + length
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[:self._pos]
            self._pos = 0
        return unpack(body)
