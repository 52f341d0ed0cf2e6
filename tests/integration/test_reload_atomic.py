"""A reload is all or nothing (SPEC §15): a bad config never touches what runs.

Against the real daemon through the real CLI; SIGHUP sent to the daemon's own PID.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time

from cli_daemon import cli_daemon, shared_cli_daemon  # noqa: F401  (fixtures)

SLEEP = "command: sleep\nargs: ['1000']\nauto_start: true\nrestart: always\n"


def running_pid(daemon, name: str) -> int:
    return daemon.wait_state(name, "running")["pid"]


def next_event(proc, pred, timeout: float = 20.0) -> dict:
    """The first event line of an ``events --json`` follower that satisfies ``pred``."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        if pred(event):
            return event
    raise AssertionError("no matching event from the follower")


def subscribed_follower(daemon):
    """``events --json`` that is known to be subscribed (it saw a marker process)."""
    proc = daemon.popen("events", "--json")
    for i in range(100):
        assert daemon.cli("create", f"marker{i}", "true").code == 0
        try:
            next_event(proc, lambda e: e.get("type") == "process_created", timeout=1)
            return proc
        except AssertionError:
            continue
    raise AssertionError("the events follower never subscribed")


def test_sighup_with_a_dependency_on_a_removed_file_keeps_the_daemon_and_every_service(cli_daemon):
    d = cli_daemon
    d.write_config("db", SLEEP)
    assert d.cli("reload-config").code == 0
    db_pid = running_pid(d, "db")
    assert d.cli("create", "api", "sleep", "1002", "--requires", "db").code == 0
    assert d.cli("start", "api").code == 0
    api_pid = running_pid(d, "api")
    watcher = subscribed_follower(d)
    (d.config_dir / "db.yaml").unlink()

    os.kill(d.proc.pid, signal.SIGHUP)
    d.wait_for("the refused reload in the daemon log",
               lambda: "reload refused" in d.log_text())

    assert d.proc.poll() is None, d.log_text()
    assert d.record("db")["pid"] == db_pid and d.record("db")["state"] == "running"
    assert d.record("api")["pid"] == api_pid and d.record("api")["state"] == "running"
    assert "requires unknown process 'db'" in d.log_text()
    result = d.cli("reload-config")
    assert result.code == 1
    assert "nothing changed" in result.out and "unknown process 'db'" in result.out
    event = next_event(watcher, lambda e: e.get("type") == "config_reload_failed")
    watcher.terminate()
    watcher.communicate(timeout=30)
    assert "unknown process 'db'" in json.dumps(event)


def test_a_typo_in_a_running_services_file_changes_nothing_and_names_file_and_field(cli_daemon):
    d = cli_daemon
    d.write_config("web", SLEEP)
    d.write_config("other", SLEEP)
    assert d.cli("reload-config").code == 0
    web = d.record("web")
    web_pid = running_pid(d, "web")
    d.write_config("web", SLEEP.replace("restart: always", "restart: alwayz"))
    d.write_config("newcomer", SLEEP)  # valid, but the reload is all or nothing

    result = d.cli("reload-config")

    assert result.code == 1, result
    assert "web.yaml" in result.out and "restart" in result.out
    assert "nothing changed" in result.out
    after = d.record("web")
    assert (after["state"], after["pid"], after["id"]) == ("running", web_pid, web["id"])
    names = {r["name"] for r in d.cli("--json", "list").json}
    assert "newcomer" not in names and {"web", "other"} <= names


def test_a_missing_config_dir_on_reload_removes_nothing(cli_daemon):
    d = cli_daemon
    d.write_config("keep", SLEEP)
    assert d.cli("reload-config").code == 0
    pid = running_pid(d, "keep")
    moved = d.root / "conf.moved"
    os.rename(d.config_dir, moved)
    try:
        result = d.cli("--json", "reload-config")
        assert result.code == 1
        assert result.json["removed"] == []
        assert "cannot read the configuration directory" in json.dumps(result.json["errors"])
        assert d.record("keep")["pid"] == pid
    finally:
        os.rename(moved, d.config_dir)


def test_a_file_cannot_take_over_a_runtime_created_process(cli_daemon):
    d = cli_daemon
    assert d.cli("create", "dup1", "sleep", "1003").code == 0
    assert d.cli("start", "dup1").code == 0
    pid = running_pid(d, "dup1")
    d.write_config("dup1", SLEEP)

    result = d.cli("reload-config")

    assert result.code == 1
    assert "dup1.yaml" in result.out and "created at run time" in result.out
    record = d.record("dup1")
    assert record["pid"] == pid and record["args"] == ["1003"]
