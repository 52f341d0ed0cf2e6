"""How fast the daemon reads a child's output (issue 14.6), sans-IO.

A child printing as fast as it can (``yes``) would otherwise keep the event loop busy
splitting, stamping, writing and fanning out lines, and every RPC call would wait behind
it. Each output pump gets a token bucket of lines and bytes: lines within the budget are
handled at once; beyond it the pump *paces* itself — it waits for the bucket to refill
before it reads on — so a flooding child waits on its full pipe (as it would writing to
a slow terminal) and nothing is ever dropped. ``now`` is passed in (seconds, any
monotonic clock).
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

    def take(self, sizes: list[int], now: float) -> int:
        """How many of the lines (their byte ``sizes``, in order) may be handled now;
        their tokens are spent. Whole lines only, in order: the taken ones are a prefix.
        A line longer than a second's byte budget is taken alone once the bucket is full
        (it can never fit), so pacing never stalls."""
        self._refill(now)
        total = sum(sizes)
        if len(sizes) <= self._lines and total <= self._bytes:  # the usual case: all fit
            self._lines -= len(sizes)
            self._bytes -= total
            return len(sizes)
        taken = 0
        for size in sizes:
            if self._lines < 1 or (self._bytes < size and self._bytes < self.bytes_per_second):
                break
            self._lines -= 1
            self._bytes -= size
            taken += 1
        return taken

    def wait(self, size: int, now: float) -> float:
        """Seconds until one more line of ``size`` bytes may be taken."""
        self._refill(now)
        need_lines = max(0.0, 1 - self._lines) / self.lines_per_second
        need_bytes = max(0.0, min(size, self.bytes_per_second) - self._bytes) / self.bytes_per_second
        return max(need_lines, need_bytes, 0.001)
