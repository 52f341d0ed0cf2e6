"""A real ``dd-procmgrd`` with a Unix socket and a token-guarded TCP listener, for the
hostile-client tests (pre-auth limits, stuck readers, error paths, access tiers, fuzz).

Each test gets its own temp dir, socket, port, state dir and cgroup instance; the daemon
is stopped with SIGTERM (SIGKILL as a last resort) and its log is checked for tracebacks
by the tests that care.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgpack
import psutil
import pytest

from trio_procmgr.client import BlockingClient

DAEMON = str(Path(sys.executable).parent / "dd-procmgrd")
TOKEN = "hostile-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame(value) -> bytes:
    body = msgpack.packb(value, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def read_frame(sock: socket.socket, timeout: float = 10.0):
    """One decoded frame, or None at EOF."""
    sock.settimeout(timeout)
    head = _read_exact(sock, 4)
    if head is None:
        return None
    (length,) = struct.unpack(">I", head)
    body = _read_exact(sock, length)
    return None if body is None else msgpack.unpackb(body, raw=False, strict_map_key=False)


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class RpcDaemon:
    def __init__(self, root: Path, *extra: str) -> None:
        self.root = root
        self.socket = str(root / "pm.sock")
        self.port = free_port()
        self.tcp = f"127.0.0.1:{self.port}"
        self.log = root / "daemon.log"
        token_file = root / "token"
        token_file.write_text(TOKEN + "\n")
        (root / "conf").mkdir()
        argv = [DAEMON, "--socket", self.socket, "--tcp", self.tcp, "--token-file", str(token_file),
                "--config-dir", str(root / "conf"), "--state-dir", str(root / "state"),
                "--instance", f"test-rpc-{uuid.uuid4().hex[:10]}", "--no-cgroups", *extra]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_until(self._answers, 30, "the daemon to answer ping")
        self.ps = psutil.Process(self.proc.pid)

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited: {self.log.read_text()}")
        try:
            with BlockingClient(self.socket, timeout=2) as client:
                client.call("ping")
            return True
        except (OSError, Exception):
            return False

    def client(self, timeout: float = 10) -> BlockingClient:
        return BlockingClient(self.socket, timeout=timeout)

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def connect_tcp(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def connect_unix(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self.socket)
        return sock

    def open_fds(self) -> int:
        return self.ps.num_fds()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def rpc_daemon_factory():
    made: list[RpcDaemon] = []
    roots: list[str] = []

    def make(*extra: str) -> RpcDaemon:
        root = tempfile.mkdtemp(prefix="rpc-hostile-", dir="/tmp")
        os.chmod(root, 0o755)
        roots.append(root)
        daemon = RpcDaemon(Path(root), *extra)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.stop()
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)
