"""The event hub: one place every lifecycle event goes through (SPEC §12).

Publishing never blocks and never fails: each subscriber has a bounded queue, and when
it is full the subscriber loses the event and is told, with its next item, how many it
lost. A slow watcher therefore cannot stall the daemon.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import trio

from trio_procmgr.feeds import BoundedFeed

#: Every event type the daemon publishes.
EVENT_TYPES = (
    "state_changed", "process_started", "process_exited", "restart_scheduled",
    "start_limit_hit", "health_changed", "config_reloaded", "process_created",
    "process_updated", "process_deleted", "oom_kill", "daemon_started", "daemon_stopping",
    "condition_failed", "watchdog_timeout", "group_escalated", "lost",
    "process_scaled", "instance_created",
    "internal_error", "config_reload_failed", "daemon_stopped",
)


class Subscription(BoundedFeed):
    """Events matching a filter, in a bounded feed; iterate it with ``async for``."""

    def __init__(self, hub: "EventHub", processes: Iterable[str] | None,
                 types: Iterable[str] | None, maxsize: int) -> None:
        super().__init__(maxsize, on_close=lambda sub: hub._subs.discard(sub))
        self._hub = hub
        self.processes = frozenset(processes) if processes else None
        self.types = frozenset(types) if types else None

    def matches(self, event: dict[str, Any]) -> bool:
        if self.types is not None and event["type"] not in self.types:
            return False
        if self.processes is not None and event.get("process") not in self.processes:
            # Watching a template or replica set NAME also shows its instances NAME@INST.
            return (event.get("process") or "").partition("@")[0] in self.processes
        return True

    def offer(self, event: dict[str, Any]) -> bool:
        kept = super().offer(event)
        if not kept:
            self._hub.dropped += 1
        return kept

    def lost_item(self, count: int) -> dict[str, Any]:
        return {"seq": None, "time": time.time(), "type": "lost", "process": None,
                "id": None, "count": count}


class EventHub:
    """Stamps events with a monotonically increasing ``seq`` and fans them out."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seq = 0
        self._subscribed = trio.lowlevel.ParkingLot()
        self._subs: set[Subscription] = set()
        self._clock = clock
        self.published = 0
        self.dropped = 0  # events lost by slow subscribers, ever (monotonic, for metrics)
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open (watch streams, websocket clients, ...)."""
        return len(self._subs)

    async def wait_subscribers(self, count: int) -> None:
        """Return once at least ``count`` subscriptions are open (for tests and tools)."""
        while len(self._subs) < count:
            await self._subscribed.park()

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
                sub.offer(event)
        for listener in self.listeners:
            listener(event)
        return event

    def subscribe(self, processes: Iterable[str] | None = None,
                  types: Iterable[str] | None = None, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, processes, types, maxsize)
        self._subs.add(sub)
        self._subscribed.unpark_all()
        return sub

    def close_all(self) -> None:
        for sub in tuple(self._subs):
            sub.close()

    @property
    def dropped_total(self) -> int:
        return sum(s.lost_total for s in self._subs)
