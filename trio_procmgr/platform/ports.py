"""The interfaces the engine uses to touch the operating system.

Why ports: the engine decides *what* happens to a service (start it, wait for its end,
stop it, freeze it); *how* that is done is a property of the host. Like trio's run loop,
which picks one IO manager per platform behind one interface (``_core/_run.py``), the
daemon picks one :class:`Platform` at start-up (``--platform linux|portable|auto``) and
the engine only ever talks to the ports below. The ``linux`` adapter uses pidfds, cgroups
and a child subreaper; the ``portable`` adapter uses nothing beyond POSIX (process groups,
``waitpid``), which is what a macOS port would build on.

Handles: a *watch handle* is an opaque int (a pidfd on Linux). The engine closes it with
``os.close`` and never looks inside.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

from trio_procmgr.platform.posix import ExitStatus


class NativeSpawnUnsupported(Exception):
    """The adapter has no native spawn (clone3) right now: use ``subprocess.Popen``."""


@runtime_checkable
class Clock(Protocol):
    """Wall-clock time for records (``started_at``, ``ended_at``); monotonic waits stay
    Trio's own clock, so tests can swap this one without touching timeouts."""

    def now(self) -> float: ...


class OrphanReaper(Protocol):
    """Reaps children the engine does not wait for itself and wakes "some child changed"
    waiters on SIGCHLD. ``tracked`` holds the pids whose owner collects their status."""

    tracked: set[int]
    reaped: int

    def reap_untracked(self) -> None: ...

    async def wait_change(self) -> None: ...

    async def wait_child(self, popen: Any) -> int:
        """The returncode of the daemon's own child ``popen`` (a ``subprocess.Popen``)
        once it exits, for a child that has no watch handle. Cancellable."""
        ...

    async def run(self, *, task_status: Any = ...) -> None: ...


class ProcessControl(Protocol):
    """Spawning, exit detection and signalling of a service's processes."""

    def native_spawn(self, cgroup_dir: str | None, *, exe: str, argv: Sequence[str],
                     env: dict[str, str], cwd: str | None, stdio: tuple[int, int, int],
                     pass_fds: Sequence[int], uid: int | None, gid: int | None,
                     groups: Sequence[int] | None) -> tuple[int, int, int | None]:
        """``(pid, watch handle, start time)`` of a child born in ``cgroup_dir``: the
        start time as :meth:`start_time` would give it, or None when the spawn cannot
        tell it (then ask :meth:`start_time`). Raises :class:`NativeSpawnUnsupported`
        when the caller must fall back to Popen."""
        ...

    def can_spawn_natively(self) -> bool: ...

    def native_placement(self) -> str: ...

    def watch(self, pid: int) -> int | None:
        """A handle that becomes ready when ``pid`` exits; None if it cannot be had
        (process gone, or the adapter cannot watch a pid it did not spawn)."""
        ...

    async def wait_watched(self, handle: int) -> None: ...

    def reap_watched(self, handle: int) -> ExitStatus | None:
        """The exit status behind a ready handle if the daemon is its parent, else None."""
        ...

    def take_fd(self, handle: int, target: int) -> int:
        """A duplicate of fd ``target`` of the watched process; raises OSError."""
        ...

    def signal_pid(self, pid: int, sig: int) -> None: ...

    def signal_group(self, pgid: int, sig: int) -> None: ...

    def group_alive(self, pgid: int, *, ignore_zombies: bool = False) -> bool: ...

    def start_time(self, pid: int) -> int | None:
        """An identity stamp of ``pid`` that changes when the pid is reused."""
        ...

    def running_as(self, pid: int, stamp: int) -> bool:
        """``pid`` still is the process of that :meth:`start_time` and not a zombie."""
        ...

    def exists(self, pid: int) -> bool:
        """``pid`` names a process (a zombie counts)."""
        ...

    def parent_of(self, pid: int) -> int | None: ...

    def group_members(self, pgids: set[int]) -> set[int]:
        """Live (non-zombie) processes of the process groups ``pgids``."""
        ...

    def children(self) -> set[int]:
        """Direct children of the daemon (adopted orphans included where there are any)."""
        ...

    def escapees(self, main_pid: int, pgid: int) -> dict[int, int]:
        """Descendants of ``main_pid`` outside group ``pgid`` (pid -> start time): what a
        process-group kill would miss. Empty where the tree cannot be walked."""
        ...

    def become_subreaper(self) -> bool: ...

    def new_reaper(self) -> OrphanReaper: ...


class ServiceCgroup(Protocol):
    """One service's cgroup: placement, kill, freeze, limits and stats."""

    rel: str
    v2_path: str

    def clone_target(self) -> str | None: ...

    def spawn_context(self) -> AbstractContextManager[Any]: ...

    def procs(self) -> list[int]: ...

    def is_empty(self) -> bool: ...

    def apply(self, resources: Any) -> dict[str, dict[str, Any]]: ...

    def rlimits(self, resources: Any) -> list[tuple[int, int, int]]: ...

    def stats(self) -> dict[str, Any]: ...

    def oom_kills(self) -> int: ...

    def signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...

    def freeze(self) -> str: ...

    def thaw(self) -> str: ...

    def remove(self) -> None: ...


class CgroupTree(Protocol):
    """The daemon's own cgroup subtree: where service and group cgroups are made."""

    warnings: list[str]

    def service(self, name: str, parent: Any = None) -> ServiceCgroup: ...

    def group(self, name: str) -> Any: ...

    def mechanisms(self) -> dict[str, str]: ...

    def members(self, rel: str) -> list[int] | None: ...

    def kill_members(self, rel: str) -> None: ...

    def kill_strays(self, keep: set[str], timeout: float = 5.0) -> dict[str, list[int]]: ...

    def cleanup(self) -> None: ...


class CgroupPort(Protocol):
    """Opens the daemon's cgroup subtree, or says why there is none."""

    def open(self, instance: str) -> tuple[CgroupTree | None, str]: ...


@dataclass(frozen=True)
class Platform:
    """One adapter: its name, its ports, and what it uses, in words for ``describe``."""

    name: str
    process: ProcessControl
    cgroups: CgroupPort
    clock: Clock
    words: dict[str, str]

    def mechanisms(self, *, cgroups_in_use: bool) -> dict[str, str]:
        """Spawn placement, exit detection, kill, pause, limits actually in effect."""
        found = dict(self.words)
        if not cgroups_in_use:
            found.update(self.words_without_cgroups())
        return found

    def words_without_cgroups(self) -> dict[str, str]:
        return {"spawn_placement": "fork+exec in a new session (no cgroup)",
                "kill": "process group (SIGTERM, then SIGKILL)",
                "pause": "SIGSTOP/SIGCONT to the process group",
                "limits": "rlimits only (memory as RLIMIT_AS, pids as RLIMIT_NPROC)"}
