"""``process_type: forking`` (SPEC §4): traditional daemons that fork and exit.

The service is ``starting`` until the spawned parent exits. A failed parent exit is the
failure of the start. After a successful one the main PID is

* the PID in ``pidfile`` once the file names a live process of the service (a stale
  file from an earlier run is ignored; the file is re-read until ``timeout_start_sec``),
* otherwise the single root process left in the service's cgroup (its parent is not in
  the service: an nginx master with its workers qualifies); no process left is a failure.

The main process is then watched like a spawned child: the daemon is a child subreaper,
so the daemonized process became its child and its exit status is collected through a
pidfd (``Supervisor.set_main_pid``); it is tracked so the orphan reaper leaves it alone.
When it dies, the supervisor ends the rest of the cgroup before any restart.

The pidfile is re-read every 5–100 ms (growing) while waiting: a file appearing is not a
process exit, and a few stat() calls are cheaper than an inotify watch per start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import trio

from trio_procmgr.engine.features import Feature, FeatureContext
from trio_procmgr.engine.service_pids import belongs, service_pids
from trio_procmgr.platform.posix import ExitStatus
from trio_procmgr.restart import describe_exit, is_success

if TYPE_CHECKING:
    from trio_procmgr.engine.containment import TaskNursery
    from trio_procmgr.engine.supervisor import Instance, Supervisor


def read_pidfile(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read(64).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def guess_main_pid(pids: set[int], parent_of: Callable[[int], int | None]) -> tuple[int | None, str]:
    """The one process of ``pids`` whose parent is outside ``pids`` (pure)."""
    roots = sorted(p for p in pids if parent_of(p) not in pids)
    if len(roots) == 1:
        return roots[0], ""
    if not roots:
        return None, "no process of the service is left after the parent exited"
    return None, f"several candidate main processes {roots}; set pidfile"


def find_main_pid(sup: "Supervisor", inst: "Instance") -> tuple[int | None, str, bool]:
    """(pid, why not, final): ``final`` means waiting longer cannot help."""
    path = sup.spec.pidfile
    if path:
        pid = read_pidfile(path)
        if pid is not None and belongs(sup, inst, pid) or (
                pid is not None and pid in service_pids(sup, inst)):
            return pid, "", True
        return None, (f"pidfile {path} did not name a live process of the service"
                      if pid is not None else f"pidfile {path} did not appear"), False
    pid, why = guess_main_pid(service_pids(sup, inst), sup.os.parent_of)
    return pid, why, pid is None and why.startswith("no process")


async def handover(sup: "Supervisor", inst: "Instance", status: ExitStatus) -> int | None:
    """Called by the waiter when the spawned parent exited; returns the new main PID."""
    if not is_success(sup.spec, status.code, status.signal):
        inst.failure_reason = f"daemon parent {describe_exit(status.code, status.signal)}"
        return None
    timeout = sup.spec.timeout_start_sec
    deadline = inst.started_mono + timeout if timeout > 0 else float("inf")
    delay = 0.005
    while True:
        if inst.stop_requested or inst is not sup.instance:
            return None
        pid, why, final = find_main_pid(sup, inst)
        if pid is not None and sup.set_main_pid(inst, pid):
            sup.mark_ready(inst, f"started (main PID {pid})")
            return pid
        now = trio.current_time()
        if final or now >= deadline:
            inst.failure_reason = why if final else f"start timeout: {why} within {timeout:g}s"
            return None
        await trio.sleep(min(delay, deadline - now))
        delay = min(delay * 2, 0.1)


class ForkingReadiness(Feature):
    """A forking service's run: the hand-over when the parent exits, the start timeout."""

    def __init__(self, context: FeatureContext) -> None:
        self.context = context

    def on_instance(self, sup: "Supervisor", inst: "Instance", nursery: "TaskNursery") -> None:
        if sup.spec.process_type != "forking":
            return

        async def hand_over(status: ExitStatus) -> int | None:
            return await handover(sup, inst, status)

        inst.handover = hand_over
        sup.arm_start_timeout(inst)


FEATURE = ForkingReadiness
