"""Spawning straight into a cgroup with ``clone3(CLONE_INTO_CGROUP | CLONE_PIDFD)``.

The port over the optional C extension ``_clone3spawn`` (built by ``pip install`` when a
C compiler is present). Why it exists: placing a child by moving the daemon into the
service's cgroup around ``Popen`` costs two cgroup migrations per spawn, and the first
migration after a quiet spell waits for an RCU grace period (5-14 ms measured here);
cloning into the cgroup takes no migration at all. Without the extension, or on a kernel
that refuses clone3 (ENOSYS, EPERM under some seccomp filters), :func:`available` turns
False and the spawner keeps the pure-Python path (same placement guarantee).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from typing import Sequence

try:
    from trio_procmgr.platform import _clone3spawn
except ImportError:  # no compiler at install time: the pure-Python spawn is used
    # mypy types the name as the module (_clone3spawn.pyi); None marks it absent.
    _clone3spawn = None  # type: ignore[assignment]

_disabled_reason: str | None = None
if _clone3spawn is None:
    _disabled_reason = "the _clone3spawn extension is not built (no C compiler at install time)"
elif not hasattr(_clone3spawn, "spawn"):  # built, but no clone3 trampoline for this CPU
    _disabled_reason = f"the _clone3spawn extension has no clone3 trampoline for {os.uname().machine}"


def available() -> bool:
    return _disabled_reason is None and os.environ.get("DD_PM_NO_CLONE3") != "1"


def mechanism() -> str:
    """How children are placed, in words for ``describe``."""
    if available():
        return "clone3(CLONE_INTO_CGROUP)"
    return f"migration around fork ({_disabled_reason or 'DD_PM_NO_CLONE3=1'})"


#: Nanoseconds per clock tick (``USER_HZ``), the unit of /proc/PID/stat's start time.
NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def birth_stamp(before_ns: int, after_ns: int) -> int | None:
    """The child's kernel start time (/proc/PID/stat field 22, clock ticks since boot)
    when the spawn began at ``before_ns`` and ended at ``after_ns`` (CLOCK_BOOTTIME): the
    kernel stamps the child with that clock, truncated to ticks, between the two. Known
    when both fall in one tick (nearly always: a tick is 10 ms, a spawn ~0.3 ms); None
    when they straddle a tick boundary (the caller reads /proc instead)."""
    first, last = before_ns // NS_PER_TICK, after_ns // NS_PER_TICK
    return first if first == last else None


class _LowSlots:
    """Three fds reserved low in the daemon's fd table, through which a spawn hands the
    child its stdio.

    Why: a child cloned without CLONE_FILES gets a copy of the whole fd table (a
    reference on every open file), and its exec then closes them all again. The daemon
    holds a pidfd and two FIFO ends per service, so that copy grew with the number of
    services: measured here, a clone3 spawn took 0.47 ms with few fds open and 1.3 ms
    with 4000 services' fds. Instead the child shares the table and its first act is
    ``close_range(top, ~0, CLOSE_RANGE_UNSHARE)``, which copies only the fds below
    ``top``: these slots and the few the daemon opened first. The slots are filled
    (``dup3``, close-on-exec) under a lock just before the spawn and pointed back at
    /dev/null right after, so they never keep a service's pipe open.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self.fds = (os.dup(self.devnull), os.dup(self.devnull), os.dup(self.devnull))
        self.top = max(self.devnull, *self.fds) + 1


_slots: _LowSlots | None = None


def _low_slots() -> _LowSlots:
    """Made at the first spawn (early in a daemon's life, while its fd numbers are low)."""
    global _slots
    if _slots is None:
        _slots = _LowSlots()
    return _slots


def spawn_into(cgroup_dir: str | None, *, exe: str, argv: Sequence[str],
               env: dict[str, str], cwd: str | None, stdio: tuple[int, int, int],
               pass_fds: Sequence[int], uid: int | None, gid: int | None,
               groups: Sequence[int] | None) -> tuple[int, int, int | None]:
    """Fork+exec into ``cgroup_dir`` (None: the daemon's own); ``(pid, pidfd, start
    time)``, the start time as /proc/PID/stat gives it, or None when :func:`birth_stamp`
    cannot tell. Why not read /proc: right after the spawn the child is still loading
    its libraries, and reading its stat then waits on it (0.2-0.7 ms measured here, on
    the restart's critical path, while slowing the child down).

    The child gets its own session, ``stdio`` (-1 keeps the daemon's fd), ``pass_fds``
    and nothing else of the daemon's. Raises OSError like ``Popen`` would (``filename``
    is the working directory or the executable). Raises :class:`NotSupported` when the
    kernel refuses clone3 itself; the caller then falls back for good.
    """
    global _disabled_reason
    assert _clone3spawn is not None
    fd = -1
    if cgroup_dir is not None:
        fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        exe_b, cwd_b = os.fsencode(exe), None if cwd is None else os.fsencode(cwd)
        argv_b = [os.fsencode(a) for a in argv]
        env_b = [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()]
        groups_l = None if groups is None else list(groups)
        uid_i, gid_i = -1 if uid is None else uid, -1 if gid is None else gid
        if pass_fds:  # they keep their numbers in the child: the whole table is copied
            before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
            pid, pidfd = _clone3spawn.spawn(exe_b, argv_b, env_b, cwd_b, stdio, list(pass_fds),
                                            uid_i, gid_i, groups_l, True, fd)
        else:
            slots = _low_slots()
            with slots.lock:
                used = [i for i in range(3) if stdio[i] >= 0]
                try:
                    for i in used:
                        os.dup2(stdio[i], slots.fds[i], inheritable=False)
                    low = (slots.fds[0] if stdio[0] >= 0 else -1,
                           slots.fds[1] if stdio[1] >= 0 else -1,
                           slots.fds[2] if stdio[2] >= 0 else -1)
                    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
                    pid, pidfd = _clone3spawn.spawn(exe_b, argv_b, env_b, cwd_b, low, [],
                                                    uid_i, gid_i, groups_l, True, fd, slots.top)
                finally:
                    for i in used:
                        os.dup2(slots.devnull, slots.fds[i], inheritable=False)
        return pid, pidfd, birth_stamp(before, time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    except OSError as exc:
        if exc.filename is None and exc.errno in (errno.ENOSYS, errno.EPERM, errno.E2BIG):
            _disabled_reason = f"clone3 refused by the kernel ({os.strerror(exc.errno)})"
            raise NotSupported(_disabled_reason) from None
        if exc.filename is None and exc.errno in (errno.EBUSY, errno.EOPNOTSUPP):
            # This cgroup cannot take processes directly (controllers in its subtree).
            raise NotSupported(f"clone into {cgroup_dir}: {os.strerror(exc.errno)}") from None
        if isinstance(exc.filename, bytes):
            exc.filename = os.fsdecode(exc.filename)
        raise
    finally:
        if fd >= 0:
            os.close(fd)


class NotSupported(Exception):
    """clone3 cannot be used on this host; spawn the portable way."""
