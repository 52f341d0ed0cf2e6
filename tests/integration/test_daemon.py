"""The daemon as a user runs it: boot, signals, reload, persistence, crash recovery."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import pid_alive
from trio_procmgr.client import BlockingClient

ROOT = Path(__file__).resolve().parents[2]
DAEMON = [sys.executable, "-m", "trio_procmgr.daemon.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class Daemon:
    """A dd-procmgrd subprocess on its own socket, config dir and state dir."""

    def __init__(self, tmp: Path, config_dir: Path, state_dir: Path | None = None) -> None:
        self.sock = str(tmp / "d.sock")
        self.config_dir = config_dir
        self.state_dir = state_dir or tmp / "state"
        self.log = tmp / "daemon.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Daemon":
        self.proc = subprocess.Popen(
            DAEMON + ["--config-dir", str(self.config_dir), "--socket", self.sock,
                      "--state-dir", str(self.state_dir), "--log-level", "debug"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        wait_for(self.answers, what="daemon to answer")
        return self

    def answers(self) -> bool:
        try:
            with BlockingClient(self.sock, timeout=2) as c:
                c.call("ping")
            return True
        except Exception:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon died: {self.log.read_text()[-2000:]}")
            return False

    def call(self, method, **params):
        with BlockingClient(self.sock, timeout=30) as c:
            return c.call(method, **params)

    def records(self) -> dict[str, dict]:
        return {r["name"]: r for r in self.call("list")["processes"]}

    def stop(self, sig=signal.SIGTERM, timeout=30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def daemons(tmp_path):
    started: list[Daemon] = []

    def make(config_dir: Path, state_dir: Path | None = None) -> Daemon:
        d = Daemon(tmp_path, config_dir, state_dir)
        started.append(d)
        return d.start()

    yield make
    from trio_procmgr.daemon.main import instance_name
    from trio_procmgr.engine.output_fifo import choose_dir
    from trio_procmgr.platform.cgroups import CgroupManager

    for d in started:
        if d.proc and d.proc.poll() is None:
            try:
                d.stop(signal.SIGTERM)  # a clean stop takes its services and cgroups along
            except subprocess.TimeoutExpired:
                d.stop(signal.SIGKILL)
        # A daemon SIGKILLed by the test (or above) leaves its services running.
        cg = CgroupManager.detect(instance_name(str(d.state_dir), None))
        if cg is not None:
            cg.kill_leftovers()
            cg.cleanup()
        shutil.rmtree(choose_dir(str(d.state_dir)), ignore_errors=True)


@pytest.fixture
def examples_copy(tmp_path) -> Path:
    """examples/ with the web server on a free port."""
    dst = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", dst)
    for f in dst.rglob("*.y*ml"):
        text = f.read_text()
        text = text.replace("8765", str(free_port())).replace("8126", str(free_port()))
        f.write_text(text)
    return dst


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_daemon_boots_examples_and_each_process_follows_its_policy(daemons, examples_copy):
    d = daemons(examples_copy)
    recs = wait_for(lambda: (r := d.records()) and r["background-job"]["state"] == "running"
                    and r["web-server"]["state"] == "running" and r, what="boot")
    assert recs["manual-tool"]["state"] == "created"  # auto_start: false
    assert wait_for(lambda: d.records()["one-time-setup"]["state"] == "exited")
    # always / on-failure restart after a SIGKILL; the never-restart process stays down.
    for name in ("web-server", "background-job"):
        old = d.records()[name]["pid"]
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: (r := d.records()[name])["pid"] not in (None, old)
                 and r["state"] == "running", what=f"{name} restart")
    d.call("start", name="manual-tool")
    pid = d.records()["manual-tool"]["pid"]
    os.kill(pid, signal.SIGKILL)
    rec = wait_for(lambda: (r := d.records()["manual-tool"])["state"] == "failed" and r,
                   what="manual-tool failed")
    assert rec["restarts"] == 0 and rec["exit_signal"] == signal.SIGKILL
    pids = [r["pid"] for r in d.records().values() if r["pid"]]
    assert d.stop() == 0
    for pid in pids:
        assert not pid_alive(pid)


def test_sigterm_stops_in_reverse_dependency_order_and_exits_zero(daemons, tmp_path):
    order = tmp_path / "order.txt"
    stopper = f"trap 'echo $0 >> {order}; exit 0' TERM; while :; do sleep 0.05; done"
    cfg = tmp_path / "cfg"
    write(cfg / "db.yaml", f"command: sh\nargs: ['-c', \"{stopper}\", db]\nauto_start: true\n")
    write(cfg / "api.yaml", f"command: sh\nargs: ['-c', \"{stopper}\", api]\nauto_start: true\n"
          "requires: [db]\nafter: [db]\n")
    d = daemons(cfg)
    wait_for(lambda: all(r["state"] == "running" for r in d.records().values()))
    assert d.stop() == 0
    assert order.read_text().split() == ["api", "db"]


def test_sighup_reload_adds_removes_changes_and_leaves_the_rest(daemons, tmp_path):
    cfg = tmp_path / "cfg"
    for name in ("keep", "change", "drop"):
        write(cfg / f"{name}.yaml", "command: sleep\nargs: ['60']\nauto_start: true\n")
    d = daemons(cfg)
    before = wait_for(lambda: (r := d.records()) and all(x["state"] == "running" for x in r.values()) and r)
    (cfg / "drop.yaml").unlink()
    write(cfg / "change.yaml", "command: sleep\nargs: ['61']\nauto_start: true\n")
    write(cfg / "new.yaml", "command: sleep\nargs: ['60']\nauto_start: true\n")
    d.proc.send_signal(signal.SIGHUP)
    after = wait_for(lambda: (r := d.records()) and "new" in r and "drop" not in r
                     and r["new"]["state"] == "running" and r["change"]["state"] == "running"
                     and r["change"]["pid"] != before["change"]["pid"] and r, what="reload")
    assert after["keep"]["pid"] == before["keep"]["pid"]  # untouched
    assert not pid_alive(before["drop"]["pid"])


def test_reload_config_rpc_reports_the_diff(daemons, tmp_path):
    cfg = tmp_path / "cfg"
    write(cfg / "a.yaml", "command: sleep\nargs: ['60']\n")
    write(cfg / "b.yaml", "command: sleep\nargs: ['60']\n")
    d = daemons(cfg)
    (cfg / "b.yaml").unlink()
    write(cfg / "c.yaml", "command: sleep\nargs: ['60']\n")
    write(cfg / "a.yaml", "command: sleep\nargs: ['60']\ndescription: changed\n")
    diff = d.call("reload_config")
    assert diff["added"] == ["c"] and diff["removed"] == ["b"] and diff["changed"] == ["a"]


def test_bad_file_does_not_stop_the_others(daemons, tmp_path):
    cfg = tmp_path / "cfg"
    write(cfg / "good.yaml", "command: sleep\nargs: ['60']\nauto_start: true\n")
    write(cfg / "bad.yaml", "command: sleep\nrestart: sometimes\n")
    d = daemons(cfg)
    recs = wait_for(lambda: (r := d.records()) and r.get("good", {}).get("state") == "running" and r)
    assert "bad" not in recs
    assert "bad.yaml" in d.log.read_text()


def test_runtime_created_processes_survive_a_daemon_restart_unless_transient(daemons, tmp_path):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    state = tmp_path / "state"
    d = daemons(cfg, state)
    kept = d.call("create", name="kept", config={"command": "sleep", "args": ["60"],
                                                 "restart": "always"})
    d.call("create", name="gone", config={"command": "sleep", "args": ["60"]}, transient=True)
    assert d.stop() == 0
    d2 = daemons(cfg, state)
    recs = d2.records()
    assert "kept" in recs and "gone" not in recs
    assert recs["kept"]["id"] == kept["record"]["id"]
    assert d2.call("describe", name="kept")["record"]["restart"] == "always"


@pytest.mark.linux_only("adoption after a crash needs a pidfd on a pid the daemon did not spawn")
def test_after_a_daemon_crash_the_next_instance_adopts_the_service(daemons, tmp_path):
    cfg = tmp_path / "cfg"
    marker = tmp_path / "starts.txt"
    write(cfg / "svc.yaml", f"command: sh\nargs: ['-c', 'echo $$ >> {marker}; exec sleep 300']\n"
          "auto_start: true\n")
    state = tmp_path / "state"
    d = daemons(cfg, state)
    first = wait_for(lambda: d.records()["svc"]["pid"])
    ident = d.records()["svc"]["id"]
    d.stop(signal.SIGKILL)
    assert pid_alive(first), "services outlive a crashed daemon"
    d2 = daemons(cfg, state)
    rec = d2.records()["svc"]
    assert (rec["pid"], rec["id"], rec["state"], rec["runs"]) == (first, ident, "running", 1)
    assert marker.read_text().split() == [str(first)], "adopted, never started twice"
    assert d2.stop() == 0
    assert not pid_alive(first)


@pytest.mark.parametrize("flags,words", [
    (["--tcp", "0.0.0.0:9"], "needs --token-file"),
    (["--ws", "127.0.0.1:99999"], "is not HOST:PORT"),
    (["--config-dir", "/nonexistent-dir"], "/nonexistent-dir: No such file or directory"),
])
def test_bad_flags_are_refused_before_anything_starts(tmp_path, flags, words):
    marker = tmp_path / "started"
    cfg = tmp_path / "cfg"
    write(cfg / "p.yaml", f"command: touch\nargs: ['{marker}']\nauto_start: true\n")
    args = ["--config-dir", str(cfg), "--socket", str(tmp_path / "s.sock"),
            "--state-dir", str(tmp_path / "st")]
    out = subprocess.run(DAEMON + args + flags, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert words in out.stderr and "Traceback" not in out.stderr
    assert not marker.exists()


def test_call_many_pipelines_calls_and_reports_each_outcome_in_order(daemons, tmp_path):
    cfg = tmp_path / "cfg"
    for i in range(40):
        write(cfg / f"p{i}.yaml", "command: sleep\nargs: ['60']\nauto_start: true\n")
    d = daemons(cfg)
    wait_for(lambda: all(r["state"] == "running" for r in d.records().values()))
    names = [f"p{i}" for i in range(40)] + ["missing"]
    with BlockingClient(d.sock, timeout=30) as c:
        outcomes = c.call_many("stop", [{"name": n} for n in names])
    assert [o["record"]["name"] for o in outcomes[:-1]] == names[:-1]
    assert all(o["record"]["state"] == "stopped" for o in outcomes[:-1])
    assert outcomes[-1].code == "PROCESS_NOT_FOUND"
