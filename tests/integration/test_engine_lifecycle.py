"""Lifecycle of real processes: restart policies, backoff, start limit, stop, spawn errors."""

from __future__ import annotations

import os
import signal
import time

import pytest
import trio

from support import pid_alive, specs, zombies_of
from trio_procmgr import errors
from trio_procmgr.states import State


async def next_event(sub, pred, timeout=10):
    with trio.fail_after(timeout):
        async for ev in sub:
            if pred(ev):
                return ev


def state_is(*states):
    wanted = {State(s) for s in states}
    return lambda sup: sup.record.state in wanted


async def test_simple_process_runs_and_stop_leaves_no_process(make_manager):
    async with make_manager(specs(web={"command": "sleep", "args": ["60"]})) as pm:
        rec = await pm.start("web")
        assert rec["state"] == "running" and rec["runs"] == 1
        pid = rec["pid"]
        assert pid_alive(pid)
        rec = await pm.stop("web")
        assert rec["state"] == "stopped" and rec["pid"] is None
        assert rec["exit_signal"] == signal.SIGTERM
        assert not pid_alive(pid)
        assert zombies_of(os.getpid()) == []


@pytest.mark.parametrize("policy,exit_code,restarts", [
    ("always", 0, True), ("always", 3, True),
    ("on-failure", 3, True), ("on-failure", 0, False),
    ("on-success", 0, True), ("on-success", 3, False),
    ("never", 0, False), ("never", 3, False),
])
async def test_restart_policy_decides_on_exit_status(make_manager, policy, exit_code, restarts):
    cfg = specs(job={"command": "sh", "args": ["-c", f"exit {exit_code}"], "restart": policy,
                     "restart_sec": 0.05, "start_limit_burst": 100})
    async with make_manager(cfg) as pm:
        with pm.hub.subscribe(processes={"job"}) as sub:
            await pm.start("job")
            ev = await next_event(sub, lambda e: e["type"] == "state_changed"
                                  and e["to"] in ("exited", "failed"))
            assert ev["to"] == ("exited" if exit_code == 0 else "failed")
            ev = await next_event(sub, lambda e: e["type"] == "state_changed"
                                  and e["from"] in ("exited", "failed")
                                  or e["type"] == "process_exited", timeout=2) \
                if restarts else None
            if restarts:
                assert ev["type"] == "state_changed" and ev["to"] == "backoff"
        sup = pm.supervisor("job")
        if restarts:
            assert await sup.wait_until(lambda s: s.record.runs >= 2, timeout=5)
            assert sup.record.restarts >= 1
        else:
            assert sup.record.runs == 1 and sup.record.restarts == 0


async def test_exponential_backoff_spacing_doubles(make_manager):
    cfg = specs(flappy={"command": "false", "restart": "always", "restart_sec": 0.1,
                        "restart_max_delay": 10, "start_limit_burst": 100})
    async with make_manager(cfg) as pm:
        with pm.hub.subscribe(processes={"flappy"}, types={"restart_scheduled",
                                                             "process_started"}) as sub:
            await pm.start("flappy")
            delays, starts = [], []
            with trio.fail_after(10):
                async for ev in sub:
                    if ev["type"] == "restart_scheduled":
                        delays.append(ev["delay"])
                    else:
                        starts.append(trio.current_time())
                    if len(starts) == 4:
                        break
        assert delays[:3] == [0.1, 0.2, 0.4]
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        for gap, delay in zip(gaps, delays):
            assert gap >= delay * 0.9


async def test_start_limit_crashes_and_manual_start_resets_it(make_manager):
    cfg = specs(bad={"command": "false", "restart": "on-failure", "restart_sec": 0.01,
                     "start_limit_burst": 3, "start_limit_interval": 60})
    async with make_manager(cfg) as pm:
        with pm.hub.subscribe(processes={"bad"}) as sub:
            await pm.start("bad")
            await next_event(sub, lambda e: e["type"] == "start_limit_hit")
        sup = pm.supervisor("bad")
        assert await sup.wait_until(state_is("crashed"), timeout=5)
        assert sup.record.runs == 3
        assert "start limit" in sup.record.reason
        # The circuit stays open: nothing restarts it on its own.
        with trio.move_on_after(0.3):
            await sup.wait_until(lambda s: s.record.runs > 3)
        assert sup.record.runs == 3
        # A manual start closes the circuit: three more starts are allowed.
        await pm.start("bad")
        assert await sup.wait_until(state_is("crashed"), timeout=5)
        assert sup.record.runs == 6


