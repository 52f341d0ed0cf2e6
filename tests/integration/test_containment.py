"""Fault containment (SPEC §15): a bug in one process's task tree stays in that process.

Faults are injected into real features (the health probe, a spawn hook) of an
in-process ProcessManager and of a real ``dd-procmgrd`` started through a tiny wrapper
that patches the probe for processes whose env carries ``INJECT_PROBE_FAULT``. Each
test shows the faulty process fail and restart by its policy, the fault recorded
(describe, event ``internal_error``), and the daemon and the other process untouched.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import trio

from cli_daemon import CliDaemon, running_daemon
from support import specs
from trio_procmgr.engine import health
from trio_procmgr.states import State

S = State
PROBE = {"type": "exec", "exec_command": ["true"], "interval": 0.1, "timeout": 2,
         "start_period": 30}


def faulty(**extra):
    return {"command": "sleep", "args": ["1000"], "restart": "always", "restart_sec": 0.05,
            "start_limit_burst": 100, **extra}


async def test_a_raising_health_probe_fails_only_its_process(make_manager, monkeypatch):
    real = health.run_probe

    async def broken_probe(check, env, manager=None):
        if env.get("INJECT_PROBE_FAULT"):
            raise RuntimeError("injected probe bug")
        return await real(check, env, manager)

    monkeypatch.setattr(health, "run_probe", broken_probe)
    cfg = specs(bad=faulty(health_check=PROBE, env={"INJECT_PROBE_FAULT": "1"}),
                good={"command": "sleep", "args": ["1000"], "health_check": PROBE})
    async with make_manager(cfg) as pm:
        with pm.hub.subscribe(types={"internal_error"}) as sub:
            await pm.start("good")
            good_pid = pm.supervisor("good").record.pid
            await pm.start("bad")
            bad = pm.supervisor("bad")
            assert await bad.wait_until(lambda s: s.record.runs >= 3, timeout=30)
            event = await sub.get()
        assert event["process"] == "bad" and "injected probe bug" in event["error"]
        assert event["where"] == "HealthFeature._probe_loop"
        described = pm.describe("bad")
        assert described["last_internal_error"]["error"] == "RuntimeError: injected probe bug"
        assert described["internal_errors"] >= 2 and described["restarts"] >= 2
        good = pm.supervisor("good")
        assert good.record.state is S.RUNNING and good.record.pid == good_pid
        assert await good.wait_until(lambda s: s.record.health == "healthy", timeout=15)
        assert "last_internal_error" not in pm.describe("good")
        await pm.stop("bad")
        await pm.stop("good")


async def test_an_unforeseen_error_preparing_a_spawn_fails_and_retries_by_policy(make_manager):
    cfg = specs(bad=faulty(), good={"command": "sleep", "args": ["1000"]})
    async with make_manager(cfg) as pm:
        calls = []

        def exploding_hook(sup, plan):
            if sup.name == "bad" and len(calls) < 2:
                calls.append(sup.name)
                raise OSError(24, "Too many open files")

        pm.host.hooks.prepare_exec.insert(0, exploding_hook)
        await pm.start("good")
        bad = pm.supervisor("bad")
        with pytest.raises(Exception, match="Too many open files"):
            await pm.start("bad")
        assert await bad.wait_until(lambda s: s.record.state is S.RUNNING, timeout=15)
        assert bad.record.runs == 3 and len(calls) == 2
        assert pm.describe("bad")["last_internal_error"]["where"] == "preparing the spawn"
        assert pm.supervisor("good").record.state is S.RUNNING
        await pm.stop("bad")
        await pm.stop("good")


async def test_a_task_that_raises_in_a_process_tree_never_reaches_the_manager(make_manager):
    cfg = specs(bad=faulty(), good={"command": "sleep", "args": ["1000"]})
    async with make_manager(cfg) as pm:
        def buggy_feature(sup, inst, nursery):
            async def crash():
                raise ValueError("feature task bug")
            if sup.name == "bad" and sup.record.runs == 1:
                nursery.start_soon(crash)

        pm.host.hooks.on_instance.append(buggy_feature)
        await pm.start("good")
        await pm.start("bad")
        bad = pm.supervisor("bad")
        assert await bad.wait_until(lambda s: s.record.runs == 2 and s.record.state is S.RUNNING,
                                    timeout=15)
        assert "feature task bug" in pm.describe("bad")["last_internal_error"]["error"]
        assert pm.supervisor("good").record.runs == 1
        await pm.create("later", {"command": "sleep", "args": ["1000"]}, start=True)
        assert pm.supervisor("later").record.state is S.RUNNING
        for name in ("bad", "good", "later"):
            await pm.stop(name)


INJECTING_DAEMON = textwrap.dedent("""
    import sys
    from trio_procmgr.engine import health
    real = health.run_probe
    async def broken_probe(check, env, manager=None):
        if env.get("INJECT_PROBE_FAULT"):
            raise RuntimeError("injected probe bug")
        return await real(check, env, manager)
    health.run_probe = broken_probe
    from trio_procmgr.daemon.main import main
    sys.exit(main())
