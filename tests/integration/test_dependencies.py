"""SPEC §6.1 with real processes: every directive row, ordering, concurrency, shutdown order.

Children record what they do in a shared file (``<time.time()> <name> <event>`` lines), so
ordering is checked by the children's own clocks as well as by the daemon's records.
"""

from __future__ import annotations

import os
import signal

import pytest
import trio
import trio.testing

from support import PYTHON, specs, wait_failed_probes
from trio_procmgr import errors
from trio_procmgr.engine.messages import Stop
from trio_procmgr.config.loader import parse_process
from trio_procmgr.spec import ConfigSet

S_TERM_LOGGER = (
    "import os, signal, sys, time\n"
    "name, path, stop_delay = sys.argv[1], sys.argv[2], float(sys.argv[3])\n"
    "def log(ev):\n"
    "    with open(path, 'a') as f: f.write(f'{time.time()} {name} {ev}\\n')\n"
    "def term(*_):\n"
    "    log('stopping'); time.sleep(stop_delay); log('stopped'); sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, term)\n"
    "log('start')\n"
    "while True: time.sleep(60)\n"
)

ONESHOT = (
    "import sys, time\n"
    "name, path, delay, code = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])\n"
    "def log(ev):\n"
    "    with open(path, 'a') as f: f.write(f'{time.time()} {name} {ev}\\n')\n"
    "log('start'); time.sleep(delay); log('done'); sys.exit(code)\n"
)


@pytest.fixture
def journal(tmp_path):
    return str(tmp_path / "journal")


def service(name: str, journal: str, *, stop_delay: float = 0.0, **fields):
    return {"command": PYTHON, "args": ["-c", S_TERM_LOGGER, name, journal, str(stop_delay)],
            "auto_start": False, "timeout_stop_sec": 5, **fields}


def oneshot(name: str, journal: str, *, delay: float = 0.0, code: int = 0, **fields):
    return {"command": PYTHON, "args": ["-c", ONESHOT, name, journal, str(delay), str(code)],
            "process_type": "oneshot", "auto_start": False, **fields}


def read_journal(path: str) -> dict[tuple[str, str], float]:
    """(name, event) -> time of its first occurrence."""
    seen: dict[tuple[str, str], float] = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                t, name, ev = line.split()
                seen.setdefault((name, ev), float(t))
    return seen


async def wait_journal(path: str, *keys: tuple[str, str], timeout: float = 5.0) -> dict:
    with trio.fail_after(timeout):
        while True:
            seen = read_journal(path)
            if all(k in seen for k in keys):
                return seen
            await trio.sleep(0.02)


def state(pm, name: str) -> str:
    return pm.supervisor(name).record.state.value


async def wait_state(pm, name: str, *wanted: str, timeout: float = 5.0) -> None:
    ok = await pm.supervisor(name).wait_until(lambda s: s.record.state.value in wanted,
                                              timeout=timeout)
    assert ok, f"{name} is {state(pm, name)} ({pm.supervisor(name).record.reason}), wanted {wanted}"


# --- requires / wants / binds_to: pull in and order -----------------------------------------

async def test_requires_pulls_in_the_dependency_and_after_orders_it(make_manager, journal):
    cfg = specs(migrate=oneshot("migrate", journal, delay=0.3),
                api=service("api", journal, requires=["migrate"], after=["migrate"]))
    async with make_manager(cfg) as pm:
        await pm.start("api")
        assert state(pm, "migrate") == "exited" and state(pm, "api") == "running"
        seen = await wait_journal(journal, ("api", "start"))
        assert seen[("api", "start")] >= seen[("migrate", "done")]
        rec = {n: pm.supervisor(n).record for n in ("migrate", "api")}
        assert rec["api"].started_at >= rec["migrate"].ended_at


async def test_database_cache_api_frontend_start_in_dependency_order(make_manager, journal):
    cfg = specs(database=oneshot("database", journal, delay=0.1),
                cache=oneshot("cache", journal, delay=0.1, requires=["database"], after=["database"]),
                api=service("api", journal, requires=["database", "cache"],
                            after=["database", "cache"]),
                frontend=service("frontend", journal, wants=["api"], after=["api"]))
    async with make_manager(cfg) as pm:
        await pm.start("frontend")
        seen = await wait_journal(journal, ("api", "start"), ("frontend", "start"))
        assert seen[("database", "done")] <= seen[("cache", "start")]
        assert seen[("cache", "done")] <= seen[("api", "start")]
        # api is simple (up at exec, no readiness signal): order by the daemon's records
        rec = {n: pm.supervisor(n).record for n in ("api", "frontend")}
        assert rec["api"].started_at <= rec["frontend"].started_at


