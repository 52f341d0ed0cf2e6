"""Resource limits in the engine: where a service's cgroup sits, what bounds it, OOM kills.

SPEC §8 and §6.3. The cgroup port (``platform/cgroups.py``) writes the files; this module
decides what to write when, and says honestly what is enforced:

* every service gets ``<name>.service``; members of a supervision group nest in the
  group's ``<group>.slice`` (whether or not the group has ``resources`` yet, so group
  limits added later bound members without moving processes between cgroups);
* before each spawn the group's limits and the service's limits are (re)written and a
  baseline is taken (OOM-kill counter, CPU time) to tell this run apart from earlier ones;
* limits no cgroup controller enforces fall back to rlimits (RLIMIT_AS, RLIMIT_NPROC),
  set by exec'ing the command through util-linux ``prlimit`` — the limits are in place
  before the service's first instruction, without ``preexec_fn``. Without ``prlimit`` they
  are set with ``prlimit(2)`` right after the spawn: a window of a scheduler tick in which
  the child runs unbounded (the report says which path was used);
* a hot update rewrites the cgroup files of the running service and re-sets rlimits on
  every one of its processes;
* a run that ends in failure while the cgroup's OOM-kill counter grew is a failure with
  reason ``oom-kill`` and an ``oom_kill`` event.

Describe shows, per limit (keyed by config field: ``limits.memory`` ...): ``value``,
``enforced``, ``mechanism``, ``scope`` (service, group, process or user) and a
``warning`` when the mechanism is weaker than a cgroup or absent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping


from trio_procmgr.engine.features import Feature, FeatureContext
from trio_procmgr.engine.spawner import SpawnError
from trio_procmgr.platform.rlimits import fallback_rlimits
from trio_procmgr.restart import is_success
from trio_procmgr.spec import GroupSpec, ResourcesSpec

if TYPE_CHECKING:
    from trio_procmgr.engine.containment import TaskNursery
    import trio

    from trio_procmgr.engine.spawner import ExecPlan
    from trio_procmgr.engine.supervisor import Instance, Supervisor
    from trio_procmgr.platform.ports import CgroupTree
    from trio_procmgr.platform.posix import ExitStatus

log = logging.getLogger("trio_procmgr.resources")

PRLIMIT: str | None = shutil.which("prlimit", path="/usr/bin:/bin:/usr/sbin:/sbin")
"""util-linux ``prlimit``; sets rlimits and execs the command (same pid). None: missing."""

FIELD_OF_CONTROL = {
    "cpu.weight": "requests.cpu", "cpu.max": "limits.cpu", "memory.low": "requests.memory",
    "memory.max": "limits.memory", "pids.max": "limits.pids",
}
_RLIMIT_FLAG = {resource.RLIMIT_AS: "--as", resource.RLIMIT_NPROC: "--nproc"}
_RLIMIT_NAME = {resource.RLIMIT_AS: "RLIMIT_AS", resource.RLIMIT_NPROC: "RLIMIT_NPROC"}
_CONTROLLER_OF = {"requests.cpu": "cpu", "limits.cpu": "cpu", "requests.memory": "memory",
                  "limits.memory": "memory", "limits.pids": "pids"}


@dataclass(slots=True)
class RunBaseline:
    """Counters of the service's cgroup taken just before a spawn (cumulative files).

    ``last_cpu``/``last_time`` hold the previous stats sample of this run, for CPU percent.
    """

    at: float
    oom_kills: int = 0
    cpu_user: float | None = None
    cpu_system: float | None = None
    rlimits: tuple[tuple[int, int, int], ...] = ()
    rlimits_pending: bool = False
    last_cpu: float | None = None
    last_time: float | None = None


# ---------------------------------------------------------------------------- pure


def enforcement_report(
    cgroup_report: Mapping[str, Mapping[str, Any]], rlimits: list[tuple[int, int, int]], *,
    child_uid: int, via: str, scope: str = "service",
) -> dict[str, dict[str, Any]]:
    """Per config field (``limits.memory`` ...): value, enforced, mechanism, scope, warning.

    ``cgroup_report`` is what ``_Cgroup.apply`` returned; ``rlimits`` the fallback triples
    actually applied to the child (``via`` says how). Pure: no file or clock access.
    """
    applied = {res for res, _, _ in rlimits}
    out: dict[str, dict[str, Any]] = {}
    for control, entry in cgroup_report.items():
        field = FIELD_OF_CONTROL.get(control, control)
        row: dict[str, Any] = {"value": entry.get("value"), "enforced": bool(entry.get("enforced")),
                               "mechanism": entry.get("mechanism", "none"), "scope": scope}
        if entry.get("error"):
            row["error"] = entry["error"]
            row["warning"] = f"the kernel refused the limit: {entry['error']}"
        elif not row["enforced"]:
            row.update(_fallback_row(field, applied, child_uid=child_uid, via=via, scope=scope))
        out[field] = row
    return out


def _fallback_row(field: str, applied: set[int], *, child_uid: int, via: str,
                  scope: str) -> dict[str, Any]:
    controller = _CONTROLLER_OF.get(field, field)
    missing = f"no {controller} controller"
    if scope == "group":
        return {"enforced": False, "mechanism": "none",
                "warning": f"{missing}: a group limit needs a cgroup controller (rlimits "
                           "cannot bound several processes together)"}
    if field == "limits.memory" and resource.RLIMIT_AS in applied:
        return {"enforced": True, "mechanism": f"rlimit RLIMIT_AS ({via})", "scope": "process",
                "warning": f"{missing}: each process's virtual address space is capped, not "
                           "the service's memory; a process hitting it gets allocation "
                           "failures (ENOMEM), not an OOM kill"}
    if field == "limits.pids" and resource.RLIMIT_NPROC in applied:
        if child_uid == 0:
            return {"enforced": False, "mechanism": f"rlimit RLIMIT_NPROC ({via})",
                    "scope": "user",
                    "warning": f"{missing}: RLIMIT_NPROC is set but ignored for root"}
        return {"enforced": True, "mechanism": f"rlimit RLIMIT_NPROC ({via})", "scope": "user",
                "warning": f"{missing}: RLIMIT_NPROC counts every process of uid "
                           f"{child_uid}, not only this service's"}
    return {"enforced": False, "mechanism": "none", "warning": f"{missing}: not enforced"}


def uncontrolled_report(resources: ResourcesSpec | None) -> dict[str, dict[str, Any]]:
    """The cgroup-less equivalent of ``apply``'s report: every set limit unenforced."""
    if resources is None:
        return {}
    values = {"cpu.weight": resources.requests.cpu, "cpu.max": resources.limits.cpu,
              "memory.low": resources.requests.memory, "memory.max": resources.limits.memory,
              "pids.max": resources.limits.pids}
    return {k: {"value": v, "enforced": False, "mechanism": "none"}
            for k, v in values.items() if v is not None}


