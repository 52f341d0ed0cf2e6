"""Resource usage of one service: cgroup counters when present, psutil otherwise."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trio_procmgr.engine.supervisor import Supervisor


def _psutil_tree(pid: int) -> list[Any]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def collect_stats(sup: "Supervisor") -> dict[str, Any]:
    """Figures for ``stats NAME`` (SPEC §8), summing the whole service tree."""
    rec = sup.record
    out: dict[str, Any] = {"name": sup.name, "id": rec.id, "pid": rec.pid,
                           "state": rec.state.value, "time": time.time()}
    if sup.cgroup is not None:
        try:
            out["cgroup"] = sup.cgroup.stats()
        except OSError:
            out["cgroup"] = {}
    if rec.pid:
        import psutil

        procs = _psutil_tree(rec.pid)
        rss = threads = fds = 0
        read_b = write_b = 0
        user = system = 0.0
        for p in procs:
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    threads += p.num_threads()
                    fds += p.num_fds()
                    t = p.cpu_times()
                    user += t.user
                    system += t.system
                    try:
                        io = p.io_counters()
                        read_b += io.read_bytes
                        write_b += io.write_bytes
                    except (psutil.Error, AttributeError):
                        pass
            except psutil.Error:
                continue
        out.update(processes=len(procs), memory_rss=rss, threads=threads, open_fds=fds,
                   cpu_user=user, cpu_system=system, io_read_bytes=read_b,
                   io_write_bytes=write_b)
    return out
