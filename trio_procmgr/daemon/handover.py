"""Re-exec in place: hand the daemon's state to the newly installed program image.

How (as systemd's ``daemon-reexec`` does with its serialize/deserialize and fd store):

1. **Preflight.** The new program is first run as a separate process with the same flags
   plus ``--check-reexec``: it imports every module the daemon needs and checks the flags
   and the config dir, then exits 0. If that fails (an upgrade with an import error, a flag
   the new version refuses), the call fails with its stderr and nothing else happens: the
   old image keeps running. Chosen over a trampoline because it needs no extra program and
   catches the failures that matter before anything is torn down.
2. **Snapshot.** Every process's counters and log ring, the read ends of the services'
   output FIFOs (by path) and the listening sockets (RPC, web/metrics, socket activation,
   by role) go into a JSON snapshot
   in a memfd. Only the fds listed there lose ``O_CLOEXEC``; every other fd of the daemon
   (client connections, epoll, pidfds) closes at exec, so the new image inherits exactly
   what the snapshot names. Log files are flushed first.
3. **exec.** ``execve(sys.executable, sys.orig_argv)``: same PID, same flags, same entry
   point (``dd-procmgrd`` or ``python -m trio_procmgr.daemon.main``), with
   ``DD_PROCMGR_HANDOVER=<memfd>`` in the environment. Services stay our children, so
   their exits keep their real status.
4. **New image.** :func:`take` reads and closes the memfd; the manager adopts the running
   services from the spawn journal (same path as crash adoption, ``engine.adoption``) with
   the inherited FIFO fds (no reopen: nothing in flight is lost), restores counters and
   rings, and the RPC server listens on the inherited sockets (the socket path never
   disappears; a client connecting meanwhile waits in the backlog). Then the event
   ``daemon_reexecuted``.

If ``execve`` itself fails, the fds get ``O_CLOEXEC`` back and the error is reported.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any, Mapping

from trio_procmgr import errors

if TYPE_CHECKING:
    from trio_procmgr.engine.manager import ProcessManager

log = logging.getLogger("trio_procmgr.handover")

ENV = "DD_PROCMGR_HANDOVER"
VERSION = 1
CHECK_FLAG = "--check-reexec"
PREFLIGHT_TIMEOUT = 60.0


# ---------------------------------------------------------------------------- snapshot (pure)
def snapshot(manager: "ProcessManager", listeners: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the next image needs that the spawn journal does not hold."""
    records: dict[str, Any] = {}
    readers: dict[str, int] = {}
    for sup in manager.supervisors():
        r = sup.record
        records[sup.name] = {
            "id": r.id, "runs": r.runs, "restarts": r.restarts, "created_at": r.created_at,
            "started_at": r.started_at, "ended_at": r.ended_at, "exit_code": r.exit_code,
            "exit_signal": r.exit_signal,
            "ring": [[t, s, line] for t, s, line in sup.ring.entries()]}
        if sup.instance is not None:
            for path, fd in (sup.instance.child.extra.get("readers") or {}).items():
                if _same_fifo(fd, path):
                    readers[path] = fd
    from trio_procmgr.engine.sockets import SocketActivation

    activation = manager.host.feature(SocketActivation).listening_fds()
    return {"version": VERSION, "at": time.time(), "pid": os.getpid(),
            "started_at": manager.started_at, "records": records, "readers": readers,
            "listeners": {**listeners, "activation": activation}}


def _same_fifo(fd: int, path: str) -> bool:
    """The fd is still the reader of that FIFO (a pump at EOF closed it; its number may
    have been reused since)."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def kept_fds(snap: Mapping[str, Any]) -> list[int]:
    """Every fd the snapshot names (FIFO readers; listeners: an fd, a list or a map)."""
    fds = list(snap["readers"].values())
    for value in snap["listeners"].values():
        if isinstance(value, dict):
            fds.extend(value.values())
        elif isinstance(value, list):
            fds.extend(value)
        elif isinstance(value, int):
            fds.append(value)
    return fds


def validate(snap: Any) -> dict[str, Any]:
    version = snap.get("version") if isinstance(snap, dict) else None
    if version != VERSION or not isinstance(snap, dict):
        raise ValueError(f"unsupported hand-over snapshot (version {version!r})")
    for key in ("records", "readers", "listeners"):
        if not isinstance(snap.get(key), dict):
            raise ValueError(f"hand-over snapshot: '{key}' missing")
    return snap


# ---------------------------------------------------------------------------- old image
def start_preflight(argv: list[str], env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Any]:
    """Start the installed program with ``--check-reexec`` (same flags); its output goes
    to a temp file. The caller must keep the daemon's orphan reaper off its PID (track it)
    and pass its exit to :func:`preflight_verdict`."""
    output = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen([sys.executable, *argv[1:], CHECK_FLAG], stdin=subprocess.DEVNULL,
                                stdout=output, stderr=subprocess.STDOUT, env=dict(env or os.environ))
    except OSError as exc:
        output.close()
        raise errors.Internal(f"re-exec refused: the new program could not be checked: {exc}") from None
    return proc, output


def preflight_verdict(returncode: int | None, output: Any) -> None:
    """Raise Internal naming the new program's failure (its last lines), or return."""
    output.seek(0)
    text = output.read().decode("utf-8", "replace")
    output.close()
    if returncode == 0:
        return
    tail = text.strip().splitlines()[-5:]
    what = "did not finish its check in time" if returncode is None else \
        f"failed its check (exit {returncode})"
    raise errors.Internal(f"re-exec refused, the daemon keeps running: the new program {what}: "
                          + " | ".join(tail), exit_code=returncode)


def write_memfd(snap: Mapping[str, Any]) -> int:
    fd = os.memfd_create("dd-procmgr-handover", 0)  # no MFD_CLOEXEC: the new image reads it
    try:
        data = json.dumps(snap, separators=(",", ":")).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def execute(manager: "ProcessManager", listeners: Mapping[str, Any]) -> None:
    """Replace this process's image; returns only if execve failed (then raises Internal)."""
    manager.host.flush_logs()
    snap = snapshot(manager, listeners)
    keep = kept_fds(snap)
    memfd = write_memfd(snap)
    for fd in keep:
        os.set_inheritable(fd, True)
    env = dict(os.environ, **{ENV: str(memfd)})
    log.info("re-executing %s (%d processes, %d output fds, snapshot fd %d)",
             " ".join(sys.orig_argv), len(snap["records"]), len(snap["readers"]), memfd)
    for handler in logging.getLogger().handlers:
        handler.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError as exc:
        for fd in keep:
            os.set_inheritable(fd, False)
        os.close(memfd)
        raise errors.Internal(f"re-exec failed: {exc}; the daemon keeps running") from None


# ---------------------------------------------------------------------------- new image
def take(environ: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The snapshot an old image left (and remove the variable), or None on a plain start.

    An unreadable snapshot is logged and ignored: the spawn journal still says what runs,
    so the services are adopted as after a crash (output FIFOs reopened by path)."""
    env = os.environ if environ is None else environ
    text = env.pop(ENV, None)
    if text is None:
        return None
    try:
        fd = int(text)
        chunks = []
        try:
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(fd)
        snap = validate(json.loads(b"".join(chunks)))
    except (OSError, ValueError) as exc:
        log.error("ignoring the re-exec snapshot (%s=%s): %s; adopting from the journal", ENV, text, exc)
        return None
    for fd in kept_fds(snap):
        os.set_inheritable(fd, False)  # children must not inherit them
    return snap
