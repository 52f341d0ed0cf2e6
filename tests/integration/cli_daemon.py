"""A real ``dd-procmgrd`` on a temp socket, driven through the real ``dd-procmgr`` binary.

Import the fixture into a test module with ``from cli_daemon import cli_daemon``. The
daemon runs as a subprocess with its own config dir, state dir and cgroup instance; the
fixture waits until ``dd-procmgr ping`` answers, and on teardown sends SIGTERM (the
daemon stops every child in reverse order) and waits, killing it only as a last resort.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

BIN = Path(sys.executable).parent
CLI = str(BIN / "dd-procmgr")
DAEMON = str(BIN / "dd-procmgrd")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


class CliDaemon:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config_dir = root / "conf"
        self.state_dir = root / "state"
        self.config_dir.mkdir()
        self.state_dir.mkdir()
        self.socket = str(root / "pm.sock")
        self.instance = f"test-cli-{uuid.uuid4().hex[:10]}"
        self.proc: subprocess.Popen | None = None
        self.log = root / "daemon.log"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DD_PM_")}
        env.update(NO_COLOR="1", **extra)
        return env

    def cli(self, *args: str, timeout: float = 30, env: dict[str, str] | None = None,
            socket: bool = True) -> Result:
        """Run ``dd-procmgr --socket S ARGS...`` to completion."""
        argv = [CLI] + (["--socket", self.socket] if socket else []) + list(args)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=env or self.env())
        return Result(done.returncode, done.stdout, done.stderr)

    def popen(self, *args: str) -> subprocess.Popen:
        """Start a long-running ``dd-procmgr`` (logs -f, events) reading its stdout."""
        return subprocess.Popen([CLI, "--socket", self.socket, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env())

    def write_config(self, name: str, text: str) -> Path:
        path = self.config_dir / f"{name}.yaml"
        path.write_text(text)
        return path

    def record(self, name: str) -> dict:
        result = self.cli("--json", "describe", name)
        assert result.code == 0, result
        return result.json

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 15) -> Any:
        """Poll ``check`` until it returns something truthy; fail naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; daemon log:\n{self.log_text()}")
            time.sleep(0.05)

    def wait_state(self, name: str, *states: str, timeout: float = 15) -> dict:
        return self.wait_for(f"{name} in {states}",
                             lambda: (lambda r: r if r["state"] in states else None)(
                                 self.record(name)), timeout)

    def log_text(self) -> str:
        try:
            return self.log.read_text()[-4000:]
        except OSError:
            return "<no log>"

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        self.log_file = open(self.log, "w")
        # --log-level warning: INFO records currently trip a logging KeyError in the
        # engine (a reserved LogRecord key); the CLI tests do not need INFO output.
        self.proc = subprocess.Popen(
            [DAEMON, "--config-dir", str(self.config_dir), "--socket", self.socket,
             "--state-dir", str(self.state_dir), "--instance", self.instance,
             "--log-level", "warning"],
            stdout=self.log_file, stderr=subprocess.STDOUT, env=self.env(),
            start_new_session=True)

        def answers() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"dd-procmgrd exited with {self.proc.returncode}:\n{self.log_text()}")
            return self.cli("ping", timeout=10).code == 0
        self.wait_for("the daemon to answer ping", answers, timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        finally:
            self.log_file.close()


@pytest.fixture
def cli_daemon():
    # A short path: Unix socket paths are limited to 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="pmcli-"))
    daemon = CliDaemon(root)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)
