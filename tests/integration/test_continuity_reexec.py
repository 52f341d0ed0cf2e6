"""SPEC §15 re-exec in place, against the real daemon: `dd-procmgr daemon-reexec`, RPC
`daemon_reexec` and SIGUSR2 replace the program image (same PID); every service keeps
its PID, ID, counters and output; a broken new program is refused, the old one goes on."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from continuity_daemon import Daemon, daemon_factory, pid_alive, wait_for, write  # noqa: F401
from trio_procmgr.errors import ProcMgrError

pytestmark = pytest.mark.linux_only("a re-executed daemon adopts its services through pidfds")

ROOT = Path(__file__).resolve().parents[2]
CLI = [str(Path(sys.executable).parent / "dd-procmgr")]
COUNTER = ("import itertools, time\n"
           "for i in itertools.count():\n"
           "    print(i, flush=True)\n"
           "    time.sleep(0.02)\n")


def numbers(d: Daemon, name: str) -> list[int]:
    return [int(item["line"]) for item in d.call("logs", name=name, lines=100000)["lines"]]


def state(d: Daemon) -> dict[str, tuple]:
    return {n: (r["pid"], r["id"], r["runs"], r["restarts"], r["started_at"], r["state"])
            for n, r in d.records().items()}


class SocketWatch(threading.Thread):
    """Checks, every millisecond, that the RPC socket and its read-only companion exist
    (and are the same socket files: same inodes)."""

    def __init__(self, path: str) -> None:
        from trio_procmgr.paths import read_only_socket_path

        super().__init__(daemon=True)
        self.paths = (path, read_only_socket_path(path))
        self.inodes = [os.stat(p).st_ino for p in self.paths]
        self.missing, self.done = 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for path, inode in zip(self.paths, self.inodes):
                try:
                    self.missing += os.stat(path).st_ino != inode
                except FileNotFoundError:
                    self.missing += 1
            time.sleep(0.001)


def test_cli_daemon_reexec_keeps_every_service_its_counters_and_its_output(daemon_factory):
    d = daemon_factory()
    write(d.config_dir / "counter.yaml", "command: /usr/bin/python3\nargs: ['-u', '-c', "
          + json.dumps(COUNTER) + "]\nauto_start: true\n")
    write(d.config_dir / "sleeper.yaml", "command: sleep\nargs: ['300']\nauto_start: true\n"
          "restart: always\nrestart_sec: 1\n")
    d.start()
    d.call("create", name="made", config={"command": "sleep", "args": ["300"]}, start=True)
    old_sleeper = wait_for(lambda: d.records()["sleeper"]["pid"])
    os.kill(old_sleeper, signal.SIGKILL)  # one restart, so the counters are not all zero
    wait_for(lambda: (r := d.records()["sleeper"])["restarts"] == 1 and r["state"] == "running")
    last = wait_for(lambda: (n := numbers(d, "counter")) and len(n) > 10 and n[-1])
    before, daemon_pid = state(d), d.proc.pid
    watch = SocketWatch(d.sock)
    watch.start()
    out = subprocess.run(CLI + ["--socket", d.sock, "daemon-reexec"], capture_output=True,
                         text=True, timeout=120)
    watch.done.set()
    watch.join()
    assert out.returncode == 0, out.stderr
    assert "re-executed in place" in out.stdout
    assert d.proc.poll() is None and d.proc.pid == daemon_pid
    assert watch.missing == 0, "the socket paths never disappear nor change"
    assert state(d) == before
    seen = wait_for(lambda: (n := numbers(d, "counter")) and n[-1] > last + 25 and n)
    assert seen == list(range(seen[0], seen[-1] + 1)), "no line lost across the re-exec"
    wait_for(lambda: "re-executed in place" in d.log.read_text())
    # Still supervised by the new image, with the exit status it reaps itself.
    pid = before["sleeper"][0]
    os.kill(pid, signal.SIGKILL)
    rec = wait_for(lambda: (r := d.records()["sleeper"])["state"] == "backoff" and r)
    assert rec["exit_signal"] == signal.SIGKILL
    wait_for(lambda: (r := d.records()["sleeper"])["restarts"] == 2 and r["state"] == "running")
    assert d.stop() == 0
    assert not any(pid_alive(v[0]) for v in before.values())


def test_sigusr2_re_executes_in_place(daemon_factory):
    d = daemon_factory()
    write(d.config_dir / "s.yaml", "command: sleep\nargs: ['300']\nauto_start: true\n")
    d.start()
    before = state(d)
    os.kill(d.proc.pid, signal.SIGUSR2)
    wait_for(lambda: "re-executed in place" in d.log.read_text(), timeout=60)
    wait_for(d.answers)
    assert state(d) == before


def daemon_on_a_copy(daemon_factory, tmp_path: Path) -> tuple[Daemon, Path]:
    """A daemon (one `sleep` service) running from a copy of the package in
    ``tmp_path/pkg``: the test can then break or slow down "the installed program"."""
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "trio_procmgr", pkg / "trio_procmgr",
                    ignore=shutil.ignore_patterns("__pycache__"))
    d = daemon_factory()
    write(d.config_dir / "s.yaml", "command: sleep\nargs: ['300']\nauto_start: true\n")
    env = dict(os.environ, PYTHONPATH=str(pkg))
    d.proc = subprocess.Popen(d.argv(), env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=open(d.log, "ab"))
    wait_for(d.answers)
    return d, pkg


def test_a_broken_new_program_is_refused_and_the_old_one_keeps_running(daemon_factory, tmp_path):
    d, pkg = daemon_on_a_copy(daemon_factory, tmp_path)
    before, daemon_pid = state(d), d.proc.pid
    manager_py = pkg / "trio_procmgr" / "engine" / "manager.py"
    good = manager_py.read_text()
    manager_py.write_text(good + "\ndef broken(:\n")  # a bad upgrade: a SyntaxError
    with pytest.raises(ProcMgrError) as info:
        d.call("daemon_reexec")
    assert "SyntaxError" in info.value.message and "keeps running" in info.value.message
    assert d.proc.pid == daemon_pid and d.proc.poll() is None and state(d) == before
    # A good upgrade is taken: the new code answers, every service is the same.
    manager_py.write_text(good)
    init = pkg / "trio_procmgr" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.9.9+'))
    d.call("daemon_reexec")
    wait_for(lambda: d.answers() and "9.9.9+" in json.dumps(d.call("version")), timeout=60)
    assert d.proc.pid == daemon_pid and state(d) == before


def test_a_stop_during_a_slow_preflight_is_not_delayed_by_it(daemon_factory, tmp_path):
    """SIGTERM while a SIGUSR2 preflight hangs: the daemon stops at once (not after the
    check's 60 s timeout), and the hanging check is killed, not left behind."""
    d, pkg = daemon_on_a_copy(daemon_factory, tmp_path)
    service = d.records()["s"]["pid"]
    marker = tmp_path / "check-pid"
    manager_py = pkg / "trio_procmgr" / "engine" / "manager.py"
    manager_py.write_text(manager_py.read_text() + "\nimport os as _os, time as _time\n"
                          f"open({str(marker)!r}, 'w').write(str(_os.getpid()))\n"
                          "_time.sleep(600)\n")
    os.kill(d.proc.pid, signal.SIGUSR2)
    wait_for(lambda: marker.exists() and marker.read_text(), timeout=60)
    check = int(marker.read_text())
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=30) == 0
    assert not pid_alive(service)
    wait_for(lambda: not pid_alive(check), timeout=5)


