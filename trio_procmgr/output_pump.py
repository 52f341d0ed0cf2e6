"""Lean output pumps: a task per pipe straight in the instance's nursery.

They were a parent task holding a nursery with a task and a ``trio.lowlevel.FdStream`` per
stream: about a third of the daemon's memory with 1000 processes (issue 15). Now each pipe
is read with ``wait_readable`` and ``os.read`` by one task started in the instance's own
nursery, and a shared countdown sets the instance's "output done" event. (One task
for both pipes would need an epoll fd of its own per process: a descriptor per service
is dearer than a task — at 5000 services it crossed a 20,000 RLIMIT_NOFILE.) Lines go
through :func:`trio_procmgr.logs.hand_over`: split, paced by the per-stream budget,
decoded, handed to the sink, yielding now and then.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import trio

from trio_procmgr.logs import READ_SIZE, LineSink, LineSplitter, hand_over
from trio_procmgr.output_budget import OutputBudget


class _Stream:
    """One pipe: its name, its partial line and its budget — the last two made on the
    first output (most services at rest never write: ~0.5 KiB saved per process)."""

    __slots__ = ("fd", "name", "splitter", "budget")

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name
        self.splitter: LineSplitter | None = None
        self.budget: OutputBudget | None = None


def _read(fd: int) -> bytes | None:
    """What the pipe holds: b"" at EOF (or a read error, which ends the stream too),
    None when nothing is there after all."""
    try:
        return os.read(fd, READ_SIZE)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def start_pumps(nursery: Any, fds: Sequence[tuple[int, str]], sink: LineSink,
                done: trio.Event) -> None:
    """Drain every ``(fd, stream)`` until EOF in tasks of ``nursery`` (a Trio nursery or
    anything with its ``start_soon``, e.g. a ContainedNursery), handing each line to
    ``sink(stream, line, now)``; ``done`` is set once every pipe is closed. The pumps own
    the fds; cancellation closes them (a child still writing then gets EPIPE rather than
    blocking forever)."""
    if not fds:
        done.set()
        return
    remaining = [len(fds)]
    for fd, name in fds:
        nursery.start_soon(_pump_one, _Stream(fd, name), sink, remaining, done)


async def _pump_one(stream: _Stream, sink: LineSink, remaining: list[int],
                    done: trio.Event) -> None:
    fd = stream.fd
    try:
        os.set_blocking(fd, False)
        while True:
            await trio.lowlevel.wait_readable(fd)
            data = _read(fd)
            if data is None:
                continue
            if stream.splitter is None or stream.budget is None:
                if not data:
                    return  # closed without a byte written
                stream.splitter, stream.budget = LineSplitter(), OutputBudget()
            lines = stream.splitter.feed(data) if data else stream.splitter.flush()
            await hand_over(lines, stream.name, sink, stream.budget)
            if not data:
                return
            await trio.lowlevel.checkpoint()
    finally:
        trio.lowlevel.notify_closing(fd)
        os.close(fd)
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set()
