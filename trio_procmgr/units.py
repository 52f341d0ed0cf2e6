"""Units of the configuration: durations, sizes, CPU quantities and signals.

Pure parsers shared by the config schema and the CLI. Each returns the normalised value
that ``spec.py`` stores (float seconds, int bytes, float cores, int signal number) and
raises ``ValueError`` whose message says what was expected.

Size suffixes follow Kubernetes: ``k``/``K``, ``M``, ``G``, ``T``, ``P``, ``E`` are powers of
1000 and ``Ki``, ``Mi``, ``Gi``, ``Ti``, ``Pi``, ``Ei`` powers of 1024, so ``512M`` is
512,000,000 bytes and ``512Mi`` is 536,870,912. Fractions round up to a whole byte.

Every quantity is bounded (``MAX_DURATION``, ``MAX_SIZE``, ``MAX_CPU``, and at most
``MAX_NUMBER_CHARS`` characters per number): a value beyond is a ``ValueError`` like any
other bad value, checked on exact fractions before any float conversion, so no input
can overflow or spend time on a thousand-digit number.
"""

from __future__ import annotations

import math
import re
import signal
from fractions import Fraction
from typing import TypeGuard

DURATION_EXPECTED = "a duration: seconds as a number, or a string like '500ms', '30s', '5m', '1h30m', '2d'"
SIZE_EXPECTED = "a size: bytes as an integer, or a string like '100K', '512M', '2G', '512Mi', '1Gi'"
CPU_EXPECTED = "a CPU quantity: cores as a number ('0.5', 2) or millicores like '500m'"
SIGNAL_EXPECTED = "a signal: a name like 'SIGTERM' or 'TERM', or its number"

MAX_DURATION = 365 * 86400          # one year, in seconds
MAX_SIZE = 2**63 - 1                # 8 EiB - 1: what a cgroup limit can hold
MAX_CPU = 4096                      # cores
MAX_NUMBER_CHARS = 32               # a longer number is out of range for every field

_DURATION_UNITS = {
    "us": Fraction(1, 1_000_000), "ms": Fraction(1, 1000), "s": Fraction(1),
    "m": Fraction(60), "min": Fraction(60), "h": Fraction(3600), "d": Fraction(86400),
    "w": Fraction(7 * 86400),
}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]+)")
_NUMBER = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*")

_SIZE_UNITS = {
    "": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
    "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
    "Ei": 2**60,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]{0,2})\s*")
