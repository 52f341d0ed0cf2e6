"""The event hub: one place every lifecycle event goes through (SPEC §12).

Publishing never blocks and never fails: each subscriber has a bounded queue, and when
it is full the subscriber loses the event and is told, with its next item, how many it
lost. A slow watcher therefore cannot stall the daemon.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Iterable

import trio

#: Every event type the daemon publishes.
EVENT_TYPES = (
    "state_changed", "process_started", "process_exited", "restart_scheduled",
    "start_limit_hit", "health_changed", "config_reloaded", "process_created",
    "process_updated", "process_deleted", "oom_kill", "daemon_started", "daemon_stopping",
    "condition_failed", "watchdog_timeout", "group_escalated", "lost",
)


class Subscription:
    """A bounded queue of events matching a filter; iterate it with ``async for``."""

    def __init__(self, hub: "EventHub", processes: Iterable[str] | None,
                 types: Iterable[str] | None, maxsize: int) -> None:
        self._hub = hub
        self.processes = frozenset(processes) if processes else None
        self.types = frozenset(types) if types else None
        self.maxsize = max(1, maxsize)
        self._queue: deque[dict[str, Any]] = deque()
        self._lost = 0
        self.lost_total = 0
        self.delivered = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False

    def matches(self, event: dict[str, Any]) -> bool:
        if self.types is not None and event["type"] not in self.types:
            return False
        if self.processes is not None and event.get("process") not in self.processes:
            return False
        return True

    def _offer(self, event: dict[str, Any]) -> None:
        if len(self._queue) >= self.maxsize:
            self._lost += 1
            self.lost_total += 1
            self._hub.dropped += 1
        else:
            self._queue.append(event)
        self._lot.unpark_all()

    def get_nowait(self) -> dict[str, Any] | None:
        if self._lost:
            lost, self._lost = self._lost, 0
            return {"seq": None, "time": time.time(), "type": "lost", "process": None,
                    "id": None, "count": lost}
        if self._queue:
            self.delivered += 1
            return self._queue.popleft()
        return None

    async def get(self) -> dict[str, Any]:
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            if self._closed:
                raise trio.EndOfChannel
            await self._lot.park()

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return await self.get()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._closed = True
        self._hub._subs.discard(self)
        self._lot.unpark_all()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventHub:
    """Stamps events with a monotonically increasing ``seq`` and fans them out."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seq = 0
        self._subs: set[Subscription] = set()
        self._clock = clock
        self.published = 0
        self.dropped = 0  # events lost by slow subscribers, ever (monotonic, for metrics)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    @property
    def last_seq(self) -> int:
        return self._seq

    def publish(self, type: str, process: str | None = None, id: str | None = None,
                **fields: Any) -> dict[str, Any]:
        self._seq += 1
        event = {"seq": self._seq, "time": self._clock(), "type": type,
                 "process": process, "id": id, **fields}
        self.published += 1
        for sub in tuple(self._subs):
            if sub.matches(event):
                sub._offer(event)
        for listener in self.listeners:
            listener(event)
        return event

    def subscribe(self, processes: Iterable[str] | None = None,
                  types: Iterable[str] | None = None, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, processes, types, maxsize)
        self._subs.add(sub)
        return sub

    def close_all(self) -> None:
        for sub in tuple(self._subs):
            sub.close()

    @property
    def dropped_total(self) -> int:
        return sum(s.lost_total for s in self._subs)
