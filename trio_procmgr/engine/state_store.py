"""What the daemon keeps on disk in its state dir.

* ``processes.json``: processes created at run time (not ``transient``), so they come
  back after a daemon restart.
* ``runtime.json``: the PID and kernel start time of every running main process, for
  humans and tools (written lazily; adoption trusts the spawn journal instead,
  ``spawns.journal``, see ``engine.spawn_journal``).
* ``ids.json``: name -> ID of every defined process (file-defined ones included), so an
  ID is stable for the life of its definition, across daemon restarts and reloads.
* ``was-running.json``: written at a clean shutdown; what was running is started again
  at the next boot even if it is not ``auto_start`` (like ``pm2 resurrect``).
* ``output/``: the FIFOs that carry services' output when the state dir is in memory or
  /dev/shm cannot be used (``engine.output_fifo.choose_dir``).

Every write is atomic: a temp file in the same directory, fsync, rename, fsync of the
directory. A crash or a full disk leaves either the old file or the new one, never a
torn one. A write that fails (full disk, read-only or vanished state dir) never raises:
the old file stays, the failure is counted (:attr:`StateStore.write_errors`, shown as
``state_write_errors`` in ``/metrics``), logged once per episode, and what could not be
written is kept and written again with the next write of any state file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any, Callable, Iterator, Mapping

from trio_procmgr.spec import ProcessSpec

log = logging.getLogger("trio_procmgr.state")


def atomic_write_json(path: str, data: Any) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        # json.dumps without indent runs the C encoder; json.dump (any indent) runs the
        # pure-Python one, which held the GIL ~50 ms for 5000 processes in the writer
        # thread and stalled the event loop (restart p50 6.7 -> 64 ms at N=5000).
        text = data if isinstance(data, bytes) else json.dumps(data, sort_keys=True).encode()
        with open(tmp, "wb") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:  # never written (read-only dir) or already gone
            pass
        raise
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("ignoring unreadable state file %s: %s", path, exc)
        return None


class StateStore:
    def __init__(self, state_dir: str,
                 start_time: Callable[[int], int | None] | None = None) -> None:
        """``start_time`` is the platform's pid identity stamp (tells a reused pid apart);
        by default the one of the adapter ``auto`` picks."""
        from trio_procmgr.platform.choice import choose_platform

        self.dir = state_dir
        self.start_time = start_time or choose_platform("auto").process.start_time
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        self.processes_path = os.path.join(state_dir, "processes.json")
        self.runtime_path = os.path.join(state_dir, "runtime.json")
        self.ids_path = os.path.join(state_dir, "ids.json")
        self.was_running_path = os.path.join(state_dir, "was-running.json")
        self._last_runtime: dict[str, Any] | None = None
        self._start_times: dict[int, int | None] = {}
        #: Failed writes since the daemon started (each try of a state file counts once).
        self.write_errors = 0
        #: The last failure while an episode lasts (None: every state file is written).
        self.error: str | None = None
        self._pending: dict[str, Any] = {}
        self._lock = threading.Lock()  # runtime.json is written from a worker thread

    def write(self, path: str, data: Any) -> bool:
        """Write ``path`` and retry whatever an earlier failure left unwritten; True when
        ``path`` is on disk. Never raises: the first failure of an episode is logged."""
        with self._lock:
            self._pending[path] = data
            self._write_pending()
            return path not in self._pending

    def _write_pending(self) -> bool:
        """Oldest failure first; stop at the first that fails again (the disk is still
        full: trying the others would only add errors)."""
        for pending_path, pending_data in list(self._pending.items()):
            try:
                atomic_write_json(pending_path, pending_data)
            except OSError as exc:
                self.write_errors += 1
                if self.error is None:
                    log.error("state dir %s: cannot write %s: %s (the daemon keeps running; "
                              "retried with the next state write, counted in "
                              "state_write_errors)", self.dir, os.path.basename(pending_path),
                              exc.strerror or exc)
                self.error = f"{os.path.basename(pending_path)}: {exc.strerror or exc}"
                return False
            del self._pending[pending_path]
        if self.error is not None:
            log.warning("state dir %s: writing again", self.dir)
            self.error = None
        return True

    def save_processes(self, entries: Mapping[str, Any]) -> bool:
        """Runtime-created definitions; False when they could not be written (yet)."""
        return self.write(self.processes_path, {"version": 1, "processes": dict(entries)})

    def load_processes(self, parse: Callable[..., ProcessSpec]) -> Iterator[tuple[ProcessSpec, dict[str, Any]]]:
        """Each saved process as (spec, saved entry: its ``id`` and ``created_at``)."""
        data = read_json(self.processes_path) or {}
        for name, entry in (data.get("processes") or {}).items():
            try:
                yield parse(name, entry["spec"]), entry
            except Exception as exc:  # a bad entry must not stop the others
                log.error("state: cannot restore process '%s': %s", name, exc)

    def save_runtime(self, pids: Mapping[str, int], now: bool = False) -> None:
        payload = self.runtime_payload(pids)
        if payload is not None:
            self.write(self.runtime_path, payload)

    def runtime_payload(self, pids: Mapping[str, int]) -> bytes | None:
        """runtime.json's new content, or None when unchanged. The daemon calls this on
        its event loop and hands only the bytes to a worker thread: Python work in that
        thread holds the GIL against the loop in 5 ms switch intervals (restart latency)."""
        times = {pid: self._start_times.get(pid) or self.start_time(pid)
                 for pid in pids.values()}
        self._start_times = times
        entries = {name: {"pid": pid, "start_time": times[pid]} for name, pid in pids.items()}
        if entries == self._last_runtime:
            return None
        self._last_runtime = entries
        return json.dumps({"version": 1, "daemon_pid": os.getpid(), "processes": entries},
                          sort_keys=True).encode()

    def load_ids(self) -> dict[str, str]:
        """Name -> ID of every defined process: IDs are stable for the life of a definition."""
        data = read_json(self.ids_path) or {}
        ids = data.get("ids") if isinstance(data, dict) else None
        return {k: v for k, v in (ids or {}).items() if isinstance(k, str) and isinstance(v, str)}

    def save_ids(self, ids: Mapping[str, str]) -> bool:
        return self.write(self.ids_path, {"version": 1, "ids": dict(ids)})

    def save_was_running(self, names: list[str]) -> None:
        """At a clean shutdown: what was running, to be running again at the next boot."""
        self.write(self.was_running_path, {"version": 1, "processes": sorted(names)})

    def take_was_running(self) -> list[str]:
        """What the last clean shutdown recorded as running; read once (then removed, so a
        process stopped later is not resurrected by an older record)."""
        data = read_json(self.was_running_path) or {}
        try:
            os.unlink(self.was_running_path)
        except FileNotFoundError:
            pass
        names = data.get("processes") if isinstance(data, dict) else None
        return [n for n in names or () if isinstance(n, str)]
