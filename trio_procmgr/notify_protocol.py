"""The sd_notify datagram protocol, parsed without I/O (SPEC §4).

A datagram is newline-separated ``KEY=VALUE`` assignments (systemd's format). This
module turns bytes into a :class:`NotifyMessage`; the engine decides what a message
means for a service (``trio_procmgr.engine.notify``).

Rules (systemd's, made strict where systemd is silent):

* a datagram that is empty, longer than :data:`MAX_DATAGRAM`, not UTF-8, contains a NUL
  byte, or has a non-empty line without ``=`` is garbage: :class:`NotifyGarbage` is
  raised and the caller drops and counts it;
* a known key with a bad value (``MAINPID=abc``, ``READY=2``) is ignored on its own and
  listed in ``NotifyMessage.invalid``; the rest of the datagram still counts;
* unknown keys are ignored (listed in ``unknown``), as systemd does;
* when a key repeats, the last assignment wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: systemd reads at most PIPE_BUF bytes per notification.
MAX_DATAGRAM = 4096
_KEY = re.compile(r"[A-Z_][A-Z0-9_]*")


class NotifyGarbage(ValueError):
    """The datagram is not a notification at all; the message says why."""


@dataclass(frozen=True, slots=True)
class NotifyMessage:
    ready: bool = False
    status: str | None = None
    mainpid: int | None = None
    stopping: bool = False
    reloading: bool = False
    watchdog_ping: bool = False
    watchdog_trigger: bool = False
    watchdog_usec: int | None = None
    extend_timeout_usec: int | None = None
    errno: int | None = None
    barrier: bool = False
    fdstore: bool = False
    invalid: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


def _positive_int(value: str) -> int | None:
    if not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if number > 0 else None


def _non_negative_int(value: str) -> int | None:
    if not value.isascii() or not value.isdigit():
        return None
    return int(value)


def parse_notify(data: bytes) -> NotifyMessage:
    """Parse one datagram; raise :class:`NotifyGarbage` when it is not a notification."""
    if not data:
        raise NotifyGarbage("empty datagram")
    if len(data) > MAX_DATAGRAM:
        raise NotifyGarbage(f"datagram longer than {MAX_DATAGRAM} bytes")
    if b"\0" in data:
        raise NotifyGarbage("datagram contains a NUL byte")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotifyGarbage("datagram is not UTF-8") from None
    fields: dict[str, object] = {}
    invalid: list[str] = []
    unknown: list[str] = []
    seen_assignment = False
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not _KEY.fullmatch(key):
            raise NotifyGarbage(f"line {line[:40]!r} is not KEY=VALUE")
        seen_assignment = True
        if not _apply(fields, key, value):
            (invalid if key in _KNOWN else unknown).append(line if key in _KNOWN else key)
    if not seen_assignment:
        raise NotifyGarbage("datagram holds no assignment")
    return NotifyMessage(**fields, invalid=tuple(invalid), unknown=tuple(unknown))  # type: ignore[arg-type]


_KNOWN = frozenset({"READY", "STATUS", "MAINPID", "STOPPING", "RELOADING", "WATCHDOG",
                    "WATCHDOG_USEC", "EXTEND_TIMEOUT_USEC", "ERRNO", "BARRIER", "FDSTORE"})


def _apply(fields: dict[str, object], key: str, value: str) -> bool:
    """Record one assignment; False when the key is unknown or its value is invalid."""
    flags = {"READY": "ready", "STOPPING": "stopping", "RELOADING": "reloading",
             "BARRIER": "barrier", "FDSTORE": "fdstore"}
    if key in flags:
        if value != "1":
            return False
        fields[flags[key]] = True
        return True
    if key == "STATUS":
        fields["status"] = value
        return True
    if key == "WATCHDOG":
        if value == "1":
            fields["watchdog_ping"] = True
        elif value == "trigger":
            fields["watchdog_trigger"] = True
        else:
            return False
        return True
    numeric = {"MAINPID": ("mainpid", _positive_int),
               "WATCHDOG_USEC": ("watchdog_usec", _positive_int),
               "EXTEND_TIMEOUT_USEC": ("extend_timeout_usec", _non_negative_int),
               "ERRNO": ("errno", _non_negative_int)}
    if key in numeric:
        name, convert = numeric[key]
        number = convert(value)
        if number is None:
            return False
        fields[name] = number
        return True
    return False
