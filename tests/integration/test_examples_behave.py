"""The seed's examples, loaded from examples/ as shipped, behave as the seed README says."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import trio

from support import pid_alive
from trio_procmgr.config.loader import load_config_dir
from trio_procmgr.states import State

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(tmp_path: Path, *names: str):
    """A config dir holding only the named example files (unchanged)."""
    d = tmp_path / "cfg"
    d.mkdir()
    for name in names:
        shutil.copy(EXAMPLES / name, d / name)
    config = load_config_dir(str(d))
    assert not config.issues, config.issues
    return config


def state(pm, name: str) -> str:
    return pm.describe(name)["state"]


async def test_app_stack_starts_in_dependency_order_and_stops_dependants(make_manager, tmp_path):
    async with make_manager(example(tmp_path, "app-stack.yaml")) as pm:
        await pm.start("frontend")
        recs = {n: pm.describe(n) for n in ("database", "cache", "api", "frontend")}
        assert all(r["state"] == "running" for r in recs.values())
        started = [recs[n]["started_at"] for n in ("database", "cache", "api", "frontend")]
        assert started == sorted(started)
        await pm.stop("database")
        assert [state(pm, n) for n in ("database", "cache", "api")] == ["stopped"] * 3
        assert state(pm, "frontend") == "running"  # it only wants api


async def test_bound_agent_follows_the_main_agent_down_and_back(make_manager, tmp_path):
    async with make_manager(example(tmp_path, "agent-binds-to.yaml")) as pm:
        main, apm = pm.supervisor("main-agent"), pm.supervisor("apm-agent")
        assert main.record.state is State.RUNNING and apm.record.state is State.RUNNING
        old_apm = apm.record.pid
        os.kill(main.record.pid, signal.SIGKILL)
        assert await apm.wait_until(lambda s: s.record.state is State.STOPPED, timeout=5)
        assert "binds_to" in apm.record.reason and not pid_alive(old_apm)
        assert await apm.wait_until(lambda s: s.record.state is State.RUNNING, timeout=10)
        assert main.record.state is State.RUNNING and main.record.restarts == 1


async def test_agent_variants_never_run_together(make_manager, tmp_path):
    async with make_manager(example(tmp_path, "agent-variants.yaml")) as pm:
        assert state(pm, "datadog-agent") == "running"
        await pm.start("datadog-agent-exp")
        assert (state(pm, "datadog-agent"), state(pm, "datadog-agent-exp")) == ("stopped", "running")
        await pm.start("datadog-agent")
        assert (state(pm, "datadog-agent"), state(pm, "datadog-agent-exp")) == ("running", "stopped")


async def test_pipeline_group_restarts_the_failed_stage_and_those_after_it(make_manager, tmp_path):
    async with make_manager(example(tmp_path, "supervision-group.yaml")) as pm:
        reader, parser, writer = (pm.supervisor(f"pipeline-{n}") for n in ("reader", "parser", "writer"))
        pids = {s.name: s.record.pid for s in (reader, parser, writer)}
        os.kill(pids["pipeline-parser"], signal.SIGKILL)
        with trio.fail_after(10):
            for sup in (parser, writer):
                await sup.wait_until(lambda s: s.record.state is State.RUNNING
                                     and s.record.pid not in (None, pids[s.name]))
        assert reader.record.pid == pids["pipeline-reader"]  # rest_for_one: untouched
