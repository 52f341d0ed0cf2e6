"""Replicas inside one ProcessManager (no daemon): events and metrics carry the instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import trio
from prometheus_client.parser import text_string_to_metric_families

from trio_procmgr.config.loader import load_config_dir
from trio_procmgr.daemon import metrics

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def replicated(tmp_path: Path, replicas: int = 2):
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "q.yaml").write_text(f"command: sleep\nargs: ['3600']\nreplicas: {replicas}\n")
    config = load_config_dir(cfg)
    assert not config.issues, config.issues
    return config


async def test_events_of_an_instance_carry_the_instance(make_manager, tmp_path):
    async with make_manager(replicated(tmp_path)) as pm:
        seen = []
        pm.hub.listeners.append(seen.append)
        await pm.start("q@2")
        started = [e for e in seen if e["type"] == "process_started"]
        assert [(e["process"], e["instance"]) for e in started] == [("q@2", "2")]
        await pm.scale("q", 3)
        scaled = [e for e in seen if e["type"] == "process_scaled"]
        assert scaled and scaled[0]["replicas"] == 3 and scaled[0]["previous"] == 2


async def test_metrics_name_template_and_instance_and_the_wanted_replicas(make_manager, tmp_path):
    async with make_manager(replicated(tmp_path, 3)) as pm:
        text, _ = metrics.render(pm)
        families = {f.name: f for f in text_string_to_metric_families(text.decode())}
        info = {(s.labels["process"], s.labels["template"], s.labels["instance"])
                for s in families["dd_procmgr_process_instance_info"].samples}
        assert info == {("q@1", "q", "1"), ("q@2", "q", "2"), ("q@3", "q", "3")}
        wanted = families["dd_procmgr_replicas_wanted"].samples
        assert [(s.labels["template"], s.value) for s in wanted] == [("q", 3.0)]


async def test_scale_when_stopped_creates_instances_without_starting_them(make_manager, tmp_path):
    async with make_manager(replicated(tmp_path)) as pm:
        summary = await pm.scale("q", 4)
        assert summary["counts"] == {"created": 4} and summary["replicas"] == 4
        assert [r["name"] for r in summary["instances"]] == ["q@1", "q@2", "q@3", "q@4"]


async def test_the_queue_workers_example_runs_three_numbered_consumers(make_manager, tmp_path):
    cfg = tmp_path / "examples"
    cfg.mkdir()
    shutil.copy(EXAMPLES / "queue-workers.yaml", cfg)
    async with make_manager(load_config_dir(cfg)) as pm:
        summary = await pm.start("queue-workers")
        assert summary["counts"] == {"running": 3}
        for i in (1, 2, 3):
            said = f"consumer {i} of queue-workers ready"
            with trio.fail_after(15):
                while not any(said in item["line"] for item in pm.logs(f"queue-workers@{i}")):
                    await trio.sleep(0.05)
        await pm.stop("queue-workers")
        assert pm.describe("queue-workers")["counts"] == {"stopped": 3}
