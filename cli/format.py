"""Text building blocks for human output: durations, timestamps, sizes, tables, colour.

Pure functions: the caller passes ``now`` and decides whether colour is on, so the
same input always renders the same text (and the unit tests need no clock or TTY).
Imports only the standard library's cheapest modules: this runs on every keystroke
of ``dd-procmgr list``.
"""

from __future__ import annotations

import time

DASH = "-"

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def human_duration(seconds: float | None) -> str:
    """``2h 15m`` style: the two most significant units, ``-`` for unknown.

    Under ten seconds keeps one decimal only for fractions (``1.5s``), under one
    second shows milliseconds (``250ms``), so a short backoff reads exactly.
    """
    if seconds is None:
        return DASH
    if seconds < 0:
        return "-" + human_duration(-seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds else "0s"
    if seconds < 10 and seconds != int(seconds):
        text = f"{seconds:.1f}"
        return (text[:-2] if text.endswith(".0") else text) + "s"
    whole = int(seconds)
    pieces = []
    for unit, size in _UNITS:
        count, whole = divmod(whole, size)
        pieces.append((count, unit))
    first = next(i for i, (count, _) in enumerate(pieces) if count)
    return " ".join(f"{count}{unit}" for count, unit in pieces[first:first + 2] if count)


def local_timestamp(epoch: float | None, *, millis: bool = False) -> str:
    """Local time as ``YYYY-MM-DD HH:MM:SS`` (``.mmm`` with ``millis``), ``-`` when unset."""
    if epoch is None:
        return DASH
    if not millis:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
    seconds, ms = divmod(round(epoch * 1000), 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f".{ms:03d}"


def human_size(count: float | None) -> str:
    """Bytes in binary units, labelled as such: ``128.5 MiB``, ``512 MiB``.

    Config sizes follow Kubernetes (``512M`` = 512 * 10**6, ``512Mi`` = 512 * 2**20), so
    the label must say which: a ``512M`` limit shows as ``488.3 MiB``.
    """
    if count is None:
        return DASH
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(value)} B"
            text = f"{value:.1f}"
            return (text[:-2] if text.endswith(".0") else text) + f" {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def percent(part: float | None, whole: float | None) -> str | None:
    """``25.1%`` of a limit, or None when either side is unknown or the limit is 0."""
    if part is None or not whole:
        return None
    return f"{100.0 * part / whole:.1f}%"


_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """Control characters as visible escapes (``\\n``), so a multi-line ``python3 -c``
    script stays on its row of a table instead of breaking it."""
    if text.isprintable():
        return text
    return "".join(_CONTROL_ESCAPES.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 32 or ord(ch) == 127
                                                else ch) for ch in text)


def cell(text: str, width: int | None) -> str:
    """One table cell: escaped, then cut to ``width`` (None: no limit)."""
    text = escape_controls(text)
    return shorten(text, width) if width else text


def shorten(text: str, width: int) -> str:
    """Cut to ``width`` characters, marking the cut with an ellipsis."""
    if width <= 0 or len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


# -- colour ---------------------------------------------------------------------------

_SGR = {"green": "32", "red": "31", "yellow": "33", "blue": "34", "cyan": "36",
        "dim": "2", "bold": "1", "magenta": "35"}


def paint(text: str, colour: str | None, enabled: bool) -> str:
    """Wrap in an ANSI colour when enabled; the identity otherwise."""
    if not enabled or not colour or not text:
        return text
    return f"\x1b[{_SGR[colour]}m{text}\x1b[0m"


def colour_allowed(stream, environ) -> bool:
    """Colour only on a terminal, never with NO_COLOR set (any value) or TERM=dumb."""
    if "NO_COLOR" in environ or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


STATE_COLOURS = {
    "running": "green", "exited": "dim", "stopped": "dim", "created": "dim",
    "starting": "yellow", "stopping": "yellow", "backoff": "yellow", "paused": "cyan",
    "failed": "red", "crashed": "red", "condition_failed": "magenta",
    "healthy": "green", "unhealthy": "red",
}


# -- tables ---------------------------------------------------------------------------

def render_table(header: list[str], rows: list[list[str]], *,
                 colours: list[list[str | None]] | None = None, colour: bool = False,
                 gap: int = 3) -> str:
    """Left-aligned columns sized to their widest cell; the last column is not padded.

    Padding is computed on the plain text before colouring, so ANSI codes never
    break the alignment.
    """
    widths = [len(h) for h in header]
    for i, column in enumerate(zip(*rows)):
        widths[i] = max(widths[i], max(map(len, column)))
    spacer = " " * gap
    last = len(header) - 1
    lines = [spacer.join(_pad(h, widths[i], i == last) for i, h in enumerate(header)).rstrip()]
    if not (colour and colours):
        pads = widths[:last]
        for row in rows:
            lines.append(spacer.join([*map(str.ljust, row[:last], pads), row[last]]).rstrip())
        return "\n".join(lines)
    for r, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            padded = _pad(cell, widths[i], i == last)
            tint = colours[r][i]
            cells.append(paint(cell, tint, colour) + padded[len(cell):] if tint else padded)
        lines.append(spacer.join(cells).rstrip())
    return "\n".join(lines)


def _pad(text: str, width: int, last: bool) -> str:
    return text if last else text.ljust(width)


def render_pairs(pairs: list[tuple[str, str]], *, indent: int = 0) -> str:
    """``Key:   value`` lines with the values aligned (describe/stats blocks)."""
    if not pairs:
        return ""
    width = max(len(k) for k, _ in pairs) + 1
    pad = " " * indent
    return "\n".join(f"{pad}{(k + ':').ljust(width)} {v}".rstrip() for k, v in pairs)
