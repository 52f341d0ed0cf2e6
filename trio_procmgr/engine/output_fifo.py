"""An output path that outlives the daemon: one FIFO per stream and run of a service.

Why not a pipe: a pipe's read end lives in the daemon, so when the daemon dies (SIGKILL,
OOM, re-exec gone wrong) the child's next write gets EPIPE/SIGPIPE and whatever it wrote
is gone. A named FIFO fixes both:

* the child's stdout/stderr is the FIFO opened **read-write** (``O_RDWR``): the child
  itself counts as a reader, so it never sees EPIPE, whether a daemon is there or not;
  once the buffer is full its writes block (the service waits) instead of failing;
* the daemon reads through its own ``O_RDONLY`` fd; it sees EOF when every writer (the
  service and its descendants) has gone, exactly as with a pipe;
* the buffer is enlarged with ``F_SETPIPE_SZ`` to :data:`PIPE_SIZE` (1 MiB, the default
  ``fs.pipe-max-size``), so that much waits for the next daemon, which reopens the same
  path and drains it (crash adoption) — the pipe lives as long as the child holds it;
* a re-exec'd daemon inherits its read fds (no reopen needed, nothing in flight lost).

Paths are ``<dir>/<id>.<run>.<stream>``; they are removed when the run ends. The journal
records each run's paths, so the next daemon finds them wherever they are. ``<dir>`` is
chosen by :func:`choose_dir`: in memory, because ``mkfifo`` on a journalled disk
filesystem costs 0.3-0.6 ms (ext4 here) against ~5 us on tmpfs, twice per spawn.

When the FIFOs cannot be made (state dir full, out of inodes or read-only, EMFILE) the
run falls back to plain pipes: capture works as always, only that run's output does not
survive a daemon crash (``describe`` says so in ``output_fifo_error``, see
:func:`fallback_note`). The next run tries FIFOs again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat

from trio_procmgr.platform import memfs

PIPE_SIZE = 1024 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
STREAMS = ("stdout", "stderr")


def choose_dir(state_dir: str, shared: str = "/dev/shm") -> str:
    """Where the FIFOs of the daemon using ``state_dir`` live.

    ``<state_dir>/output`` when the state dir is itself in memory (tmpfs, ramfs), or when
    there is no private place in ``shared``; else ``<shared>/dd-procmgr-<euid>/<digest>``,
    the digest naming the state dir (two daemons with different state dirs never share
    it, the same state dir always finds it again). A FIFO holds no data on the
    filesystem, only an inode: a small /dev/shm is enough. Like the daemon's services, the
    FIFOs outlive a daemon crash but not a reboot, which nothing running survives either.
    """
    own = os.path.join(state_dir, "output")
    if memfs.in_memory(state_dir) or not memfs.in_memory(shared):
        return own
    base = os.path.join(shared, f"dd-procmgr-{os.geteuid()}")
    if not memfs.private_dir(base):
        return own
    digest = hashlib.sha256(os.fsencode(os.path.realpath(state_dir))).hexdigest()[:16]
    return os.path.join(base, digest)


def fifo_paths(directory: str, key: str) -> tuple[str, str]:
    return tuple(os.path.join(directory, f"{key}.{s}") for s in STREAMS)  # type: ignore[return-value]


def open_reader(path: str) -> int:
    """The daemon's non-blocking read end of an existing FIFO (never blocks: O_NONBLOCK)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a FIFO")
    return fd


def create(directory: str, key: str) -> tuple[tuple[int, int], tuple[int, int], tuple[str, str]]:
    """Make the two FIFOs of one run: ((child_out, child_err), (read_out, read_err), paths).

    The child ends are O_RDWR and blocking (the service's writes wait when full); the
    caller hands them to the spawn and closes them after. Raises OSError (the spawn
    then fails through the ordinary path) and leaves nothing behind.
    """
    os.makedirs(directory, mode=0o700, exist_ok=True)
    paths = fifo_paths(directory, key)
    opened: list[int] = []
    try:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            os.mkfifo(path, 0o600)
        readers = [open_reader(p) for p in paths]
        opened += readers
        writers = [os.open(p, os.O_RDWR | os.O_CLOEXEC) for p in paths]
        opened += writers
        for fd in writers:
            _enlarge(fd)
    except OSError:
        for fd in opened:
            os.close(fd)
        remove(paths)
        raise
    return (writers[0], writers[1]), (readers[0], readers[1]), paths


def _enlarge(fd: int) -> None:
    """Best effort: a smaller buffer still works, it only holds less while no daemon runs."""
    for size in (PIPE_SIZE, 256 * 1024, 64 * 1024):
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, size)
            return
        except OSError:
            continue


def pipe_size(fd: int) -> int:
    return fcntl.fcntl(fd, F_GETPIPE_SZ)


def remove(paths: tuple[str, ...] | list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def fallback_note(exc: OSError) -> str:
    """What ``describe`` shows for a run whose output fell back to plain pipes."""
    return (f"output FIFOs could not be created ({exc.strerror or exc}): this run uses plain "
            f"pipes; its output is captured but does not survive a daemon crash")
