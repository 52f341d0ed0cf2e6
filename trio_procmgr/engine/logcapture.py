"""Log files, rotation and live following of managed processes' output (SPEC §9).

A :class:`~trio_procmgr.engine.features.Feature`: every captured line (already in the process's ring)
is appended to the process's log file — ``log.file`` or ``<log_dir>/<name>.log``
— and offered to live followers. File writes are buffered; a per-instance flusher task
flushes about :data:`FLUSH_DELAY` after the first unflushed line, and only then, so an
idle process costs no wake-ups. Followers are bounded queues: a slow follower loses lines
(and is told), the pumps never wait for it.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any

import trio

from trio_procmgr import errors
from trio_procmgr.engine.features import Feature, FeatureContext
from trio_procmgr.logfiles import RotatingLogFile, format_line
from trio_procmgr.logs import LogSubscription

if TYPE_CHECKING:
    from trio_procmgr.engine.containment import TaskNursery
    from trio_procmgr.engine.supervisor import Instance, Supervisor

FLUSH_DELAY = 0.2
STREAMS = ("stdout", "stderr")


class _ProcessLog:
    """One process's file writer and the wake-up of its flusher."""

    __slots__ = ("writer", "wake", "__weakref__")

    def __init__(self, writer: RotatingLogFile | None) -> None:
        self.writer = writer
        self.wake: trio.Event | None = None


def log_file_path(sup: "Supervisor", log_dir: str | None) -> str | None:
    spec = sup.spec.log
    if spec.mode != "capture":
        return None
    if spec.file:
        return spec.file
    if log_dir:
        return os.path.join(log_dir, f"{sup.name}.log")
    return None


class LogCapture(Feature):
    """Log files and live followers of every process (``follow_logs``, ``rotate_logs``)."""

    def __init__(self, context: FeatureContext) -> None:
        self.context = context
        self.followers: set[LogSubscription] = set()
        self._logs: weakref.WeakKeyDictionary[Any, _ProcessLog] = weakref.WeakKeyDictionary()

    # -------------------------------------------------------------- files
    def _log_of(self, sup: "Supervisor") -> _ProcessLog:
        plog = self._logs.get(sup)
        if plog is None:
            path = log_file_path(sup, self.context.log_dir)
            spec = sup.spec.log
            writer = RotatingLogFile(path, spec.max_bytes, spec.backups) if path else None
            plog = self._logs[sup] = _ProcessLog(writer)
            if path:
                sup.extras["log_file"] = path
                sup.extras.setdefault("log_write_errors", 0)
                sup.extras.setdefault("log_lines_dropped", 0)
        return plog

    @staticmethod
    def _note(sup: "Supervisor", writer: RotatingLogFile) -> None:
        """Show a failing disk in ``describe`` and /metrics (counts are per process and
        survive a change of log file); cleared again once the file is written."""
        sup.extras["log_write_errors"] = writer.write_errors
        sup.extras["log_lines_dropped"] = writer.lines_dropped
        if writer.error is None:
            sup.extras.pop("log_file_error", None)
        else:
            sup.extras["log_file_error"] = writer.error

    def on_log_line(self, sup: "Supervisor", stream: str, line: str, now: float) -> None:
        plog = self._log_of(sup)
        writer = plog.writer
        if writer is not None:
            was_dirty = writer.dirty
            writer.write(format_line(now, stream, line))
            if writer.error is not None or "log_file_error" in sup.extras:
                self._note(sup, writer)
            if not was_dirty and plog.wake is not None:
                plog.wake.set()
        if self.followers:
            item = None
            for sub in tuple(self.followers):
                if sub.wants(sup.name, stream):
                    if item is None:
                        item = {"time": now, "stream": stream, "line": line, "process": sup.name}
                    sub.offer(item)

    def on_instance(self, sup: "Supervisor", inst: "Instance", nursery: "TaskNursery") -> None:
        """A flusher task only for a process that writes a log file (a task costs memory)."""
        if log_file_path(sup, self.context.log_dir) is not None:
            nursery.start_soon(self._flusher, sup)

    async def _flusher(self, sup: "Supervisor") -> None:
        try:
            while True:
                plog = self._log_of(sup)
                if plog.writer is None or not plog.writer.dirty:
                    plog.wake = trio.Event()
                    await plog.wake.wait()
                    continue
                await trio.sleep(FLUSH_DELAY)
                self.flush(sup)
        finally:
            self.flush(sup)

    def flush(self, sup: "Supervisor") -> None:
        plog = self._logs.get(sup)
        if plog is not None and plog.writer is not None and plog.writer.dirty:
            plog.writer.flush()
            if plog.writer.error is not None or "log_file_error" in sup.extras:
                self._note(sup, plog.writer)

    def on_down(self, sup: "Supervisor", requested: bool) -> None:
        self.flush(sup)

    def on_spec_replaced(self, sup: "Supervisor") -> None:
        """Log settings are hot: a new path or limits take effect with the next line."""
        plog = self._logs.get(sup)
        if plog is None:
            return
        new_path = log_file_path(sup, self.context.log_dir)
        old = plog.writer
        spec = sup.spec.log
        if old is not None and old.path == new_path:
            old.max_bytes, old.backups = spec.max_bytes, spec.backups
            return
        if old is not None:
            old.close()
        plog.writer = RotatingLogFile(new_path, spec.max_bytes, spec.backups) if new_path else None
        if old is not None and plog.writer is not None:
            plog.writer.write_errors, plog.writer.lines_dropped = old.write_errors, old.lines_dropped
        sup.extras.pop("log_file_error", None)
        if new_path:
            sup.extras["log_file"] = new_path
        else:
            sup.extras.pop("log_file", None)
        if plog.wake is not None:
            plog.wake.set()

    def rotate(self, ref: str | None = None) -> list[str]:
        """Rotate the log files of one process (or all) now; returns the rotated paths."""
        registry = self.context.registry
        sups = [registry.supervisor(ref)] if ref is not None else registry.supervisors()
        rotated = []
        for sup in sups:
            writer = self._log_of(sup).writer
            if writer is not None and writer.rotate():
                rotated.append(writer.path)
            if writer is not None:
                self._note(sup, writer)
        return rotated

    # -------------------------------------------------------------- following
    def follow(self, ref: str | None = None, *, stream: str | None = None,
               maxsize: int = 10_000) -> LogSubscription:
        if stream not in (None, *STREAMS):
            raise errors.InvalidArgument(f"stream must be stdout or stderr, not {stream!r}",
                                         field="stream")
        name = self.context.registry.resolve(ref) if ref is not None else None
        return LogSubscription(self.followers, name, stream, maxsize)

    def on_event(self, event: dict[str, Any]) -> None:
        """Followers of a deleted process end; all end when the daemon stops."""
        kind = event["type"]
        if kind == "process_deleted" or kind == "daemon_stopped":
            for sub in tuple(self.followers):
                if kind == "daemon_stopped" or sub.process == event.get("process"):
                    sub.close()


FEATURE = LogCapture
