"""The service watchdog (``watchdog_sec``, SPEC §4), any process type.

The child gets ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` (its own PID, set by the exec
shim) plus a ``NOTIFY_SOCKET`` (``engine.notify``) to send ``WATCHDOG=1`` to. As in
systemd, the watchdog is armed once start-up completed (simple: at exec, notify: at
READY=1, forking: when the main PID is known); a period without a ping kills the service
with SIGABRT (``kill_for_failure`` with reason ``watchdog``) and the restart policy
applies. ``WATCHDOG=trigger`` fires it at once; ``WATCHDOG_USEC=`` from the service
changes the period of the running instance. A hot update of ``watchdog_sec`` changes the
period of instances started with a watchdog; 0 disarms it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from trio_procmgr.engine import exec_shim
from trio_procmgr.engine import messages as msg
from trio_procmgr.engine.features import Feature, FeatureContext

if TYPE_CHECKING:
    from trio_procmgr.engine.containment import TaskNursery
    from trio_procmgr.engine.spawner import ExecPlan
    from trio_procmgr.engine.supervisor import Instance, Supervisor


@dataclass
class WatchdogTimer:
    """Pure bookkeeping: when the next ping is due (``now`` is passed in)."""

    timeout: float
    last_ping: float
    override: float | None = None
    pings: int = 0

    def period(self, configured: float) -> float:
        return self.override if self.override is not None else configured

    def ping(self, now: float) -> None:
        self.last_ping = now
        self.pings += 1

    def deadline(self, configured: float) -> float:
        return self.last_ping + self.period(configured)

    def expired(self, now: float, configured: float) -> bool:
        return now >= self.deadline(configured)


def wants_watchdog(sup: "Supervisor") -> bool:
    return sup.spec.watchdog_sec > 0


def ping(sup: "Supervisor", inst: "Instance") -> bool:
    """A WATCHDOG=1 from the service; False when it has no watchdog."""
    timer: WatchdogTimer | None = inst.watchdog
    if timer is None:
        return False
    timer.ping(trio.current_time())
    sup.extras.setdefault("watchdog", {}).update(last_ping_at=time.time(), pings=timer.pings)
    return True


def set_period(inst: "Instance", usec: int) -> None:
    timer: WatchdogTimer | None = inst.watchdog
    if timer is not None:
        timer.override = usec / 1e6


def trigger(sup: "Supervisor", inst: "Instance") -> None:
    sup.extras.setdefault("watchdog", {}).update(fired_at=time.time(), fired_by="WATCHDOG=trigger")
    sup.post(msg.KillForFailure(inst, "watchdog"))


class Watchdog(Feature):
    """Arms a watchdog for each run of a service with ``watchdog_sec``."""

    def __init__(self, context: FeatureContext) -> None:
        self.context = context
        #: Period by process, for the spawn being prepared.
        self.armed: dict[str, float] = {}

    def prepare_exec(self, sup: "Supervisor", plan: "ExecPlan") -> None:
        self.armed.pop(sup.name, None)
        if not wants_watchdog(sup):
            return
        plan.env["WATCHDOG_USEC"] = str(max(1, round(sup.spec.watchdog_sec * 1e6)))
        exec_shim.request(plan, pid_vars=["WATCHDOG_PID"])
        self.armed[sup.name] = sup.spec.watchdog_sec

    def on_instance(self, sup: "Supervisor", inst: "Instance", nursery: "TaskNursery") -> None:
        period = self.armed.pop(sup.name, None)
        if period is None and inst.child.extra.get("adopted") and wants_watchdog(sup):
            period = sup.spec.watchdog_sec  # an adopted run: no spawn was prepared here
        if period is not None:
            timer = inst.watchdog = WatchdogTimer(period, trio.current_time())
            nursery.start_soon(_watch, sup, inst, timer)


async def _watch(sup: "Supervisor", inst: "Instance", timer: WatchdogTimer) -> None:
    await sup.wait_until(lambda s: inst.ready or inst.exited.is_set())
    if inst.exited.is_set():
        return
    timer.last_ping = trio.current_time()
    sup.extras["watchdog"] = {"timeout": timer.period(sup.spec.watchdog_sec), "pings": 0,
                              "last_ping_at": None, "armed_at": time.time()}
    while True:
        configured = sup.spec.watchdog_sec
        if configured <= 0 and timer.override is None:
            sup.extras["watchdog"]["timeout"] = 0
            return
        sup.extras["watchdog"]["timeout"] = timer.period(configured)
        if timer.expired(trio.current_time(), configured):
            break
        await trio.sleep_until(timer.deadline(configured))
    sup.extras["watchdog"].update(fired_at=time.time(), fired_by="missed ping")
    sup.host.publish("watchdog_timeout", sup.name, sup.record.id,
                        timeout=sup.extras["watchdog"]["timeout"])
    sup.post(msg.KillForFailure(inst, "watchdog"))


FEATURE = Watchdog
