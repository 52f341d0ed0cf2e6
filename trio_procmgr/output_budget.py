"""How much of a child's output the daemon handles per second (issue 14.6), sans-IO.

A child printing as fast as it can (``yes``) would otherwise keep the event loop busy
splitting, stamping, writing and fanning out lines, and every RPC call would wait behind
it. Each output pump gets a token bucket of lines and bytes: lines within the budget are
kept; lines beyond it are dropped and counted (the pipe is still drained, so the child
never blocks), and once the budget refills the pump writes one notice line saying how
many were dropped. ``now`` is passed in (seconds, any monotonic clock).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Default sustained budget of one output stream (stdout or stderr) of one process.
LINES_PER_SECOND = 100_000
BYTES_PER_SECOND = 64 * 1024 * 1024
#: Lines handled between two yields to the event loop.
LINES_PER_ITERATION = 256


@dataclass(slots=True)
class OutputBudget:
    """A token bucket over lines and bytes; the burst equals one second's budget."""

    lines_per_second: float = LINES_PER_SECOND
    bytes_per_second: float = BYTES_PER_SECOND
    _lines: float = -1.0
    _bytes: float = -1.0
    _last: float | None = None
    _noticed: float | None = None
    dropped: int = 0          # lines dropped since the last notice
    dropped_total: int = 0    # lines dropped ever

    def _refill(self, now: float) -> None:
        if self._last is None:
            self._lines, self._bytes = self.lines_per_second, self.bytes_per_second
        else:
            elapsed = max(0.0, now - self._last)
            self._lines = min(self.lines_per_second, self._lines + elapsed * self.lines_per_second)
            self._bytes = min(self.bytes_per_second, self._bytes + elapsed * self.bytes_per_second)
        self._last = now

    def admit(self, sizes: list[int], now: float) -> int:
        """How many of the lines (their byte ``sizes``, in order) fit; the rest are
        counted as dropped. Whole lines only, in order: the kept ones are a prefix."""
        self._refill(now)
        total = sum(sizes)
        if len(sizes) <= self._lines and total <= self._bytes:  # the usual case: all fit
            self._lines -= len(sizes)
            self._bytes -= total
            return len(sizes)
        kept = 0
        for size in sizes:
            if self._lines < 1 or self._bytes < size:
                break
            self._lines -= 1
            self._bytes -= size
            kept += 1
        lost = len(sizes) - kept
        self.dropped += lost
        self.dropped_total += lost
        return kept

    def take_notice(self, now: float) -> str | None:
        """The line reporting what was dropped since the last notice, at most one per
        second (so a flood yields one notice a second, not one per chunk), or None."""
        if not self.dropped or (self._noticed is not None and now - self._noticed < 1.0):
            return None
        count, self.dropped, self._noticed = self.dropped, 0, now
        return (f"[dd-procmgrd: {count} lines dropped: output faster than "
                f"{self.lines_per_second:.0f} lines/s or {self.bytes_per_second / 1048576:.0f} MiB/s]")