async def test_wants_pulls_in_but_its_failure_does_not_fail_the_dependant(make_manager, journal):
    cfg = specs(api=oneshot("api", journal, code=3),
                frontend=service("frontend", journal, wants=["api"], after=["api"]))
    async with make_manager(cfg) as pm:
        await pm.start("frontend")
        assert state(pm, "api") == "failed"
        assert state(pm, "frontend") == "running"


@pytest.mark.parametrize("directive", ["requires", "binds_to"])
async def test_failed_hard_dependency_fails_dependants_naming_culprit_and_reason(
        make_manager, journal, directive):
    cfg = specs(database=oneshot("database", journal, code=3),
                cache=service("cache", journal, **{directive: ["database"]}, after=["database"]),
                api=service("api", journal, requires=["cache"], after=["cache"]))
    async with make_manager(cfg) as pm:
        with pm.hub.subscribe() as sub:
            with pytest.raises(errors.DependencyFailed) as info:
                await pm.start("api")
            events = []
            while (ev := sub.get_nowait()) is not None:
                events.append(ev)
        err = info.value
        assert err.details["dependency"] == "cache"
        assert "database" in err.message and "exited with status 3" in err.message
        assert state(pm, "database") == "failed"
        assert state(pm, "cache") == state(pm, "api") == "created"  # never spawned
        failed = {e["process"]: e for e in events if e["type"] == "dependency_failed"}
        assert failed["cache"]["dependency"] == "database"
        assert failed["cache"]["directive"] == directive
        assert failed["api"]["dependency"] == "cache"


async def test_independent_branches_start_concurrently(make_manager, journal):
    cfg = specs(left=oneshot("left", journal, delay=0.3),
                right=oneshot("right", journal, delay=0.3),
                top=service("top", journal, requires=["left", "right"], after=["left", "right"]))
    async with make_manager(cfg) as pm:
        t0 = trio.current_time()
        await pm.start("top")
        elapsed = trio.current_time() - t0
        seen = read_journal(journal)
        assert abs(seen[("left", "start")] - seen[("right", "start")]) < 0.2
        assert elapsed < 0.6, f"two 0.3 s branches took {elapsed:.2f}s: not concurrent"


async def test_after_orders_without_pulling_in_and_before_is_the_mirror(make_manager, journal):
    cfg = specs(first=oneshot("first", journal, delay=0.2, auto_start=True),
                second=service("second", journal, after=["first"], auto_start=True),
                zero=oneshot("zero", journal, delay=0.2, before=["first"], auto_start=True),
                alone=service("alone", journal, after=["nobody-started"]),
                **{"nobody-started": service("nobody-started", journal)})
    async with make_manager(cfg) as pm:
        seen = await wait_journal(journal, ("second", "start"))
        assert seen[("zero", "done")] <= seen[("first", "start")]
        assert seen[("first", "done")] <= seen[("second", "start")]
        await pm.start("alone")
        assert state(pm, "nobody-started") == "created"


# --- stop propagation -----------------------------------------------------------------------

async def test_requires_dependant_stops_when_the_other_is_stopped_on_request_not_on_crash(
        make_manager, journal):
    cfg = specs(db=service("db", journal), api=service("api", journal, requires=["db"],
                                                        after=["db"]))
    async with make_manager(cfg) as pm:
        await pm.start("api")
        os.kill(pm.supervisor("db").record.pid, signal.SIGKILL)
        await wait_state(pm, "db", "failed")
        await trio.testing.wait_all_tasks_blocked()  # a (wrong) propagation has begun by now
        assert state(pm, "api") == "running"
        await pm.start("db")
        await pm.stop("db")
        assert state(pm, "api") == "stopped"
        assert "'db' stopped" in pm.supervisor("api").record.reason


async def test_binds_to_dependant_stops_when_the_other_crashes(make_manager, journal):
    cfg = specs(**{"main-agent": service("main-agent", journal),
                   "apm-agent": service("apm-agent", journal, binds_to=["main-agent"],
                                        after=["main-agent"])})
    async with make_manager(cfg) as pm:
        await pm.start("apm-agent")
        assert state(pm, "main-agent") == "running"
        os.kill(pm.supervisor("main-agent").record.pid, signal.SIGKILL)
        await wait_state(pm, "apm-agent", "stopped")
        assert "main-agent" in pm.supervisor("apm-agent").record.reason
        await pm.start("apm-agent")
        await pm.stop("main-agent")
        assert state(pm, "apm-agent") == "stopped"


