"""A bounded feed: the one queue shape behind every live stream (events, followed logs).

Offering never blocks and never fails, so a producer (the event hub, an output pump) can
never be stalled by a consumer. The queue is bounded in **bytes** (an estimate of each
item's encoded size, :func:`item_size`) and in items. Drop policy: when an item does not
fit, it is dropped (the newest is lost, what is queued is kept in order) and counted; the
consumer's next item is a notice of how many it lost (:meth:`lost_item`), and
``lost_total`` keeps the count for the summary. Iterate with ``async for`` (one item) or
:meth:`batch` (everything queued, for consumers that write many items at once); use as a
context manager so it is detached when done.

Coalescing: a subclass may name a ``coalesce_key`` (e.g. "state of process P"). When an
item does not fit and an undelivered item with the same key is queued, that older item is
withdrawn and the new one is queued merged with it (:meth:`merge`), so a consumer that is
behind gets the latest state of each process instead of losing it; order and ``seq``
stay monotonic because the merged item goes to the end.

What one stuck consumer can cost is therefore ``max_bytes`` plus one item.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Callable

import trio

#: Default byte bound of one consumer's queue (documented in docs/daemon.md "Limits").
DEFAULT_MAX_BYTES = 1024 * 1024
_SCALAR = 9  # msgpack: a number, bool or nil costs at most 9 bytes


def item_size(value: Any, depth: int = 0) -> int:
    """A cheap upper-ish estimate of ``value``'s msgpack size (strings by length)."""
    if isinstance(value, (str, bytes, bytearray)):
        return len(value) + 5
    if depth > 6:
        return 64
    if isinstance(value, Mapping):
        return 5 + sum(item_size(k, depth + 1) + item_size(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return 5 + sum(item_size(v, depth + 1) for v in value)
    return _SCALAR


class BoundedFeed:
    def __init__(self, maxsize: int, on_close: Callable[["BoundedFeed"], None] | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.maxsize = max(1, maxsize)
        self.max_bytes = max(1, max_bytes)
        self._queue: deque[list[Any]] = deque()  # [item or None if withdrawn, size, key]
        self._by_key: dict[Any, list[Any]] = {}
        self._live = 0  # queued items not withdrawn
        self.coalesced = 0
        self._bytes = 0
        self._lost = 0
        self.lost_total = 0
        self.delivered = 0
        self._lot = trio.lowlevel.ParkingLot()
        self.closed = False
        self._on_close = on_close

    @property
    def queued_bytes(self) -> int:
        """Estimated bytes held for the consumer right now (never above ``max_bytes``)."""
        return self._bytes

    def lost_item(self, count: int) -> dict[str, Any]:
        """The notice delivered after ``count`` items were dropped (subclasses shape it)."""
        return {"type": "lost", "count": count}

    def coalesce_key(self, item: dict[str, Any]) -> Any:
        """Items with the same non-None key may be merged when the consumer is behind."""
        return None

    def merge(self, older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
        """The item that stands for ``older`` then ``newer`` (subclasses shape it)."""
        return newer

    def _fits(self, size: int) -> bool:
        return self._live < self.maxsize and self._bytes + size <= self.max_bytes

    def offer(self, item: dict[str, Any]) -> bool:
        """Queue ``item`` (merged with a queued one of the same key if the consumer is
        behind); False when it was dropped."""
        size = item_size(item)
        key = self.coalesce_key(item)
        older = self._by_key.get(key) if key is not None else None
        if older is not None and not self._fits(size):
            previous = older[0]
            self._withdraw(older)
            item = self.merge(previous, item)
            size = item_size(item)
            self.coalesced += 1
        kept = self._fits(size)
        if kept:
            entry = [item, size, key]
            self._queue.append(entry)
            self._bytes += size
            self._live += 1
            if key is not None:
                self._by_key[key] = entry
        else:
            self._lost += 1
            self.lost_total += 1
        self._lot.unpark_all()
        return kept

    def _withdraw(self, entry: list[Any]) -> None:
        """Take a queued item back (it stays in the deque as a tombstone)."""
        self._bytes -= entry[1]
        self._live -= 1
        entry[0] = None
        self._by_key.pop(entry[2], None)
        if len(self._queue) > 2 * self._live + 16:  # tombstones are bounded by the live items
            self._queue = deque(e for e in self._queue if e[0] is not None)

    def get_nowait(self) -> dict[str, Any] | None:
        if self._lost:
            lost, self._lost = self._lost, 0
            return self.lost_item(lost)
        item: dict[str, Any] | None
        while self._queue:
            item, size, key = self._queue.popleft()
            if item is None:
                continue  # withdrawn by a merge
            self._bytes -= size
            self._live -= 1
            if key is not None and self._by_key.get(key) is not None and self._by_key[key][0] is item:
                del self._by_key[key]
            self.delivered += 1
            return item
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

    async def batch(self, max_items: int = 256) -> list[dict[str, Any]]:
        """Up to ``max_items`` queued items at once (waits for the first one).

        Raises trio.EndOfChannel once closed and drained. A consumer that writes a batch
        in one go keeps up with bursts a one-item-per-wake-up loop cannot follow.
        """
        items = [await self.get()]
        while len(items) < max_items:
            item = self.get_nowait()
            if item is None:
                break
            items.append(item)
        return items

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
