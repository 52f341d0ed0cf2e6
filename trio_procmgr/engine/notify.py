"""The notify protocol's Trio shell (SPEC §4): one NOTIFY_SOCKET per service instance.

Every ``notify`` service, and every service with ``watchdog_sec``, gets its own abstract
datagram socket, bound before the spawn (``NOTIFY_SOCKET=@dd-procmgr/...``) and read by
a task in the instance's nursery, so it lives and dies with that run of the child.
A datagram counts only when the kernel-filled sender PID (SCM_CREDENTIALS) belongs to
the service: its main process, or a process of its cgroup / process group (that is how
``systemd-notify``, a child of the service, is accepted; its ``--pid=`` arrives as
``MAINPID=``), or a sender that already exited when its datagram is read and ran as the
service's uid (a short-lived helper: the race systemd-notify's barrier exists for). Anything else — no credentials, a foreign sender, truncated or garbage
bytes — is dropped and counted (describe ``notify.dropped``), never fatal.

Messages: READY=1 → running (``mark_ready``); STATUS= → ``record.status_text``;
MAINPID= → the watched main process changes (it must belong to the service);
STOPPING=1 / RELOADING=1 / ERRNO= → shown in describe (``notify``); WATCHDOG=1,
WATCHDOG=trigger, WATCHDOG_USEC= → ``engine.watchdog``; EXTEND_TIMEOUT_USEC= → the start
deadline moves to now + value (while starting). A notify service not ready within
``timeout_start_sec`` fails with reason "start timeout: ...".
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

import trio

from trio_procmgr.engine import watchdog
from trio_procmgr.engine import messages as msg
from trio_procmgr.engine.features import Feature, FeatureContext
from trio_procmgr.engine.service_pids import belongs
from trio_procmgr.platform.posix import resolve_credentials
from trio_procmgr.notify_protocol import MAX_DATAGRAM, NotifyGarbage, NotifyMessage, parse_notify
from trio_procmgr.platform.notify_socket import NotifySocket

if TYPE_CHECKING:
    from trio_procmgr.engine.containment import TaskNursery
    from trio_procmgr.engine.spawner import ExecPlan
    from trio_procmgr.engine.supervisor import Instance, Supervisor

log = logging.getLogger("trio_procmgr.notify")

def wants_notify_socket(sup: "Supervisor") -> bool:
    return sup.spec.process_type == "notify" or sup.spec.watchdog_sec > 0


def _stats(sup: "Supervisor") -> dict[str, Any]:
    stats: dict[str, Any] = sup.extras.setdefault("notify", {
        "socket": None, "received": 0, "accepted": 0, "dropped": 0, "dropped_by_reason": {},
        "last_dropped": None, "stopping": False, "reloading": False, "errno": None,
        "main_pid_from_notify": None})
    return stats


class NotifySockets(Feature):
    """Binds each run's NOTIFY_SOCKET before the spawn and reads it during the run."""

    def __init__(self, context: FeatureContext) -> None:
        self.context = context
        #: Bound for a spawn being prepared, read once its run starts.
        self.pending: dict[str, NotifySocket] = {}

    def prepare_exec(self, sup: "Supervisor", plan: "ExecPlan") -> None:
        old = self.pending.pop(sup.name, None)
        if old is not None:
            old.close()  # left by a spawn that failed
        if not wants_notify_socket(sup):
            plan.env.pop("NOTIFY_SOCKET", None)
            return
        ns = NotifySocket(f"{self.context.instance}/{sup.name}", MAX_DATAGRAM)
        self.pending[sup.name] = ns
        plan.env["NOTIFY_SOCKET"] = ns.address

    def on_instance(self, sup: "Supervisor", inst: "Instance", nursery: "TaskNursery") -> None:
        address = inst.child.extra.get("notify_socket")
        if inst.child.extra.get("adopted") and address:
            self._rebind(sup, address)
        ns = self.pending.pop(sup.name, None)
        if ns is not None:
            stats = _stats(sup)
            stats.update(socket=ns.address, stopping=False, reloading=False)
            nursery.start_soon(_receive, sup, inst, ns)
        if sup.spec.process_type == "notify":
            nursery.start_soon(_start_timer, sup, inst)

    def _rebind(self, sup: "Supervisor", address: str) -> None:
        """Bind the NOTIFY_SOCKET an adopted service was spawned with (journalled), so
        its READY/WATCHDOG pings reach this daemon too."""
        old = self.pending.pop(sup.name, None)
        if old is not None:
            old.close()
        try:
            self.pending[sup.name] = NotifySocket(f"{self.context.instance}/{sup.name}",
                                                  MAX_DATAGRAM, address=address)
        except OSError as exc:
            self.context.warn(f"process '{sup.name}': cannot bind its notify socket "
                              f"{address} again: {exc}")


