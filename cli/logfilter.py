"""``logs --since/--until/--grep``: which captured lines a user asked for.

Pure: ``parse_when`` reads ``10m`` / ``1h30m`` (that long ago), ``@1733000000``
(epoch seconds) or an ISO 8601 timestamp (``2026-12-01T10:00:00``, ``2026-12-01 10:00``,
a date alone, with or without a zone; without one it is local time) against a given
``now``; ``LogFilter`` decides line by line. The filtering happens in the CLI over the
daemon's ring (at most ``log.ring_lines`` lines per process), for the backlog and the
live lines of ``-f`` alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trio_procmgr.units import parse_duration

WHEN_EXPECTED = ("a duration ago like '10m', '1h30m', '2d', an ISO timestamp like "
                 "'2026-12-01T10:00:00' or '2026-12-01 10:00', or '@EPOCH'")


class WhenError(ValueError):
    """A ``--since``/``--until`` value that is neither a duration nor a timestamp."""


def parse_when(text: str, now: float, *, flag: str = "--since") -> float:
    """Epoch seconds for ``text`` (a duration means that long before ``now``)."""
    value = text.strip()
    if value.startswith("@"):
        try:
            return float(value[1:])
        except ValueError:
            raise WhenError(f"{flag} {text!r}: expected {WHEN_EXPECTED}") from None
    if value and (value[0].isdigit() or value[0] == ".") and not re.match(r"\d{4}-", value):
        try:
            return now - parse_duration(value)
        except ValueError:
            raise WhenError(f"{flag} {text!r}: expected {WHEN_EXPECTED}") from None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise WhenError(f"{flag} {text!r}: expected {WHEN_EXPECTED}") from None
    return moment.timestamp()


@dataclass(frozen=True)
class LogFilter:
    since: float | None = None
    until: float | None = None
    pattern: re.Pattern[str] | None = None

    @classmethod
    def build(cls, since: str | None, until: str | None, grep: str | None,
              now: float) -> "LogFilter":
        """From the flags' text; raises WhenError or re.error naming the flag."""
        pattern = None
        if grep is not None:
            try:
                pattern = re.compile(grep)
            except re.error as exc:
                raise WhenError(f"--grep {grep!r}: not a valid regular expression ({exc})") from None
        return cls(since=parse_when(since, now) if since else None,
                   until=parse_when(until, now, flag="--until") if until else None,
                   pattern=pattern)

    @property
    def active(self) -> bool:
        return self.since is not None or self.until is not None or self.pattern is not None

    def keeps(self, item: dict[str, Any]) -> bool:
        """True for a line inside the window matching the pattern; ``lost`` markers
        always pass (the reader must learn that lines were dropped)."""
        if item.get("type") == "lost":
            return True
        moment = item.get("time")
        if self.since is not None and (moment is None or moment < self.since):
            return False
        if self.until is not None and (moment is None or moment > self.until):
            return False
        if self.pattern is not None:
            line = item.get("line", "")
            if isinstance(line, (bytes, bytearray)):
                line = bytes(line).decode("utf-8", "replace")
            return self.pattern.search(line) is not None
        return True

    def past_until(self, item: dict[str, Any], ) -> bool:
        """A live line later than ``--until``: following can end."""
        moment = item.get("time")
        return self.until is not None and moment is not None and moment > self.until