async def test_binds_to_dependant_comes_back_when_the_other_restarts_automatically(
        make_manager, journal):
    cfg = specs(**{"main-agent": service("main-agent", journal, restart="always",
                                         restart_sec=0.1),
                   "apm-agent": service("apm-agent", journal, binds_to=["main-agent"],
                                        after=["main-agent"])})
    async with make_manager(cfg) as pm:
        await pm.start("apm-agent")
        first = pm.supervisor("apm-agent").record.pid
        os.kill(pm.supervisor("main-agent").record.pid, signal.SIGKILL)
        await wait_state(pm, "apm-agent", "stopped")
        await pm.supervisor("apm-agent").wait_until(
            lambda s: s.record.state.value == "running" and s.record.pid != first, timeout=5)
        assert state(pm, "main-agent") == "running"


async def test_part_of_is_not_pulled_in_but_stop_and_restart_propagate(make_manager, journal):
    cfg = specs(web=service("web", journal),
                worker=service("worker", journal, part_of=["web"], after=["web"]))
    async with make_manager(cfg) as pm:
        await pm.start("worker")
        assert state(pm, "web") == "created"
        await pm.start("web")
        before = pm.supervisor("worker").record.pid
        await pm.restart("web")
        assert state(pm, "worker") == "running"
        assert pm.supervisor("worker").record.pid != before
        await pm.stop("web")
        assert state(pm, "worker") == "stopped"


async def test_restart_on_request_restarts_requires_dependants_in_order(make_manager, journal):
    cfg = specs(db=service("db", journal), api=service("api", journal, requires=["db"],
                                                        after=["db"]))
    async with make_manager(cfg) as pm:
        await pm.start("api")
        await pm.restart("db")
        db, api = pm.supervisor("db").record, pm.supervisor("api").record
        assert db.state.value == api.state.value == "running"
        assert db.runs == api.runs == 2
        assert api.started_at >= db.started_at


# --- conflicts ------------------------------------------------------------------------------

async def test_conflicts_stop_the_other_side_in_both_directions(make_manager, journal):
    cfg = specs(**{"datadog-agent": service("datadog-agent", journal),
                   "datadog-agent-exp": service("datadog-agent-exp", journal,
                                                conflicts=["datadog-agent"])})
    async with make_manager(cfg) as pm:
        await pm.start("datadog-agent")
        await wait_journal(journal, ("datadog-agent", "start"))  # SIGTERM handler installed
        await pm.start("datadog-agent-exp")
        assert state(pm, "datadog-agent") == "stopped"
        assert state(pm, "datadog-agent-exp") == "running"
        seen = await wait_journal(journal, ("datadog-agent-exp", "start"))
        assert seen[("datadog-agent", "stopped")] <= seen[("datadog-agent-exp", "start")]
        await pm.start("datadog-agent")  # only exp declared the conflict
        assert state(pm, "datadog-agent-exp") == "stopped"
        assert state(pm, "datadog-agent") == "running"


async def test_failed_conflict_stop_fails_the_start(make_manager, journal):
    cfg = specs(stable=service("stable", journal),
                exp=service("exp", journal, conflicts=["stable"]))
    async with make_manager(cfg) as pm:
        await pm.start("stable")
        sup = pm.supervisor("stable")
        real_request = sup.request

        async def refusing(message):  # stands in for a process that survives SIGKILL
            if isinstance(message, Stop):
                raise errors.TerminateFailed("process 'stable' survived SIGKILL for 10s",
                                             process="stable")
            return await real_request(message)

        sup.request = refusing
        try:
            with pytest.raises(errors.ConflictStopFailed) as info:
                await pm.start("exp")
        finally:
            del sup.request
        assert info.value.details["conflict"] == "stable"
        assert state(pm, "exp") == "created"
        assert state(pm, "stable") == "running"


async def test_conflicting_process_in_backoff_is_stopped_too(make_manager, journal):
    cfg = specs(stable=oneshot("stable", journal, code=1, restart="always", restart_sec=30),
                exp=service("exp", journal, conflicts=["stable"]))
    async with make_manager(cfg) as pm:
        with pytest.raises(errors.SpawnFailed):
            await pm.start("stable")
        await wait_state(pm, "stable", "backoff")
        await pm.start("exp")
        assert state(pm, "stable") == "stopped"


# --- shutdown -------------------------------------------------------------------------------

