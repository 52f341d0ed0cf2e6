"""Templates and replicas end to end (SPEC §16): the real daemon, driven by the real CLI."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from cli_daemon import CliDaemon
from support import pid_alive

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SLEEPER = "command: sh\nargs: ['-c', 'echo I am %n index=$DD_PM_INSTANCE; exec sleep 3600']\n"


@contextmanager
def daemon_with(files: dict[str, str]) -> Iterator[CliDaemon]:
    """A daemon of its own whose config dir holds ``files`` before it boots."""
    root = Path(tempfile.mkdtemp(prefix="pmtpl-"))
    daemon = CliDaemon(root)
    for name, text in files.items():
        path = daemon.config_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def names(daemon: CliDaemon) -> list[str]:
    result = daemon.cli("--json", "list")
    assert result.code == 0, result
    return sorted(r["name"] for r in result.json)


def ok(daemon: CliDaemon, *args: str):
    result = daemon.cli(*args)
    assert result.code == 0, (args, result, daemon.log_text())
    return result


def logs_show(daemon: CliDaemon, name: str, text: str) -> bool:
    return text in daemon.cli("logs", name).out


def test_template_instances_exist_at_boot_and_start_name_at_inst_instantiates():
    with daemon_with({"worker@.yaml": (EXAMPLES / "worker@.yaml").read_text()}) as d:
        assert names(d) == ["worker@a", "worker@b"]  # the template itself is no process
        assert d.record("worker@a")["state"] == "created"  # no auto_start
        ok(d, "start", "worker@c")
        d.wait_state("worker@c", "running")
        d.wait_for("worker@c's output", lambda: logs_show(d, "worker@c", "serving tenant c as worker@c"))
        assert names(d) == ["worker@a", "worker@b", "worker@c"]


def test_create_from_a_template_makes_an_instance_that_survives_a_daemon_restart():
    root = Path(tempfile.mkdtemp(prefix="pmtpl-"))
    try:
        first = CliDaemon(root)
        (first.config_dir / "worker@.yaml").write_text(SLEEPER + "instances: [a]\n")
        first.start()
        try:
            ok(first, "create", "--from", "worker@", "b")
            assert first.record("worker@b")["state"] == "created"
            ok(first, "start", "worker@b")
            bad = first.cli("create", "--from", "nothing@", "x")
            assert bad.code == 1 and "no template named 'nothing@'" in bad.err
            bad = first.cli("create", "--from", "worker@", "b")
            assert bad.code == 1 and "already exists" in bad.err
        finally:
            first.stop()
        first.start()  # same state dir: a daemon restart
        try:
            assert names(first) == ["worker@a", "worker@b"]
            rec = first.record("worker@b")
            assert rec["spec"]["args"][1].startswith("echo I am worker@b index=")
        finally:
            first.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_replicas_run_numbered_instances_with_their_index_in_the_environment():
    with daemon_with({"q.yaml": SLEEPER + "replicas: 3\nauto_start: true\n"}) as d:
        assert names(d) == ["q@1", "q@2", "q@3"]
        for i in (1, 2, 3):
            d.wait_state(f"q@{i}", "running")
            d.wait_for(f"q@{i}'s output", lambda: logs_show(d, f"q@{i}", f"I am q@{i} index={i}"))
        summary = d.record("q")
        assert summary["replicas"] == 3 and summary["counts"] == {"running": 3}
        assert [r["name"] for r in summary["instances"]] == ["q@1", "q@2", "q@3"]


def test_scale_up_starts_new_ones_and_scale_down_stops_the_highest_first():
    with daemon_with({"q.yaml": SLEEPER + "replicas: 2\nauto_start: true\n"}) as d:
        d.wait_state("q@2", "running")
        ok(d, "scale", "q", "4")
        for i in (3, 4):
            d.wait_state(f"q@{i}", "running")
        pids = {i: d.record(f"q@{i}")["pid"] for i in (1, 2, 3, 4)}
        ok(d, "update", "q", "--replicas", "2")
        assert names(d) == ["q@1", "q@2"]
        assert not pid_alive(pids[3]) and not pid_alive(pids[4])
        assert pid_alive(pids[1]) and pid_alive(pids[2])
        log = d.log.read_text()
        assert log.index("process q@4: running -> stopping") < log.index("process q@3: running -> stopping")
        bad = d.cli("scale", "nothing", "2")
        assert bad.code == 1 and "not a replicated process" in bad.err
        assert d.cli("scale", "q", "0").code == 2
        beyond = d.cli("start", "q@9")
        assert beyond.code == 1 and "use scale q N" in beyond.err and names(d) == ["q@1", "q@2"]


def test_scale_survives_a_daemon_restart():
    root = Path(tempfile.mkdtemp(prefix="pmtpl-"))
    try:
        first = CliDaemon(root)
        (first.config_dir / "q.yaml").write_text(SLEEPER + "replicas: 2\n")
        first.start()
        try:
            ok(first, "scale", "q", "3")
        finally:
            first.stop()
        first.start()  # same state dir: a daemon restart
        try:
            assert names(first) == ["q@1", "q@2", "q@3"]
        finally:
            first.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_dependant_of_a_replicated_process_starts_after_every_instance_and_stops_with_them():
    files = {"q.yaml": SLEEPER + "replicas: 3\n",
             "app.yaml": "command: sleep\nargs: ['3600']\nrequires: [q]\nafter: [q]\n"}
    with daemon_with(files) as d:
        ok(d, "start", "app")
        recs = {n: d.record(n) for n in ("q@1", "q@2", "q@3", "app")}
        assert all(r["state"] == "running" for r in recs.values())
        assert max(recs[f"q@{i}"]["started_at"] for i in (1, 2, 3)) <= recs["app"]["started_at"]
        ok(d, "stop", "q")
        assert {d.record(n)["state"] for n in ("q@1", "q@2", "q@3", "app")} == {"stopped"}
        ok(d, "start", "q")
        assert d.record("q")["counts"] == {"running": 3}


def test_deleting_the_template_file_removes_its_listed_instances_but_not_runtime_ones():
    with daemon_with({"worker@.yaml": SLEEPER + "instances: [a]\n"}) as d:
        ok(d, "create", "--from", "worker@", "extra")
        (d.config_dir / "worker@.yaml").unlink()
        ok(d, "reload-config")
        assert names(d) == ["worker@extra"]


@pytest.mark.parametrize("text, words", [
    ("command: sh\nreplicas: many\n", "replicas"),
    ("command: sh\ninstances: [a]\n", "belongs in a template"),
])
def test_bad_template_fields_fail_validate_with_a_clear_message(tmp_path, text, words):
    (tmp_path / "p.yaml").write_text(text)
    d = CliDaemon.__new__(CliDaemon)
    d.socket = str(tmp_path / "none.sock")
    result = d.cli("validate", str(tmp_path), socket=False, env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"})
    assert result.code != 0 and words in (result.out + result.err)
