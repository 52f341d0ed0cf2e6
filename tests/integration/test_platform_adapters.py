"""Both adapters run real services; describe says which mechanisms are in effect."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest
import trio

from tests.integration.rpc_daemon import rpc_daemon_factory  # noqa: F401  (fixture)
from tests.support import pid_alive, specs
from trio_procmgr.platform.choice import choose_platform
from trio_procmgr.platform.linux import linux_works

LINUX_OK, LINUX_WHY = linux_works()


async def _output_line(sup, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not sup.ring.tail():
            await sup.ring.wait_new()


async def test_portable_adapter_runs_stops_and_pauses_through_the_process_group(make_manager):
    cfg = specs(svc={"command": "sh", "args": ["-c", "sleep 300 & echo up; wait"],
                     "kill_mode": "control-group"})
    async with make_manager(cfg, platform=choose_platform("portable")) as pm:
        rec = await pm.start("svc")
        sup = pm.supervisor("svc")
        await _output_line(sup)
        d = pm.describe("svc")
        assert d["platform"] == "portable"
        assert d["cgroup"] is None and d["kill_mode_effective"] == "process-group"
        assert d["mechanisms"]["exit_detection"].startswith("waitpid")
        assert d["mechanisms"]["pause"].startswith("SIGSTOP")
        assert sup.instance.child.pidfd is None and sup.instance.child.popen is not None
        group = {p.pid for p in psutil.process_iter() if _pgid(p.pid) == rec["pid"]}
        assert len(group) == 2  # sh and its sleep
        await pm.pause("svc")
        with trio.fail_after(10):  # SIGSTOP takes effect when the kernel next schedules them
            while {psutil.Process(p).status() for p in group} != {psutil.STATUS_STOPPED}:
                await trio.sleep(0.01)
        await pm.resume("svc")
        rec = await pm.stop("svc")
        assert rec["state"] == "stopped"
        assert not any(pid_alive(p) for p in group)


async def test_portable_adapter_reports_the_exit_status_through_waitpid(make_manager):
    cfg = specs(fails={"command": "sh", "args": ["-c", "exit 7"], "restart": "never"})
    async with make_manager(cfg, platform=choose_platform("portable")) as pm:
        await pm.start("fails")
        sup = pm.supervisor("fails")
        assert await sup.wait_until(lambda s: s.record.exit_code is not None, timeout=10)
        assert sup.record.exit_code == 7


@pytest.mark.skipif(not LINUX_OK, reason=f"the linux adapter cannot run here: {LINUX_WHY}")
async def test_linux_adapter_describes_pidfd_and_cgroup_mechanisms(make_manager):
    cfg = specs(svc={"command": "sleep", "args": ["300"]})
    async with make_manager(cfg, platform=choose_platform("linux")) as pm:
        await pm.start("svc")
        d = pm.describe("svc")
        assert d["platform"] == "linux"
        assert d["mechanisms"]["exit_detection"].startswith("pidfd")
        assert d["mechanisms"]["pause"] == "cgroup freezer"
        assert pm.supervisor("svc").instance.child.pidfd is not None


def test_daemon_platform_flag_selects_the_adapter(rpc_daemon_factory):  # noqa: F811
    daemon = rpc_daemon_factory("--platform", "portable")
    with daemon.client() as client:
        client.call("create", name="made", config={"command": "sleep", "args": ["300"]},
                    start=True)
        d = client.call("describe", name="made")["record"]
    assert d["platform"] == "portable"
    assert "waitpid" in d["mechanisms"]["exit_detection"]


def test_an_unknown_platform_in_the_environment_is_a_clear_start_error(tmp_path):
    env = dict(os.environ, DD_PM_PLATFORM="windows")
    done = subprocess.run(
        [sys.executable, "-m", "trio_procmgr.daemon.main", "--config-dir", str(tmp_path),
         "--socket", str(tmp_path / "s.sock"), "--state-dir", str(tmp_path / "state")],
        env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "unknown platform 'windows'" in done.stderr
    assert "Traceback" not in done.stderr


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None

