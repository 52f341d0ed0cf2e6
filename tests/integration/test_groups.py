"""Supervision groups (SPEC §6.3) with real processes: each strategy, intensity, escalation."""

from __future__ import annotations

import os
import signal

import trio
import trio.testing

from support import specs
from trio_procmgr.spec import ConfigSet, GroupSpec


def member(**fields):
    return {"command": "sleep", "args": ["60"], "restart": "always", "restart_sec": 0.1,
            "backoff": "fixed", "auto_start": True, "timeout_stop_sec": 5, **fields}


def grouped(strategy: str, *, max_restarts: int = 5, max_seconds: float = 10.0,
            **processes) -> ConfigSet:
    base = specs(**processes)
    names = tuple(processes)
    group = GroupSpec(name="g", members=names, strategy=strategy, max_restarts=max_restarts,
                      max_seconds=max_seconds)
    return ConfigSet(processes=base.processes, groups={"g": group})


def pids(pm, *names):
    return {n: pm.supervisor(n).record.pid for n in names}


async def crash(pm, name: str) -> None:
    os.kill(pm.supervisor(name).record.pid, signal.SIGKILL)


async def wait_restarted(pm, name: str, old_pid: int, timeout: float = 5.0) -> None:
    ok = await pm.supervisor(name).wait_until(
        lambda s: s.record.state.value == "running" and s.record.pid not in (None, old_pid),
        timeout=timeout)
    assert ok, f"{name} did not come back: {pm.supervisor(name).record.state.value}"


async def test_one_for_one_restarts_only_the_failed_member(make_manager):
    async with make_manager(grouped("one_for_one", a=member(), b=member(), c=member())) as pm:
        before = pids(pm, "a", "b", "c")
        await crash(pm, "b")
        await wait_restarted(pm, "b", before["b"])
        after = pids(pm, "a", "b", "c")
        assert after["a"] == before["a"] and after["c"] == before["c"]
        assert pm.describe("b")["group"]["restarts"] == 1


async def test_one_for_all_stops_all_in_reverse_and_starts_all_in_order(make_manager):
    async with make_manager(grouped("one_for_all", a=member(), b=member(), c=member())) as pm:
        before = pids(pm, "a", "b", "c")
        await crash(pm, "b")
        for name in ("a", "b", "c"):
            await wait_restarted(pm, name, before[name])
        rec = {n: pm.supervisor(n).record for n in ("a", "b", "c")}
        assert rec["c"].started_at >= rec["b"].started_at >= rec["a"].started_at
        assert rec["a"].restarts == 1 and rec["c"].restarts == 1


async def test_one_for_all_stop_order_is_reverse_member_order(make_manager):
    async with make_manager(grouped("one_for_all", a=member(), b=member(), c=member())) as pm:
        with pm.hub.subscribe() as sub:
            before = pids(pm, "a", "b", "c")
            await crash(pm, "a")
            for name in ("a", "b", "c"):
                await wait_restarted(pm, name, before[name])
            stopped = []
            while (ev := sub.get_nowait()) is not None:
                if ev["type"] == "state_changed" and ev["to"] == "stopped":
                    stopped.append(ev["process"])
                    assert "because 'a' failed" in ev["reason"]
        assert stopped == ["c", "b"]


async def test_rest_for_one_restarts_the_failed_member_and_those_after_it(make_manager):
    async with make_manager(grouped("rest_for_one", a=member(), b=member(), c=member())) as pm:
        before = pids(pm, "a", "b", "c")
        await crash(pm, "b")
        await wait_restarted(pm, "b", before["b"])
        await wait_restarted(pm, "c", before["c"])
        assert pids(pm, "a")["a"] == before["a"]
        assert pm.supervisor("c").record.started_at >= pm.supervisor("b").record.started_at


async def test_member_whose_policy_does_not_restart_does_not_trigger_the_group(make_manager):
    cfg = grouped("one_for_all", a=member(), b=member(restart="never"), c=member())
    async with make_manager(cfg) as pm:
        before = pids(pm, "a", "c")
        await crash(pm, "b")
        ok = await pm.supervisor("b").wait_until(lambda s: s.record.state.value == "failed",
                                                 timeout=5)
        assert ok
        await trio.testing.wait_all_tasks_blocked()  # a (wrong) group round has begun by now
        assert pids(pm, "a", "c") == before
        assert {state for state in (pm.supervisor(n).record.state.value for n in "ac")} \
            == {"running"}
        assert pm.describe("a")["group"]["restarts"] == 0


async def test_past_max_restarts_the_group_stops_and_is_crashed(make_manager):
    flaky = {"command": "sh", "args": ["-c", "sleep 0.1; exit 1"], "restart": "always",
             "restart_sec": 0.05, "backoff": "fixed", "auto_start": True}
    cfg = grouped("one_for_one", max_restarts=2, max_seconds=30,
                  steady=member(), flaky=flaky, tail=member())
    async with make_manager(cfg) as pm:
        with pm.hub.subscribe() as sub:
            with trio.fail_after(5):
                async for ev in sub:
                    if ev["type"] == "group_escalated":
                        break
            assert ev["group"] == "g" and ev["process"] == "flaky"
        for name in ("steady", "flaky", "tail"):
            ok = await pm.supervisor(name).wait_until(
                lambda s: s.record.state.value == "stopped", timeout=5)
            assert ok, pm.supervisor(name).record.state
            assert "escalated" in pm.supervisor(name).record.reason
        assert pm.describe("steady")["group"]["state"] == "crashed"
        assert pm.supervisor("flaky").record.restarts == 2
        with pm.hub.subscribe(processes={"steady", "flaky", "tail"},
                              types={"state_changed"}) as changes:
            with trio.move_on_after(0.5):  # ten restart_sec: no member comes back on its own
                change = await changes.get()
                raise AssertionError(f"a member of the crashed group moved on its own: {change}")
        assert {pm.supervisor(n).record.state.value for n in ("steady", "flaky", "tail")} \
            == {"stopped"}
        await pm.start("steady")  # a manual start re-arms the group
        assert pm.describe("steady")["group"]["state"] == "running"
