"""Linux cgroup adapter: where a service's processes live and what bounds them (SPEC §5, §8, §13).

The daemon owns only the subtree ``<own cgroup>/<instance>`` in each hierarchy it uses
(delegation, as systemd grants with ``Delegate=yes``) and never writes above it, except
to put itself back into its own cgroup after a spawn. Layout per hierarchy::

    <own>/<instance>/<service>.service
    <own>/<instance>/<group>.slice/<service>.service

Process tracking, ``cgroup.kill`` and freezing use the cgroup v2 hierarchy even when it
has no controllers (hybrid hosts). Each resource controller is taken from v2 when the v2
hierarchy offers it, else from its v1 hierarchy, else it falls back to rlimits with a
warning. Every call is a handful of small synchronous reads/writes on an in-memory
filesystem, so the Trio engine calls them directly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal as signal_module
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from trio_procmgr.errors import (
    Internal, InvalidArgument, InvalidState, PlatformNotSupported, TerminateFailed,
)
from trio_procmgr.platform import cgroup_v1 as v1
from trio_procmgr.platform import cgroup_v2 as v2
from trio_procmgr.platform.rlimits import fallback_rlimits
from trio_procmgr.spec import ResourcesSpec

KNOWN_V1_CONTROLLERS = frozenset({
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio",
    "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc",
})
LIMIT_CONTROLLERS = ("memory", "cpu", "pids")
SUPERVISOR_SCOPE = "supervisor.scope"
_NAME = re.compile(r"^[A-Za-z0-9_@:+-][A-Za-z0-9_.@:+-]*$")


# ---------------------------------------------------------------------------- detection


@dataclass(frozen=True, slots=True)
class CgroupMount:
    """One cgroup filesystem mount, as /proc/self/mountinfo lists it."""

    version: int
    root: str
    mount_point: str
    controllers: frozenset[str]


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts of a mountinfo file (octal escapes decoded)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        root, mount_point = unescape_mount_field(fields[3]), unescape_mount_field(fields[4])
        if tail[0] == "cgroup2":
            mounts.append(CgroupMount(2, root, mount_point, frozenset()))
        else:
            ctrls = frozenset(tail[2].split(",")) & KNOWN_V1_CONTROLLERS
            if ctrls:
                mounts.append(CgroupMount(1, root, mount_point, ctrls))
    return mounts


def unescape_mount_field(field: str) -> str:
    """A path field of mountinfo: octal escapes (``\\040`` for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_proc_cgroup(text: str) -> tuple[str | None, dict[frozenset[str], str]]:
    """``(v2 path, {v1 controller set: path})`` from /proc/self/cgroup."""
    unified: str | None = None
    legacy: dict[frozenset[str], str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, ctrls, path = parts
        if hid == "0" and ctrls == "":
            unified = path
        elif ctrls and not ctrls.startswith("name="):
            legacy[frozenset(ctrls.split(","))] = path
    return unified, legacy


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """A mounted hierarchy we may use; ``home`` is the daemon's own cgroup directory in it."""

    version: int
    mount_point: str
    home: str
    controllers: frozenset[str]

    def describe(self, file: str) -> str:
        return f"cgroup-v{self.version} {file}"


def _home_dir(mount: CgroupMount, own_path: str) -> str | None:
    root = mount.root.rstrip("/")
    if root and own_path != root and not own_path.startswith(root + "/"):
        return None
    rel = own_path[len(root):].lstrip("/")
    home = os.path.join(mount.mount_point, rel) if rel else mount.mount_point
    return home if os.path.isdir(home) and os.access(home, os.W_OK) else None


def _under(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _read(path: str) -> str:
    """open/read/close without a buffered text wrapper: a third of the cost of ``open()``,
    which matters when ``stats`` reads a few files for each of a thousand services."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)
        if len(data) == 65536:
            chunks = [data]
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            data = b"".join(chunks)
    finally:
        os.close(fd)
    return data.decode()


def _read_or(path: str, default: str | None = None) -> str | None:
    try:
        return _read(path)
    except OSError:
        return default


def _write(path: str, text: str) -> None:
    """One write(2) call, as cgroupfs expects (a buffered writer may split it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name) or name.endswith((".service", ".slice", ".scope")):
        raise InvalidArgument(
            f"{kind} name {name!r} cannot be used as a cgroup directory name; use letters, "
            "digits and _.@:+- without a .service/.slice/.scope suffix", field=kind, value=name)


# ---------------------------------------------------------------------------- limits table


@dataclass(frozen=True, slots=True)
class _Limit:
    """One SPEC §8 limit: where it comes from and which files carry it in v2 and v1."""

    key: str
    controller: str
    pick: Callable[[ResourcesSpec], Any]
    v2_files: Callable[[Any], list[tuple[str, str]]]
    v1_files: Callable[[Any], list[tuple[str, str]]]
    fallback: str


def _v1_cpu_max(cores: float | None) -> list[tuple[str, str]]:
    quota = ("cpu.cfs_quota_us", v1.cfs_quota(cores))
    period = ("cpu.cfs_period_us", v1.cfs_period())
    return [quota, period] if cores is None else [period, quota]


LIMITS: tuple[_Limit, ...] = (
    _Limit("cpu.weight", "cpu", lambda r: r.requests.cpu,
           lambda c: [("cpu.weight", "100" if c is None else str(v2.cpu_weight(c)))],
           lambda c: [("cpu.shares", "1024" if c is None else str(v1.cpu_shares(c)))],
           "none"),
    _Limit("cpu.max", "cpu", lambda r: r.limits.cpu,
           lambda c: [("cpu.max", v2.cpu_max(c))], _v1_cpu_max, "none"),
    _Limit("memory.low", "memory", lambda r: r.requests.memory,
           lambda m: [("memory.low", "0" if m is None else str(m))],
           lambda m: [("memory.soft_limit_in_bytes", v1.bytes_or_unlimited(m))], "none"),
    _Limit("memory.max", "memory", lambda r: r.limits.memory,
           lambda m: [("memory.max", v2.bytes_or_max(m))],
           lambda m: [("memory.limit_in_bytes", v1.bytes_or_unlimited(m))],
           "rlimit RLIMIT_AS (per-process address space)"),
    _Limit("pids.max", "pids", lambda r: r.limits.pids,
           lambda p: [("pids.max", v2.bytes_or_max(p))],
           lambda p: [("pids.max", v2.bytes_or_max(p))],
           "rlimit RLIMIT_NPROC (per user; ignored for root)"),
)


# ---------------------------------------------------------------------------- manager


_C = TypeVar("_C", bound="_Cgroup")


class CgroupManager:
    """The daemon's cgroup subtree ``<own>/<instance>`` in every hierarchy it uses.

    Build it with :meth:`detect`. Directories are created lazily, the first time a
    service or group cgroup is needed. ``warnings`` lists what will not be enforced.
    """

    def __init__(
        self, instance: str, unified: Hierarchy, roles: dict[str, Hierarchy | None],
        warnings: list[str],
    ) -> None:
        _check_name("instance", instance)
        self.instance = instance
        self.unified = unified
        self.roles = roles
        self.warnings = warnings
        self._homes = {unified.mount_point: unified.home}
        self._created: list[str] = []
        self._cgroups: dict[str, _Cgroup] = {}
        self._subtree_ready = False

    @classmethod
    def detect(
        cls, instance: str, *, proc_self_cgroup: str = "/proc/self/cgroup",
        mounts: str = "/proc/self/mountinfo", root: str = "/sys/fs/cgroup",
    ) -> CgroupManager | None:
        """Find the daemon's own cgroup in each hierarchy mounted below ``root``.

        Returns None when there is no usable (existing, writable) cgroup v2 hierarchy:
        the engine then falls back to process groups with a warning (SPEC §5).
        """
        unified_path, legacy_paths = parse_proc_cgroup(_read_or(proc_self_cgroup, "") or "")
        found = [m for m in parse_mountinfo(_read_or(mounts, "") or "")
                 if _under(m.mount_point, root)]
        unified = None
        for mount in (m for m in found if m.version == 2):
            home = _home_dir(mount, unified_path) if unified_path is not None else None
            if home and os.path.exists(os.path.join(home, "cgroup.procs")):
                ctrls = (_read_or(os.path.join(home, "cgroup.controllers"), "") or "").split()
                unified = Hierarchy(2, mount.mount_point, home, frozenset(ctrls))
                break
        if unified is None:
            return None
        legacy: list[Hierarchy] = []
        for mount in (m for m in found if m.version == 1):
            own = legacy_paths.get(mount.controllers)
            home = _home_dir(mount, own) if own is not None else None
            if home:
                legacy.append(Hierarchy(1, mount.mount_point, home, mount.controllers))
        roles, warnings = _choose_roles(unified, legacy)
        manager = cls(instance, unified, roles, warnings)
        for h in legacy:
            manager._homes[h.mount_point] = h.home
        return manager

    # -- public API

    def service(self, name: str, parent: SliceCgroup | None = None) -> ServiceCgroup:
        """The cgroup of service ``name`` (``<name>.service``, below ``parent`` if given)."""
        _check_name("service", name)
        rel = f"{name}.service" if parent is None else f"{parent.rel}/{name}.service"
        return self._cgroup(ServiceCgroup, name, rel, parent)

    def group(self, name: str) -> SliceCgroup:
        """The parent cgroup of a supervision group; its limits bound all members together."""
        _check_name("group", name)
        return self._cgroup(SliceCgroup, name, f"{name}.slice")

    def mechanisms(self) -> dict[str, str]:
        """Which hierarchy enforces each controller (for describe / logs)."""
        return {c: (f"cgroup-v{h.version}" if h else "none") for c, h in self.roles.items()}

    def leftovers(self) -> dict[str, list[int]]:
        """Service name -> pids still inside a service cgroup of this instance's subtree.

        Called at start-up, before anything runs, to find what a crashed previous daemon
        with the same instance name left behind (SPEC §13). Empty cgroups are omitted.
        """
        found: dict[str, set[int]] = {}
        for home in self._homes.values():
            for path in _service_dirs(os.path.join(home, self.instance)):
                pids = _pids_in(path)
                if pids:
                    found.setdefault(os.path.basename(path)[: -len(".service")], set()).update(pids)
        return {name: sorted(pids) for name, pids in sorted(found.items())}

    def kill_leftovers(self, timeout: float = 5.0) -> None:
        """SIGKILL everything in the previous instance's service cgroups, then remove them.

        Uses ``cgroup.kill`` (which also catches processes forking during the kill) and
        waits until every service cgroup is empty, at most ``timeout`` seconds (this
        blocks: it runs once at start-up). Raises TerminateFailed if something survives,
        because starting services next to their old copies is worse than not starting.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = self.leftovers()
            if not remaining:
                break
            for home in self._homes.values():
                for path in _service_dirs(os.path.join(home, self.instance)):
                    _kill_dir(path)
            if time.monotonic() >= deadline:
                raise TerminateFailed(
                    "processes of a previous daemon instance survived SIGKILL; refusing to "
                    "start services next to them", instance=self.instance, leftovers=remaining)
            time.sleep(0.01)
        for home in self._homes.values():
            _remove_tree(os.path.join(home, self.instance), keep=SUPERVISOR_SCOPE)
        self._subtree_ready = False

    def members(self, rel: str) -> list[int] | None:
        """PIDs in the service cgroup ``rel`` of this instance (unified hierarchy), None
        when it does not exist: how a restarted daemon checks a journal entry (adoption)."""
        path = os.path.join(self._home(self.unified), self.instance, rel)
        if not _under(os.path.realpath(path), os.path.realpath(self._home(self.unified))):
            return None
        text = _read_or(os.path.join(path, "cgroup.procs"))
        return None if text is None else v2.parse_pids(text)

    def kill_members(self, rel: str) -> None:
        """SIGKILL everything in the service cgroup ``rel`` in every hierarchy."""
        for home in self._homes.values():
            path = os.path.join(home, self.instance, rel)
            if os.path.isdir(path):
                _kill_dir(path)

    def kill_strays(self, keep: set[str], timeout: float = 5.0) -> dict[str, list[int]]:
        """Kill what sits in service cgroups of this instance other than ``keep`` (the
        cgroups of adopted services): processes no journal entry vouches for, so a
        service can never run twice. Returns what was found (service -> pids)."""
        def strays() -> dict[str, list[int]]:
            found: dict[str, list[int]] = {}
            for home in self._homes.values():
                top = os.path.join(home, self.instance)
                for path in _service_dirs(top):
                    if os.path.relpath(path, top) in keep:
                        continue
                    pids = _pids_in(path)
                    if pids:
                        found.setdefault(os.path.relpath(path, top), []).extend(pids)
            return found

        first = strays()
        deadline = time.monotonic() + timeout
        remaining = first
        while remaining:
            for home in self._homes.values():
                for rel in remaining:
                    path = os.path.join(home, self.instance, rel)
                    if os.path.isdir(path):
                        _kill_dir(path)
            if time.monotonic() >= deadline:
                raise TerminateFailed(
                    "processes of a previous daemon instance survived SIGKILL; refusing to "
                    "start services next to them", instance=self.instance, leftovers=remaining)
            time.sleep(0.01)
            remaining = strays()
        return first

    def cleanup(self) -> None:
        """Remove every cgroup directory this manager created that is empty now."""
        for path in reversed(self._created):
            with contextlib.suppress(OSError):
                os.rmdir(path)
        self._created = [p for p in self._created if os.path.isdir(p)]

    # -- used by the cgroup objects

    def _cgroup(self, kind: type[_C], name: str, rel: str, parent: _Cgroup | None = None) -> _C:
        cg = self._cgroups.get(rel)
        if not isinstance(cg, kind) or type(cg) is not kind:
            cg = self._cgroups[rel] = kind(self, name, rel, parent)
        cg.ensure()
        return cg

    def _subtree(self, h: Hierarchy) -> str:
        return os.path.join(self._home(h), self.instance)

    def _home(self, h: Hierarchy) -> str:
        return self._homes[h.mount_point]

    def _v2_controllers(self) -> list[str]:
        return [c for c in LIMIT_CONTROLLERS if self.roles.get(c) is self.unified]

    def _mkdirs(self, h: Hierarchy, rel: str) -> str:
        """Create ``<subtree>/<rel>`` in ``h`` (and missing parents), enabling v2 controllers."""
        if h is self.unified:
            self._prepare_unified()
        path = self._subtree(h)
        for part in [""] + rel.split("/"):
            parent, path = path, os.path.join(path, part) if part else path
            if os.path.isdir(path):
                continue
            if h is self.unified and part:
                self._enable_controllers(parent)
            os.mkdir(path)
            self._created.append(path)
        return path

    def _prepare_unified(self) -> None:
        """Create the v2 subtree, moving the daemon into a leaf if v2 controllers need it.

        cgroup v2 forbids enabling controllers for children of a non-root cgroup that
        holds processes, and the daemon sits in its own cgroup. So, when a v2 controller
        is in use and the daemon's cgroup is not the root, the daemon first moves itself
        into ``<subtree>/supervisor.scope`` (what systemd recommends for delegated
        subtrees), and spawns return it there.
        """
        if self._subtree_ready:
            return
        subtree = self._subtree(self.unified)
        if not os.path.isdir(subtree):
            os.mkdir(subtree)
            self._created.append(subtree)
        wanted = self._v2_controllers()
        is_root = os.path.realpath(self.unified.home) == os.path.realpath(self.unified.mount_point)
        if wanted and not is_root:
            scope = os.path.join(subtree, SUPERVISOR_SCOPE)
            if not os.path.isdir(scope):
                os.mkdir(scope)
                self._created.append(scope)
            _write(os.path.join(scope, "cgroup.procs"), str(os.getpid()))
            self._homes[self.unified.mount_point] = scope
        self._enable_controllers(self.unified.home)
        self._subtree_ready = True

    def _enable_controllers(self, parent: str) -> None:
        wanted = self._v2_controllers()
        if not wanted:
            return
        control = os.path.join(parent, "cgroup.subtree_control")
        current = set((_read_or(control, "") or "").split())
        missing = [c for c in wanted if c not in current]
        if not missing:
            return
        try:
            _write(control, " ".join(f"+{c}" for c in missing))
        except OSError as exc:
            note = (f"cgroup v2 controllers {missing} could not be enabled in {parent} "
                    f"({exc.strerror}); their limits are not enforced")
            if note not in self.warnings:
                self.warnings.append(note)


def _choose_roles(
    unified: Hierarchy, legacy: list[Hierarchy]
) -> tuple[dict[str, Hierarchy | None], list[str]]:
    """Pick the hierarchy for each controller: v2 if offered there, else v1, else none."""
    def v1_with(ctrl: str) -> Hierarchy | None:
        return next((h for h in legacy if ctrl in h.controllers), None)

    roles: dict[str, Hierarchy | None] = {}
    warnings: list[str] = []
    for ctrl in LIMIT_CONTROLLERS:
        roles[ctrl] = unified if ctrl in unified.controllers else v1_with(ctrl)
    roles["cpuacct"] = v1_with("cpuacct")
    roles["freezer"] = v1_with("freezer")
    if roles["memory"] is None:
        warnings.append("memory limits not enforced: no memory controller (limits.memory "
                        "falls back to RLIMIT_AS per process; requests.memory is ignored)")
    if roles["cpu"] is None:
        warnings.append("cpu requests/limits not enforced: no cpu controller")
    if roles["pids"] is None:
        warnings.append("pids limits not enforced: no pids controller (falls back to "
                        "RLIMIT_NPROC, which counts per user and is ignored for root)")
    return roles, warnings


def _service_dirs(top: str) -> Iterator[str]:
    for dirpath, dirnames, _ in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != SUPERVISOR_SCOPE]
        for d in dirnames:
            if d.endswith(".service"):
                yield os.path.join(dirpath, d)


def _pids_in(path: str) -> list[int]:
    return v2.parse_pids(_read_or(os.path.join(path, "cgroup.procs"), "") or "")


def _kill_dir(path: str) -> None:
    kill_file = os.path.join(path, "cgroup.kill")
    if os.path.exists(kill_file):
        with contextlib.suppress(OSError):
            _write(kill_file, "1")
        return
    for pid in _pids_in(path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal_module.SIGKILL)


def _remove_tree(top: str, keep: str) -> None:
    for dirpath, dirnames, _ in os.walk(top, topdown=False):
        if os.path.basename(dirpath) == keep:
            continue
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)


# ---------------------------------------------------------------------------- cgroups


class _Cgroup:
    """One cgroup (service or slice) across every hierarchy the manager uses."""

    def __init__(self, manager: CgroupManager, name: str, rel: str,
                 parent: "_Cgroup | None" = None) -> None:
        self._m = manager
        self.name = name
        self.rel = rel
        self.parent = parent
        self.v2_path = os.path.join(manager._subtree(manager.unified), rel)
        self._dirs: dict[str, str] = {}
        self._limited: frozenset[str] = frozenset()
        self._ready = False
        #: The v1 memory cgroup was joined by running processes (a hot limit): their
        #: earlier pages are not in its usage (stats then take the resident set too).
        self.memory_charged_elsewhere = False

    def ensure(self) -> None:
        """Create the directories this cgroup needs now (idempotent, cheap once done).

        Always the v2 directory (tracking, kill, freeze); cpuacct only when v2 has no
        ``cpu.stat``, freezer only when v2 has no ``cgroup.freeze``; and the hierarchy of
        each controller that bounds this cgroup or an ancestor slice. A service without
        limits therefore lives in v2 alone and every spawn moves the daemon through one
        hierarchy instead of four; limits added later join the others then
        (:meth:`_join`).
        """
        m = self._m
        if not self._ready:
            self._dirs[m.unified.mount_point] = m._mkdirs(m.unified, self.rel)
            self.v2_path = self._dirs[m.unified.mount_point]
            wanted = []
            if not os.path.exists(os.path.join(self.v2_path, "cpu.stat")):
                wanted.append(m.roles["cpuacct"])
            if not os.path.exists(os.path.join(self.v2_path, "cgroup.freeze")):
                wanted.append(m.roles["freezer"])
            for h in wanted:
                if h is not None and h.mount_point not in self._dirs:
                    self._dirs[h.mount_point] = m._mkdirs(h, self.rel)
            self._ready = True
        for controller in LIMIT_CONTROLLERS:
            if self._needs(controller):
                self._join(controller)

    def _needs(self, controller: str) -> bool:
        """Whether a limit on this cgroup or an ancestor slice uses ``controller``."""
        return controller in self._limited or (
            self.parent is not None and self.parent._needs(controller))

    def _join(self, controller: str) -> None:
        """Create this cgroup in ``controller``'s hierarchy; move running processes in."""
        h = self._m.roles.get(controller)
        if h is None or h.mount_point in self._dirs:
            return
        path = self._dirs[h.mount_point] = self._m._mkdirs(h, self.rel)
        pids = self.procs()  # hot-added limit: the service is already running
        for pid in pids:
            with contextlib.suppress(OSError):
                _write(os.path.join(path, "cgroup.procs"), str(pid))
        if controller == "memory" and pids and h.version == 1:
            # v1 (on current kernels) leaves the pages charged where they were, so this
            # cgroup's usage misses what the service held before the limit appeared.
            self.memory_charged_elsewhere = True

    def _dir(self, role: str) -> tuple[Hierarchy, str] | None:
        h = self._m.roles.get(role)
        if h is None or h.mount_point not in self._dirs:
            return None
        return h, self._dirs[h.mount_point]

    def procs(self) -> list[int]:
        """Every pid in the v2 cgroup (``cgroup.procs``); [] once the directory is gone."""
        return _pids_in(self.v2_path)

    def is_empty(self) -> bool:
        events = _read_or(os.path.join(self.v2_path, "cgroup.events"))
        if events is not None and "populated" in events:
            return v2.parse_keyed(events).get("populated", 0) == 0
        return not self.procs()

    def apply(self, resources: ResourcesSpec | None) -> dict[str, dict[str, Any]]:
        """Write the limits of ``resources`` (None clears every limit); safe to call again.

        Returns one report entry per limit that is set: ``value``, ``enforced``,
        ``mechanism`` and, when the kernel refused a write, ``error``. Limits without a
        controller are reported ``enforced: False`` with their rlimit fallback (see
        :meth:`rlimits`).
        """
        values = {limit: (None if resources is None else limit.pick(resources)) for limit in LIMITS}
        self._limited = frozenset(l.controller for l, v in values.items() if v is not None)
        self.ensure()
        report: dict[str, dict[str, Any]] = {}
        for limit, value in values.items():
            if value is None and self._dir(limit.controller) is None:
                continue  # never limited here: nothing to clear
            entry = self._apply_one(limit, value)
            if value is not None:
                report[limit.key] = entry
        return report

    def _apply_one(self, limit: _Limit, value: Any) -> dict[str, Any]:
        where = self._dir(limit.controller)
        if where is None:
            return {"value": value, "enforced": False, "mechanism": limit.fallback}
        h, path = where
        files = limit.v2_files(value) if h.version == 2 else limit.v1_files(value)
        entry: dict[str, Any] = {"value": value, "enforced": True,
                                 "mechanism": h.describe(files[-1][0])}
        for file, text in files:
            try:
                _write(os.path.join(path, file), text)
            except OSError as exc:
                entry.update(enforced=False, error=f"{file}: {exc.strerror or exc}")
                break
        return entry

    def rlimits(self, resources: ResourcesSpec | None) -> list[tuple[int, int, int]]:
        """``(resource, soft, hard)`` for the child, covering limits no cgroup enforces."""
        return fallback_rlimits(
            resources, memory_enforced=self._dir("memory") is not None,
            pids_enforced=self._dir("pids") is not None)

    def stats(self) -> dict[str, Any]:
        """Memory current/limit (bytes), cpu user/system seconds, pids current/limit, OOM kills.

        A few file reads, no process walk. A field is None when no hierarchy accounts it
        (the engine then uses psutil). Limits are None when unlimited.
        """
        out: dict[str, Any] = dict.fromkeys(
            ("memory_current", "memory_limit", "cpu_user_seconds", "cpu_system_seconds",
             "pids_current", "pids_limit"))
        out.update(self._memory_stats())
        out.update(self._cpu_stats())
        out.update(self._pids_stats())
        out["oom_kills"] = self.oom_kills()
        return out

    def _memory_stats(self) -> dict[str, Any]:
        where = self._dir("memory")
        if where is None:
            return {}
        h, path = where
        with contextlib.suppress(OSError, ValueError):
            if h.version == 2:
                return {"memory_current": int(_read(os.path.join(path, "memory.current"))),
                        "memory_limit": v2.parse_limit(_read(os.path.join(path, "memory.max")))}
            v1_stats = {"memory_current": int(_read(os.path.join(path, "memory.usage_in_bytes"))),
                        "memory_limit": v1.parse_memory_limit(
                            _read(os.path.join(path, "memory.limit_in_bytes")))}
            if self.memory_charged_elsewhere:
                v1_stats["memory_charged_elsewhere"] = True
            return v1_stats
        return {}

    def _cpu_stats(self) -> dict[str, Any]:
        stat = _read_or(os.path.join(self.v2_path, "cpu.stat"))
        if stat is not None and "user_usec" in stat:
            keyed = v2.parse_keyed(stat)
            return {"cpu_user_seconds": keyed.get("user_usec", 0) / 1e6,
                    "cpu_system_seconds": keyed.get("system_usec", 0) / 1e6}
        where = self._dir("cpuacct")
        if where is None:
            return {}
        with contextlib.suppress(OSError, ValueError):
            return {"cpu_user_seconds": v1.ns_to_seconds(
                        _read(os.path.join(where[1], "cpuacct.usage_user"))),
                    "cpu_system_seconds": v1.ns_to_seconds(
                        _read(os.path.join(where[1], "cpuacct.usage_sys")))}
        return {}

    def _pids_stats(self) -> dict[str, Any]:
        where = self._dir("pids")
        if where is None:
            return {}
        with contextlib.suppress(OSError, ValueError):
            return {"pids_current": int(_read(os.path.join(where[1], "pids.current"))),
                    "pids_limit": v2.parse_limit(_read(os.path.join(where[1], "pids.max")))}
        return {}

    def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this cgroup (SPEC §8 failure reason)."""
        where = self._dir("memory")
        if where is None:
            return 0
        h, path = where
        if h.version == 2:
            return v2.parse_keyed(_read_or(os.path.join(path, "memory.events"), "") or "").get(
                "oom_kill", 0)
        return v1.parse_oom_control(_read_or(os.path.join(path, "memory.oom_control"), "") or "")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process, re-reading until no new pid shows up (forks race)."""
        seen: set[int] = set()
        for _ in range(100):
            fresh = set(self.procs()) - seen
            if not fresh:
                return
            for pid in fresh:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            seen |= fresh

    def kill(self) -> None:
        """SIGKILL everything, including processes forked meanwhile (``cgroup.kill``).

        Without ``cgroup.kill`` (kernels < 5.14): freeze, SIGKILL each pid, thaw.
        Returns at once; wait for :meth:`is_empty` to know it is done. A removed cgroup
        has nothing to kill.
        """
        if not os.path.isdir(self.v2_path):
            return
        kill_file = os.path.join(self.v2_path, "cgroup.kill")
        if os.path.exists(kill_file):
            _write(kill_file, "1")
            return
        frozen = False
        with contextlib.suppress(PlatformNotSupported):
            self.freeze()
            frozen = True
        self.signal(signal_module.SIGKILL)
        if frozen:
            self.thaw()

    def freeze(self) -> str:
        """Stop every process (v2 ``cgroup.freeze``, else v1 freezer); returns the mechanism."""
        return self._set_frozen(True)

    def thaw(self) -> str:
        return self._set_frozen(False)

    def is_frozen(self) -> bool:
        events = _read_or(os.path.join(self.v2_path, "cgroup.events"))
        if events is not None and os.path.exists(os.path.join(self.v2_path, "cgroup.freeze")):
            return v2.parse_keyed(events).get("frozen", 0) == 1
        where = self._dir("freezer")
        state = _read_or(os.path.join(where[1], "freezer.state"), "") if where else ""
        return (state or "").strip() == "FROZEN"

    def _set_frozen(self, frozen: bool) -> str:
        v2_file = os.path.join(self.v2_path, "cgroup.freeze")
        if os.path.exists(v2_file):
            _write(v2_file, "1" if frozen else "0")
            return "cgroup-v2 cgroup.freeze"
        where = self._dir("freezer")
        if where is None:
            raise PlatformNotSupported(
                "freezing needs cgroup v2 cgroup.freeze (Linux >= 5.2) or a v1 freezer "
                "hierarchy; neither is available", cgroup=self.v2_path)
        _write(os.path.join(where[1], "freezer.state"), "FROZEN" if frozen else "THAWED")
        return "cgroup-v1 freezer.state"

    def remove(self) -> None:
        """Remove the directory in every hierarchy; InvalidState while processes remain."""
        if not self.is_empty():
            raise InvalidState(f"cgroup {self.rel} still has processes; stop them first",
                               cgroup=self.v2_path, pids=self.procs())
        self._ready = False
        for path in self._dirs.values():
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
        self._dirs = {}


class SliceCgroup(_Cgroup):
    """The parent cgroup of a supervision group (SPEC §6.3); member services nest in it."""


class ServiceCgroup(_Cgroup):
    """The cgroup of one service: where its processes live, how they are bounded and killed."""

    def clone_target(self) -> str | None:
        """The v2 directory a child can be cloned straight into, or None.

        ``clone3(CLONE_INTO_CGROUP)`` places a child in one v2 cgroup at birth; that is the
        whole placement only while the service lives in v2 alone (no v1 controller joined
        for a limit). Otherwise the caller uses :meth:`spawn_context`.
        """
        self.ensure()
        if len(self._dirs) != 1:
            return None
        return self.v2_path

    @contextlib.contextmanager
    def spawn_context(self) -> Iterator[ServiceCgroup]:
        """Move the daemon into this cgroup for the duration of a synchronous spawn.

        Why: the child must be inside its cgroup before it runs any code of its own
        (SPEC §8), and a child inherits its parent's cgroups at fork. Moving the child
        after the fork leaves a window in which it can fork escapees or allocate
        unbounded memory; doing it in the child with ``preexec_fn`` is unsafe with threads
        and disables vfork/posix_spawn. So the daemon (single-threaded Trio; the Popen
        call is synchronous) writes its own pid into ``cgroup.procs`` of this cgroup in
        every hierarchy, spawns, and the ``finally`` puts it back into its own cgroups on
        every path, exceptions included.

        The whole process moves (``cgroup.procs``), so a Popen run from a worker thread
        (``trio.lowlevel.open_process``) is placed too; keep such a block to that one
        await, since other tasks running meanwhile are inside this cgroup as well.

        Guarantees: on exit the daemon is in its home cgroup of every hierarchy, or
        Internal is raised. Caveats: the spawn must happen in this block, synchronously;
        while inside, the daemon's own allocations and threads count against this
        cgroup's memory and pids limits (v1 does not move charges back), so a service at
        its limit can fail the fork with EAGAIN or, on memory, see the daemon's few
        allocations of the spawn charged to it.
        """
        self.ensure()
        pid = str(os.getpid())
        moved: list[str] = []
        try:
            for mount_point, path in self._dirs.items():
                moved.append(mount_point)
                _write(os.path.join(path, "cgroup.procs"), pid)
            yield self
        finally:
            failures = []
            for mount_point in reversed(moved):
                home = self._m._homes[mount_point]
                try:
                    _write(os.path.join(home, "cgroup.procs"), pid)
                except OSError as exc:
                    failures.append(f"{home}: {exc.strerror or exc}")
            if failures:
                raise Internal("the daemon could not move itself back into its own cgroup "
                               "after a spawn", failures=failures)
