"""The spawn journal: which main processes the daemon has running, written before it says so.

Why a journal and not a periodically rewritten file: a daemon killed between a spawn and
the next rewrite would leave a service the next daemon knows nothing about, and that
daemon would start it a second time. So every spawn appends one line — name, id, pid,
kernel start time, process group, counters, output FIFOs, config fingerprint — with one
``write(2)`` on an ``O_APPEND`` fd *before* the spawn is reported (no fsync: the line is
in the page cache the moment ``write`` returns, which is all a daemon crash needs; a
host crash takes the services with it). Once a run has ended and its restart policy
decided, a ``settle`` line (state and counters) ends its entry; a run that ended without
one (the daemon died first) is "died unseen" and its policy is applied by the next
daemon. ``exit`` lines end an entry without a decision (a service stopped because it is
no longer configured). The next daemon folds the lines (:func:`fold`)
into the set still running and adopts those; :func:`settled` tells it which processes
already ran and settled (a ``restart: never`` service that failed is not booted again
after a crash). The file is compacted to those entries; a clean shutdown empties it.

The fold is pure (tested without processes); :class:`SpawnJournal` is the thin file shell.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any, Iterable, Iterator

log = logging.getLogger("trio_procmgr.journal")

#: Rewrite the file to its live entries once it holds this many lines more than them.
COMPACT_SLACK = 2000


def spawn_line(**fields: Any) -> bytes:
    """One ``spawn`` line (``name``, ``pid``, ``start_time`` are required)."""
    return (json.dumps({"op": "spawn", **fields}, sort_keys=True) + "\n").encode()


def exit_line(name: str, pid: int) -> bytes:
    return (json.dumps({"op": "exit", "name": name, "pid": pid}, sort_keys=True) + "\n").encode()


def settle_line(name: str, **fields: Any) -> bytes:
    return (json.dumps({"op": "settle", "name": name, **fields}, sort_keys=True) + "\n").encode()


def _entries(lines: Iterable[bytes | str]) -> Iterator[dict[str, Any]]:
    """The well-formed entries (a map naming a process); torn or foreign lines skipped."""
    for raw in lines:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            yield entry


def settled(lines: Iterable[bytes | str]) -> dict[str, dict[str, Any]]:
    """Name -> the last ``settle`` entry (state and counters once a run ended and its
    restart policy decided: exited, failed, crashed, backoff, stopped) not followed by a
    new spawn. Tells the next daemon which auto_start processes already ran this session."""
    done: dict[str, dict[str, Any]] = {}
    for entry in _entries(lines):
        if entry.get("op") == "settle":
            done[entry["name"]] = entry
        elif entry.get("op") == "spawn":
            done.pop(entry["name"], None)
    return done


def fold(lines: Iterable[bytes | str]) -> dict[str, dict[str, Any]]:
    """Name -> the last spawn entry not followed by its exit. Torn or foreign lines
    (a crash in the middle of a write) are skipped: they never name a live process."""
    live: dict[str, dict[str, Any]] = {}
    for entry in _entries(lines):
        if entry.get("op") == "spawn" and isinstance(entry.get("pid"), int):
            live[entry["name"]] = entry
        elif entry.get("op") == "settle":
            live.pop(entry["name"], None)  # settled after its run: nothing of it runs
        elif entry.get("op") == "exit":
            current = live.get(entry["name"])
            if current is not None and current.get("pid") == entry.get("pid"):
                del live[entry["name"]]
    return live


class SpawnJournal:
    """``<state_dir>/spawns.journal``: appended synchronously, compacted when it grows."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, "spawns.journal")
        self._fd: int | None = None
        self._lines = 0
        self.live: dict[str, dict[str, Any]] = {}
        self.settled: dict[str, dict[str, Any]] = {}
        self.write_errors = 0
        #: The last failure while an episode lasts: the file misses lines (see _append).
        self.error: str | None = None

    def load(self) -> dict[str, dict[str, Any]]:
        """What the previous daemon (or image) left running, per the journal (and, in
        :attr:`settled`, what it had settled since its clean boot)."""
        try:
            with open(self.path, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        self.live, self.settled = fold(lines), settled(lines)
        return dict(self.live)

    def record_spawn(self, entry: dict[str, Any]) -> None:
        self.live[entry["name"]] = {"op": "spawn", **entry}
        self.settled.pop(entry["name"], None)
        self._append(spawn_line(**entry))

    def record_settle(self, name: str, **fields: Any) -> None:
        """After a run ended and its policy decided; ends the name's live entry too. (One
        line for both: a daemon killed between an exit line and a settle line would
        leave a run that ended but whose restart was never decided.)"""
        self.live.pop(name, None)
        self.settled[name] = {"op": "settle", "name": name, **fields}
        self._append(settle_line(name, **fields))

    def reset(self) -> None:
        """A clean shutdown: the next boot is a fresh one (nothing runs, nothing settled)."""
        self.live, self.settled = {}, {}
        self.compact()

    def record_exit(self, name: str, pid: int) -> None:
        current = self.live.get(name)
        if current is not None and current.get("pid") == pid:
            del self.live[name]
        self._append(exit_line(name, pid))

    def compact(self) -> None:
        """Rewrite the file to the live entries (atomically: temp file, rename)."""
        tmp = f"{self.path}.tmp"
        data = b"".join(settle_line(**{k: v for k, v in e.items() if k != "op"})
                        for e in self.settled.values())
        data += b"".join(spawn_line(**{k: v for k, v in e.items() if k != "op"})
                         for e in self.live.values())
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            self._failed("compact", exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        self.close()
        self._lines = len(self.live) + len(self.settled)
        if self.error is not None:
            log.warning("spawn journal %s: written again (complete)", self.path)
            self.error = None

    def _failed(self, what: str, exc: OSError) -> None:
        """Count every failure, log the first of an episode (a full disk would otherwise
        log once per spawn)."""
        self.write_errors += 1
        if self.error is None:
            log.error("spawn journal: cannot %s %s: %s (the daemon keeps running; the journal "
                      "is rewritten whole with the next spawn or exit, counted in "
                      "state_write_errors)", what, self.path, exc.strerror or exc)
        self.error = f"{what}: {exc.strerror or exc}"

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, line: bytes) -> None:
        """One line; after a failed write the file misses lines, so the next change
        rewrites it whole from :attr:`live`/:attr:`settled` (which include ``line``)."""
        if self.error is not None:
            self.compact()
            return
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT
                                   | os.O_CLOEXEC, 0o600)
            os.write(self._fd, line)
        except OSError as exc:  # a full disk must not stop a spawn
            self._failed("append to", exc)
            return
        self._lines += 1
        if self._lines > len(self.live) + len(self.settled) + COMPACT_SLACK:
            self.compact()