async def test_shutdown_stops_in_reverse_order_and_independent_branches_concurrently(
        make_manager, journal):
    cfg = specs(db=service("db", journal, auto_start=True),
                left=service("left", journal, stop_delay=0.3, auto_start=True,
                             requires=["db"], after=["db"]),
                right=service("right", journal, stop_delay=0.3, auto_start=True,
                              requires=["db"], after=["db"]))
    async with make_manager(cfg) as pm:
        await wait_journal(journal, ("db", "start"), ("left", "start"), ("right", "start"))
        t0 = trio.current_time()
    elapsed = trio.current_time() - t0
    seen = read_journal(journal)
    assert seen[("db", "stopping")] >= max(seen[("left", "stopped")], seen[("right", "stopped")])
    assert abs(seen[("left", "stopping")] - seen[("right", "stopping")]) < 0.2
    assert elapsed < 0.9, f"shutdown took {elapsed:.2f}s: branches not concurrent"
    recs = {n: pm.supervisor(n).record for n in ("db", "left", "right")}
    assert recs["db"].ended_at >= max(recs["left"].ended_at, recs["right"].ended_at)


async def test_stop_of_a_process_with_dependants_stops_them_first(make_manager, journal):
    cfg = specs(db=service("db", journal),
                api=service("api", journal, stop_delay=0.2, requires=["db"], after=["db"]))
    async with make_manager(cfg) as pm:
        await pm.start("api")
        await wait_journal(journal, ("db", "start"), ("api", "start"))
        await pm.stop("db")
        seen = read_journal(journal)
        assert seen[("api", "stopped")] <= seen[("db", "stopping")]
        assert state(pm, "api") == state(pm, "db") == "stopped"


# --- health-gated readiness -----------------------------------------------------------------

async def test_wait_healthy_holds_the_dependant_until_the_dependency_is_healthy(
        make_manager, journal, tmp_path):
    flag = tmp_path / "healthy"
    cfg = specs(db=service("db", journal, health_check={
                    "type": "exec", "exec_command": ["test", "-f", str(flag)],
                    "interval": 0.05, "timeout": 1, "retries": 100}),
                api=service("api", journal, requires=["db"], after=["db"], wait_healthy=True))
    async with make_manager(cfg) as pm:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pm.start, "api")
            await wait_journal(journal, ("db", "start"))
            await wait_failed_probes(pm.supervisor("db"), 3)
            assert state(pm, "api") == "created"
            flag.touch()
            t_flag = trio.current_time()
        assert state(pm, "api") == "running"
        assert pm.supervisor("db").record.health == "healthy"
        assert trio.current_time() - t_flag < 2


# --- graph validity, deps, describe ---------------------------------------------------------

async def test_create_update_and_reload_reject_an_ordering_cycle(make_manager, journal):
    async with make_manager(specs(a=service("a", journal))) as pm:
        await pm.create("b", service("b", journal, after=["a"]))
        with pytest.raises(errors.ConfigError, match="cycle"):
            await pm.update("a", {"after": ["b"]})
        with pytest.raises(errors.ConfigError, match="unknown process"):
            await pm.create("c", service("c", journal, requires=["ghost"]))
        cyclic = ConfigSet(processes={"a": parse_process("a", service("a", journal, after=["b"]))})
        refused = await pm.reload_config(cyclic)
        assert "cycle" in refused["errors"][0]["message"]
        assert pm.supervisor("a").spec.after == ()


async def test_deps_and_describe_show_relations_with_live_state(make_manager, journal):
    cfg = specs(db=service("db", journal),
                api=service("api", journal, requires=["db"], after=["db"]),
                exp=service("exp", journal, conflicts=["api"]))
    async with make_manager(cfg) as pm:
        await pm.start("api")
        graph = pm.deps("api")
        assert graph["state"] == "running"
        [db] = graph["dependencies"]["children"]
        assert db["name"] == "db" and db["directives"] == ["requires", "after"]
        assert db["state"] == "running"
        assert graph["dependants"]["children"] == []
        assert graph["conflicts"] == [{"name": "exp", "state": "created"}]
        reverse = pm.deps("db")["dependants"]["children"]
        assert [c["name"] for c in reverse] == ["api"]
        rows = pm.describe("api")["dependencies"]
        assert {"name": "db", "directive": "requires", "state": "running"} in rows
        assert {"name": "exp", "directive": "conflicts", "state": "created"} in rows
        assert [g["name"] for g in pm.deps()["processes"]] == ["api", "db", "exp"]
