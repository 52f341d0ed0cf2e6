"""A real daemon for the acceptance tests, in its own network and mount namespace.

The seed README's examples use fixed ports (8080, 6379, 8126) and fixed paths (/opt/...,
/run/datadog, /var/run/app.pid). Run verbatim on a shared machine they would collide
with other test runs, so this daemon gets:

* its own network namespace (loopback up): every port of the examples is free there;
* its own mount namespace with fresh tmpfs on ``/opt`` and ``/run``: stand-in programs
  are created at the seed's own ``/opt/...`` paths, runtime directories and pidfiles
  land in a /run nobody else sees; the host's /opt and /run are never written.

The test reaches into the namespaces through ``/proc/PID/root`` (files) and ``nsenter``
(connections). Everything else is the ordinary ``CliDaemon`` of cli_daemon.py: the real
``dd-procmgrd`` driven by the real ``dd-procmgr`` over a temp Unix socket.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from cli_daemon import CLI, DAEMON, CliDaemon, Result

NAMESPACE_SETUP = ("ip link set lo up && mount -t tmpfs tmpfs /run && "
                   "mount -t tmpfs tmpfs /opt && exec \"$@\"")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None,
    reason="the seed's fixed ports and /opt paths are isolated in network and mount "
           "namespaces, which need root, unshare(1) and ip(8)")

SERVICE = """#!/bin/sh
# stand-in for {path}: says how it was called, then runs until stopped
echo "stand-in $0 $*"
exec sleep 100000
"""

SOCKET_SERVICE = """#!/usr/bin/python3
# stand-in for {path}: serves each connection on the inherited listening socket (fd 3)
import os, socket, sys
print("stand-in", sys.argv[0], "LISTEN_FDS=" + os.environ.get("LISTEN_FDS", ""),
      "LISTEN_PID=" + os.environ.get("LISTEN_PID", ""), flush=True)
listener = socket.socket(fileno=3)
while True:
    conn, _ = listener.accept()
    conn.recv(4096)  # the request: closing with it unread would reset the connection
    conn.sendall(b"served by " + sys.argv[0].encode() + b" pid " + str(os.getpid()).encode())
    conn.close()
"""

ONESHOT = """#!/bin/sh
# stand-in for {path}: does its one job and exits 0
echo "stand-in $0 $* done"
"""

FORKING = """#!/bin/sh
# stand-in for {path}: a traditional daemon, the parent exits once the child runs
sleep 100000 </dev/null >/dev/null 2>&1 &
echo "stand-in $0 forked $!"
"""

KINDS = {"service": SERVICE, "socket": SOCKET_SERVICE, "oneshot": ONESHOT,
         "forking": FORKING}


class SeedDaemon(CliDaemon):
    """A CliDaemon whose daemon runs in private network and mount namespaces."""

    def start(self) -> None:
        self.log_file = open(self.log, "w")
        # cwd: the temp root, so a program writing to its cwd (redis' dump.rdb) stays there
        self.proc = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "--",
             "sh", "-c", NAMESPACE_SETUP, "sh",
             DAEMON, "--config-dir", str(self.config_dir), "--socket", self.socket,
             "--state-dir", str(self.state_dir), "--instance", self.instance],
            stdout=self.log_file, stderr=subprocess.STDOUT, env=self.env(),
            start_new_session=True, cwd=self.root)
        self.wait_for("the daemon to answer ping", self._answers, timeout=30)

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"dd-procmgrd exited with {self.proc.returncode}:\n{self.log_text()}")
        return self.cli("ping", timeout=10).code == 0

    def record(self, name: str) -> dict:
        """The describe record over one RPC call: polling through the CLI would cost a
        process start per look (the CLI itself is what the tests exercise, not this)."""
        from trio_procmgr.client import BlockingClient
        with BlockingClient(self.socket, timeout=30) as client:
            return client.call("describe", name=name)["record"]

    def cli_in(self, cwd: Path, *args: str, timeout: float = 30) -> Result:
        """``dd-procmgr ARGS`` run from ``cwd`` (relative commands resolve against it)."""
        done = subprocess.run([CLI, "--socket", self.socket, *args], capture_output=True,
                              text=True, timeout=timeout, env=self.env(), cwd=cwd)
        return Result(done.returncode, done.stdout, done.stderr)

    def inside(self, path: str) -> Path:
        """``path`` as the daemon (and its children) see it."""
        return Path(f"/proc/{self.proc.pid}/root") / path.lstrip("/")

    def stand_in(self, path: str, kind: str = "service") -> str:
        """An executable script at ``path`` (inside the namespace when under /opt or /run)."""
        target = self.inside(path) if path.startswith(("/opt/", "/run/")) else Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(KINDS[kind].format(path=path))
        target.chmod(0o755)
        return path

    def run_inside(self, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess:
        """Run ``argv`` in the daemon's network namespace (to reach its ports)."""
        return subprocess.run(["nsenter", "-t", str(self.proc.pid), "-n", "--", *argv],
                              capture_output=True, text=True, timeout=timeout)

    def fetch(self, host: str, port: int, timeout: float = 15) -> str:
        """What a server on ``host:port`` in the namespace answers to ``GET /``.

        Retries a refused connection until ``timeout``: a service that was just started
        may not listen yet.
        """
        code = ("import socket,sys,time\n"
                f"deadline=time.monotonic()+{timeout}\n"
                "while True:\n"
                "    try:\n"
                f"        s=socket.create_connection(({host!r},{port}),timeout=5); break\n"
                "    except ConnectionRefusedError:\n"
                "        if time.monotonic()>deadline: raise\n"
                "        time.sleep(0.05)\n"
                "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
                "data=b''\n"
                "while True:\n"
                "    chunk=s.recv(65536)\n"
                "    if not chunk: break\n"
                "    data+=chunk\n"
                "sys.stdout.write(data.decode(errors='replace'))\n")
        done = self.run_inside(sys.executable, "-c", code, timeout=timeout + 10)
        assert done.returncode == 0, f"connecting to {host}:{port}: {done.stderr}"
        return done.stdout


@contextmanager
def seed_daemon_running() -> Iterator[SeedDaemon]:
    root = Path(tempfile.mkdtemp(prefix="pmseed-"))
    root.chmod(0o755)  # children run as other users (www-data, nobody) read stand-ins here
    daemon = SeedDaemon(root)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def shared_seed_daemon():
    with seed_daemon_running() as daemon:
        yield daemon


@pytest.fixture
def seed(shared_seed_daemon):
    """The module's namespaced daemon, empty at the start and the end of the test."""
    if shared_seed_daemon.proc.poll() is not None:
        pytest.fail(f"the shared daemon died:\n{shared_seed_daemon.log_text()}")
    shared_seed_daemon.reset()
    yield shared_seed_daemon
    shared_seed_daemon.reset()