""")


def test_the_real_daemon_contains_a_probe_fault(monkeypatch):
    def start_injecting(self):
        script = self.root / "injecting_daemon.py"
        script.write_text(INJECTING_DAEMON)
        self.log_file = open(self.log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--config-dir", str(self.config_dir), "--socket",
             self.socket, "--state-dir", str(self.state_dir), "--instance", self.instance],
            stdout=self.log_file, stderr=subprocess.STDOUT, env=self.env(),
            start_new_session=True)
        self.wait_for("the daemon to answer ping", lambda: self.cli("ping").code == 0, 30)

    monkeypatch.setattr(CliDaemon, "start", start_injecting)
    with running_daemon() as d:
        assert d.cli("create", "good", "sleep", "1000").code == 0
        assert d.cli("start", "good").code == 0
        good_pid = d.wait_state("good", "running")["pid"]
        d.write_config("bad", textwrap.dedent("""
            command: sleep
            args: ["1000"]
            restart: always
            restart_sec: 0.05
            start_limit_burst: 100
            auto_start: true
            env: {INJECT_PROBE_FAULT: "1"}
            health_check: {type: exec, exec_command: ["true"], interval: 0.1, start_period: 30}
        """))
        assert d.cli("reload-config").code == 0
        record = d.wait_for("two restarts of bad",
                            lambda: (lambda r: r if r["restarts"] >= 2 else None)(d.record("bad")))
        assert record["last_internal_error"]["where"] == "HealthFeature._probe_loop"
        assert "injected probe bug" in record["last_internal_error"]["error"]
        assert "Traceback" in d.log_text() and "injected probe bug" in d.log_text()
        assert d.record("good")["pid"] == good_pid and d.proc.poll() is None
        assert d.cli("stop", "bad").code == 0
        assert d.cli("stop", "good").code == 0


async def test_a_failing_transaction_step_is_that_processs_error_only(make_manager, monkeypatch):
    from trio_procmgr import errors, planner
    from trio_procmgr.engine.transactions import Transactions

    real = Transactions._start_one

    async def start_one(self, sup, step, *, manual):
        if sup.name == "bad":
            raise LookupError("step bug")
        return await real(self, sup, step, manual=manual)

    monkeypatch.setattr(Transactions, "_start_one", start_one)
    cfg = specs(bad={"command": "sleep", "args": ["1000"]},
                good={"command": "sleep", "args": ["1000"]})
    async with make_manager(cfg) as pm:
        plan = planner.start_transaction(pm.registry.specs, ["bad", "good"])
        results = await pm.transactions.run_start_plan(plan, manual=True)
        assert isinstance(results["bad"], errors.Internal)
        assert results["good"]["state"] == "running"
        assert pm.describe("bad")["last_internal_error"]["where"] == "transaction step"
        await pm.stop("good")


async def test_a_waiter_that_dies_leaves_no_orphan_and_the_process_restarts(make_manager, monkeypatch):
    from trio_procmgr.engine.supervisor import Supervisor
    from support import pid_alive

    real = Supervisor._wait_exit
    broken = []

    async def wait_exit(self, inst):
        if self.name == "bad" and not broken:
            broken.append(inst.child.pid)
            raise RuntimeError("waiter bug")
        return await real(self, inst)

    monkeypatch.setattr(Supervisor, "_wait_exit", wait_exit)
    cfg = specs(bad=faulty(), good={"command": "sleep", "args": ["1000"]})
    async with make_manager(cfg) as pm:
        await pm.start("good")
        await pm.start("bad")
        bad = pm.supervisor("bad")
        assert await bad.wait_until(lambda s: s.record.runs == 2 and s.record.state is S.RUNNING,
                                    timeout=15)
        assert not pid_alive(broken[0])
        assert "waiter bug" in pm.describe("bad")["last_internal_error"]["error"]
        assert pm.supervisor("good").record.runs == 1
        await pm.stop("bad")
        await pm.stop("good")
