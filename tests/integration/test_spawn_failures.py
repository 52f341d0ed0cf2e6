"""Spawn failures of any errno go through failed -> backoff -> retry (SPEC §15, issue 14.3).

EMFILE is forced on the real daemon with ``prlimit --pid``: its open-files soft limit is
lowered to the number of fds it holds, so the next pipe it creates for a spawn fails.
Once the limit is lifted the service recovers by itself, and ``start``/``stop`` behave.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess

import pytest

from cli_daemon import cli_daemon, shared_cli_daemon  # noqa: F401  (fixtures)
from support import specs
from trio_procmgr import errors
from trio_procmgr.engine import spawner
from trio_procmgr.states import State

needs_prlimit = pytest.mark.skipif(shutil.which("prlimit") is None,
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


@needs_prlimit
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


@pytest.mark.parametrize("err", [errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN])
async def test_any_errno_creating_the_output_pipes_fails_then_retries(make_manager, monkeypatch, err):
    """In-process, every errno of the pipe creation before the fork: failed, backoff,
    then a normal start once the pipes can be had again."""
    real_pipe2 = os.pipe2
    failures = []

    def pipe2(flags):
        if len(failures) < 2:
            failures.append(err)
            raise OSError(err, os.strerror(err))
        return real_pipe2(flags)

    cfg = specs(svc={"command": "sleep", "args": ["1000"], "restart": "always",
                     "restart_sec": 0.05, "start_limit_burst": 100})
    async with make_manager(cfg) as pm:
        monkeypatch.setattr(spawner.os, "pipe2", pipe2)
        with pytest.raises(errors.SpawnFailed, match=errno.errorcode[err]):
            await pm.start("svc")
        sup = pm.supervisor("svc")
        assert sup.record.state in (State.BACKOFF, State.STARTING, State.RUNNING)
        assert await sup.wait_until(lambda s: s.record.state is State.RUNNING, timeout=15)
        assert sup.record.runs == 3 and len(failures) == 2
        await pm.stop("svc")
        assert sup.record.state is State.STOPPED
