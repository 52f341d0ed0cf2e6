"""Linux process primitives: subreaper, orphan reaping, pidfd exit waits, users.

Exits are learnt through pidfds (a pidfd becomes readable when its process exits), and
orphans reparented to the daemon (it is a child subreaper) are reaped when SIGCHLD says
a child changed state. Nothing here polls on a timer.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from trio_procmgr.platform.posix import (  # noqa: F401  (re-exported for old importers)
    Credentials, ExitStatus, errno_reason, process_group_alive, resolve_credentials, signal_group,
    signal_pid)

if TYPE_CHECKING:
    from trio_procmgr.platform.cgroups import CgroupManager
    from trio_procmgr.platform.ports import Platform

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

_libc = ctypes.CDLL(None, use_errno=True)


def set_child_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (prctl)."""
    result: int = _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    return result == 0


def pidfd_open(pid: int) -> int | None:
    """A pidfd for ``pid``, or None when the process is already gone."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


async def wait_pidfd(pidfd: int) -> None:
    """Return once the process behind ``pidfd`` has exited (a checkpoint)."""
    await trio.lowlevel.wait_readable(pidfd)


def reap_pidfd(pidfd: int) -> ExitStatus | None:
    """Collect the exit of our (possibly adopted) child behind ``pidfd``; None if not ours."""
    try:
        info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        return None
    if info is None:
        return None
    return ExitStatus.from_siginfo(info)


def children_of_self() -> set[int]:
    """PIDs of our direct children, from /proc (includes adopted orphans)."""
    pids: set[int] = set()
    base = "/proc/self/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return pids
    for tid in tids:
        try:
            with open(f"{base}/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            continue
    return pids


class Reaper:
    """Reaps adopted orphans and wakes whoever waits for "some child changed".

    Processes the engine watches itself (``tracked``) are left alone: their pidfd
    waiter collects their status. Everything else that became our child and died is
    reaped here, so no zombie stays behind.
    """

    def __init__(self) -> None:
        self.tracked: set[int] = set()
        self._lot = trio.lowlevel.ParkingLot()
        self.generation = 0
        self.reaped = 0

    def reap_untracked(self) -> None:
        """Reap every dead child nobody watches. Peeks first (``WNOWAIT``): listing our
        children is O(N) — ~7 ms per SIGCHLD with 5000 services — while the peek is O(1)
        and says whether a zombie exists at all, and whose it is (issue 15)."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            if info.si_pid in self.tracked:
                break  # its pidfd waiter reaps it; others may hide behind it: list them
            try:
                os.waitid(os.P_PID, info.si_pid, os.WEXITED | os.WNOHANG)
            except ChildProcessError:
                pass
            self.reaped += 1
        for pid in children_of_self() - self.tracked:
            try:
                info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
            except ChildProcessError:
                continue
            if info is not None:
                self.reaped += 1

    def poke(self) -> None:
        self.generation += 1
        self._lot.unpark_all()

    async def wait_change(self) -> None:
        """Block until the next SIGCHLD-driven pass (or an explicit poke)."""
        await self._lot.park()

    async def wait_child(self, popen: Any) -> int:
        """A child without a pidfd (EMFILE at spawn, a rare fallback): ``wait`` in a thread."""
        return int(await trio.to_thread.run_sync(popen.wait))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGCHLD) as signals:
            task_status.started()
            self.reap_untracked()
            async for _ in signals:
                # Let the pidfd waiters woken with this signal reap their own children
                # first, so the peek in reap_untracked rarely has to list every child.
                await trio.lowlevel.checkpoint()
                self.reap_untracked()
                self.poke()


def _read_stat(pid: int) -> bytes | None:
    """/proc/PID/stat in one read(2): a third of the cost of ``open().read()`` (read on
    every spawn, for the journal and the PID record)."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def process_start_time(pid: int) -> int | None:
    """Kernel start time of ``pid`` (clock ticks since boot): tells a PID's reuse apart."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first)."""
    data = _read_stat(pid)
    if not data:
        return None
    return data[data.rindex(b")") + 2:].decode("ascii", "replace").split()


def is_zombie(pid: int) -> bool:
    """True for a zombie, and for a pid that is gone altogether."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return True
    return data[data.rindex(")") + 2] == "Z"


SYS_PIDFD_GETFD = 438  # the same number on every architecture (Linux >= 5.6)


def pidfd_getfd(pidfd: int, target: int) -> int:
    """A duplicate (O_CLOEXEC) of fd ``target`` of the process behind ``pidfd``
    (pidfd_getfd(2); needs ptrace rights over it, e.g. root). Raises OSError."""
    fd: int = _libc.syscall(SYS_PIDFD_GETFD, pidfd, target, 0)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def process_table(proc: str = "/proc") -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, process group, kernel start time) of every live process."""
    table = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc}/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        if fields[0] != "Z":
            table[int(entry)] = (int(fields[1]), int(fields[2]), int(fields[19]))
    return table


