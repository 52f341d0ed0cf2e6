"""Per-process log files with size rotation (SPEC §9).

A :class:`RotatingLogFile` appends already-formatted lines through a 64 KiB buffer
(synchronous writes to the page cache are short; the buffer keeps the syscall count
low) and rotates by size: ``name.log`` → ``name.log.1`` → … → ``name.log.N``, so at
most ``backups`` old files exist (``backups: 0`` truncates instead). A failing disk
(full, over quota, I/O error) never raises into the daemon: the error is kept in
:attr:`error`, lines that cannot wait are dropped and counted, and writing resumes by
itself when the disk accepts it again (see :class:`RotatingLogFile`).
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("trio_procmgr.logfiles")

BUFFER = 64 * 1024
#: Seconds between two tries of a file whose last write failed (a full disk).
RETRY_INTERVAL = 1.0


def format_line(now: float, stream: str, line: str, _cache: list[int | str] = [0, ""]) -> bytes:  # noqa: B006
    """``2024-05-01T12:00:00.123Z stdout text\\n`` (UTC, milliseconds)."""
    sec = int(now)
    if _cache[0] != sec:
        _cache[0] = sec
        _cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    ms = int((now - sec) * 1000)
    return f"{_cache[1]}.{ms:03d}Z {stream} {line}\n".encode("utf-8", "replace")


def backup_path(path: str, n: int) -> str:
    return f"{path}.{n}"


def shift_backups(path: str, backups: int) -> None:
    """Make room for a new ``path``: ``.N-1``→``.N`` … ``path``→``.1``; drop older ones."""
    n = backups + 1
    while os.path.exists(backup_path(path, n)):  # left over from a larger `backups`
        os.unlink(backup_path(path, n))
        n += 1
    if backups <= 0:
        if os.path.exists(path):
            os.unlink(path)
        return
    for i in range(backups - 1, 0, -1):
        if os.path.exists(backup_path(path, i)):
            os.replace(backup_path(path, i), backup_path(path, i + 1))
    if os.path.exists(path):
        os.replace(path, backup_path(path, 1))


class RotatingLogFile:
    """Owns one open log file; every method is synchronous and never raises OSError.

    Lines are kept in our own buffer (not a ``BufferedWriter``) so that a failed write
    loses nothing already accepted: on ENOSPC/EDQUOT/EIO the unwritten rest stays in the
    buffer, the file is an "episode" in error (one warning, :attr:`write_errors` counts
    the failed syscalls), new lines are kept while the buffer has room and counted in
    :attr:`lines_dropped` once it is full, and every :data:`RETRY_INTERVAL` a write or
    flush tries the disk again — writing resumes by itself when space returns.
    """

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.size = 0
        self.error: str | None = None
        self.write_errors = 0
        self.lines_dropped = 0
        self._fd: int | None = None
        self._buf = bytearray()
        self._retry_at = 0.0

    @property
    def dirty(self) -> bool:
        """Lines wait in the buffer (the flusher keeps coming back while they do)."""
        return bool(self._buf)

    def _open(self) -> bool:
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                               0o644)
            self.size = os.fstat(self._fd).st_size
            return True
        except OSError as exc:
            self._fail(exc)
            return False

    def _fail(self, exc: OSError) -> None:
        self.write_errors += 1
        if self.error is None:
            log.warning("log file %s: %s (output is still kept in memory; lines that do not "
                        "fit in the %d KiB buffer are dropped and counted until it can be "
                        "written again)", self.path, exc, BUFFER // 1024)
        self.error = f"{self.path}: {exc.strerror or exc}"
        self._retry_at = time.monotonic() + RETRY_INTERVAL
        self._close_quietly()

    def _recovered(self) -> None:
        if self.error is not None:
            log.warning("log file %s: writing again (%d lines dropped so far)",
                        self.path, self.lines_dropped)
            self.error = None

    def _may_try(self) -> bool:
        return self.error is None or time.monotonic() >= self._retry_at

    def write(self, data: bytes) -> None:
        """Accept one formatted line (or drop and count it when the buffer is full)."""
        buf = self._buf
        end = len(buf) + len(data)
        if self._fd is not None and end <= BUFFER and (
                not self.max_bytes or self.size + end <= self.max_bytes):
            buf += data  # the common case: one append, no syscall
            return
        self._write_slow(data)

    def _write_slow(self, data: bytes) -> None:
        """Open, flush a full buffer, rotate, or drop: everything but a plain append."""
        if self._fd is None and self._may_try():
            self._open()  # an unopenable file shows at the first line, not the first flush
        if len(self._buf) + len(data) > BUFFER:
            self.flush()
            if len(self._buf) + len(data) > BUFFER:
                self.lines_dropped += 1
                return
        pending = self.size + len(self._buf)
        if (self.max_bytes and pending and self._may_try()
                and pending + len(data) > self.max_bytes):
            self.flush()
            if not self._buf:
                self.rotate()
        self._buf += data

    def flush(self) -> None:
        """Write the buffer out; on failure keep what was not written for the next try."""
        if not self._buf or not self._may_try():
            return
        if self._fd is None and not self._open():
            return
        try:
            while self._buf:
                n = os.write(self._fd, self._buf)  # type: ignore[arg-type]
                del self._buf[:n]
                self.size += n
        except OSError as exc:
            self._fail(exc)
            return
        self._recovered()

    def rotate(self) -> bool:
        """Rotate now (also retries after an error); False if nothing was rotated."""
        self._retry_at = 0.0
        self.flush()
        self._close_quietly()
        try:
            had = os.path.exists(self.path) and os.path.getsize(self.path) > 0
            if had:
                shift_backups(self.path, self.backups)
        except OSError as exc:
            self._fail(exc)
            return False
        if self._open():
            self._recovered()
        return had

    def _close_quietly(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self) -> None:
        self._retry_at = 0.0
        self.flush()
        self._close_quietly()
