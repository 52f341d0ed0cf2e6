"""What the benchmarks read from /proc: a supervisor's children, its RSS and CPU time.

Scanning all of /proc costs ~75 us per process on a small VM, far too slow to time a
5 ms restart with thousands of processes on the machine. :class:`ChildTracker` reads only
the PIDs allocated since its last look (``/proc/sys/kernel/ns_last_pid``: the kernel hands
PIDs out in increasing order, wrapping at ``pid_max``), keeps the descendants of one root
and holds a pidfd per confirmed child, so "is it still alive" is one ``poll`` over fds.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import time
from collections.abc import Callable, Sequence

CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36


def read_stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, utime+stime ticks, starttime) of ``pid``, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return (fields[0].decode(), int(fields[1]), int(fields[11]) + int(fields[12]),
            int(fields[19]))


def read_argv(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in data.split(b"\0")[:-1]]


def rss_bytes(pid: int) -> int:
    """Resident set of one process (VmRSS), children excluded."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ProcessLookupError(pid)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far (its own, not its children's)."""
    stat = read_stat(pid)
    if stat is None:
        raise ProcessLookupError(pid)
    return stat[2] / CLK_TCK


def is_sleep_child(argv: Sequence[str]) -> bool:
    """The benchmark's child: ``sleep 3600`` after exec (any path to sleep)."""
    return len(argv) == 2 and os.path.basename(argv[0]) == "sleep" and argv[1] == "3600"


UNBORN_GRACE = 0.5


class ChildTracker:
    """The live ``sleep 3600`` descendants of one root process.

    Create it *before* starting the root (so no PID is missed), then :meth:`set_root`.
    :meth:`refresh` is cheap: it inspects only PIDs allocated since the last call, plus
    descendants that had not exec'd ``sleep`` yet. The tracker owns one pidfd per
    confirmed child; :meth:`close` releases them.
    """

    def __init__(self, match: Callable[[Sequence[str]], bool] = is_sleep_child) -> None:
        self.match = match
        self._last_fd = os.open("/proc/sys/kernel/ns_last_pid", os.O_RDONLY)
        with open("/proc/sys/kernel/pid_max") as f:
            self._pid_max = int(f.read())
        self._last = self._read_last()
        self.root: int | None = None
        self.descendants: set[int] = set()
        self._pending: set[int] = set()
        #: PIDs allocated but not yet visible in /proc (a fork in progress), with the
        #: monotonic time after which they are given up.
        self._unborn: dict[int, float] = {}
        self._pidfds: dict[int, int] = {}
        self._fd_pid: dict[int, int] = {}
        self._poller = select.poll()
        self.new_children: list[int] = []
        self.seen: list[int] = []

    def _read_last(self) -> int:
        return int(os.pread(self._last_fd, 32, 0))

    def set_root(self, pid: int) -> None:
        self.root = pid
        self.descendants.add(pid)

    def _new_pids(self) -> list[int]:
        last = self._read_last()
        prev, self._last = self._last, last
        if last >= prev:
            return list(range(prev + 1, last + 1))
        return list(range(prev + 1, self._pid_max)) + list(range(1, last + 1))

    def refresh(self) -> None:
        """Take in the PIDs created since the last call; drop the children that exited."""
        now = time.monotonic()
        for pid in self._new_pids():
            self._unborn[pid] = now + UNBORN_GRACE
        for pid, give_up in list(self._unborn.items()):
            # The kernel allocates the PID (ns_last_pid) before the task shows in /proc.
            stat = read_stat(pid)
            if stat is None:
                if now > give_up:
                    del self._unborn[pid]
                continue
            del self._unborn[pid]
            if stat[1] in self.descendants:
                self.descendants.add(pid)
                self._pending.add(pid)
        for pid in sorted(self._pending):
            argv = read_argv(pid)
            if not argv:  # gone, a zombie, or (briefly) in the middle of execve
                stat = read_stat(pid)
                if stat is None or stat[0] in "ZX":
                    self._pending.discard(pid)
                    self.descendants.discard(pid)
            elif self.match(argv):
                self._pending.discard(pid)
                self._confirm(pid)
        self._drop_exited()

    def _confirm(self, pid: int) -> None:
        if pid in self._pidfds:
            return
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        self._pidfds[pid] = fd
        self._fd_pid[fd] = pid
        self._poller.register(fd, select.POLLIN)
        self.new_children.append(pid)
        self.seen.append(pid)

    def _drop_exited(self) -> None:
        for fd, _ in self._poller.poll(0):
            pid = self._fd_pid.pop(fd)
            del self._pidfds[pid]
            self._poller.unregister(fd)
            os.close(fd)
            self.descendants.discard(pid)

    @property
    def alive(self) -> list[int]:
        """PIDs of the confirmed children that had not exited at the last refresh."""
        return list(self._pidfds)

    def count(self) -> int:
        self.refresh()
        return len(self._pidfds)

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float,
                 interval: float = 0.0005) -> float:
        """Refresh until ``check()`` holds; returns the monotonic time it first held."""
        deadline = time.monotonic() + timeout
        while True:
            self.refresh()
            now = time.monotonic()
            if check():
                return now
            if now > deadline:
                raise TimeoutError(f"timed out after {timeout:g}s waiting for {what} "
                                   f"({len(self._pidfds)} children alive)")
            if interval:
                time.sleep(interval)

    def wait_new_child(self, timeout: float) -> tuple[int, float]:
        """Wait for the next child to exec ``sleep``; its PID and when it was seen."""
        self.new_children.clear()
        seen = self.wait_for("a new child", lambda: bool(self.new_children), timeout, 0.0002)
        return self.new_children[0], seen

    def close(self) -> None:
        for fd in self._pidfds.values():
            os.close(fd)
        self._pidfds.clear()
        self._fd_pid.clear()
        os.close(self._last_fd)


def become_subreaper() -> None:
    """Orphans of anything this process starts are re-parented here (so cleanup finds
    them even when a supervisor died before its children)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def own_descendants() -> list[int]:
    """Every live process below this one (a full /proc scan: for cleanup only)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = read_stat(int(entry))
            if stat is not None:
                parent[int(entry)] = stat[1]
    mine = {os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                grew = True
    mine.discard(os.getpid())
    return sorted(mine)


def kill_descendants() -> int:
    """SIGKILL every process below this one and reap the direct children; how many."""
    victims = own_descendants()
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if not own_descendants():
                break
            time.sleep(0.01)
    return len(victims)
