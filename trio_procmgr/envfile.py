"""systemd-style EnvironmentFile parsing.

Format (as systemd reads ``EnvironmentFile=``):

- one ``KEY=VALUE`` per line; an ``export `` prefix is tolerated; spaces around ``=`` and
  around an unquoted value are dropped;
- blank lines and lines whose first non-blank character is ``#`` or ``;`` are comments
  (a ``#`` later in a line is part of the value);
- ``'single quotes'`` are literal; ``"double quotes"`` understand ``\\"``, ``\\\\``,
  ``\\n``, ``\\$`` and ``\\``` (any other backslash stays as written); quoted values may
  span lines; quoted and unquoted pieces concatenate as in a shell (``A="x"y`` is ``xy``);
- outside quotes, a backslash escapes the next character and a trailing backslash joins
  the next line.

``parse_env_file`` is pure; ``load_environment_files`` is the small I/O shell around it.
"""

from __future__ import annotations

import re
from typing import Iterable

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DQUOTE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "$": "$", "`": "`"}


class _Cursor:
    """Position in the text, with the 1-based line number for error messages."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        self.pos += 1
        if char == "\n":
            self.line += 1
        return char

    def skip_line(self) -> None:
        while self.peek() not in ("", "\n"):
            self.take()
        self.take()


def parse_env_file(text: str, source: str = "<env>") -> dict[str, str]:
    """Variables defined by ``text``, later definitions winning.

    Raises ``ValueError("SOURCE:LINE: what is wrong")`` on the first invalid line.
    """
    cursor = _Cursor(text.replace("\r\n", "\n"))
    result: dict[str, str] = {}
    while True:
        while cursor.peek() in (" ", "\t", "\n", "\r", "\f", "\v"):
            cursor.take()
        if not cursor.peek():
            return result
        if cursor.peek() in ("#", ";"):
            cursor.skip_line()
            continue
        key = _read_key(cursor, source)
        result[key] = _read_value(cursor, source)


def _read_key(cursor: _Cursor, source: str) -> str:
    line = cursor.line
    chars = []
    while cursor.peek() not in ("=", "\n", ""):
        chars.append(cursor.take())
    raw = "".join(chars).strip()
    if cursor.peek() != "=":
        raise ValueError(f"{source}:{line}: expected KEY=VALUE, got {raw!r}")
    cursor.take()
    if raw.startswith("export ") or raw.startswith("export\t"):
        raw = raw[len("export"):].strip()
    if not _KEY.fullmatch(raw):
        raise ValueError(
            f"{source}:{line}: invalid variable name {raw!r} "
            "(expected letters, digits and underscores, not starting with a digit)")
    return raw


def _read_value(cursor: _Cursor, source: str) -> str:
    while cursor.peek() in (" ", "\t"):
        cursor.take()
    out: list[str] = []
    kept = 0  # length of the prefix that trailing-space stripping must not touch
    while (char := cursor.take()) not in ("\n", ""):
        if char == "\\":
            nxt = cursor.take()
            if nxt not in ("\n", ""):
                out.append(nxt)
                kept = len(out)
        elif char == "'":
            out.extend(_read_quoted(cursor, "'", source))
            kept = len(out)
        elif char == '"':
            out.extend(_read_quoted(cursor, '"', source))
            kept = len(out)
        else:
            out.append(char)
    return "".join(out[:kept]) + "".join(out[kept:]).rstrip()


def _read_quoted(cursor: _Cursor, quote: str, source: str) -> list[str]:
    start = cursor.line
    out: list[str] = []
    while True:
        char = cursor.take()
        if char == "":
            raise ValueError(f"{source}:{start}: unterminated {quote} quote")
        if char == quote:
            return out
        if char == "\\" and quote == '"':
            nxt = cursor.take()
            if nxt == "\n":
                continue
            if nxt in _DQUOTE_ESCAPES:
                out.append(_DQUOTE_ESCAPES[nxt])
            else:
                out.extend(("\\", nxt))
            continue
        out.append(char)


def _split_optional(path: str) -> tuple[str, bool]:
    return (path[1:], True) if path.startswith("-") else (path, False)


def load_environment_files(paths: Iterable[str]) -> dict[str, str]:
    """Read each file in order and merge their variables (later files override).

    A path with a leading ``-`` is skipped when the file does not exist. Any other
    problem — a missing file without ``-``, an unreadable file, an invalid line — raises
    ``ValueError`` naming the file (and line), so a caller can fail the start with it.
    """
    merged: dict[str, str] = {}
    for entry in paths:
        path, optional = _split_optional(entry)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                text = handle.read()
        except (FileNotFoundError, NotADirectoryError) as exc:
            if optional:
                continue
            raise ValueError(f"{path}: environment file not found ({exc.strerror})") from exc
        except OSError as exc:
            raise ValueError(f"{path}: cannot read environment file ({exc.strerror})") from exc
        merged.update(parse_env_file(text, source=path))
    return merged
