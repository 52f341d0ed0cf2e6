"""The restart decision, backoff and start-limit window (SPEC §3.2), without I/O.

Everything here is pure: the caller passes the clock reading ``now``. The supervisor
feeds an exit in and gets a :class:`Decision` out; it never decides anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from trio_procmgr.spec import ProcessSpec
from trio_procmgr.states import State


def is_success(spec: ProcessSpec, exit_code: int | None, exit_signal: int | None) -> bool:
    """Whether an exit counts as success under ``success_exit_status``.

    A clean exit with a listed code, or death by a listed signal, is a success. As in
    systemd, a service killed by SIGTERM/SIGINT/SIGHUP/SIGPIPE is *not* a success unless
    listed (those only count when we sent them, which is a requested stop).
    """
    if exit_signal is not None:
        return exit_signal in spec.success_exit_signals
    return exit_code in spec.success_exit_status


def should_restart(policy: str, succeeded: bool) -> bool:
    if policy == "always":
        return True
    if policy == "on-failure":
        return not succeeded
    if policy == "on-success":
        return succeeded
    return False


def backoff_delay(kind: str, restart_sec: float, max_delay: float, failures: int) -> float:
    """Delay before the ``failures``-th consecutive automatic restart (1-based).

    exponential: ``restart_sec * 2**(n-1)``; linear: ``restart_sec * n``; fixed:
    ``restart_sec``; always capped at ``max_delay``.
    """
    n = max(1, failures)
    if kind == "fixed":
        delay = restart_sec
    elif kind == "linear":
        delay = restart_sec * n
    else:
        # Cap the exponent: 2**1100 overflows a float long after the cap applies.
        delay = restart_sec * (2.0 ** min(n - 1, 64))
    return min(delay, max_delay)


class StartLimiter:
    """Sliding window of start times: ``burst`` starts allowed per ``interval`` seconds.

    Slotted, with a plain list made on the first start and nothing kept while the limit
    is off (interval or burst 0): there is a limiter per managed process, and an empty
    deque alone costs ~600 bytes (issue 15). The list holds the starts of one window.
    """

    __slots__ = ("burst", "interval", "_starts")

    def __init__(self, burst: int, interval: float) -> None:
        self.burst = burst
        self.interval = interval
        self._starts: list[float] | None = None

    def configure(self, burst: int, interval: float) -> None:
        self.burst = burst
        self.interval = interval

    def _enabled(self) -> bool:
        return self.interval > 0 and self.burst > 0

    def _expire(self, now: float) -> None:
        starts = self._starts
        if starts:
            old = 0
            while old < len(starts) and now - starts[old] >= self.interval:
                old += 1
            del starts[:old]

    def would_exceed(self, now: float) -> bool:
        """True when one more start now would exceed the limit."""
        if not self._enabled():
            return False
        self._expire(now)
        return self.recent >= self.burst

    def record(self, now: float) -> None:
        if not self._enabled():
            self._starts = None  # the window is off: no start is "recent"
            return
        if self._starts is None:
            self._starts = []
        self._starts.append(now)
        self._expire(now)

    def reset(self) -> None:
        self._starts = None

    @property
    def recent(self) -> int:
        return len(self._starts) if self._starts is not None else 0


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after an exit that nobody asked for."""

    state: State            # exited / failed (terminal) or backoff / crashed
    restart: bool           # schedule a restart after ``delay``
    delay: float
    reason: str
    start_limit_hit: bool = False


def describe_exit(exit_code: int | None, exit_signal: int | None) -> str:
    if exit_signal is not None:
        import signal as _signal
        try:
            name = _signal.Signals(exit_signal).name
        except ValueError:
            name = f"signal {exit_signal}"
        return f"killed by {name}"
    return f"exited with status {exit_code}"


def decide(
    spec: ProcessSpec,
    *,
    succeeded: bool,
    failure_reason: str,
    consecutive_failures: int,
    limiter: StartLimiter,
    now: float,
) -> Decision:
    """Apply SPEC §3.2 steps 2–5 to an unrequested exit.

    ``consecutive_failures`` already counts this exit. ``failure_reason`` is the words
    for the exit (``exited with status 3``, ``watchdog``, ``oom-kill`` ...).
    """
    terminal = State.EXITED if succeeded else State.FAILED
    if not should_restart(spec.restart, succeeded):
        return Decision(terminal, False, 0.0, failure_reason)
    if limiter.would_exceed(now):
        reason = (f"start limit hit: {limiter.burst} starts within "
                  f"{spec.start_limit_interval:g}s ({failure_reason})")
        return Decision(State.CRASHED, False, 0.0, reason, start_limit_hit=True)
    delay = backoff_delay(spec.backoff, spec.restart_sec, spec.restart_max_delay,
                          consecutive_failures)
    return Decision(State.BACKOFF, True, delay,
                    f"{failure_reason}; restarting in {delay:g}s")


def stable_run(spec: ProcessSpec, ran_for: float, healthy: bool) -> bool:
    """A run long (or healthy) enough to reset the consecutive-failure count."""
    return healthy or ran_for > spec.restart_max_delay
