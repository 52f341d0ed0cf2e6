"""The syntax of systemd unit files, as systemd reads it (systemd.syntax(7), systemd.time(7)).

Pure parsers: a unit file into directives with their line numbers, a command line into
words (systemd's quoting, not the shell's), time spans and sizes into numbers, and unit
specifiers (``%i``, ``%n`` ...) into our template placeholders where one exists.
Malformed input raises ``UnitSyntaxError`` carrying the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, overload


class UnitSyntaxError(ValueError):
    """A unit file that systemd itself would reject; ``line`` is 1-based (or None)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Directive:
    section: str
    key: str
    value: str
    line: int

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


def parse_unit(text: str) -> list[Directive]:
    """Every ``Key=Value`` of a unit file in order, continuation lines joined."""
    out: list[Directive] = []
    section: str | None = None
    for line_no, line in _logical_lines(text):
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise UnitSyntaxError(f"malformed section header {line!r}", line_no)
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise UnitSyntaxError(f"expected Key=Value, got {line!r}", line_no)
        if section is None:
            raise UnitSyntaxError(f"{key.strip()}= appears before any [Section] header", line_no)
        out.append(Directive(section, key.strip(), value.strip(), line_no))
    return out


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, joined text) of each non-comment line; ``\\`` continues a line."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if pending and line[:1] in ("#", ";"):
            continue
        if not pending and (not line or line[:1] in ("#", ";")):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        yield start, " ".join(p.strip() for p in pending).strip()
        pending = []
    if pending:
        yield start, " ".join(p.strip() for p in pending).strip()


# -------------------------------------------------------------------- command lines

class _CommandSeparator:
    """The type of ``COMMAND_SEPARATOR`` (one instance, compared by identity)."""

    __slots__ = ()


COMMAND_SEPARATOR = _CommandSeparator()
"""Stands for a lone unquoted ``;`` between commands of one Exec line."""

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", '"': '"', "'": "'", "s": " ", ";": ";"}


@overload
def split_words(text: str, *, commands: Literal[False] = False) -> list[str]: ...
@overload
def split_words(text: str, *, commands: bool) -> list[str | _CommandSeparator]: ...
def split_words(text: str, *, commands: bool = False) -> list[str] | list[str | _CommandSeparator]:
    """Words of a value as systemd splits ExecStart=/Environment= (quotes, C escapes).

    Quotes (single or double) may open anywhere in a word and escapes work inside both
    kinds, as in systemd's ``extract_first_word(UNQUOTE|CUNESCAPE)``. With ``commands``,
    a lone unquoted ``;`` yields ``COMMAND_SEPARATOR``.
    """
    words: list[str | _CommandSeparator] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t\n":
            pos += 1
        if pos >= end:
            return words
        word, pos, plain = _one_word(text, pos)
        words.append(COMMAND_SEPARATOR if commands and plain and word == ";" else word)


def _one_word(text: str, pos: int) -> tuple[str, int, bool]:
    out: list[str] = []
    quote: str | None = None
    plain = True
    while pos < len(text):
        char = text[pos]
        if char == "\\":
            value, pos = _escape(text, pos + 1)
            out.append(value)
            plain = False
            continue
        if quote:
            if char == quote:
                quote = None
            else:
                out.append(char)
        elif char in "\"'":
            quote, plain = char, False
        elif char in " \t\n":
            break
        else:
            out.append(char)
        pos += 1
    if quote:
        raise UnitSyntaxError(f"unbalanced {quote} quote in {text!r}")
    return "".join(out), pos, plain


def _escape(text: str, pos: int) -> tuple[str, int]:
    if pos >= len(text):
        raise UnitSyntaxError(f"trailing backslash in {text!r}")
    char = text[pos]
    if char in _ESCAPES:
        return _ESCAPES[char], pos + 1
    if char == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[pos + 1:pos + 3]):
        return chr(int(text[pos + 1:pos + 3], 16)), pos + 3
    if char in "01234567" and re.fullmatch(r"[0-7]{3}", text[pos:pos + 3]):
        return chr(int(text[pos:pos + 3], 8)), pos + 3
    if char in "uU":
        width = 4 if char == "u" else 8
        digits = text[pos + 1:pos + 1 + width]
        if re.fullmatch(r"[0-9a-fA-F]{%d}" % width, digits):
            return chr(int(digits, 16)), pos + 1 + width
    raise UnitSyntaxError(f"invalid escape \\{char} in {text!r}")


def quote_word(word: str) -> str:
    """A word written so that ``split_words`` reads it back unchanged."""
    if word and re.fullmatch(r"[A-Za-z0-9_./:=@%+,-]+", word):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


# -------------------------------------------------------------------- time spans and sizes

