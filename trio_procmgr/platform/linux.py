"""Linux process primitives: subreaper, orphan reaping, pidfd exit waits, users.

Exits are learnt through pidfds (a pidfd becomes readable when its process exits), and
orphans reparented to the daemon (it is a child subreaper) are reaped when SIGCHLD says
a child changed state. Nothing here polls on a timer.
"""

from __future__ import annotations

import ctypes
import errno
import grp
import os
import pwd
import signal
from dataclasses import dataclass

import trio

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

_libc = ctypes.CDLL(None, use_errno=True)


def set_child_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (prctl)."""
    return _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


@dataclass(frozen=True, slots=True)
class ExitStatus:
    code: int | None
    signal: int | None

    @classmethod
    def from_returncode(cls, rc: int) -> "ExitStatus":
        return cls(None, -rc) if rc < 0 else cls(rc, None)

    @classmethod
    def from_siginfo(cls, info: os.waitid_result) -> "ExitStatus":
        if info.si_code == os.CLD_EXITED:
            return cls(info.si_status, None)
        return cls(None, info.si_status)


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

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGCHLD) as signals:
            task_status.started()
            self.reap_untracked()
            async for _ in signals:
                # Let the pidfd waiters woken with this signal reap their own children
                # first, so the peek in reap_untracked rarely has to list every child.
                await trio.lowlevel.checkpoint()
                self.reap_untracked()
                self.poke()


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def process_start_time(pid: int) -> int | None:
    """Kernel start time of ``pid`` (clock ticks since boot): tells a PID's reuse apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[19])


SYS_PIDFD_GETFD = 438  # the same number on every architecture (Linux >= 5.6)


def pidfd_getfd(pidfd: int, target: int) -> int:
    """A duplicate (O_CLOEXEC) of fd ``target`` of the process behind ``pidfd``
    (pidfd_getfd(2); needs ptrace rights over it, e.g. root). Raises OSError."""
    fd = _libc.syscall(SYS_PIDFD_GETFD, pidfd, target, 0)
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


@dataclass(frozen=True, slots=True)
class Credentials:
    uid: int
    gid: int
    groups: tuple[int, ...]
    user: str
    home: str
    shell: str


def resolve_credentials(user: str | None, group: str | None) -> Credentials | None:
    """Look up the identity a child runs as; None means "the daemon's own".

    Raises LookupError naming the unknown user or group.
    """
    if user is None and group is None:
        return None
    if user is not None:
        try:
            pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise LookupError(f"unknown user '{user}'") from None
        uid, gid, name, home, shell = pw.pw_uid, pw.pw_gid, pw.pw_name, pw.pw_dir, pw.pw_shell
    else:
        uid = os.getuid()
        pw = pwd.getpwuid(uid)
        gid, name, home, shell = os.getgid(), pw.pw_name, pw.pw_dir, pw.pw_shell
    if group is not None:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise LookupError(f"unknown group '{group}'") from None
    groups = tuple(os.getgrouplist(name, gid)) if user is not None else ()
    return Credentials(uid, gid, groups, name, home, shell)


def errno_reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or str(exc)
    return f"{text} ({name})" if name else text
