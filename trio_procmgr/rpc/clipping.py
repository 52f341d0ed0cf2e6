"""Bounded error answers: what a hostile value can make the daemon say back (issue 14.7).

An error message quotes what the caller sent (a name, a path); a caller that sent 8 MiB
must not get 16 MiB back, nor make the daemon log it. Messages are clipped to
:data:`MAX_MESSAGE` characters and every string inside ``details`` to
:data:`MAX_DETAIL_TEXT`; details deeper than :data:`MAX_DEPTH` or with more than
:data:`MAX_ITEMS` entries are cut. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Any

MAX_MESSAGE = 1024
MAX_DETAIL_TEXT = 256
MAX_ITEMS = 32
MAX_DEPTH = 4
ELLIPSIS = "…"


def clip_text(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to at most ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    note = f"{ELLIPSIS} ({len(text) - limit} more characters)"
    return text[:max(0, limit - len(note))] + note


def clip_value(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with long strings, long containers and deep nesting cut."""
    if isinstance(value, str):
        return clip_text(value, MAX_DETAIL_TEXT)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[:MAX_DETAIL_TEXT])
    if depth >= MAX_DEPTH and isinstance(value, (Mapping, list, tuple, set, frozenset)):
        return f"<{type(value).__name__} of {len(value)} items>"
    if isinstance(value, Mapping):
        items = islice(value.items(), MAX_ITEMS)
        return {clip_value(k, depth + 1) if isinstance(k, str) else k: clip_value(v, depth + 1)
                for k, v in items}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [clip_value(v, depth + 1) for v in islice(value, MAX_ITEMS)]
    return value