async def _start_timer(sup: "Supervisor", inst: "Instance") -> None:
    timeout = sup.spec.timeout_start_sec
    if timeout <= 0:
        return
    scope = inst.start_deadline = trio.CancelScope(deadline=inst.started_mono + timeout)
    with scope:
        await sup.wait_until(lambda s: inst.ready or inst.exited.is_set())
        return
    sup.post(msg.StartTimeout(inst))


def _drop(sup: "Supervisor", reason: str, detail: str) -> None:
    stats = _stats(sup)
    stats["dropped"] += 1
    by = stats["dropped_by_reason"]
    by[reason] = by.get(reason, 0) + 1
    stats["last_dropped"] = {"at": time.time(), "reason": reason, "detail": detail}
    log.debug("process %s: notification dropped (%s: %s)", sup.name, reason, detail)
    sup.notify_changed()


async def _receive(sup: "Supervisor", inst: "Instance", ns: NotifySocket) -> None:
    try:
        while True:
            dgram = await ns.receive()
            try:
                _handle(sup, inst, dgram)
            finally:
                dgram.close_fds()
    finally:
        ns.close()


def _sender_accepted(sup: "Supervisor", inst: "Instance", dgram: Any) -> bool:
    """The sender is a process of the service — or it already exited, as short-lived
    senders do (``sdnotify`` from a helper, systemd-notify without a barrier): then its
    uid must be the service's. A live process outside the service is always refused.
    """
    if belongs(sup, inst, dgram.pid):
        return True
    if sup.os.exists(dgram.pid):
        return False
    try:
        creds = resolve_credentials(sup.spec.user, sup.spec.group)
    except LookupError:
        return False
    return bool(dgram.uid == (creds.uid if creds is not None else os.geteuid()))


def _handle(sup: "Supervisor", inst: "Instance", dgram: Any) -> None:
    """Check the sender, parse, apply (the sender's fds are still open here)."""
    stats = _stats(sup)
    stats["received"] += 1
    if dgram.pid is None:
        _drop(sup, "no_credentials", "datagram without SCM_CREDENTIALS")
        return
    if dgram.truncated:
        _drop(sup, "garbage", f"longer than {MAX_DATAGRAM} bytes (pid {dgram.pid})")
        return
    if not _sender_accepted(sup, inst, dgram):
        _drop(sup, "foreign_sender", f"pid {dgram.pid} is not a process of the service")
        return
    try:
        msg = parse_notify(dgram.data)
    except NotifyGarbage as exc:
        _drop(sup, "garbage", f"{exc} (pid {dgram.pid})")
        return
    stats["accepted"] += 1
    if msg.invalid:
        stats["last_invalid"] = list(msg.invalid)
    apply_message(sup, inst, msg)


def apply_message(sup: "Supervisor", inst: "Instance", msg: NotifyMessage) -> None:
    """What one accepted notification does to the service."""
    if inst is not sup.instance or inst.exited.is_set():
        return
    stats = _stats(sup)
    if msg.status is not None and msg.status != sup.record.status_text:
        sup.record.status_text = msg.status
        sup.host.publish("status_changed", sup.name, sup.record.id, status_text=msg.status)
        sup.notify_changed()
    if msg.errno is not None:
        stats["errno"] = msg.errno
    if msg.mainpid is not None:
        if belongs(sup, inst, msg.mainpid) and sup.set_main_pid(inst, msg.mainpid):
            stats["main_pid_from_notify"] = msg.mainpid
        else:
            _drop(sup, "bad_mainpid", f"MAINPID={msg.mainpid} is not a live process of the service")
    if msg.extend_timeout_usec is not None and not inst.ready:
        scope = inst.start_deadline
        if scope is not None:
            scope.deadline = max(scope.deadline, trio.current_time() + msg.extend_timeout_usec / 1e6)
    if msg.watchdog_usec is not None:
        watchdog.set_period(inst, msg.watchdog_usec)
    if msg.watchdog_ping:
        watchdog.ping(sup, inst)
    if msg.reloading:
        stats["reloading"] = True
    if msg.stopping:
        stats["stopping"] = True
    if msg.ready:
        stats["reloading"] = False
        sup.mark_ready(inst, "ready (READY=1)")
    if msg.watchdog_trigger:
        watchdog.trigger(sup, inst)


FEATURE = NotifySockets
