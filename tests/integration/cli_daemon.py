"""A real ``dd-procmgrd`` on a temp socket, driven through the real ``dd-procmgr`` binary.

Import the fixtures into a test module with ``from cli_daemon import ...``:

* ``cli_daemon`` (import ``shared_cli_daemon`` too): one daemon per test module (starting one costs about a second), handed
  to each test *empty*: before and after every test, every process is deleted (stopped
  first) and the config dir emptied, so no test sees another's processes or files.
* ``own_cli_daemon``: a daemon for this test alone, for tests that end it (shutdown).

The daemon runs as a subprocess with its own config dir, state dir and cgroup instance;
the fixture waits until ``dd-procmgr ping`` answers, and at the end sends SIGTERM (the
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

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
        self.proc = subprocess.Popen(
            [DAEMON, "--config-dir", str(self.config_dir), "--socket", self.socket,
             "--state-dir", str(self.state_dir), "--instance", self.instance],
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


    def reset(self) -> None:
        """Back to an empty daemon: config files removed, every process deleted.

        Talks RPC in-process (one connection) rather than spawning the CLI per process.
        """
        for path in self.config_dir.iterdir():
            if path.is_dir():  # drop-in directories (NAME.yaml.d)
                shutil.rmtree(path)
            else:
                path.unlink()
        from trio_procmgr.client import BlockingClient
        with BlockingClient(self.socket, timeout=60) as client:
            for record in client.call("list")["processes"]:
                client.call("delete", name=record["name"], force=True)
            assert client.call("list")["processes"] == [], "reset left processes behind"


@contextmanager
def running_daemon() -> Iterator[CliDaemon]:
    # A short path: Unix socket paths are limited to 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="pmcli-"))
    daemon = CliDaemon(root)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_cli_daemon():
    with running_daemon() as daemon:
        yield daemon


@pytest.fixture
def cli_daemon(shared_cli_daemon):
    """The module's daemon, empty at the start and at the end of the test."""
    if shared_cli_daemon.proc.poll() is not None:
        pytest.fail(f"the shared daemon died:\n{shared_cli_daemon.log_text()}")
    shared_cli_daemon.reset()
    yield shared_cli_daemon
    shared_cli_daemon.reset()


@pytest.fixture
def own_cli_daemon():
    """A daemon for one test only (for tests that shut it down)."""
    with running_daemon() as daemon:
        yield daemon
