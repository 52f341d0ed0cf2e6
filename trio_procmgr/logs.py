"""Capture of a child's output: line splitting, paced hand-over, and a bounded ring.

The pumps (:mod:`trio_procmgr.output_pump`) read a pipe until EOF no matter what, so a
child never blocks on a full pipe for long.
Bytes are split into lines; a line longer than ``MAX_LINE`` is cut into pieces (no
loss, no unbounded buffer); invalid UTF-8 is kept with replacement characters.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Iterator

import trio

from trio_procmgr.feeds import BoundedFeed
from trio_procmgr.output_budget import LINES_PER_ITERATION, OutputBudget

MAX_LINE = 64 * 1024
READ_SIZE = 64 * 1024


class LogRing:
    """The last lines of a process, bounded both in count and in bytes.

    The deque is allocated on the first line, so idle processes cost nothing.
    """

    __slots__ = ("max_lines", "max_bytes", "_lines", "_bytes", "total", "_lot")

    def __init__(self, max_lines: int = 1000, max_bytes: int = 1024 * 1024) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._lines: deque[tuple[float, str, str]] | None = None
        self._bytes = 0
        self.total = 0
        self._lot: trio.lowlevel.ParkingLot | None = None

    def append(self, stream: str, line: str, now: float) -> None:
        if self._lines is None:
            self._lines = deque()
        self._lines.append((now, stream, line))
        self._bytes += len(line)
        self.total += 1
        while self._lines and (len(self._lines) > self.max_lines or self._bytes > self.max_bytes):
            _, _, old = self._lines.popleft()
            self._bytes -= len(old)
        if self._lot is not None:
            self._lot.unpark_all()

    def tail(self, n: int | None = None, stream: str | None = None) -> list[dict[str, Any]]:
        if not self._lines:
            return []
        items = [e for e in self._lines if stream is None or e[1] == stream]
        if n is not None:
            items = items[-n:] if n > 0 else []
        return [{"time": t, "stream": s, "line": line} for t, s, line in items]

    def entries(self) -> list[tuple[float, str, str]]:
        """Every kept (time, stream, line), oldest first (handed over on a re-exec)."""
        return list(self._lines or ())

    def since(self, total_seen: int) -> Iterator[tuple[float, str, str]]:
        """Lines appended after the ring had ``total_seen`` lines in all (for followers)."""
        if not self._lines:
            return iter(())
        new = self.total - total_seen
        if new <= 0:
            return iter(())
        items = list(self._lines)
        return iter(items[-min(new, len(items)):])

    async def wait_new(self) -> None:
        if self._lot is None:
            self._lot = trio.lowlevel.ParkingLot()
        await self._lot.park()


class LineSplitter:
    """Bytes in, complete lines out; keeps the partial tail for the next chunk."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Complete lines (without ``\\n``), long ones cut in pieces. Splits in one C call:
        per-line slicing of the buffer cost O(n²) for a flood of short lines."""
        self._buf += data
        parts = self._buf.split(b"\n")
        rest = parts.pop()
        lines: list[bytes] = []
        for part in parts:
            if len(part) <= self.max_line:
                lines.append(bytes(part))
            else:
                lines.extend(_pieces(bytes(part), self.max_line))
        while len(rest) >= self.max_line:
            lines.append(bytes(rest[:self.max_line]))
            rest = rest[self.max_line:]
        self._buf = bytearray(rest)
        return lines

    def flush(self) -> list[bytes]:
        if not self._buf:
            return []
        rest = bytes(self._buf)
        self._buf.clear()
        return list(_pieces(rest, self.max_line))


def _pieces(line: bytes, n: int) -> Iterator[bytes]:
    if len(line) <= n:
        yield line
        return
    for i in range(0, len(line), n):
        yield line[i:i + n]


LineSink = Callable[[str, str, float], None]


async def hand_over(lines: list[bytes], stream: str, sink: LineSink, budget: OutputBudget) -> None:
    """Give ``lines`` to ``sink`` at the budget's pace, yielding now and then."""
    sizes = [len(line) for line in lines]
    index = 0
    while index < len(lines):
        taken = budget.take(sizes[index:], trio.current_time())
        if taken == 0:
            await trio.sleep(budget.wait(sizes[index], trio.current_time()))
            continue
        now = time.time()
        for offset in range(taken):
            sink(stream, lines[index + offset].decode("utf-8", "replace"), now)
            if offset % LINES_PER_ITERATION == LINES_PER_ITERATION - 1:
                await trio.lowlevel.checkpoint()
        index += taken


class LogSubscription(BoundedFeed):
    """Live lines of one process (or all), in a bounded feed: a slow reader loses lines
    and is told. Items are ``{time, stream, line, process}``; after a loss the next item
    is ``{type: "lost", count, ...}``. Offering never blocks the pumps.
    """

    def __init__(self, owner: set["LogSubscription"], process: str | None,
                 stream: str | None, maxsize: int = 10_000) -> None:
        super().__init__(maxsize, on_close=owner.discard)
        self.process = process
        self.stream = stream
        owner.add(self)

    def wants(self, process: str, stream: str) -> bool:
        return (self.process is None or self.process == process) and \
            (self.stream is None or self.stream == stream)

    def lost_item(self, count: int) -> dict[str, Any]:
        return {"type": "lost", "count": count, "time": time.time(), "stream": "stderr",
                "line": f"[{count} lines lost: this reader was too slow]",
                "process": self.process}
