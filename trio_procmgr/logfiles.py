"""Per-process log files with size rotation (SPEC §9).

A :class:`RotatingLogFile` appends already-formatted lines through a 64 KiB buffer
(synchronous writes to the page cache are short; the buffer keeps the syscall count
low) and rotates by size: ``name.log`` → ``name.log.1`` → … → ``name.log.N``, so at
most ``backups`` old files exist (``backups: 0`` truncates instead). A failing disk
never raises into the daemon: the error is kept in :attr:`error`, the line dropped,
and the next rotation or reopen tries again.
"""

from __future__ import annotations

import logging
import os
import time
from typing import BinaryIO

log = logging.getLogger("trio_procmgr.logfiles")

BUFFER = 64 * 1024


def format_line(now: float, stream: str, line: str, _cache: list = [0, ""]) -> bytes:  # noqa: B006
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
    """Owns one open log file; every method is synchronous and never raises OSError."""

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.size = 0
        self.error: str | None = None
        self.dirty = False
        self._fh: BinaryIO | None = None

    def _open(self) -> bool:
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            self._fh = open(self.path, "ab", buffering=BUFFER)  # noqa: SIM115
            self.size = self._fh.tell()
            self.error = None
            return True
        except OSError as exc:
            self._fail(exc)
            return False

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            log.warning("log file %s: %s (output is still kept in memory)", self.path, exc)
        self.error = f"{self.path}: {exc.strerror or exc}"
        self._close_quietly()

    def write(self, data: bytes) -> None:
        if self._fh is None and (self.error is not None or not self._open()):
            return
        if self.max_bytes and self.size and self.size + len(data) > self.max_bytes:
            self.rotate()
            if self._fh is None:
                return
        try:
            self._fh.write(data)  # type: ignore[union-attr]
        except OSError as exc:
            self._fail(exc)
            return
        self.size += len(data)
        self.dirty = True

    def flush(self) -> None:
        self.dirty = False
        if self._fh is not None:
            try:
                self._fh.flush()
            except OSError as exc:
                self._fail(exc)

    def rotate(self) -> bool:
        """Rotate now (also retries after an error); False if nothing was rotated."""
        self._close_quietly()
        try:
            had = os.path.exists(self.path) and os.path.getsize(self.path) > 0
            if had:
                shift_backups(self.path, self.backups)
        except OSError as exc:
            self._fail(exc)
            return False
        self.error = None
        self._open()
        return had

    def _close_quietly(self) -> None:
        fh, self._fh = self._fh, None
        self.dirty = False
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass

    def close(self) -> None:
        self._close_quietly()
