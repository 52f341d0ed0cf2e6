"""Full disks and read-only state dirs degrade the daemon, never crash it (SPEC §15, issue 13.1).

Each test mounts a small tmpfs of its own (root only) as ``--log-dir`` or ``--state-dir``
of a real daemon, fills it, checks that the daemon and its services go on and that the
counters rise, then frees it and checks that writing resumes by itself. The read-only
cases: a tmpfs remounted ``ro``, and ``chmod 0500`` under a daemon without
CAP_DAC_OVERRIDE (root ignores file modes otherwise).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from continuity_daemon import Daemon, daemon_factory, pid_alive, wait_for, write  # noqa: F401

pytestmark = pytest.mark.root

CHATTY = ("import itertools, time\n"
          "for i in itertools.count():\n"
          "    print(i, 'x' * 200, flush=True)\n"
          "    time.sleep(0.005)\n")


def chatty_yaml() -> str:
    return ("command: /usr/bin/python3\nargs: ['-u', '-c', " + json.dumps(CHATTY) + "]\n"
            "auto_start: true\nrestart: always\n")


@pytest.fixture
def tmpfs():
    """``mount(path, size)``: a tmpfs of ``size`` at ``path``, unmounted at the end."""
    mounted: list[Path] = []
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")

    def mount(path: Path, size: str = "256k") -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                               str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (no CAP_SYS_ADMIN?): {done.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path, limit: int | None = None) -> Path:
    """Write a file into ``directory`` until the disk is full (or ``limit`` bytes are
    written); returns it (unlink it to free the space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    try:
        while limit is None or written < limit:
            written += os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28, exc  # ENOSPC
    finally:
        os.close(fd)
    return filler


def metrics(d: Daemon) -> str:
    found = wait_for(lambda: re.search(r"serving the dashboard.* on ([\d.]+):(\d+)",
                                       d.log.read_text()), what="the web listener")
    with urllib.request.urlopen(f"http://{found[1]}:{found[2]}/metrics", timeout=30) as r:
        return r.read().decode()


def metric(text: str, name: str, process: str | None = None) -> float:
    label = f'{{process="{process}"}}' if process else ""
    found = re.search(rf"^{re.escape(name + label)} (\S+)$", text, re.M)
    assert found, f"{name}{label} not in /metrics"
    return float(found[1])


def numbers(d: Daemon, name: str) -> list[int]:
    return [int(item["line"].split()[0]) for item in d.call("logs", name=name, lines=100000)["lines"]]


def test_a_full_log_dir_drops_and_counts_lines_and_resumes_when_space_returns(daemon_factory, tmpfs):
    d = daemon_factory(extra=["--ws", "127.0.0.1:0"])
    logs = tmpfs(d.tmp / "logs")
    d.extra += ["--log-dir", str(logs)]
    write(d.config_dir / "chatty.yaml", chatty_yaml())
    write(d.config_dir / "quiet.yaml", "command: sleep\nargs: ['300']\nauto_start: true\n")
    filler = fill(logs, limit=192 * 1024)  # chatty fills the rest by itself within seconds
    d.start()
    pid = wait_for(lambda: d.records()["chatty"]["pid"], what="chatty to run")
    describe = wait_for(lambda: (r := d.call("describe", name="chatty")["record"])
                        .get("log_lines_dropped", 0) > 100 and r, timeout=60,
                        what="lines to be dropped")
    assert describe["log_write_errors"] >= 1 and "No space left" in describe["log_file_error"]
    text = metrics(d)
    assert metric(text, "dd_procmgr_process_log_lines_dropped_total", "chatty") > 100
    assert metric(text, "dd_procmgr_process_log_write_errors_total", "chatty") >= 1
    assert metric(text, "dd_procmgr_process_log_lines_dropped_total", "quiet") == 0
    # The daemon answers, the service runs on, and its ring keeps filling.
    records = d.records()
    assert records["chatty"]["pid"] == pid and records["chatty"]["state"] == "running"
    assert records["quiet"]["state"] == "running"
    last = numbers(d, "chatty")[-1]
    wait_for(lambda: numbers(d, "chatty")[-1] > last + 50, what="the ring to keep filling")
    filler.unlink()
    wait_for(lambda: "log_file_error" not in d.call("describe", name="chatty")["record"],
             timeout=30, what="the log file to be written again")
    seen = numbers(d, "chatty")[-1]
    wait_for(lambda: any(line.split(" ")[2:3] == [str(seen + 20)]
                         for line in (logs / "chatty.log").read_text().splitlines()[-500:]),
             timeout=30, what="new lines in the log file after space returned")
    daemon_log = d.log.read_text()
    assert daemon_log.count("output is still kept in memory") == 1, "one warning per episode"
    assert "writing again" in daemon_log
    assert d.records()["chatty"]["pid"] == pid
    assert d.stop() == 0


def ping(d: Daemon) -> dict:
    return d.call("ping")


def test_a_full_state_dir_is_counted_and_retried_and_runtime_creates_warn(daemon_factory, tmpfs):
    d = daemon_factory(extra=["--ws", "127.0.0.1:0"])
    state = tmpfs(d.state_dir)
    write(d.config_dir / "keeper.yaml", "command: sleep\nargs: ['300']\nauto_start: true\n")
    d.start()
    wait_for(lambda: d.records()["keeper"]["pid"], what="keeper to run")
    assert ping(d)["state_write_errors"] == 0
    filler = fill(state)
    answer = d.call("create", name="rt", config={"command": "sleep", "args": ["301"]}, start=True)
    record = answer["record"]
    assert record["state"] == "running" and pid_alive(record["pid"])
    assert any("not persisted" in w and "No space left" in w for w in record["warnings"])
    d.call("stop", name="keeper")
    d.call("start", name="keeper")
    status = ping(d)
    assert status["state_write_errors"] >= 1 and "No space left" in status["state_error"]
    assert metric(metrics(d), "dd_procmgr_state_write_errors_total") >= 1
    assert all(r["state"] == "running" for r in d.records().values())
    assert d.log.read_text().count("cannot write") == 1, "one error per episode"
    filler.unlink()
    d.call("restart", name="keeper")  # the next state write retries what was not written
    wait_for(lambda: ping(d)["state_error"] is None, what="the state dir to be written again")
    saved = json.loads((state / "processes.json").read_text())
    assert saved["processes"]["rt"]["id"] == record["id"]
    assert "writing again" in d.log.read_text()
    assert d.stop() == 0


@pytest.mark.linux_only("a crashed daemon's successor adopts the running service through a "
                        "pidfd on a pid it did not spawn")
def test_a_record_persisted_only_after_space_returned_is_what_a_crash_recovers(daemon_factory,
                                                                                tmpfs):
    d = daemon_factory()
    state = tmpfs(d.state_dir)
    write(d.config_dir / "keeper.yaml", "command: sleep\nargs: ['300']\nauto_start: true\n")
    d.start()
    wait_for(lambda: d.records()["keeper"]["pid"], what="keeper to run")
    filler = fill(state)
    record = d.call("create", name="rt", config={"command": "sleep", "args": ["301"]},
                    start=True)["record"]
    assert any("not persisted" in w for w in record["warnings"])
    filler.unlink()
    d.call("restart", name="keeper")  # the next state write retries what was not written
    wait_for(lambda: ping(d)["state_error"] is None, what="the state dir to be written again")
    d.crash()
    d.start()
    rt = d.records()["rt"]
    assert (rt["id"], rt["pid"], rt["state"]) == (record["id"], record["pid"], "running")
    assert d.stop() == 0


def test_a_read_only_state_dir_falls_back_to_pipes_and_recovers(daemon_factory, tmpfs):
    """``chmod 0500`` does not stop root (the daemon here), so the tmpfs is remounted
    read-only: every state write gets EROFS, as a read-only disk would give."""
    d = daemon_factory()
    state = tmpfs(d.state_dir)
    echo = "import time\nprint('hello', flush=True)\ntime.sleep(300)\n"
    write(d.config_dir / "echo.yaml",
          "command: /usr/bin/python3\nargs: ['-u', '-c', " + json.dumps(echo) + "]\n")
    d.start()
    subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
    answer = d.call("create", name="rt", config={"command": "sleep", "args": ["302"]})
    assert any("not persisted" in w and "Read-only" in w for w in answer["record"]["warnings"])
    d.call("start", name="echo")  # its output FIFOs cannot be made: plain pipes this run
    wait_for(lambda: [i["line"] for i in d.call("logs", name="echo")["lines"]] == ["hello"],
             what="captured output through the fallback pipe")
    described = d.call("describe", name="echo")["record"]
    assert "plain pipes" in described["output_fifo_error"]
    assert described["state"] == "running" and ping(d)["state_write_errors"] >= 1
    subprocess.run(["mount", "-o", "remount,rw", str(state)], check=True)
    d.call("restart", name="echo")
    wait_for(lambda: ping(d)["state_error"] is None, what="the state dir to be written again")
    described = d.call("describe", name="echo")["record"]
    assert "output_fifo_error" not in described, "the next run uses FIFOs again"
    assert [p for p in os.listdir(state / "output") if p.startswith(described["id"])]
    assert "rt" in json.loads((state / "processes.json").read_text())["processes"]
    assert d.stop() == 0


def test_a_state_dir_chmod_0500_is_counted_and_retried(daemon_factory):
    """A daemon without CAP_DAC_OVERRIDE (dropped from its bounding set, so root obeys
    file modes) whose state dir is made 0500: EACCES instead of ENOSPC, same handling."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("dropping CAP_DAC_OVERRIDE needs root and setpriv (util-linux)")
    d = daemon_factory()
    plain = d.argv
    d.argv = lambda: ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *plain()]
    write(d.config_dir / "keeper.yaml", "command: sleep\nargs: ['300']\nauto_start: true\n")
    d.start()
    wait_for(lambda: d.records()["keeper"]["pid"], what="keeper to run")
    d.state_dir.chmod(0o500)
    answer = d.call("create", name="rt", config={"command": "sleep", "args": ["303"]}, start=True)
    assert any("Permission denied" in w for w in answer["record"]["warnings"])
    d.call("restart", name="keeper")
    assert ping(d)["state_write_errors"] >= 2 and all(
        r["state"] == "running" for r in d.records().values())
    d.state_dir.chmod(0o700)
    d.call("restart", name="keeper")
    wait_for(lambda: ping(d)["state_error"] is None, what="the state dir to be written again")
    assert "rt" in json.loads((d.state_dir / "processes.json").read_text())["processes"]
    assert d.stop() == 0
