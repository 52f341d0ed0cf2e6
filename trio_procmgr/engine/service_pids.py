"""Which processes belong to a service: its cgroup, else its process group.

Used to accept a notification (its sender must belong to the service), a ``MAINPID=``
and a forking service's main PID (pidfile or the one root process left).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from trio_procmgr.engine.supervisor import Instance, Supervisor


def service_pids(sup: "Supervisor", inst: "Instance") -> set[int]:
    """Live processes of the service: its cgroup; without one, its process group(s)
    plus the daemon's adopted children no supervisor watches (a daemonized process that
    called setsid() left the group but, the daemon being a subreaper, became ours)."""
    if sup.cgroup is not None:
        try:
            return set(sup.cgroup.procs())
        except OSError:
            pass
    pids = sup.os.group_members({inst.pgid, inst.child.pid})
    pids |= sup.os.children() - sup.host.facts.reaper.tracked
    return pids


def belongs(sup: "Supervisor", inst: "Instance", pid: int) -> bool:
    """True when ``pid`` is the service's main process or in its cgroup / process group."""
    if pid <= 0:
        return False
    if pid in (inst.main_pid, inst.child.pid):
        return True
    if sup.cgroup is not None:
        try:
            if pid in sup.cgroup.procs():
                return True
        except OSError:
            pass
    try:
        return os.getpgid(pid) in (inst.pgid, inst.child.pid)
    except (ProcessLookupError, PermissionError):
        return False
