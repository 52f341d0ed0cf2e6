"""The portable adapter: POSIX only — what a macOS port of the daemon would use.

No cgroups, no pidfd, no child subreaper, no clone3, no /proc:

* spawn: ``subprocess.Popen`` in a new session (its own process group);
* exits: the supervisor waits for its own child with ``Popen.wait`` in a thread
  (``waitpid``); a pid the daemon did not spawn cannot be watched (:meth:`watch` says
  None), so ``MAINPID=`` hand-overs and crash adoption are refused;
* kill and pause: the process group (``killpg``: SIGTERM/SIGKILL, SIGSTOP/SIGCONT);
  a child that left the group (``setsid``, double fork) escapes and cannot be tracked;
* orphans: reparent to init (no subreaper); the reaper only wakes waiters on SIGCHLD;
* limits: rlimits only (the spawner's prlimit path), no memory/cpu accounting.
"""

from __future__ import annotations

import errno
import os
import signal
from typing import Any, Sequence

import psutil
import trio

from trio_procmgr.platform.ports import NativeSpawnUnsupported, Platform
from trio_procmgr.platform.posix import ExitStatus, process_group_alive, signal_group, signal_pid
from trio_procmgr.platform.wallclock import WallClock

RECHECK_SECONDS = 1.0
#: How often a stop re-checks a group whose remaining members are not our children.
ORPHAN_RECHECK_SECONDS = 0.05


class SigchldWaker:
    """The portable reaper: no orphan is ever ours (no subreaper), and each child the
    engine spawns is waited for by its owner, so it only wakes "some child changed"
    waiters (stop sequences) on SIGCHLD."""

    def __init__(self) -> None:
        self.tracked: set[int] = set()
        self.reaped = 0
        self._lot = trio.lowlevel.ParkingLot()

    def reap_untracked(self) -> None:
        """Nothing to reap: children are collected by whoever spawned them."""

    async def wait_change(self) -> None:
        """Until a child changed, or 50 ms: without a subreaper, the other members of a
        service's group (its children) reparent to init when the main process dies, and
        their deaths send us no SIGCHLD, so waiting for "the rest is gone" must look again
        by itself."""
        with trio.move_on_after(ORPHAN_RECHECK_SECONDS):
            await self._lot.park()

    async def wait_child(self, popen: Any) -> int:
        """``waitpid(WNOHANG)`` after each SIGCHLD: no thread per child (Trio lends 40
        worker threads in all, and a thousand services each waiting in one would starve
        the rest). Nothing runs between the poll and the park, yet under load a wake-up
        was seen to go missing (cause not found yet), so the poll is also redone every
        second: a missed SIGCHLD costs at most that much."""
        while (rc := popen.poll()) is None:
            with trio.move_on_after(RECHECK_SECONDS):
                await self._lot.park()
        return int(rc)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGCHLD) as signals:
            task_status.started()
            async for _ in signals:
                self._lot.unpark_all()


class PortableProcessControl:
    """:class:`~trio_procmgr.platform.ports.ProcessControl` from POSIX calls only."""

    def native_spawn(self, cgroup_dir: str | None, *, exe: str, argv: Sequence[str],
                     env: dict[str, str], cwd: str | None, stdio: tuple[int, int, int],
                     pass_fds: Sequence[int], uid: int | None, gid: int | None,
                     groups: Sequence[int] | None) -> tuple[int, int, int | None]:
        raise NativeSpawnUnsupported("the portable adapter spawns with fork+exec")

    def can_spawn_natively(self) -> bool:
        return False

    def native_placement(self) -> str:
        return "fork+exec (portable)"

    def watch(self, pid: int) -> int | None:
        """None: without pidfd only the parent learns of an exit (through waitpid)."""
        return None

    async def wait_watched(self, handle: int) -> None:
        raise OSError(errno.ENOSYS, "the portable adapter has no watch handles")

    def reap_watched(self, handle: int) -> ExitStatus | None:
        return None

    def take_fd(self, handle: int, target: int) -> int:
        raise OSError(errno.ENOSYS, "taking an fd from another process needs pidfd_getfd")

    def signal_pid(self, pid: int, sig: int) -> None:
        signal_pid(pid, sig)

    def signal_group(self, pgid: int, sig: int) -> None:
        signal_group(pgid, sig)

    def group_alive(self, pgid: int, *, ignore_zombies: bool = False) -> bool:
        """A member of group ``pgid`` that is not a zombie. Always ignores zombies: a
        killed service's orphans reparent to init, which may take its time to reap them
        (or never does, in a container whose PID 1 is not an init)."""
        if not process_group_alive(pgid):
            return False
        return bool(self.group_members({pgid}))

    def start_time(self, pid: int) -> int | None:
        """Creation time in milliseconds (psutil works on every POSIX system)."""
        try:
            return int(psutil.Process(pid).create_time() * 1000)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def running_as(self, pid: int, stamp: int) -> bool:
        try:
            proc = psutil.Process(pid)
            return (int(proc.create_time() * 1000) == stamp
                    and proc.status() != psutil.STATUS_ZOMBIE)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def exists(self, pid: int) -> bool:
        return psutil.pid_exists(pid)

    def parent_of(self, pid: int) -> int | None:
        try:
            return psutil.Process(pid).ppid()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None

    def group_members(self, pgids: set[int]) -> set[int]:
        """One pass over the process table (no cgroup lists them): a getpgid per pid, and
        the zombie check only for members."""
        found = set()
        for pid in psutil.pids():
            try:
                if os.getpgid(pid) in pgids and _not_zombie(pid):
                    found.add(pid)
            except OSError:
                continue
        return found

    def children(self) -> set[int]:
        return {p.pid for p in psutil.Process().children()}

    def escapees(self, main_pid: int, pgid: int) -> dict[int, int]:
        """Empty: a process that left the group is not followed (see the module doc)."""
        return {}

    def become_subreaper(self) -> bool:
        return False

    def new_reaper(self) -> SigchldWaker:
        return SigchldWaker()


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class NoCgroups:
    """The portable adapter has no cgroups at all."""

    def open(self, instance: str) -> tuple[None, str]:
        return None, "the portable platform has no cgroups"


def portable_platform() -> Platform:
    words = {"spawn_placement": "fork+exec in a new session (no cgroup)",
             "exit_detection": "waitpid(WNOHANG) on each SIGCHLD (own children only)",
             "kill": "process group (SIGTERM, then SIGKILL)",
             "pause": "SIGSTOP/SIGCONT to the process group",
             "limits": "rlimits only (memory as RLIMIT_AS, pids as RLIMIT_NPROC)",
             "orphans": "reparented to init (no subreaper)"}
    return Platform("portable", PortableProcessControl(), NoCgroups(), WallClock(), words)
