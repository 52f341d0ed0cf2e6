"""Engine timing on Trio's MockClock: backoff spacing, start-limit windows and stop
escalation, checked in virtual time (deterministic, no real waiting).

Backoff and start limits need no child at all: a command that does not exist fails
every start before a spawn, so the whole restart loop runs inside the engine and the
autojump clock can jump every timer. Stop escalation needs a real child that ignores
SIGTERM; there the clock stands still (rate 0) and the test moves it by hand, so no
timeout can run out while the real child is busy. Health probes and the watchdog run
against a real child on an autojump clock with a 0.3 s threshold: it jumps only when
nothing real (a refused connect, a dying child) is pending, and virtual times stay exact.
"""

from __future__ import annotations

import signal
import socket

import pytest
import trio
import trio.testing

from support import PYTHON, pid_alive, specs
from trio_procmgr import errors
from trio_procmgr.engine.clock import TrioWallClock

MISSING = "/nonexistent/dd-procmgr-test-binary"


async def collect_restarts(pm, name, count):
    """(virtual time of each start, scheduled delays) over ``count`` automatic restarts."""
    spawns, delays = [], []
    with pm.hub.subscribe(processes={name}) as sub:
        with pytest.raises(errors.SpawnFailed):
            await pm.start(name)  # spawns nothing: the failure is already queued as events
        async for ev in sub:
            if ev["type"] == "restart_scheduled":
                delays.append(ev["delay"])
            elif ev["type"] == "state_changed" and ev["to"] == "starting":
                spawns.append(trio.current_time())
                if len(spawns) > count:
                    return spawns, delays


async def test_backoff_doubles_from_restart_sec_up_to_the_cap(make_manager, autojump_clock):
    cfg = specs(job={"command": MISSING, "restart": "always", "restart_sec": 1,
                     "restart_max_delay": 8, "start_limit_burst": 100})
    async with make_manager(cfg, clock=TrioWallClock()) as pm:
        spawns, delays = await collect_restarts(pm, "job", 6)
        await pm.stop("job")
    assert delays[:6] == [1, 2, 4, 8, 8, 8]
    gaps = [round(b - a, 6) for a, b in zip(spawns, spawns[1:])]
    assert gaps == [1, 2, 4, 8, 8, 8]


async def test_next_restart_at_is_stamped_from_the_engine_clock(make_manager, autojump_clock):
    clock = TrioWallClock(epoch=1000.0)
    cfg = specs(job={"command": MISSING, "restart": "always", "restart_sec": 3,
                     "backoff": "fixed", "start_limit_burst": 100})
    async with make_manager(cfg, clock=clock) as pm:
        with pm.hub.subscribe(processes={"job"}, types={"restart_scheduled"}) as sub:
            with pytest.raises(errors.SpawnFailed):
                await pm.start("job")
            async for ev in sub:
                assert ev["at"] == clock.now() + 3
                break
        await pm.stop("job")


async def test_start_limit_crashes_when_the_window_holds_burst_starts(make_manager,
                                                                      autojump_clock):
    cfg = specs(job={"command": MISSING, "restart": "always", "restart_sec": 1,
                     "backoff": "fixed", "start_limit_burst": 3,
                     "start_limit_interval": 2.5})
    async with make_manager(cfg, clock=TrioWallClock()) as pm:
        with pm.hub.subscribe(processes={"job"}, types={"start_limit_hit"}) as sub:
            with pytest.raises(errors.SpawnFailed):
                await pm.start("job")
            async for _ in sub:
                break
        sup = pm.supervisor("job")
        assert sup.record.state.value == "crashed" and sup.record.runs == 3
        assert trio.current_time() == 2.0  # starts at 0, 1 and 2; the third exit hits it


async def test_starts_spread_wider_than_the_window_never_hit_the_limit(make_manager,
                                                                       autojump_clock):
    cfg = specs(job={"command": MISSING, "restart": "always", "restart_sec": 1,
                     "backoff": "fixed", "start_limit_burst": 3,
                     "start_limit_interval": 1.5})
    async with make_manager(cfg, clock=TrioWallClock()) as pm:
        spawns, _ = await collect_restarts(pm, "job", 10)
        assert pm.supervisor("job").record.state.value != "crashed"
        await pm.stop("job")
    assert spawns[-1] == 10.0


