"""Spawn failures of any errno go through failed -> backoff -> retry (SPEC §15, issue 14.3).

EMFILE is forced on the real daemon with ``prlimit --pid``: its open-files soft limit is
lowered to the number of fds it holds, so the next pipe it creates for a spawn fails.
Once the limit is lifted the service recovers by itself, and ``start``/``stop`` behave.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from cli_daemon import cli_daemon, shared_cli_daemon  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(shutil.which("prlimit") is None,
                                reason="util-linux prlimit is not installed")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def set_nofile(pid: int, soft: int | str, hard: int | str) -> None:
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={soft}:{hard}"], check=True)


def nofile(pid: int) -> tuple[str, str]:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return soft, hard
    raise AssertionError("no open-files limit in /proc/PID/limits")


def test_emfile_during_a_spawn_fails_retries_and_recovers(cli_daemon):
    d = cli_daemon
    pid = d.proc.pid
    assert d.cli("create", "steady", "sleep", "1000").code == 0
    assert d.cli("start", "steady").code == 0
    steady_pid = d.wait_state("steady", "running")["pid"]
    assert d.cli("create", "flaky", "--restart", "always", "--restart-sec", "0.1",
                 "--restart-max-delay", "0.2", "--start-limit-burst", "10000",
                 "--", "sh", "-c", "sleep 0.2; exit 1").code == 0
    assert d.cli("start", "flaky").code == 0
    soft, hard = nofile(pid)
    set_nofile(pid, open_fds(pid), hard)
    try:
        d.wait_for("a spawn failing with EMFILE",
                   lambda: "Too many open files" in d.log_text(), timeout=30)
    finally:
        set_nofile(pid, soft, hard)

    d.wait_for("flaky to spawn again", lambda: d.log_text().count("flaky: starting -> running")
               > 0 and d.record("flaky")["state"] in ("running", "backoff", "failed"), 30)
    runs = d.record("flaky")["runs"]
    d.wait_for("flaky to run again after the limit was lifted",
               lambda: d.record("flaky")["runs"] >= runs + 2, timeout=30)
    assert d.cli("stop", "flaky").code == 0
    assert d.wait_state("flaky", "stopped")["pid"] is None
    assert d.cli("create", "after", "sleep", "1000").code == 0
    assert d.cli("start", "after").code == 0
    assert d.wait_state("after", "running")["pid"]
    assert d.cli("stop", "after").code == 0
    assert d.record("steady")["pid"] == steady_pid and d.proc.poll() is None
