"""Crash adoption: take over the services a previous daemon (or image) left running.

Who is adopted is decided from the spawn journal (``engine.spawn_journal``), never from
a bare PID: an entry is live only if its PID has the recorded kernel start time, a pidfd
could be opened on it (and the start time still matches after that, so the pidfd is on
the right process), and — with cgroups — the PID sits in the service's cgroup. Then:

* configured, same config fingerprint: adopted (same PID, ID, counters, output FIFOs);
* configured, config changed while the daemon was down: adopted, then restarted once;
* no longer configured: stopped (its cgroup or process group killed);
* a process in one of our service cgroups that no journal entry names (a spawn whose
  journal write failed): killed, so a service never runs twice.

:func:`decide` is the pure part (tested without processes); the rest is the thin shell.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from trio_procmgr.engine import output_fifo
from trio_procmgr.platform.ports import CgroupTree, ProcessControl

if TYPE_CHECKING:
    from trio_procmgr.engine.manager import ProcessManager

log = logging.getLogger("trio_procmgr.adoption")


@dataclass
class Decision:
    adopt: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)  # adopted, then restarted once
    stop: list[str] = field(default_factory=list)


def decide(live: Mapping[str, dict[str, Any]], fingerprints: Mapping[str, str]) -> Decision:
    """What to do with each verified live journal entry, given the configured processes
    (name -> config fingerprint)."""
    d = Decision()
    for name in sorted(live):
        if name not in fingerprints:
            d.stop.append(name)
            continue
        d.adopt.append(name)
        if live[name].get("fingerprint") not in (None, fingerprints[name]):
            d.restart.append(name)
    return d


@dataclass
class Verified:
    entry: dict[str, Any]
    pidfd: int


def verify(entry: Mapping[str, Any], cgroup_pids: Callable[[str], set[int] | None],
           process: ProcessControl) -> tuple[int | None, str]:
    """A pidfd on the entry's process if it is still the one the journal recorded.

    ``cgroup_pids(name)`` gives the members of the service's cgroup (None: no cgroups);
    ``process`` is the platform port (without watch handles nothing can be adopted).
    Returns (pidfd, "") or (None, why not).
    """
    pid, started = entry.get("pid"), entry.get("start_time")
    if not isinstance(pid, int) or pid <= 0 or started is None:
        return None, "incomplete journal entry"
    if process.start_time(pid) != started:
        return None, f"pid {pid} is gone (or reused)"
    pidfd = process.watch(pid)
    if pidfd is None:
        return None, f"pid {pid} is gone (or cannot be watched on this platform)"
    if not process.running_as(pid, started):
        os.close(pidfd)
        return None, f"pid {pid} ended while being adopted"
    members = cgroup_pids(entry["name"])
    if members is not None and pid not in members:
        os.close(pidfd)
        return None, f"pid {pid} is not in the service's cgroup"
    return pidfd, ""


def find_live(manager: "ProcessManager", entries: Mapping[str, dict[str, Any]]
              ) -> tuple[dict[str, Verified], dict[str, dict[str, Any]]]:
    """Verify each journal entry (see :func:`verify`): the live ones with their pidfds,
    and the dead ones (they ended while no daemon watched: their policy applies now)."""
    def cgroup_pids(name: str) -> set[int] | None:
        if manager.cgroups is None:
            return None
        rel = entries[name].get("cgroup")
        members = manager.cgroups.members(rel) if rel else None
        return set(members) if members is not None else None

    found, dead = {}, {}
    for name, entry in entries.items():
        pidfd, why = verify(entry, cgroup_pids, manager.platform.process)
        if pidfd is None and _still_running(entry, manager.platform.process):
            # Alive but not adoptable (the portable adapter cannot watch a process it did
            # not start): stop it, or its policy would run it a second time beside it.
            why = _stop_unadoptable(entry, manager.platform.process, why)
        if pidfd is None:
            log.info("not adopting '%s': %s", name, why)
            output_fifo.remove(entry.get("fifos") or ())
            dead[name] = dict(entry, why=why)
            continue
        found[name] = Verified(dict(entry), pidfd)
    return found, dead


def reopen_output(entry: Mapping[str, Any], inherited: Mapping[str, int] | None = None) -> tuple[tuple[int | None, int | None], tuple[str, ...]]:
    """The read ends of an adopted process's FIFOs: inherited over a re-exec, else reopened
    by path (what the service wrote meanwhile is still in the FIFO: it holds it open)."""
    fifos = tuple(entry.get("fifos") or ())
    readers: list[int | None] = []
    for path in fifos[:2]:
        fd = (inherited or {}).get(path)
        if fd is None:
            try:
                fd = output_fifo.open_reader(path)
            except OSError as exc:
                log.warning("adopted '%s': cannot reopen its output %s: %s", entry["name"], path, exc)
                fd = None
        readers.append(fd)
    while len(readers) < 2:
        readers.append(None)
    return (readers[0], readers[1]), fifos


def _still_running(entry: Mapping[str, Any], process: ProcessControl) -> bool:
    pid, started = entry.get("pid"), entry.get("start_time")
    return isinstance(pid, int) and pid > 0 and started is not None and \
        process.running_as(pid, started)


def _kill_and_wait(entry: Mapping[str, Any], process: ProcessControl, timeout: float,
                   cgroups: CgroupTree | None = None) -> None:
    """SIGKILL a journalled service — its cgroup when there is one, else its process
    group and main pid — and wait (bounded) until its main process is gone."""
    pid, rel = entry["pid"], entry.get("cgroup")
    if cgroups is not None and rel:
        cgroups.kill_members(rel)
    else:
        for kill, target in ((os.killpg, entry.get("pgid") or pid), (os.kill, pid)):
            try:
                kill(target, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.running_as(pid, entry["start_time"]):
        time.sleep(0.01)


def _stop_unadoptable(entry: Mapping[str, Any], process: ProcessControl, why: str,
                      timeout: float = 5.0) -> str:
    """Stop a journalled service that runs but cannot be adopted; returns the reason to
    record (its restart policy applies next)."""
    _kill_and_wait(entry, process, timeout)
    return f"{why}; it was still running and could not be adopted, so it was stopped"


def stop_unconfigured(manager: "ProcessManager", verified: Verified, timeout: float = 10.0) -> str:
    """Kill a live service that is no longer configured: its cgroup, else its process group."""
    entry = verified.entry
    pid = entry["pid"]
    _kill_and_wait(entry, manager.platform.process, timeout, manager.cgroups)
    os.close(verified.pidfd)
    output_fifo.remove(entry.get("fifos") or ())
    return f"stopped '{entry['name']}' (pid {pid}), left running by a previous daemon: no longer configured"
