"""forking services: parent exit, main PID from pidfile or the one root left, death of main."""

from __future__ import annotations

import os
import signal

import pytest
import trio

from support import pid_alive, specs
from trio_procmgr import errors


def forking(script: str, **extra) -> dict:
    return {"command": "sh", "args": ["-c", script], "process_type": "forking",
            "timeout_stop_sec": 5, "timeout_start_sec": 5, **extra}


async def until(sup, pred, timeout=10.0):
    assert await sup.wait_until(pred, timeout=timeout), sup.record.to_dict()


def cmd0(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[0]


@pytest.mark.linux_only("the forked main process is watched through a pidfd and reparents to the daemon only as a subreaper")
async def test_main_pid_comes_from_the_pidfile_written_after_the_parent_exits(make_manager, tmp_path):
    pidfile = tmp_path / "d.pid"
    # the daemon writes its pidfile a little after the parent is gone (as nginx does)
    script = f"sh -c 'sleep 0.3; echo $$ > {pidfile}; exec sleep 100' >/dev/null 2>&1 & exit 0"
    async with make_manager(specs(d=forking(script, pidfile=str(pidfile)))) as pm:
        await pm.start("d")
        sup = pm.supervisor("d")
        assert sup.record.state.value == "running"
        main = sup.record.pid
        assert main == int(pidfile.read_text()) and cmd0(main) == b"sleep"
        assert main in pm.reaper.tracked
        await pm.stop("d")
        assert not pid_alive(main) and not pidfile.exists()


@pytest.mark.linux_only("the forked main process is watched through a pidfd and reparents to the daemon only as a subreaper")
async def test_stale_pidfile_is_not_taken_for_the_main_pid(make_manager, tmp_path):
    pidfile = tmp_path / "d.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # a live process, but not the service's
    script = f"sh -c 'sleep 0.2; echo $$ > {pidfile}; exec sleep 100' >/dev/null 2>&1 & exit 0"
    async with make_manager(specs(d=forking(script, pidfile=str(pidfile)))) as pm:
        await pm.start("d")
        assert pm.supervisor("d").record.pid not in (None, os.getpid())


@pytest.mark.linux_only("the forked main process is watched through a pidfd and reparents to the daemon only as a subreaper")
async def test_without_pidfile_the_single_root_process_is_main(make_manager):
    script = "sh -c 'sleep 100 & sleep 100 & wait' >/dev/null 2>&1 & exit 0"
    async with make_manager(specs(d=forking(script))) as pm:
        await pm.start("d")
        main = pm.supervisor("d").record.pid
        # The daemonized child may not have exec'd `sh` yet (same PID, old cmdline).
        with trio.fail_after(5):
            while cmd0(main) != b"sh":
                await trio.sleep(0.01)


async def test_failing_parent_fails_the_start(make_manager):
    async with make_manager(specs(d=forking("exit 3"))) as pm:
        sup = pm.supervisor("d")
        with pytest.raises(errors.SpawnFailed, match="status 3"):
            await pm.start("d")
        await until(sup, lambda s: s.record.state.value == "failed")
        assert "status 3" in sup.record.reason


async def test_pidfile_never_written_is_a_start_timeout(make_manager, tmp_path):
    script = "sleep 100 >/dev/null 2>&1 & exit 0"
    cfg = specs(d=forking(script, pidfile=str(tmp_path / "never.pid"), timeout_start_sec=0.5))
    async with make_manager(cfg) as pm:
        sup = pm.supervisor("d")
        with pytest.raises(errors.SpawnFailed, match="start timeout"):
            await pm.start("d")
        await until(sup, lambda s: s.record.state.value == "failed")
        assert sup.record.reason.startswith("start timeout")


@pytest.mark.linux_only("the forked main process is watched through a pidfd and reparents to the daemon only as a subreaper")
async def test_killed_main_takes_its_workers_down_before_the_restart(make_manager, tmp_path):
    pidfile = tmp_path / "d.pid"
    workers = tmp_path / "workers"
    script = (f"sh -c 'sleep 200 & echo $! >> {workers}; echo $$ > {pidfile}; wait' "
              f">/dev/null 2>&1 & exit 0")
    cfg = specs(d=forking(script, pidfile=str(pidfile), restart="always", restart_sec=0.2))
    async with make_manager(cfg) as pm:
        await pm.start("d")
        sup = pm.supervisor("d")
        first_main = sup.record.pid
        first_worker = int(workers.read_text().split()[0])
        os.kill(first_main, signal.SIGKILL)
        await until(sup, lambda s: s.record.state.value == "backoff")
        assert sup.record.exit_signal == signal.SIGKILL
        assert not pid_alive(first_worker)
        await until(sup, lambda s: s.record.state.value == "running" and s.record.runs == 2)
        assert sup.record.pid != first_main
