"""A real dd-procmgrd for the continuity tests: crash it, restart it on the same state dir,
and leave nothing behind (its cgroup subtree and every journalled process group are
killed in the finalizer, whatever the test did to the daemon)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from support import pid_alive  # noqa: F401  (re-exported for the continuity tests)
from trio_procmgr.client import BlockingClient
from trio_procmgr.engine.spawn_journal import fold

DAEMON = [sys.executable, "-m", "trio_procmgr.daemon.main"]


def wait_for(pred, timeout=20.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class Daemon:
    """One daemon process; ``start()`` again after a crash reuses socket, state and instance."""

    def __init__(self, tmp: Path, *, extra: list[str] | None = None) -> None:
        self.tmp = tmp
        self.sock = str(tmp / "d.sock")
        self.config_dir = tmp / "cfg"
        self.config_dir.mkdir(exist_ok=True)
        self.state_dir = tmp / "state"
        self.instance = f"test-{uuid.uuid4().hex[:12]}"
        self.log = tmp / "daemon.log"
        self.extra = list(extra or [])
        self.proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        return DAEMON + ["--config-dir", str(self.config_dir), "--socket", self.sock,
                         "--state-dir", str(self.state_dir), "--instance", self.instance,
                         "--log-level", "debug", *self.extra]

    def start(self, timeout: float = 60.0) -> "Daemon":
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        wait_for(self.answers, timeout=timeout, what="daemon to answer")
        return self

    def answers(self) -> bool:
        try:
            with BlockingClient(self.sock, timeout=2) as c:
                c.call("ping")
            return True
        except Exception:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon died: {self.log.read_text()[-3000:]}")
            return False

    def call(self, method: str, **params: Any) -> Any:
        with BlockingClient(self.sock, timeout=60) as c:
            return c.call(method, **params)

    def records(self) -> dict[str, dict]:
        return {r["name"]: r for r in self.call("list")["processes"]}

    def crash(self) -> None:
        """SIGKILL the daemon and wait until it is gone (its services stay)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        try:
            with open(self.state_dir / "spawns.journal", "rb") as f:
                live = fold(f)
        except FileNotFoundError:
            live = {}
        for entry in live.values():
            try:
                os.killpg(entry.get("pgid") or entry["pid"], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        from trio_procmgr.platform.cgroups import CgroupManager

        cg = CgroupManager.detect(self.instance)
        if cg is not None:
            cg.kill_leftovers()  # kills every service cgroup of the instance, then removes them
        from trio_procmgr.engine.output_fifo import choose_dir

        shutil.rmtree(choose_dir(str(self.state_dir)), ignore_errors=True)  # a crash's FIFOs


@pytest.fixture
def daemon_factory(tmp_path):
    made: list[Daemon] = []

    def make(sub: str = "d", **kw: Any) -> Daemon:
        (tmp_path / sub).mkdir()
        d = Daemon(tmp_path / sub, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.cleanup()