def prlimit_argv(rlimits: list[tuple[int, int, int]], prlimit: str) -> list[str]:
    """``prlimit --as=S:H ... --``: the exec wrapper that sets ``rlimits`` then execs."""
    return [prlimit, *(f"{_RLIMIT_FLAG[res]}={soft}:{hard}" for res, soft, hard in rlimits), "--"]


def group_of(groups: Mapping[str, GroupSpec], process: str) -> GroupSpec | None:
    """The supervision group listing ``process`` (the loader allows at most one)."""
    for name in sorted(groups):
        if process in groups[name].members:
            return groups[name]
    return None


def not_enforced(report: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return sorted(field for field, row in report.items() if not row.get("enforced"))


# ---------------------------------------------------------------------------- engine glue


def service_cgroup(tree: "CgroupTree", groups: Mapping[str, GroupSpec], sup: "Supervisor") -> Any:
    """The cgroup for a new supervisor: ``<name>.service``, inside its group's slice."""
    group = group_of(groups, sup.name)
    parent = _group_slice(tree, sup, group) if group is not None else None
    return tree.service(sup.name, parent=parent)


def _group_slice(tree: "CgroupTree", sup: "Supervisor", group: GroupSpec) -> Any:
    """Create (or find) the group's slice, write the group's limits, show them on ``sup``."""
    slice_ = tree.group(group.name)
    report = enforcement_report(slice_.apply(group.resources), [], child_uid=-1,
                                via="", scope="group")
    sup.extras["group_limits"] = {"group": group.name, "cgroup": slice_.v2_path,
                                  "limits": report}
    return slice_


class ResourceLimits(Feature):
    """Limits written before each spawn; the rlimits a missing ``prlimit`` leaves late."""

    def __init__(self, context: FeatureContext) -> None:
        self.context = context

    def prepare_exec(self, sup: "Supervisor", plan: "ExecPlan") -> None:
        tree = self.context.cgroups
        group = group_of(self.context.config.groups, sup.name)
        try:
            if tree is not None and group is not None and sup.cgroup is not None:
                _group_slice(tree, sup, group)
            prepare_limits(sup, plan)
        except OSError as exc:
            raise SpawnError(f"cannot set up the cgroup: {exc}") from None

    def on_instance(self, sup: "Supervisor", inst: "Instance", nursery: "TaskNursery") -> None:
        """The no-``prlimit`` path sets rlimits as soon as the child exists."""
        baseline = sup.run_baseline
        if baseline is not None and baseline.rlimits_pending:
            baseline.rlimits_pending = False
            set_rlimits(inst.child.pid, list(baseline.rlimits))


def prepare_limits(sup: "Supervisor", plan: "ExecPlan") -> None:
    """Before a spawn: write the service's limits, take the baseline, add rlimits (the
    group's slice is written by the caller first).

    Raises OSError when a cgroup directory cannot be created (the spawn then fails).
    """
    spec = sup.spec
    cg = sup.cgroup
    baseline = RunBaseline(at=time.time())
    if cg is not None:
        cgroup_report = cg.apply(spec.resources)
        rlimits = cg.rlimits(spec.resources)
        counters = cg.stats()
        baseline.oom_kills = counters.get("oom_kills") or 0
        baseline.cpu_user = counters.get("cpu_user_seconds")
        baseline.cpu_system = counters.get("cpu_system_seconds")
    else:
        cgroup_report = uncontrolled_report(spec.resources)
        rlimits = fallback_rlimits(spec.resources, memory_enforced=False, pids_enforced=False)
    via = "none"
    if rlimits:
        baseline.rlimits = tuple(rlimits)
        if PRLIMIT is not None:
            plan.argv = prlimit_argv(rlimits, PRLIMIT) + plan.argv
            via = "set by prlimit(1) before exec"
        else:
            baseline.rlimits_pending = True
            via = "set with prlimit(2) just after the spawn; the child runs unbounded briefly"
    child_uid = plan.creds.uid if plan.creds is not None else os.geteuid()
    _publish_report(sup, enforcement_report(cgroup_report, rlimits, child_uid=child_uid, via=via))
    sup.run_baseline = baseline


def _publish_report(sup: "Supervisor", report: dict[str, dict[str, Any]]) -> None:
    sup.enforcement = report
    sup.extras["limits_not_enforced"] = not_enforced(report)


def apply_running(sup: "Supervisor") -> None:
    """Hot update (SPEC §8): rewrite limits of the running service; no restart.

    cgroup files apply to every process of the service at once. rlimit fallbacks are set
    on each of its current processes with prlimit(2) (raised back to unlimited when a
    limit was removed); processes forked before the update keep what they had inherited
    only until this call reaches them.
    """
    spec = sup.spec
    cg = sup.cgroup
    baseline = sup.run_baseline
    if cg is not None:
        cgroup_report = cg.apply(spec.resources)
        rlimits = cg.rlimits(spec.resources)
        pids = cg.procs()
    else:
        cgroup_report = uncontrolled_report(spec.resources)
        rlimits = fallback_rlimits(spec.resources, memory_enforced=False, pids_enforced=False)
        pids = [sup.instance.main_pid] if sup.instance is not None else []
    previous = baseline.rlimits if baseline is not None else ()
    wanted = {res: (soft, hard) for res, soft, hard in rlimits}
    for res, _, _ in previous:
        wanted.setdefault(res, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    for pid in pids:
        set_rlimits(pid, [(res, s, h) for res, (s, h) in wanted.items()])
    if baseline is not None:
        baseline.rlimits = tuple(rlimits)
    child_uid = _uid_of(pids[0]) if pids else os.geteuid()
    via = "set with prlimit(2) on every process at the update" if rlimits else "none"
    _publish_report(sup, enforcement_report(cgroup_report, rlimits, child_uid=child_uid, via=via))


def set_rlimits(pid: int, rlimits: list[tuple[int, int, int]]) -> None:
    for res, soft, hard in rlimits:
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
            resource.prlimit(pid, res, (soft, hard))


def _uid_of(pid: int) -> int:
    import psutil  # here: importing it costs the daemon's boot ~10 ms

    try:
        return psutil.Process(pid).uids().effective
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return os.geteuid()


def oom_failure(sup: "Supervisor", inst: "Instance", status: "ExitStatus") -> str | None:
    """``"oom-kill"`` when this run ended in failure after the kernel OOM-killed in it.

    Compares the cgroup's OOM-kill counter with the spawn baseline; publishes an
    ``oom_kill`` event whenever it grew (even if the main process survived the kill of
    one of its children and exited successfully, which is then no failure).
    """
    baseline = sup.run_baseline
    if sup.cgroup is None or baseline is None:
        return None
    try:
        total = sup.cgroup.oom_kills()
    except OSError:
        return None
    kills = total - baseline.oom_kills
    if kills <= 0:
        return None
    baseline.oom_kills = total
    limit = sup.spec.resources.limits.memory if sup.spec.resources is not None else None
    main_killed = status.signal == signal.SIGKILL
    sup.host.publish("oom_kill", sup.name, sup.record.id, pid=inst.main_pid, kills=kills,
                        total=total, main_process=main_killed, memory_limit=limit)
    log.warning("process %s: the kernel OOM-killed %d process(es) of the service",
                sup.name, kills)
    if main_killed or not is_success(sup.spec, status.code, status.signal):
        return "oom-kill"
    return None


FEATURE = ResourceLimits