async def still_alive_after(follow, inst, count):
    """True once the child printed ``count`` more ``tick`` lines (proof, in its own
    output, that it lives on); False as soon as it exits instead."""
    alive = False

    async def count_ticks(cancel_scope):
        nonlocal alive
        seen = 0
        async for item in follow:
            seen += item.get("line") == "tick"
            if seen >= count:
                alive = True
                cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(count_ticks, nursery.cancel_scope)
        await inst.exited.wait()
        nursery.cancel_scope.cancel()
    return alive


async def test_stop_escalates_to_sigkill_exactly_at_timeout_stop_sec(make_manager, mock_clock):
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True)\n"
            "while True: print('tick', flush=True); time.sleep(0.02)")
    cfg = specs(stubborn={"command": PYTHON, "args": ["-c", code], "ready_log_line": "ready",
                          "timeout_stop_sec": 30, "timeout_start_sec": 0})
    async with make_manager(cfg, clock=TrioWallClock()) as pm:
        sup = pm.supervisor("stubborn")
        with pm.hub.subscribe(processes={"stubborn"}) as sub:
            await pm.start("stubborn")
            async for ev in sub:
                if ev["type"] == "state_changed" and ev["to"] == "running":
                    break
        pid = sup.record.pid
        with pm.follow_logs("stubborn") as follow:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pm.stop, "stubborn")
                await sup.wait_until(lambda s: s.record.state.value == "stopping")
                mock_clock.jump(29.9)
                await trio.testing.wait_all_tasks_blocked()
                # SIGTERM is ignored and no SIGKILL comes before 30 s
                assert await still_alive_after(follow, sup.instance, 10)
                assert sup.record.state.value == "stopping"
                mock_clock.jump(0.1)
        assert sup.record.state.value == "stopped"
        assert sup.record.exit_signal == signal.SIGKILL and not pid_alive(pid)


async def test_health_goes_unhealthy_after_retries_and_kills_after_restart_after(
        make_manager, mock_clock):
    """Probes every 10 s of virtual time: unhealthy at the 2nd failure (t=10), killed as
    a failure at the 3rd (t=20). The clock jumps only after 0.3 s of real idleness, so a
    refused connection or a dying child (real I/O) is never overtaken by a jump."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    mock_clock.autojump_threshold = 0.3
    cfg = specs(svc={"command": "sleep", "args": ["600"], "restart": "never",
                     "health_check": {"type": "tcp", "tcp_address": f"127.0.0.1:{closed}",
                                      "interval": 10, "retries": 2, "restart_after": 3}})
    seen = {}
    async with make_manager(cfg, clock=TrioWallClock()) as pm:
        with pm.hub.subscribe(processes={"svc"}) as sub:
            await pm.start("svc")
            async for ev in sub:
                if ev["type"] == "health_changed" and ev["to"] == "unhealthy":
                    seen["unhealthy"] = trio.current_time()
                if ev["type"] == "state_changed" and ev["to"] == "failed":
                    seen["failed"] = trio.current_time()
                    seen["reason"] = ev["reason"]
                    break
    assert seen["unhealthy"] == 10.0
    assert seen["failed"] == 20.0  # SIGTERM ends `sleep` at once: no stop timeout runs out
    assert "health check failed 3 times" in seen["reason"]


async def test_a_missed_watchdog_aborts_the_service_exactly_at_watchdog_sec(
        make_manager, mock_clock):
    """No ping ever comes: SIGABRT at t=30 of virtual time, a failure (real child, so
    the clock jumps only after 0.3 s of real idleness)."""
    mock_clock.autojump_threshold = 0.3
    cfg = specs(w={"command": "sleep", "args": ["600"], "watchdog_sec": 30,
                   "restart": "never"})
    async with make_manager(cfg, clock=TrioWallClock()) as pm:
        with pm.hub.subscribe(processes={"w"}, types={"state_changed"}) as sub:
            await pm.start("w")
            async for ev in sub:
                if ev["to"] == "failed":
                    break
        rec = pm.supervisor("w").record
        assert trio.current_time() == 30.0
        assert rec.exit_signal == signal.SIGABRT and rec.reason.startswith("watchdog")
