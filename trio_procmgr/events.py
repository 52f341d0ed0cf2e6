"""The event hub: one place every lifecycle event goes through (SPEC §12).

Publishing never blocks and never fails: each subscriber has a queue bounded in items and
bytes (:mod:`trio_procmgr.feeds`), and when
it is full the subscriber loses the event and is told, with its next item, how many it
lost. A slow watcher therefore cannot stall the daemon.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

import trio

from trio_procmgr.feeds import DEFAULT_MAX_BYTES, BoundedFeed

log = logging.getLogger("trio_procmgr.events")


def _declared_event_types() -> frozenset[str]:
    """The schema's ``EventType`` values: the one declaration of every event type."""
    from dd_procmgr_rpc_schema.codec import default_codec

    return frozenset(default_codec().enums["EventType"]["values"])


#: Every event type the daemon may publish, as declared in rpc_schema/schema.yaml.
EVENT_TYPES: frozenset[str] = _declared_event_types()


class Subscription(BoundedFeed):
    """Events matching a filter, in a bounded feed; iterate it with ``async for``."""

    def __init__(self, hub: "EventHub", processes: Iterable[str] | None,
                 types: Iterable[str] | None, maxsize: int,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(maxsize, on_close=lambda sub: hub._subs.discard(sub), max_bytes=max_bytes)
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

    def coalesce_key(self, event: dict[str, Any]) -> Any:
        """A watcher that is behind keeps the latest state of each process."""
        if event.get("type") == "state_changed" and event.get("process") is not None:
            return ("state", event["process"])
        return None

    def merge(self, older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
        """``from`` of the older transition, ``to`` of the newer, and how many were merged."""
        return {**newer, "from": older.get("from", newer.get("from")),
                "coalesced": int(older.get("coalesced") or 1) + 1}

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
        self._undeclared: set[str] = set()

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
        if type not in EVENT_TYPES and type not in self._undeclared:
            self._undeclared.add(type)
            log.warning("event type %r is not declared in the schema's EventType", type)
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
                  types: Iterable[str] | None = None, maxsize: int = 1000,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> Subscription:
        """A bounded subscription (``maxsize`` items, ``max_bytes`` estimated bytes)."""
        sub = Subscription(self, processes, types, maxsize, max_bytes)
        self._subs.add(sub)
        self._subscribed.unpark_all()
        return sub

    def close_all(self) -> None:
        for sub in tuple(self._subs):
            sub.close()

    @property
    def dropped_total(self) -> int:
        return sum(s.lost_total for s in self._subs)
