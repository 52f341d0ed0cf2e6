"""Health-check bookkeeping without I/O (SPEC §7): status sets, the failure counter, results.

:class:`HealthCounter` turns a sequence of probe outcomes into the health state a user
sees (``starting`` → ``healthy`` / ``unhealthy``) and the decision to kill. It follows
Docker's rules: failures inside ``start_period`` do not count until the first success
(which ends the grace early), ``retries`` consecutive failures make the service
``unhealthy``, one success makes it ``healthy`` again and resets the count, and
``restart_after`` consecutive failures (0 = never) ask for a kill. Time is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from trio_procmgr.spec import HealthCheckSpec

HEALTH_STATES = ("none", "starting", "healthy", "unhealthy")
KEEP_RESULTS = 5
EXCERPT_CHARS = 200

_PART = re.compile(r"^(\d{3})(?:-(\d{3}))?$")


class StatusSet:
    """HTTP status codes accepted as healthy: ``"200-399"``, ``"200,204"``, ``"200"``."""

    __slots__ = ("ranges", "text")

    def __init__(self, text: str) -> None:
        ranges: list[tuple[int, int]] = []
        for part in str(text).replace(" ", "").split(","):
            m = _PART.match(part)
            if not m:
                raise ValueError(f"invalid status set {text!r}: expected codes or ranges "
                                 "like 200, '200-399' or '200,204'")
            low = int(m.group(1))
            high = int(m.group(2) or low)
            if high < low:
                raise ValueError(f"invalid status range {part!r} in {text!r}: high below low")
            ranges.append((low, high))
        self.ranges = tuple(ranges)
        self.text = str(text)

    def __contains__(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.ranges)

    def __repr__(self) -> str:
        return f"StatusSet({self.text!r})"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's outcome as shown in describe (``health_checks``)."""

    time: float
    ok: bool
    latency: float
    detail: str
    status: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "ok": self.ok, "latency": round(self.latency, 6),
                "status": self.status, "output": self.detail}


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A one-line, bounded excerpt of probe output for describe and events."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the shell must do after one probe."""

    health: str
    changed: bool
    counted: bool
    kill: bool
    consecutive_failures: int


class HealthCounter:
    """Consecutive-failure counting for one instance of a process.

    Starts in ``starting``. ``observe(ok, now)`` returns the new state; the caller
    publishes it when ``changed`` and kills the instance when ``kill`` (reported once).
    """

    def __init__(self, check: HealthCheckSpec, started_at: float) -> None:
        self.check = check
        self.started_at = started_at
        self.health = "starting"
        self.failures = 0
        self.succeeded_once = False
        self._kill_sent = False

    def in_grace(self, now: float) -> bool:
        return not self.succeeded_once and now - self.started_at < self.check.start_period

    def observe(self, ok: bool, now: float) -> Verdict:
        before = self.health
        counted = True
        if ok:
            self.failures = 0
            self.succeeded_once = True
            self.health = "healthy"
        elif self.in_grace(now):
            counted = False
        else:
            self.failures += 1
            if self.failures >= self.check.retries:
                self.health = "unhealthy"
        kill = False
        if (not ok and counted and self.check.restart_after > 0
                and self.failures >= self.check.restart_after and not self._kill_sent):
            kill = self._kill_sent = True
        return Verdict(self.health, self.health != before, counted, kill, self.failures)


def push_result(results: list[dict[str, Any]], result: ProbeResult) -> list[dict[str, Any]]:
    """The last :data:`KEEP_RESULTS` results, newest last."""
    return [*results, result.to_dict()][-KEEP_RESULTS:]


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` / ``[v6]:PORT`` → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid address {text!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "127.0.0.1", int(port)
