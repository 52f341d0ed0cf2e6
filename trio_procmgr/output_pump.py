"""One task drains every output pipe of a child (stdout and stderr together).

A task per stream (and a parent task holding them) cost three Trio tasks, two
``FdStream`` objects and their cancel scopes per managed process: about a third of the
daemon's memory with 1000 processes (issue 15). Here the pipes sit in a small epoll set
owned by the pump, and the one task waits for that set to become readable — one wait,
whatever the number of streams. Lines are handled exactly as :func:`trio_procmgr.logs.pump`
does: split, budgeted per stream (:mod:`trio_procmgr.output_budget`), decoded, handed to
the sink, with a yield to the loop every ``LINES_PER_ITERATION`` lines.
"""

from __future__ import annotations

import math
import os
import select
import time
from typing import Sequence

import trio

from trio_procmgr.logs import READ_SIZE, LineSink, LineSplitter
from trio_procmgr.output_budget import LINES_PER_ITERATION, OutputBudget


class _Stream:
    """One pipe: its name, its partial line and its budget."""

    __slots__ = ("fd", "name", "splitter", "budget")

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name
        self.splitter = LineSplitter()
        self.budget = OutputBudget()


def _read(fd: int) -> bytes | None:
    """What the pipe holds: b"" at EOF (or a read error, which ends the stream too),
    None when nothing is there after all."""
    try:
        return os.read(fd, READ_SIZE)
    except BlockingIOError:
        return None
    except OSError:
        return b""


async def _deliver(stream: _Stream, data: bytes, sink: LineSink) -> None:
    """Split ``data`` (b"" flushes the tail) and hand the lines within budget to ``sink``."""
    now = time.time()
    lines = stream.splitter.feed(data) if data else stream.splitter.flush()
    clock = trio.current_time()
    kept = stream.budget.admit([len(line) for line in lines], clock)
    notice = stream.budget.take_notice(clock if data else math.inf)
    if notice is not None:
        sink("stderr", notice, now)
    for index in range(kept):
        sink(stream.name, lines[index].decode("utf-8", "replace"), now)
        if index % LINES_PER_ITERATION == LINES_PER_ITERATION - 1:
            await trio.lowlevel.checkpoint()


async def pump_streams(fds: Sequence[tuple[int, str]], sink: LineSink) -> None:
    """Drain every ``(fd, stream)`` until EOF, handing each line to ``sink(stream, line,
    now)``. Owns the fds and closes them; cancellation closes them too (a child still
    writing then gets EPIPE rather than blocking forever)."""
    streams = {fd: _Stream(fd, name) for fd, name in fds}
    poller = select.epoll(max(1, len(streams)))
    try:
        for fd in streams:
            os.set_blocking(fd, False)
            poller.register(fd, select.EPOLLIN)
        while streams:
            await trio.lowlevel.wait_readable(poller.fileno())
            for fd, _events in poller.poll(0):
                stream = streams[fd]
                data = _read(fd)
                if data is None:
                    continue
                await _deliver(stream, data, sink)
                if not data:
                    poller.unregister(fd)
                    del streams[fd]
                    os.close(fd)
            await trio.lowlevel.checkpoint()
    finally:
        trio.lowlevel.notify_closing(poller.fileno())
        poller.close()
        for fd in streams:
            os.close(fd)
