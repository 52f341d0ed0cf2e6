"""Prometheus metrics of the daemon and its processes, read from the manager at scrape time.

A custom collector (no metric objects updated on the hot path): each scrape walks the
supervisors once and yields metric families; ``prometheus_client`` formats them. Per
process CPU and memory come from the process's cgroup files when it has a cgroup (a few
file reads), otherwise from psutil for the main process only (no /proc walk).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from trio_procmgr.health_state import HEALTH_STATES
from trio_procmgr.states import State

if TYPE_CHECKING:
    from trio_procmgr.engine.manager import ProcessManager
    from trio_procmgr.engine.supervisor import Supervisor

PREFIX = "dd_procmgr"


def _usage(sup: "Supervisor") -> tuple[float | None, float | None, int | None]:
    """(cpu user s, cpu system s, memory bytes) of a running process; None = unknown."""
    return usage(sup.cgroup, sup.record.pid)


def usage(cgroup: Any, pid: int | None) -> tuple[float | None, float | None, int | None]:
    """(cpu user s, cpu system s, memory bytes) from a service's cgroup, else from its
    main process with psutil; None = unknown. Only reads files, so the dashboard's stats
    push may call it from a worker thread."""
    user = system = None
    memory = None
    if cgroup is not None:
        try:
            st = cgroup.stats()
            user, system, memory = (st.get("cpu_user_seconds"), st.get("cpu_system_seconds"),
                                    st.get("memory_current"))
        except OSError:
            pass
    if (user is None or memory is None) and pid:
        import psutil

        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                t = proc.cpu_times()
                user = t.user if user is None else user
                system = t.system if system is None else system
                memory = proc.memory_info().rss if memory is None else memory
        except psutil.Error:
            pass
    return user, system, memory


def state_write_errors(manager: Any) -> tuple[int, str | None]:
    """Failed writes to the state dir (state files, overrides and the spawn journal) since
    the daemon started, and the current failure (None when everything is written)."""
    store, journal = getattr(manager, "store", None), getattr(manager, "journal", None)
    count = (getattr(store, "write_errors", 0) or 0) + (getattr(journal, "write_errors", 0) or 0)
    return count, getattr(store, "error", None) or getattr(journal, "error", None)


def _counts(value: Any, label_default: str) -> dict[str, float]:
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    if isinstance(value, (int, float)):
        return {label_default: float(value)}
    return {}


class ManagerCollector:
    def __init__(self, manager: "ProcessManager") -> None:
        self.manager = manager

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._processes(time.time())
        yield from self._instances()
        yield from self._daemon(time.time())

    def _instances(self) -> Iterator[Metric]:
        """Template instances carry their template and instance (join on ``process``), and
        each replicated process its wanted count (SPEC §16)."""
        info = GaugeMetricFamily(f"{PREFIX}_process_instance_info",
                                 "1 for each instance of a template or replicated process",
                                 labels=["process", "template", "instance"])
        wanted = GaugeMetricFamily(f"{PREFIX}_replicas_wanted",
                                   "Instances wanted of a replicated process", labels=["template"])
        for sup in self.manager.supervisors():
            base, at, instance = sup.name.partition("@")
            if at:
                info.add_metric([sup.name, base, instance], 1.0)
        for base in self.manager.config.templates:
            replicas = self.manager.instances.summary(base)["replicas"]
            if replicas is not None:
                wanted.add_metric([base], float(replicas))
        yield from (info, wanted)

    def _processes(self, now: float) -> Iterator[Metric]:
        labels = ["process"]
        state = GaugeMetricFamily(f"{PREFIX}_process_state", "1 for the state the process is in",
                                  labels=["process", "state"])
        health = GaugeMetricFamily(f"{PREFIX}_process_health", "1 for the process's health state",
                                   labels=["process", "health"])
        runs = CounterMetricFamily(f"{PREFIX}_process_runs", "Times the process was started",
                                   labels=labels)
        restarts = CounterMetricFamily(f"{PREFIX}_process_restarts",
                                       "Automatic restarts of the process", labels=labels)
        uptime = GaugeMetricFamily(f"{PREFIX}_process_uptime_seconds",
                                   "Seconds since the current run started (0 when not running)",
                                   labels=labels)
        cpu = CounterMetricFamily(f"{PREFIX}_process_cpu_seconds",
                                  "CPU time of the current run (cgroup, else main process)",
                                  labels=["process", "mode"])
        memory = GaugeMetricFamily(f"{PREFIX}_process_memory_bytes",
                                   "Memory in use (cgroup memory.current, else main process RSS)",
                                   labels=labels)
        log_lines = CounterMetricFamily(f"{PREFIX}_process_log_lines",
                                        "Output lines captured from the process", labels=labels)
        write_errors = CounterMetricFamily(
            f"{PREFIX}_process_log_write_errors",
            "Failed writes to the process's log file (full disk, I/O error)", labels=labels)
        dropped = CounterMetricFamily(
            f"{PREFIX}_process_log_lines_dropped",
            "Lines that never reached the log file (still in the ring)", labels=labels)
        for sup in self.manager.supervisors():
            rec, name = sup.record, sup.name
            write_errors.add_metric([name], sup.extras.get("log_write_errors", 0))
            dropped.add_metric([name], sup.extras.get("log_lines_dropped", 0))
            for st in State:
                state.add_metric([name, st.value], 1.0 if rec.state is st else 0.0)
            for h in HEALTH_STATES:
                health.add_metric([name, h], 1.0 if rec.health == h else 0.0)
            runs.add_metric([name], rec.runs)
            restarts.add_metric([name], rec.restarts)
            log_lines.add_metric([name], sup.ring.total)
            started_at = rec.started_at if rec.pid is not None else None
            running = started_at is not None
            uptime.add_metric([name], max(0.0, now - started_at) if started_at is not None else 0.0)
            if running:
                user, system, mem = _usage(sup)
                if user is not None:
                    cpu.add_metric([name, "user"], user)
                    cpu.add_metric([name, "system"], system or 0.0)
                if mem is not None:
                    memory.add_metric([name], mem)
        yield from (state, health, runs, restarts, uptime, cpu, memory, log_lines, write_errors,
                    dropped)

    def _daemon(self, now: float) -> Iterator[Metric]:
        m = self.manager
        yield GaugeMetricFamily(f"{PREFIX}_daemon_uptime_seconds", "Seconds since the daemon started",
                                value=now - m.started_at)
        yield GaugeMetricFamily(f"{PREFIX}_daemon_processes", "Processes defined",
                                value=len(m.supervisors()))
        failed, _ = state_write_errors(m)
        yield CounterMetricFamily(f"{PREFIX}_state_write_errors",
                                  "Failed writes to the state dir (full, read-only)", value=failed)
        hub = m.hub
        yield CounterMetricFamily(f"{PREFIX}_events_published", "Events published on the hub",
                                  value=hub.published)
        yield CounterMetricFamily(f"{PREFIX}_events_dropped",
                                  "Events a slow subscriber lost (its queue was full)",
                                  value=hub.dropped)
        stats = getattr(m, "rpc_stats", None) or {}
        calls = CounterMetricFamily(f"{PREFIX}_rpc_calls", "RPC calls by method", labels=["method"])
        for method, n in sorted(_counts(stats.get("calls"), "all").items()):
            calls.add_metric([method], n)
        errs = CounterMetricFamily(f"{PREFIX}_rpc_errors", "RPC calls that failed, by error code",
                                   labels=["code"])
        for code, n in sorted(_counts(stats.get("errors"), "all").items()):
            errs.add_metric([code], n)
        yield calls
        yield errs
        web = getattr(m, "web_stats", None) or {}
        yield GaugeMetricFamily(f"{PREFIX}_websocket_clients", "Connected event-stream clients",
                                value=web.get("clients", 0))


def render(manager: "ProcessManager") -> tuple[bytes, str]:
    """The exposition text of one scrape and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ManagerCollector(manager))
    return generate_latest(registry), CONTENT_TYPE_LATEST