def listening_inode(port: int) -> int | None:
    """Inode of the TCP socket listening on 127.0.0.1:port (/proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[1] == f"0100007F:{port:04X}" and parts[3] == "0A":
                return int(parts[9])
    return None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ECHO = ("import os, socket\n"
        "s = socket.socket(fileno=3)\n"
        "while True:\n"
        "    c, _ = s.accept()\n"
        "    c.sendall(str(os.getpid()).encode())\n"
        "    c.close()\n")


def ask(port: int) -> str:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=20) as c:
        return c.recv(100).decode()


def test_reexec_keeps_activation_and_web_listening_sockets(daemon_factory):
    act, ws = free_port(), free_port()
    d = daemon_factory(extra=["--ws", f"127.0.0.1:{ws}"])
    write(d.config_dir / "echo.yaml", f"sockets:\n  echo-tcp:\n    listen_stream: '127.0.0.1:{act}'\n"
          "    service: echo\nprocesses:\n  echo:\n    command: /usr/bin/python3\n"
          f"    args: ['-c', {json.dumps(ECHO)}]\n")
    d.start()
    first = ask(act)  # activates the service, which answers with its pid
    assert first == str(d.records()["echo"]["pid"])
    inodes = (listening_inode(act), listening_inode(ws))
    assert all(inodes)
    out = subprocess.run(CLI + ["--socket", d.sock, "daemon-reexec"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (listening_inode(act), listening_inode(ws)) == inodes, "the same sockets, not re-bound"
    assert ask(act) == first, "the running service still serves on its socket"
    rec = d.records()["echo"]
    os.kill(rec["pid"], signal.SIGKILL)  # the next connection activates it again
    wait_for(lambda: d.records()["echo"]["state"] != "running")
    assert ask(act) not in ("", first)
    assert "socket_error" not in json.dumps(d.call("describe", name="echo"))
