"""The unbounded mailbox of one actor: many writers, one reader task.

A Trio memory channel does this too, but its state, two channel objects and their
statistics cost ~2 KiB, and there is one mailbox per managed process (issue 15). This
one is a slotted object with a deque only while messages wait, and the one waiting
reader; sending never blocks.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio


class Inbox:
    """FIFO of messages for one reader; ``send_nowait`` from anywhere in the Trio thread,
    ``async for msg in inbox`` in the reader (it never ends: send a sentinel to stop)."""

    __slots__ = ("_items", "_reader")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None
        self._reader: trio.lowlevel.Task | None = None

    def send_nowait(self, msg: Any) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(msg)
        reader, self._reader = self._reader, None
        if reader is not None:
            trio.lowlevel.reschedule(reader)

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0

    def __aiter__(self) -> "Inbox":
        return self

    async def __anext__(self) -> Any:
        """The next message; waits for one (a checkpoint either way)."""
        if not self._items:
            if self._reader is not None:
                raise trio.BusyResourceError("another task is already reading this inbox")
            self._reader = trio.lowlevel.current_task()

            def abort(_raise_cancel: Any) -> trio.lowlevel.Abort:
                self._reader = None
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        else:
            await trio.lowlevel.checkpoint()
        assert self._items
        msg = self._items.popleft()
        if not self._items:
            self._items = None  # an idle actor keeps no deque (~600 bytes)
        return msg