async def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(make_manager):
    script = "trap '' TERM; echo ready; while :; do sleep 0.05; done"
    cfg = specs(stubborn={"command": "sh", "args": ["-c", script], "timeout_stop_sec": 0.5})
    async with make_manager(cfg) as pm:
        rec = await pm.start("stubborn")
        sup = pm.supervisor("stubborn")
        with trio.fail_after(5):
            while not sup.ring.tail():
                await sup.ring.wait_new()
        t0 = time.monotonic()
        rec = await pm.stop("stubborn")
        elapsed = time.monotonic() - t0
        assert rec["exit_signal"] == signal.SIGKILL
        assert 0.4 <= elapsed < 5
        assert not pid_alive(rec["pid"] or 0)


GRANDCHILD = ("import os, sys, time\n"
              "pid = os.fork()\n"
              "if pid == 0:\n"
              "    os.setsid()\n"
              "    open(sys.argv[1], 'w').write(str(os.getpid()))\n"
              "    time.sleep(60)\n"
              "    os._exit(0)\n"
              "time.sleep(60)\n")


def read_pid(path, deadline=5.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            text = open(path).read()
        except FileNotFoundError:
            text = ""
        if text:
            return int(text)
        time.sleep(0.01)
    raise AssertionError("grandchild never wrote its pid")


async def wait_file_pid(path):
    with trio.fail_after(5):
        while not (os.path.exists(path) and open(path).read()):
            await trio.sleep(0.01)
    return int(open(path).read())


@pytest.mark.linux_only("a setsid grandchild is found only through the service cgroup")
async def test_grandchild_survives_kill_mode_process_but_dies_under_control_group(make_manager, tmp_path):
    import sys
    gpid_file = tmp_path / "g.pid"
    gpid_file2 = tmp_path / "g2.pid"
    cfg = specs(
        lax={"command": sys.executable, "args": ["-c", GRANDCHILD, str(gpid_file)],
             "kill_mode": "process"},
        strict={"command": sys.executable, "args": ["-c", GRANDCHILD, str(gpid_file2)],
                "kill_mode": "control-group"},
    )
    async with make_manager(cfg) as pm:
        assert pm.cgroups is not None, "this machine has a v2 hierarchy: cgroups must be used"
        await pm.start("lax")
        await pm.start("strict")
        g1 = await wait_file_pid(gpid_file)
        g2 = await wait_file_pid(gpid_file2)
        await pm.stop("lax")
        await pm.stop("strict")
        assert pid_alive(g1), "kill_mode process must leave the grandchild alone"
        assert not pid_alive(g2), "control-group must kill the whole cgroup"
        os.kill(g1, signal.SIGKILL)
        with trio.fail_after(5):  # the reaper collects the adopted orphan on SIGCHLD
            while os.path.exists(f"/proc/{g1}"):
                await pm.reaper.wait_change()
    assert zombies_of(os.getpid()) == []


async def test_process_group_mode_kills_the_group_without_cgroups(make_manager, tmp_path):
    import sys
    script = ("import os, sys, time\n"
              "if os.fork() == 0:\n"
              "    open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)\n"
              "time.sleep(60)\n")
    cfg = specs(grp={"command": sys.executable, "args": ["-c", script, str(tmp_path / "c.pid")],
                     "kill_mode": "control-group"})
    async with make_manager(cfg, use_cgroups=False) as pm:
        assert any("falls back to process-group" in w for w in pm.warnings)
        await pm.start("grp")
        child = await wait_file_pid(tmp_path / "c.pid")
        assert pm.describe("grp")["kill_mode_effective"] == "process-group"
        await pm.stop("grp")
        assert not pid_alive(child)
    assert zombies_of(os.getpid()) == []


@pytest.mark.linux_only("orphans reparent to the daemon only when it is a child subreaper")
async def test_orphans_reparented_to_us_are_reaped(make_manager):
    # The main process double-forks a short-lived grandchild and keeps running.
    script = "sh -c 'sleep 0.1 &' ; sleep 60"
    async with make_manager(specs(parent={"command": "sh", "args": ["-c", script]})) as pm:
        await pm.start("parent")
        with trio.fail_after(5):
            while pm.reaper.reaped == 0:
                await pm.reaper.wait_change()
        assert zombies_of(os.getpid()) == []


@pytest.mark.parametrize("raw,words", [
    ({"command": "/nonexistent/binary"}, "No such file"),
    ({"command": "definitely-not-a-command-xyz"}, "command not found"),
    ({"command": "sleep", "args": ["1"], "working_dir": "/nonexistent-dir"}, "working directory"),
    ({"command": "sleep", "args": ["1"], "user": "no-such-user-xyz"}, "unknown user"),
    ({"command": "NOEXEC"}, "Permission denied"),
])
async def test_spawn_failure_is_a_failed_start_with_the_os_reason(make_manager, tmp_path, raw, words):
    if raw["command"] == "NOEXEC":
        target = tmp_path / "not-executable"
        target.write_text("#!/bin/sh\n")
        target.chmod(0o644)
        raw = {"command": str(target)}
    cfg = specs(broken=raw, fine={"command": "sleep", "args": ["60"]})
    async with make_manager(cfg) as pm:
        await pm.start("fine")
        with pytest.raises(errors.ProcMgrError) as info:
            await pm.start("broken")
        assert info.value.code == "SPAWN_FAILED"
        assert words in info.value.message
        rec = pm.describe("broken")
        assert rec["state"] == "failed" and words in rec["reason"]
        assert pm.describe("fine")["state"] == "running"


async def test_oneshot_is_starting_until_it_exits(make_manager, tmp_path):
    cfg = specs(setup={"command": "sh", "args": ["-c", "sleep 0.3; exit 0"],
                       "process_type": "oneshot"})
    async with make_manager(cfg) as pm:
        with pm.hub.subscribe(processes={"setup"}, types={"state_changed"}) as sub:
            rec = await pm.start("setup")
            assert rec["state"] == "exited"
            seen = []
            while (ev := sub.get_nowait()) is not None:
                seen.append(ev["to"])
        assert seen == ["starting", "exited"]


async def test_oneshot_timeout_fails_it(make_manager):
    cfg = specs(slow={"command": "sleep", "args": ["30"], "process_type": "oneshot",
                      "timeout_start_sec": 0.3})
    async with make_manager(cfg) as pm:
        with pytest.raises(errors.ProcMgrError):
            await pm.start("slow")
        rec = pm.describe("slow")
        assert rec["state"] == "failed" and "start timeout" in rec["reason"]


async def test_pause_stops_cpu_use_and_resume_restarts_it(make_manager):
    import psutil
    cfg = specs(spin={"command": "sh", "args": ["-c", "while :; do :; done"]})
    async with make_manager(cfg) as pm:
        rec = await pm.start("spin")
        proc = psutil.Process(rec["pid"])
        await pm.pause("spin")
        assert pm.describe("spin")["state"] == "paused"
        t0 = sum(proc.cpu_times()[:2])
        await trio.sleep(0.3)  # measuring a rate over an interval, not waiting for an event
        assert sum(proc.cpu_times()[:2]) - t0 < 0.02
        await pm.resume("spin")
        assert pm.describe("spin")["state"] == "running"
        t0 = sum(proc.cpu_times()[:2])
        with trio.fail_after(10):  # resumed: it burns CPU again, however loaded the box is
            while sum(proc.cpu_times()[:2]) - t0 < 0.04:
                await trio.sleep(0.02)


async def test_stop_of_paused_process_still_terminates(make_manager):
    async with make_manager(specs(p={"command": "sleep", "args": ["60"]})) as pm:
        rec = await pm.start("p")
        await pm.pause("p")
        rec2 = await pm.stop("p")
        assert rec2["state"] == "stopped"
        assert not pid_alive(rec["pid"])


async def test_manual_stop_prevents_restart(make_manager):
    cfg = specs(svc={"command": "sleep", "args": ["60"], "restart": "always", "restart_sec": 0.01})
    async with make_manager(cfg) as pm:
        await pm.start("svc")
        await pm.stop("svc")
        sup = pm.supervisor("svc")
        with trio.move_on_after(0.2):
            await sup.wait_until(lambda s: s.record.state is not State.STOPPED)
        assert sup.record.state is State.STOPPED and sup.record.runs == 1


async def test_killed_process_restarts_and_stop_during_backoff_is_stopped(make_manager):
    cfg = specs(svc={"command": "sleep", "args": ["60"], "restart": "always", "restart_sec": 5})
    async with make_manager(cfg) as pm:
        rec = await pm.start("svc")
        os.kill(rec["pid"], signal.SIGKILL)
        sup = pm.supervisor("svc")
        assert await sup.wait_until(state_is("backoff"), timeout=5)
        d = pm.describe("svc")
        assert d["next_restart_at"] is not None and d["exit_signal"] == signal.SIGKILL
        await pm.stop("svc")
        assert sup.record.state is State.STOPPED and sup.record.next_restart_at is None


async def test_errors_for_unknown_and_duplicate_names(make_manager):
    async with make_manager(specs(a={"command": "sleep", "args": ["60"]})) as pm:
        with pytest.raises(errors.ProcMgrError) as info:
            await pm.start("nope")
        assert info.value.code == "PROCESS_NOT_FOUND"
        with pytest.raises(errors.ProcMgrError) as info:
            await pm.create("a", {"command": "true"})
        assert info.value.code == "ALREADY_EXISTS"
        await pm.start("a")
        with pytest.raises(errors.ProcMgrError) as info:
            await pm.start("a")
        assert info.value.code == "ALREADY_RUNNING"
        with pytest.raises(errors.ProcMgrError) as info:
            await pm.delete("a")
        assert info.value.code == "INVALID_STATE"
        await pm.delete("a", force=True)
        assert pm.list() == []


async def test_reference_by_id_everywhere(make_manager):
    async with make_manager() as pm:
        rec = await pm.create("x", {"command": "sleep", "args": ["60"]})
        started = await pm.start(rec["id"])
        assert started["name"] == "x" and started["state"] == "running"
        assert pm.describe(rec["id"])["name"] == "x"
        await pm.stop(rec["id"])


async def test_update_merges_maps_and_reports_hot_and_restart_fields(make_manager):
    cfg = specs(u={"command": "sleep", "args": ["60"],
                   "resources": {"limits": {"memory": "256M", "cpu": 1}},
                   "env": {"A": "1", "B": "2"}})
    async with make_manager(cfg) as pm:
        rec = await pm.start("u")
        out = await pm.update("u", {"resources": {"limits": {"cpu": 2}}, "restart": "always"})
        assert set(out["updated_fields"]) == {"resources", "restart"}
        assert out["restart_required"] == [] and not out["restarted"]
        spec = pm.supervisor("u").spec
        assert spec.resources.limits.memory == 256_000_000 and spec.resources.limits.cpu == 2
        assert pm.describe("u")["pid"] == rec["pid"]  # hot: no restart
        dry = await pm.update("u", {"env": {"B": None, "C": "3"}}, dry_run=True)
        assert dry["restart_required"] == ["env"] and dry["dry_run"]
        assert dict(pm.supervisor("u").spec.env) == {"A": "1", "B": "2"}
        out = await pm.update("u", {"env": {"B": None, "C": "3"}}, restart_process=True)
        assert out["restarted"] and dict(pm.supervisor("u").spec.env) == {"A": "1", "C": "3"}
        assert pm.describe("u")["pid"] != rec["pid"]
