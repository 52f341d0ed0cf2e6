"""When the daemon cannot be reached, ``dd-procmgr`` exits 3 naming the socket and the
reason; when it is reached but does not answer in time, it exits 1 with TIMEOUT."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from cli_daemon import CLI

PLAIN_ENV = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1"}


@pytest.fixture
def sock_dir():
    # Short: Unix socket paths are limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="pmun-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def cli(*args: str, as_nobody: bool = False) -> subprocess.CompletedProcess:
    argv = [CLI, *args]
    if as_nobody:
        argv = [*AS_NOBODY, *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=PLAIN_ENV)


def assert_unreachable(path: str, reason: str, *args: str) -> None:
    result = cli("--socket", path, *(args or ("list",)))
    assert result.returncode == 3, result
    assert result.stdout == ""
    line = result.stderr
    assert line.count("\n") == 1, line
    assert line.startswith(f"error: cannot reach dd-procmgrd at {path}: {reason} ("), line
    as_json = cli("--json", "--socket", path, "ping")
    assert as_json.returncode == 3
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "UNREACHABLE" and path in error["message"] and reason in error["message"]


def stale_socket(path: Path) -> None:
    """A socket file nobody listens on: what a daemon killed with SIGKILL leaves."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()


def test_missing_socket_exits_3(sock_dir):
    assert_unreachable(str(sock_dir / "none.sock"), "No such file or directory")


def test_socket_in_a_missing_directory_exits_3(sock_dir):
    assert_unreachable(str(sock_dir / "gone" / "pm.sock"), "No such file or directory")


def test_socket_file_of_a_dead_daemon_exits_3_connection_refused(sock_dir):
    path = sock_dir / "dead.sock"
    stale_socket(path)
    assert_unreachable(str(path), "Connection refused")
    assert "not running or died" in cli("--socket", str(path), "list").stderr


def test_a_path_that_is_not_a_socket_exits_3(sock_dir):
    path = sock_dir / "plain-file"
    path.write_text("")
    assert_unreachable(str(path), "Connection refused", "describe", "x")


def test_unreachable_tcp_address_exits_3():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: refused
        result = subprocess.run([CLI, "--tcp", f"127.0.0.1:{port}", "list"], capture_output=True,
                                text=True, timeout=30, env=PLAIN_ENV)
    assert result.returncode == 3, result
    assert f"127.0.0.1:{port}: Connection refused" in result.stderr


def _can_run_as_nobody() -> bool:
    """Root can connect to any socket: the refusal needs an unprivileged user."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    probe = subprocess.run([*AS_NOBODY, CLI, "--help"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_run_as_nobody(), reason="needs root and setpriv to act as nobody")
def test_permission_denied_exits_3_and_says_who_may_connect(sock_dir):
    path = sock_dir / "root-only.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    path.chmod(0o660)  # what the daemon does: root and its admin group only
    try:
        result = cli("--socket", str(path), "list", as_nobody=True)
        assert result.returncode == 3, result
        assert result.stderr.startswith(f"error: cannot reach dd-procmgrd at {path}: "
                                        "Permission denied (")
        assert "admin group" in result.stderr
    finally:
        server.close()


class SilentServer:
    """Accepts connections and then ``behaviour``: "hang" (never answers) or "close"."""

    def __init__(self, path: Path, behaviour: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.behaviour = behaviour
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.behaviour == "close":
                conn.recv(65536)
                conn.close()
            else:
                self.held.append(conn)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn in self.held:
            conn.close()
        self.thread.join(timeout=5)


def test_a_daemon_that_does_not_answer_in_time_is_a_timeout_exit_1(sock_dir):
    path = sock_dir / "hung.sock"
    server = SilentServer(path, "hang")
    try:
        result = cli("--socket", str(path), "--timeout", "0.3", "list")
        assert result.returncode == 1, result
        assert result.stderr.startswith("error: TIMEOUT: ") and result.stderr.count("\n") == 1
        as_json = cli("--json", "--socket", str(path), "--timeout", "0.3", "ping")
        assert as_json.returncode == 1
        assert json.loads(as_json.stdout)["error"]["code"] == "TIMEOUT"
    finally:
        server.close()


def test_a_daemon_that_hangs_up_mid_call_exits_3(sock_dir):
    path = sock_dir / "rude.sock"
    server = SilentServer(path, "close")
    try:
        result = cli("--socket", str(path), "list")
        assert result.returncode == 3, result
        assert result.stderr.startswith(f"error: cannot reach dd-procmgrd at {path}: ")
        assert "closed the connection" in result.stderr
    finally:
        server.close()