def descendants(table: dict[int, tuple[int, int, int]], root: int) -> set[int]:
    """Every process below ``root`` in ``table`` (:func:`process_table`), by parent links:
    finds what left the service's process group or session (``setsid``) but not its tree."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class LinuxProcessControl:
    """:class:`~trio_procmgr.platform.ports.ProcessControl` with pidfds, clone3, /proc
    and a child subreaper: exits are learnt without polling, orphans are reaped here."""

    def native_spawn(self, cgroup_dir: str | None, *, exe: str, argv: Sequence[str],
                     env: dict[str, str], cwd: str | None, stdio: tuple[int, int, int],
                     pass_fds: Sequence[int], uid: int | None, gid: int | None,
                     groups: Sequence[int] | None) -> tuple[int, int, int | None]:
        from trio_procmgr.platform import clone_spawn
        from trio_procmgr.platform.ports import NativeSpawnUnsupported

        if not clone_spawn.available():
            raise NativeSpawnUnsupported(clone_spawn.mechanism())
        try:
            return clone_spawn.spawn_into(cgroup_dir, exe=exe, argv=argv, env=env, cwd=cwd,
                                          stdio=stdio, pass_fds=pass_fds, uid=uid, gid=gid,
                                          groups=groups)
        except clone_spawn.NotSupported as exc:
            raise NativeSpawnUnsupported(str(exc)) from None

    def can_spawn_natively(self) -> bool:
        from trio_procmgr.platform import clone_spawn

        return clone_spawn.available()

    def native_placement(self) -> str:
        from trio_procmgr.platform import clone_spawn

        return clone_spawn.mechanism()

    def watch(self, pid: int) -> int | None:
        return pidfd_open(pid)

    async def wait_watched(self, handle: int) -> None:
        await wait_pidfd(handle)

    def reap_watched(self, handle: int) -> ExitStatus | None:
        return reap_pidfd(handle)

    def take_fd(self, handle: int, target: int) -> int:
        return pidfd_getfd(handle, target)

    def signal_pid(self, pid: int, sig: int) -> None:
        signal_pid(pid, sig)

    def signal_group(self, pgid: int, sig: int) -> None:
        signal_group(pgid, sig)

    def group_alive(self, pgid: int, *, ignore_zombies: bool = False) -> bool:
        """``ignore_zombies``: zombies of a crash-adopted service wait for init, not us."""
        if ignore_zombies:
            return any(group == pgid for _, group, _ in process_table().values())
        return process_group_alive(pgid)

    def start_time(self, pid: int) -> int | None:
        return process_start_time(pid)

    def running_as(self, pid: int, stamp: int) -> bool:
        """``pid`` is still the process stamped ``stamp`` and not a zombie."""
        return process_start_time(pid) == stamp and not is_zombie(pid)

    def exists(self, pid: int) -> bool:
        return os.path.exists(f"/proc/{pid}")

    def parent_of(self, pid: int) -> int | None:
        fields = _stat_fields(pid)
        return int(fields[1]) if fields else None

    def group_members(self, pgids: set[int]) -> set[int]:
        return {pid for pid, (_, pgid, _) in process_table().items() if pgid in pgids}

    def children(self) -> set[int]:
        return children_of_self()

    def escapees(self, main_pid: int, pgid: int) -> dict[int, int]:
        table = process_table()
        return {pid: table[pid][2] for pid in descendants(table, main_pid)
                if table[pid][1] != pgid}

    def become_subreaper(self) -> bool:
        return set_child_subreaper()

    def new_reaper(self) -> Reaper:
        return Reaper()


class LinuxCgroups:
    """Opens the cgroup v2 (+ v1 controllers) subtree of the daemon."""

    def open(self, instance: str) -> tuple[CgroupManager | None, str]:
        from trio_procmgr.platform.cgroups import CgroupManager

        try:
            tree = CgroupManager.detect(instance)
        except OSError as exc:
            return None, f"cgroup setup failed ({exc})"
        if tree is None:
            return None, "no usable cgroup v2 hierarchy"
        return tree, ""


def linux_platform() -> Platform:
    """The Linux adapter: pidfd, cgroups v2/v1 hybrid, subreaper, clone3."""
    from trio_procmgr.platform.ports import Platform
    from trio_procmgr.platform.wallclock import WallClock

    process = LinuxProcessControl()
    words = {"spawn_placement": f"born in the service cgroup: {process.native_placement()}",
             "exit_detection": "pidfd (poll on process exit)",
             "kill": "cgroup (cgroup.kill / every member), else process group",
             "pause": "cgroup freezer",
             "limits": "cgroup controllers (memory, cpu, pids), rlimits where none",
             "orphans": "child subreaper: orphans are adopted and reaped"}
    return Platform("linux", process, LinuxCgroups(), WallClock(), words)


def linux_works() -> tuple[bool, str]:
    """Whether the Linux adapter can run here: pidfd_open and a cgroup v2 hierarchy."""
    from trio_procmgr.platform.cgroups import CgroupManager

    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError) as exc:
        return False, f"no pidfd ({exc})"
    try:
        if CgroupManager.detect("probe") is None:
            return False, "no usable cgroup v2 hierarchy"
    except OSError as exc:
        return False, f"cgroups unreadable ({exc})"
    return True, ""