_TIME_UNITS = {
    "us": Fraction(1, 10**6), "usec": Fraction(1, 10**6), "µs": Fraction(1, 10**6),
    "ms": Fraction(1, 1000), "msec": Fraction(1, 1000),
    "s": Fraction(1), "sec": Fraction(1), "second": Fraction(1), "seconds": Fraction(1),
    "m": Fraction(60), "min": Fraction(60), "minute": Fraction(60), "minutes": Fraction(60),
    "h": Fraction(3600), "hr": Fraction(3600), "hour": Fraction(3600), "hours": Fraction(3600),
    "d": Fraction(86400), "day": Fraction(86400), "days": Fraction(86400),
    "w": Fraction(604800), "week": Fraction(604800), "weeks": Fraction(604800),
    "M": Fraction(2629800), "month": Fraction(2629800), "months": Fraction(2629800),
    "y": Fraction(31557600), "year": Fraction(31557600), "years": Fraction(31557600),
}
_TIME_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-zµ]*)")
INFINITY = float("inf")


def parse_timespan(value: str) -> float:
    """Seconds from ``90``, ``1min 30s``, ``500ms`` or ``infinity`` (systemd.time(7))."""
    text = value.strip()
    if text == "infinity":
        return INFINITY
    if not text:
        raise ValueError("empty time span")
    total, pos = Fraction(0), 0
    while pos < len(text):
        match = _TIME_PART.match(text, pos)
        if match is None or match.end() == pos or match.group(2) not in _TIME_UNITS | {"": 1}:
            raise ValueError(f"invalid time span {value!r}")
        unit = _TIME_UNITS.get(match.group(2), Fraction(1))
        total += Fraction(match.group(1)) * unit
        pos = match.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    return float(total)


def format_duration(seconds: float) -> str:
    """Our duration text for a number of seconds: ``90s``, ``1500ms``, ``0s``."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    millis = seconds * 1000
    if millis == int(millis):
        return f"{int(millis)}ms"
    return f"{round(seconds * 10**6)}us"


_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGTPE]?)\s*")
_SIZE_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def parse_size(value: str) -> int | float:
    """Bytes from ``512M`` (1024-based, as systemd reads it) or ``infinity``."""
    text = value.strip()
    if text == "infinity":
        return INFINITY
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid size {value!r}")
    return int(Fraction(match.group(1)) * 1024 ** _SIZE_POWERS[match.group(2)])


def format_size(size: int) -> str | int:
    """Our size text: ``512Mi`` when it is a whole number of binary units, else bytes."""
    for suffix, power in (("Ei", 6), ("Pi", 5), ("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1)):
        if size and size % 1024 ** power == 0:
            return f"{size // 1024 ** power}{suffix}"
    return size


# -------------------------------------------------------------------- specifiers

@dataclass(frozen=True)
class UnitName:
    """``foo@bar.service`` split into prefix ``foo``, instance ``bar``, suffix ``service``."""

    prefix: str
    instance: str | None
    suffix: str

    @classmethod
    def parse(cls, filename: str) -> "UnitName":
        stem, dot, suffix = filename.rpartition(".")
        if not dot:
            stem, suffix = filename, ""
        prefix, at, instance = stem.partition("@")
        return cls(prefix, instance if at else None, suffix)

    @property
    def is_template(self) -> bool:
        return self.instance == ""

    @property
    def process_name(self) -> str:
        """Our name: ``foo``, ``foo@`` for a template, ``foo@bar`` for an instance."""
        return self.prefix if self.instance is None else f"{self.prefix}@{self.instance}"


_STATIC_PATHS = {"t": "/run", "S": "/var/lib", "C": "/var/cache", "L": "/var/log",
                 "E": "/etc", "T": "/tmp", "V": "/var/tmp", "%": "%"}


def expand_specifiers(text: str, unit: UnitName) -> tuple[str, list[str]]:
    """``text`` with specifiers replaced, plus those that have no equivalent (``%h`` ...).

    In a template ``%i`` stays ``%i`` (our template placeholder) and ``%N`` becomes ``%n``
    (both are the full name without the ``.service`` suffix); in a plain unit the values
    are known and substituted. ``%I`` is taken as ``%i`` (instances are not escaped here).
    """
    unknown: list[str] = []

    def one(match: re.Match[str]) -> str:
        spec = match.group(1)
        value = _specifier_value(spec, unit)
        if value is None:
            unknown.append("%" + spec)
            return match.group(0)
        return value

    return re.sub(r"%(.)", one, text), unknown


def _specifier_value(spec: str, unit: UnitName) -> str | None:
    if spec in _STATIC_PATHS:
        return _STATIC_PATHS[spec]
    dynamic = unit.is_template
    if spec in "iI":
        return "%i" if dynamic else (unit.instance or "")
    if spec in "pP":
        return unit.prefix
    if spec == "N":
        return "%n" if dynamic else unit.process_name
    if spec == "n":
        return f"%n.{unit.suffix}" if dynamic else f"{unit.process_name}.{unit.suffix}"
    return None
