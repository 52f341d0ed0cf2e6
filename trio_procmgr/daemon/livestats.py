"""The dashboard's periodic stats push: one sampler, every watcher gets the latest snapshot.

The page never polls (SPEC §18): the server samples CPU and memory of every running
process every :data:`INTERVAL` seconds while at least one ``/stats`` websocket is open,
and hands each watcher the newest snapshot. A slow watcher simply skips snapshots (only
the latest is kept), so it costs nothing and can never stall the sampler.

File reads (cgroup counters, /proc) happen in a worker thread so a thousand services do
not block the event loop; CPU percent is computed from two samples by a pure function.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import trio

from trio_procmgr.daemon.metrics import usage
from trio_procmgr.daemon.webapi import process_row
from trio_procmgr.engine.stats import cpu_percent

if TYPE_CHECKING:
    from trio_procmgr.engine.manager import ProcessManager

INTERVAL = 2.0

#: (name, pid) -> (sample time, cpu seconds): a new PID starts a fresh window.
CpuSamples = dict[tuple[str, int], tuple[float, float]]
Usage = tuple[float | None, float | None, int | None]


def cpu_rates(previous: CpuSamples, current: dict[tuple[str, int], Usage],
              now: float) -> tuple[dict[str, float | None], CpuSamples]:
    """CPU percent (of one core) per name since the previous sample, and the samples to
    keep for next time. Pure. A process seen for the first time has no rate yet (None)."""
    rates: dict[str, float | None] = {}
    kept: CpuSamples = {}
    for key, (user, system, _) in current.items():
        if user is None:
            rates[key[0]] = None
            continue
        cpu = user + (system or 0.0)
        before = previous.get(key)
        rates[key[0]] = cpu_percent(cpu, before[1], now, before[0]) if before else None
        kept[key] = (now, cpu)
    return rates, kept


def read_usage(targets: Iterable[tuple[str, int, Any]]) -> dict[tuple[str, int], Usage]:
    """Usage of each (name, pid, cgroup): blocking file reads, run in a worker thread."""
    return {(name, pid): usage(cgroup, pid) for name, pid, cgroup in targets}


class LiveStats:
    """Samples while anyone watches; :meth:`next_snapshot` hands out the latest one."""

    def __init__(self, manager: "ProcessManager", interval: float = INTERVAL) -> None:
        self.manager = manager
        self.interval = interval
        self.watchers = 0
        self.version = 0
        self.latest = ""
        self.closed = False
        self._previous: CpuSamples = {}
        self._lot = trio.lowlevel.ParkingLot()
        self._wanted = trio.Event()

    async def run(self) -> None:
        """Sample every ``interval`` while watched; park while nobody watches."""
        while not self.closed:
            if self.watchers == 0:
                self._previous = {}
                self._wanted = trio.Event()
                await self._wanted.wait()
                continue
            self.latest = await self.snapshot()
            self.version += 1
            self._lot.unpark_all()
            await trio.sleep(self.interval)

    async def snapshot(self) -> str:
        """One stats message (JSON text): every process's row plus cpu_percent and memory."""
        sups = self.manager.supervisors()
        seq = self.manager.hub.last_seq
        targets = [(s.name, s.record.pid, s.cgroup) for s in sups if s.record.pid]
        sampled = await trio.to_thread.run_sync(read_usage, targets)
        now = time.time()
        rates, self._previous = cpu_rates(self._previous, sampled, now)
        memory = {name: used[2] for (name, _), used in sampled.items()}
        rows = []
        for sup in self.manager.supervisors():
            row = process_row(self.manager, sup)
            row["cpu_percent"] = rates.get(sup.name)
            row["memory"] = memory.get(sup.name)
            rows.append(row)
        return json.dumps({"type": "stats", "time": now, "seq": seq,
                           "interval": self.interval, "processes": rows}, default=str)

    @contextmanager
    def watch(self) -> Iterator["LiveStats"]:
        """Count a watcher while the block runs (the sampler works only while watched)."""
        self.watchers += 1
        self._wanted.set()
        try:
            yield self
        finally:
            self.watchers -= 1

    async def next_snapshot(self, seen: int) -> tuple[int, str]:
        """The first snapshot newer than version ``seen``; raises trio.EndOfChannel once
        :meth:`close` was called."""
        while self.version <= seen:
            if self.closed:
                raise trio.EndOfChannel
            await self._lot.park()
        return self.version, self.latest

    def close(self) -> None:
        """No more snapshots (daemon stopping): every watcher's stream ends."""
        self.closed = True
        self._wanted.set()
        self._lot.unpark_all()

