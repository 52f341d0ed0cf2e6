"""Resource usage of one service (SPEC §8): cgroup counters first, /proc per process for the rest.

Cost model (what keeps ``stats`` cheap for a thousand services): memory, CPU time, task
count and OOM kills come from the service's cgroup files (about eight small reads, no
process walk). Threads, open fds, I/O bytes and sockets only exist per process, so the
service's pids are listed from ``cgroup.procs`` and each is read in /proc (``stat``,
``statm``, ``io``, the ``fd`` directory). Only without a cgroup is the process tree discovered with
psutil (which scans every process of the host) and memory/CPU summed per process.

CPU seconds are those of the current (or last) run: the cgroup counters are cumulative
over every run of the service, so the value taken just before the spawn is subtracted.
``cpu_percent`` is percent of one core over the interval since the previous ``stats``
call for this run (``cpu_percent_window`` says how long), or since the spawn for the
first call.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from trio_procmgr.platform import procfs
from trio_procmgr.platform.procfs import ProcSample, SocketEntry

if TYPE_CHECKING:
    from trio_procmgr.engine.supervisor import Supervisor

MAX_SOCKETS_LISTED = 64


def cpu_percent(cpu: float, since_cpu: float, now: float, since: float) -> float | None:
    """Percent of one core used between two samples; None when no time passed."""
    elapsed = now - since
    if elapsed <= 0:
        return None
    return round(max(cpu - since_cpu, 0.0) * 100.0 / elapsed, 2)


def summarize(counters: Mapping[str, Any], samples: Sequence[ProcSample],
              sockets: Mapping[int, tuple[int, SocketEntry]], *, running: bool,
              baseline_cpu: tuple[float | None, float | None] = (None, None),
              cpu_limit: float | None = None) -> dict[str, Any]:
    """The figures of one service from cgroup ``counters`` and per-process ``samples``.

    Pure. A figure the cgroup accounts wins over the per-process sum; ``sources`` says
    which one each headline figure came from. ``sockets`` maps inode -> (pid, entry).
    """
    out: dict[str, Any] = {}
    sources: dict[str, str] = {}
    rss = sum(s.rss for s in samples)
    if counters.get("memory_charged_elsewhere") and (counters.get("memory_current") or 0) < rss:
        # a hot v1 limit: the cgroup misses the pages from before it; the resident set does not
        out["memory_current"], sources["memory"] = rss, "procfs (v1 charges stayed behind)"
    elif counters.get("memory_current") is not None:
        out["memory_current"], sources["memory"] = counters["memory_current"], "cgroup"
    else:
        out["memory_current"], sources["memory"] = rss, "procfs"
    out["memory_rss"] = rss
    out["memory_limit"] = counters.get("memory_limit")
    out["memory_percent"] = (round(out["memory_current"] * 100.0 / out["memory_limit"], 2)
                             if out["memory_limit"] else None)
    if counters.get("cpu_user_seconds") is not None:
        base_user, base_system = baseline_cpu
        out["cpu_user_seconds"] = round(counters["cpu_user_seconds"] - (base_user or 0.0), 6)
        out["cpu_system_seconds"] = round(counters["cpu_system_seconds"] - (base_system or 0.0), 6)
        sources["cpu"] = "cgroup"
    else:
        out["cpu_user_seconds"] = round(sum(s.cpu_user for s in samples), 6)
        out["cpu_system_seconds"] = round(sum(s.cpu_system for s in samples), 6)
        sources["cpu"] = "procfs (live processes only)"
    out["cpu_limit"] = cpu_limit
    threads = sum(s.threads for s in samples)
    if counters.get("pids_current") is not None:
        out["pids_current"], sources["pids"] = counters["pids_current"], "cgroup"
    else:
        out["pids_current"], sources["pids"] = threads, "procfs"
    out["pids_limit"] = counters.get("pids_limit")
    out["processes"] = len(samples)
    out["threads"] = threads
    out["open_fds"] = sum(s.open_fds for s in samples)
    out["io_read_bytes"] = sum(s.read_bytes for s in samples)
    out["io_write_bytes"] = sum(s.write_bytes for s in samples)
    entries = sorted(sockets.values(), key=lambda pe: (pe[1].proto, pe[1].local, pe[0]))
    out["tcp_sockets"] = sum(1 for _, e in entries if e.proto.startswith("tcp"))
    out["udp_sockets"] = sum(1 for _, e in entries if e.proto.startswith("udp"))
    out["sockets"] = [{"pid": pid, "proto": e.proto, "local": e.local, "remote": e.remote,
                       "state": e.state} for pid, e in entries[:MAX_SOCKETS_LISTED]]
    out["oom_kills"] = counters.get("oom_kills")
    out["sources"] = sources
    if not running:
        out["memory_rss"] = out["threads"] = out["open_fds"] = 0
    return out


def _service_pids(sup: "Supervisor") -> list[int]:
    if sup.cgroup is not None:
        try:
            return sup.cgroup.procs()
        except OSError:
            pass
    pid = sup.record.pid
    if not pid:
        return []
    import psutil

    try:
        root = psutil.Process(pid)
        return [pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.Error:
        return []


def collect_stats(sup: "Supervisor", *, sockets: bool = True) -> dict[str, Any]:
    """Figures for ``stats NAME`` (SPEC §8), summing every process of the service."""
    now = time.time()
    rec = sup.record
    counters: dict[str, Any] = {}
    if sup.cgroup is not None:
        try:
            counters = sup.cgroup.stats()
        except OSError:
            counters = {}
    running = sup.instance is not None
    pids = _service_pids(sup) if running else []
    samples = [s for s in (procfs.read_process(pid, sockets=sockets)
                           for pid in pids) if s is not None]
    found: dict[int, tuple[int, SocketEntry]] = {}
    if sockets:
        owner = {inode: s.pid for s in samples for inode in s.socket_inodes}
        if owner:
            table = procfs.read_sockets(samples[0].pid, set(owner))
            found = {inode: (owner[inode], entry) for inode, entry in table.items()}
    baseline = sup.run_baseline
    resources = sup.spec.resources
    out: dict[str, Any] = {"name": sup.name, "id": rec.id, "pid": rec.pid,
                           "state": rec.state.value, "time": now,
                           "cgroup_path": getattr(sup.cgroup, "v2_path", None)}
    out.update(summarize(
        counters, samples, found, running=running,
        baseline_cpu=(baseline.cpu_user, baseline.cpu_system) if baseline else (None, None),
        cpu_limit=resources.limits.cpu if resources is not None else None))
    cpu = out["cpu_user_seconds"] + out["cpu_system_seconds"]
    out["cpu_percent"] = out["cpu_percent_window"] = None
    if running and baseline is not None:
        since, since_cpu = ((baseline.last_time, baseline.last_cpu)
                            if baseline.last_time is not None else (baseline.at, 0.0))
        out["cpu_percent"] = cpu_percent(cpu, since_cpu, now, since)
        out["cpu_percent_window"] = round(now - since, 3)
        baseline.last_time, baseline.last_cpu = now, cpu
    return out
