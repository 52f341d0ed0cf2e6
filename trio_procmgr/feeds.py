"""A bounded feed: the one queue shape behind every live stream (events, followed logs).

Offering never blocks and never fails, so a producer (the event hub, an output pump) can
never be stalled by a consumer. When the queue is full the item is dropped and counted;
the consumer's next item is a notice of how many it lost (:meth:`lost_item`). Iterate
with ``async for``; use as a context manager so it is detached when done.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

import trio


class BoundedFeed:
    def __init__(self, maxsize: int, on_close: Callable[["BoundedFeed"], None] | None = None) -> None:
        self.maxsize = max(1, maxsize)
        self._queue: deque[dict[str, Any]] = deque()
        self._lost = 0
        self.lost_total = 0
        self.delivered = 0
        self._lot = trio.lowlevel.ParkingLot()
        self.closed = False
        self._on_close = on_close

    def lost_item(self, count: int) -> dict[str, Any]:
        """The notice delivered after ``count`` items were dropped (subclasses shape it)."""
        return {"type": "lost", "count": count}

    def offer(self, item: dict[str, Any]) -> bool:
        """Queue ``item``; False when it was dropped because the consumer is behind."""
        kept = len(self._queue) < self.maxsize
        if kept:
            self._queue.append(item)
        else:
            self._lost += 1
            self.lost_total += 1
        self._lot.unpark_all()
        return kept

    def get_nowait(self) -> dict[str, Any] | None:
        if self._lost:
            lost, self._lost = self._lost, 0
            return self.lost_item(lost)
        if self._queue:
            self.delivered += 1
            return self._queue.popleft()
        return None

    async def get(self) -> dict[str, Any]:
        """The next item; raises trio.EndOfChannel once closed and drained."""
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            if self.closed:
                raise trio.EndOfChannel
            await self._lot.park()

    def __aiter__(self) -> "BoundedFeed":
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return await self.get()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._on_close is not None:
                self._on_close(self)
        self._lot.unpark_all()

    def __enter__(self) -> "BoundedFeed":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
