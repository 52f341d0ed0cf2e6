"""How the daemon goes (SPEC §15): watchers see it, PID 1 duties, ``--exit-with``.

Real daemons: one per test through ``own_cli_daemon``, or inside a new PID namespace
with ``unshare --pid --fork --mount-proc`` so the daemon is PID 1 there.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from cli_daemon import CLI, DAEMON, own_cli_daemon  # noqa: F401  (fixture)
from support import pid_alive, zombies_of
from test_reload_atomic import subscribed_follower

GONE = "dd-procmgr: daemon stopped (connection closed)"


def test_watchers_see_every_stop_then_end_with_exit_3_and_one_message(own_cli_daemon):
    d = own_cli_daemon
    for name in ("api", "db"):
        assert d.cli("create", name, "sh", "-c", "echo up; exec sleep 1000").code == 0
        assert d.cli("start", name).code == 0
    d.wait_for("api's first line", lambda: "up" in d.cli("logs", "api").out)
    events = subscribed_follower(d)
    logs = d.popen("logs", "-f", "api")

    d.proc.send_signal(signal.SIGTERM)
    out, err = events.communicate(timeout=60)
    logs_out, logs_err = logs.communicate(timeout=60)

    assert d.proc.wait(timeout=60) == 0
    assert events.returncode == 3 and err.strip() == GONE, err
    kinds = [(e["type"], e.get("process"), e.get("to")) for e in map(json.loads, out.splitlines())]
    assert kinds[-1][0] == "daemon_stopped"
    stopping = kinds.index(("daemon_stopping", None, None))
    for name in ("api", "db"):
        assert kinds.index(("state_changed", name, "stopped")) > stopping
    assert logs.returncode == 3 and logs_err.strip() == GONE, logs_err
    assert "Traceback" not in err + logs_err


def test_a_second_sigterm_during_the_shutdown_does_not_kill_the_daemon(own_cli_daemon):
    d = own_cli_daemon
    # ignores SIGTERM: the shutdown waits timeout_stop_sec for it, then SIGKILLs it
    stubborn = "trap '' TERM; echo up; while :; do sleep 0.1; done"
    assert d.cli("create", "stubborn", "--timeout-stop-sec", "2", "sh", "-c", stubborn).code == 0
    assert d.cli("start", "stubborn").code == 0
    d.wait_for("its first line", lambda: "up" in d.cli("logs", "stubborn").out)
    pid = d.record("stubborn")["pid"]
    d.proc.send_signal(signal.SIGTERM)
    d.wait_for("the shutdown to begin", lambda: "shutting down" in d.log_text())
    deadline = time.monotonic() + 60
    while d.proc.poll() is None and time.monotonic() < deadline:  # an impatient operator
        d.proc.send_signal(signal.SIGTERM)
        time.sleep(0.005)
    assert d.proc.wait(timeout=5) == 0
    assert not pid_alive(pid)  # stopped by the escalation, not left behind


class Container:
    """``dd-procmgrd`` as PID 1 of a new PID namespace (``unshare --pid --fork``)."""

    def __init__(self, root: Path, *extra: str) -> None:
        self.root = root
        self.conf = root / "conf"
        self.conf.mkdir()
        self.socket = str(root / "pm.sock")
        self.log = root / "daemon.log"
        self.extra = extra
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        argv = ["unshare", "--pid", "--fork", "--mount-proc", DAEMON, "--config-dir",
                str(self.conf), "--socket", self.socket, "--state-dir", str(self.root / "state"),
                "--instance", f"test-pid1-{uuid.uuid4().hex[:8]}", *self.extra]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.wait_for("the daemon to answer", lambda: self.cli("ping").returncode == 0)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, "--socket", self.socket, *args], capture_output=True,
                              text=True, timeout=30)

    def daemon_pid(self) -> int:
        """The daemon's PID as seen from here (the only child of ``unshare``)."""
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return int(f.read().split()[0])

    def wait_for(self, what: str, check, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the container ended ({self.proc.returncode}):\n{self.log.read_text()}")
            value = check()
            if value:
                return value
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {what}:\n{self.log.read_text()[-3000:]}")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the namespace dies with its PID 1
            self.proc.wait()


@pytest.fixture
def container_root():
    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare is not installed")
    root = Path(tempfile.mkdtemp(prefix="pmpid1-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.linux_only("the portable reaper reaps only the daemon's own children")
def test_as_pid_1_it_reaps_orphans_and_sigterm_stops_everything_with_status_0(container_root):
    box = Container(container_root)
    (box.conf / "orphans.yaml").write_text(
        "command: sh\nargs: ['-c', 'for i in 1 2 3 4 5; do (sleep 1 &); done; exec sleep 1000']\n"
        "auto_start: true\n")
    try:
        box.start()
        daemon = box.daemon_pid()
        assert box.proc.poll() is None
        record = box.wait_for("orphans to be running", lambda: json.loads(
            box.cli("--json", "describe", "orphans").stdout or "{}").get("pid"))
        main = _host_pid_of(daemon, record)

        def orphans() -> list[int]:
            return [p for p in _children(daemon) if _comm(p) == "sleep" and p != main]
        box.wait_for("orphans adopted by PID 1", orphans)
        box.wait_for("the orphans to exit and be reaped",
                     lambda: not orphans() and not zombies_of(daemon))
        os.kill(daemon, signal.SIGTERM)
        assert box.proc.wait(timeout=60) == 0
        assert "stopping every process" in box.log.read_text()
        assert not pid_alive(daemon)
    finally:
        box.close()


def test_exit_with_ends_the_daemon_with_the_status_of_its_main_process(container_root):
    box = Container(container_root, "--exit-with", "main")
    (box.conf / "main.yaml").write_text(
        "command: sh\nargs: ['-c', 'test -e go || sleep 1000; exit 7']\nworking_dir: "
        f"{container_root}\nrestart: never\nauto_start: true\n")
    (box.conf / "helper.yaml").write_text("command: sleep\nargs: ['1000']\nauto_start: true\n")
    try:
        box.start()
        helper = json.loads(box.cli("--json", "describe", "helper").stdout)
        assert helper["state"] == "running"
        assert box.proc.poll() is None  # main runs: the daemon stays
        assert box.cli("restart", "main").returncode == 0
        (container_root / "go").touch()
        assert box.cli("restart", "main").returncode == 0
        assert box.proc.wait(timeout=60) == 7
        log = box.log.read_text()
        assert "--exit-with main" in log and "status 7" in log
    finally:
        box.close()


def test_exit_with_a_killed_process_is_128_plus_the_signal(container_root):
    box = Container(container_root, "--exit-with", "main")
    (box.conf / "main.yaml").write_text("command: sleep\nargs: ['1000']\nauto_start: true\n")
    try:
        box.start()
        pid = box.wait_for("main to run", lambda: json.loads(
            box.cli("--json", "describe", "main").stdout).get("pid"))
        host_pid = _host_pid_of(box.daemon_pid(), pid)
        os.kill(host_pid, signal.SIGKILL)
        assert box.proc.wait(timeout=60) == 128 + signal.SIGKILL
    finally:
        box.close()


def test_exit_with_an_unknown_process_refuses_to_start(container_root):
    box = Container(container_root, "--exit-with", "ghost")
    argv = [DAEMON, "--config-dir", str(box.conf), "--socket", box.socket, "--state-dir",
            str(container_root / "state"), "--instance", f"test-ew-{uuid.uuid4().hex[:8]}",
            "--exit-with", "ghost"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "--exit-with ghost: no such process" in done.stderr


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(x) for x in f.read().split()]
    return found


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _host_pid_of(daemon: int, ns_pid: int) -> int:
    """The PID seen from here of the process that is ``ns_pid`` inside the namespace."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        ids = [int(x) for x in line.split()[1:]]
                        if len(ids) > 1 and ids[-1] == ns_pid and _in_ns_of(int(entry), daemon):
                            return int(entry)
        except OSError:
            continue
    raise AssertionError(f"no process {ns_pid} in the daemon's namespace")


def _in_ns_of(pid: int, daemon: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{daemon}/ns/pid")
    except OSError:
        return False