_REALTIME = re.compile(r"SIGRT(MIN|MAX)([+-]\d+)")
_CPU = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(m?)\s*")


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_length(value: object, what: str, expected: str) -> None:
    if isinstance(value, str) and len(value) > 4 * MAX_NUMBER_CHARS:
        raise ValueError(f"invalid {what}: {len(value)} characters is too long; expected {expected}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**MAX_NUMBER_CHARS:
        raise ValueError(f"{what} out of range: a number of more than {MAX_NUMBER_CHARS} digits; "
                         f"expected {expected}")


_LIMIT_WORDS: dict[float, str] = {MAX_DURATION: "365d (one year)", MAX_SIZE: "8Ei - 1 bytes", MAX_CPU: "4096 cores"}


def _within(amount: Fraction | int | float, maximum: float, value: object, what: str,
            expected: str) -> None:
    if amount > maximum:
        shown = f" {value}" if isinstance(value, (str, int, float)) and len(str(value)) <= 40 else ""
        limit = _LIMIT_WORDS.get(maximum, str(maximum))
        raise ValueError(f"{what}{shown} is out of range (at most {limit}); expected {expected}")


def parse_duration(value: object, maximum: float = MAX_DURATION) -> float:
    """Seconds as a float from a number or a string such as ``"1h30m"`` (0..``maximum``)."""
    _check_length(value, "duration", DURATION_EXPECTED)
    if _is_number(value):
        if isinstance(value, float) and not math.isfinite(value) or value < 0:
            raise ValueError(f"invalid duration {value!r}: must be a finite number >= 0; expected {DURATION_EXPECTED}")
        _within(value, maximum, value, "duration", DURATION_EXPECTED)
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}; expected {DURATION_EXPECTED}")
    if _NUMBER.fullmatch(value):
        amount = Fraction(value.strip())
        _within(amount, maximum, value, "duration", DURATION_EXPECTED)
        return float(amount)
    total = Fraction(0)
    pos = 0
    text = value.strip()
    if not text:
        raise ValueError(f"empty duration; expected {DURATION_EXPECTED}")
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None or match.group(2) not in _DURATION_UNITS:
            raise ValueError(f"invalid duration {value!r}; expected {DURATION_EXPECTED}")
        total += Fraction(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    _within(total, maximum, value, "duration", DURATION_EXPECTED)
    return float(total)


def parse_size(value: object, maximum: int = MAX_SIZE) -> int:
    """Bytes as an int from an integer or a string such as ``"512Mi"`` (0..``maximum``)."""
    _check_length(value, "size", SIZE_EXPECTED)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: must be >= 0; expected {SIZE_EXPECTED}")
        _within(value, maximum, value, "size", SIZE_EXPECTED)
        return value
    if not isinstance(value, str):
        raise ValueError(f"invalid size {value!r}; expected {SIZE_EXPECTED}")
    match = _SIZE.fullmatch(value)
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"invalid size {value!r}; expected {SIZE_EXPECTED}")
    amount = math.ceil(Fraction(match.group(1)) * _SIZE_UNITS[match.group(2)])
    _within(amount, maximum, value, "size", SIZE_EXPECTED)
    return amount


def parse_cpu(value: object, maximum: float = MAX_CPU) -> float:
    """Cores as a float (0 < cores <= ``maximum``) from a number, ``"0.5"``, ``"2"`` or
    millicores ``"500m"``."""
    _check_length(value, "CPU quantity", CPU_EXPECTED)
    if _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"invalid CPU quantity {value!r}: must be finite; expected {CPU_EXPECTED}")
        amount: Fraction | int | float = value
    elif isinstance(value, str) and (match := _CPU.fullmatch(value)):
        amount = Fraction(match.group(1))
        amount = amount / 1000 if match.group(2) else amount
    else:
        raise ValueError(f"invalid CPU quantity {value!r}; expected {CPU_EXPECTED}")
    if amount <= 0:
        raise ValueError(f"invalid CPU quantity {value!r}: must be > 0; expected {CPU_EXPECTED}")
    _within(amount, maximum, value, "CPU quantity", CPU_EXPECTED)
    return float(amount)


def parse_signal(value: object) -> int:
    """A signal number from ``"SIGTERM"``, ``"term"`` or ``15``; rejects unknown signals."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value in signal.valid_signals():
            return int(value)
        raise ValueError(f"invalid signal number {value}; expected {SIGNAL_EXPECTED}")
    if isinstance(value, str):
        name = value.strip().upper()
        if name.isdigit():
            return parse_signal(int(name))
        if not name.startswith("SIG"):
            name = "SIG" + name
        if match := _REALTIME.fullmatch(name):
            base = signal.SIGRTMIN if match.group(1) == "MIN" else signal.SIGRTMAX
            return parse_signal(int(base) + int(match.group(2).replace("+", "")))
        member = getattr(signal.Signals, name, None) if name.isidentifier() else None
        if isinstance(member, signal.Signals):
            return int(member)
    raise ValueError(f"invalid signal {value!r}; expected {SIGNAL_EXPECTED}")


def signal_name(number: int) -> str | int:
    """``15 -> "SIGTERM"``, ``35 -> "SIGRTMIN+1"``: the name ``parse_signal`` reads back."""
    try:
        return signal.Signals(number).name
    except ValueError:
        if int(signal.SIGRTMIN) < number < int(signal.SIGRTMAX):
            return f"SIGRTMIN+{number - int(signal.SIGRTMIN)}"
        return number
