"""dd-procmgr against a real dd-procmgrd: the SPEC §11 contract end to end."""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

from cli_daemon import CLI, cli_daemon, own_cli_daemon, shared_cli_daemon  # noqa: F401  (fixtures)

PY = sys.executable


def test_ping_answers_and_version_names_both_sides(cli_daemon):
    assert cli_daemon.cli("ping").code == 0
    result = cli_daemon.cli("version")
    assert result.code == 0
    assert result.out.startswith("dd-procmgr ") and "dd-procmgrd " in result.out


def test_socket_is_taken_from_the_environment(cli_daemon):
    result = cli_daemon.cli("list", socket=False, env=cli_daemon.env(DD_PM_SOCKET=cli_daemon.socket))
    assert result.code == 0


def test_create_start_list_and_stop(cli_daemon):
    created = cli_daemon.cli("create", "sleeper", "sleep", "300")
    assert created.code == 0, created
    assert created.out.startswith("created sleeper ")
    started = cli_daemon.cli("--json", "start", "sleeper")
    assert started.code == 0, started
    record = started.json
    assert record["name"] == "sleeper" and record["state"] in ("starting", "running")
    cli_daemon.wait_state("sleeper", "running")

    table = cli_daemon.cli("list")
    header, row = table.out.splitlines()[:2]
    assert header.split() == ["NAME", "ID", "PID", "STATE", "HEALTH", "RUNS", "UPTIME",
                              "COMMAND"]
    assert row.split()[0] == "sleeper" and row.split()[3] == "running"
    assert row.endswith("sleep 300")

    listed = cli_daemon.cli("--json", "list").json
    assert isinstance(listed, list) and listed[0]["pid"] > 0
    assert {"name", "id", "state", "pid", "runs", "restarts", "exit_code", "exit_signal",
            "created_at", "started_at", "ended_at", "health", "next_restart_at",
            "reason"} <= set(listed[0])

    stopped = cli_daemon.cli("stop", "sleeper")
    assert stopped.code == 0 and stopped.out.startswith("stopped sleeper")
    assert cli_daemon.record("sleeper")["state"] == "stopped"


def test_create_flags_reach_the_process_config(cli_daemon):
    result = cli_daemon.cli(
        "create", "web", "--restart", "on-failure", "--restart-sec", "500ms",
        "--env", "GREETING=hi", "--timeout-stop-sec", "5", "--description", "a web",
        "--", PY, "-c", "import time; time.sleep(300)")
    assert result.code == 0, result
    spec = cli_daemon.record("web")["spec"]
    assert spec["restart"] == "on-failure" and spec["env"] == {"GREETING": "hi"}
    assert spec["args"] == ["-c", "import time; time.sleep(300)"]
    assert cli_daemon.record("web")["description"] == "a web"


def test_create_with_start_runs_it_at_once(cli_daemon):
    result = cli_daemon.cli("create", "now", "--start", "sleep", "300")
    assert result.code == 0, result
    cli_daemon.wait_state("now", "running")


def test_refusals_exit_1_with_the_error_code(cli_daemon):
    result = cli_daemon.cli("describe", "nope")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("error: PROCESS_NOT_FOUND: ") and result.err.count("\n") == 1
    as_json = cli_daemon.cli("--json", "start", "nope")
    assert as_json.code == 1 and as_json.json["error"]["code"] == "PROCESS_NOT_FOUND"
    cli_daemon.cli("create", "dup", "sleep", "1")
    again = cli_daemon.cli("create", "dup", "sleep", "1")
    assert again.code == 1 and "ALREADY_EXISTS" in again.err


def test_usage_errors_exit_2_without_calling_the_daemon(cli_daemon):
    assert cli_daemon.cli("no-such-command").code == 2
    assert cli_daemon.cli("create", "x").code == 2
    assert cli_daemon.cli("start").code == 2
    assert cli_daemon.cli("--json", "list").json == []


def test_update_reports_fields_and_restart_needs(cli_daemon):
    cli_daemon.cli("create", "svc", "--start", "sleep", "300")
    cli_daemon.wait_state("svc", "running")
    dry = cli_daemon.cli("update", "svc", "--restart", "always", "--dry-run")
    assert dry.code == 0, dry
    assert dry.out.splitlines()[0] == "[OK] Dry run - validation successful (no changes applied)"
    assert "  - restart" in dry.out
    assert cli_daemon.record("svc")["spec"].get("restart", "never") == "never"

    env = cli_daemon.cli("--json", "update", "svc", "--env", "A=1")
    assert env.code == 0, env
    assert "env" in env.json["updated_fields"] and "env" in env.json["restart_required"]
    assert env.json["restarted"] is False


def test_delete_needs_force_for_a_running_process(cli_daemon):
    cli_daemon.cli("create", "gone", "--start", "sleep", "300")
    cli_daemon.wait_state("gone", "running")
    refused = cli_daemon.cli("delete", "gone")
    assert refused.code == 1
    removed = cli_daemon.cli("remove", "--force", "gone")
    assert removed.code == 0, removed
    assert cli_daemon.cli("--json", "list").json == []


def test_logs_show_the_output_and_follow_streams_json_lines(cli_daemon):
    script = "import sys,time; print('hello out', flush=True); " \
             "print('hello err', file=sys.stderr, flush=True); time.sleep(300)"
    cli_daemon.cli("create", "talker", "--start", "--", PY, "-c", script)
    cli_daemon.wait_for("two log lines",
                        lambda: len(cli_daemon.cli("--json", "logs", "talker").json) >= 2)
    plain = cli_daemon.cli("logs", "talker")
    assert sorted(plain.out.splitlines()) == ["hello err", "hello out"]
    only_err = cli_daemon.cli("logs", "talker", "--stream", "stderr", "-t")
    assert only_err.out.rstrip().endswith("stderr hello err")

    follower = cli_daemon.popen("--json", "logs", "-f", "talker")
    try:
        first = json.loads(follower.stdout.readline())
        assert first["line"] in ("hello out", "hello err")
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 0


def read_lines(proc, count: int, timeout: float = 15) -> list[str]:
    """``count`` lines of ``proc``'s stdout, failing after ``timeout`` seconds. Reads the
    pipe itself: select() on a buffered file misses lines already in its buffer."""
    fd, data = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < count:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        assert ready, f"fewer than {count} lines within {timeout}s: {data!r}"
        chunk = os.read(fd, 65536)
        assert chunk, f"stdout closed after {data!r}"
        data += chunk
    return data.decode().splitlines()[:count]


def counter(prefix: str, count: int, then: str = "") -> list[str]:
    """A command printing ``prefix1..prefixN`` at once, then ``then`` lines on stdin's
    schedule (one per second), then sleeping."""
    return ["--", PY, "-u", "-c",
            f"import time\nfor i in range(1, {count + 1}): print('{prefix}%d' % i)\n"
            f"for i in range(60):\n time.sleep(0.2); print('{then}%d' % i) if '{then}' else None\n"
            "time.sleep(300)"]


def test_logs_follow_starts_with_the_last_10_lines_like_tail(cli_daemon):
    cli_daemon.cli("create", "counter", "--start", *counter("n", 15))
    cli_daemon.wait_for("15 lines", lambda: len(cli_daemon.cli("--json", "logs", "counter").json) == 15)
    follower = cli_daemon.popen("logs", "-f", "counter")
    try:
        assert read_lines(follower, 10) == [f"n{i}" for i in range(6, 16)]
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 0
    only_new = cli_daemon.popen("logs", "-f", "-n", "2", "counter")
    try:
        assert read_lines(only_new, 2) == ["n14", "n15"]
    finally:
        only_new.send_signal(signal.SIGINT)
        only_new.wait(timeout=10)


def test_logs_all_follow_is_one_stream_naming_each_process(cli_daemon):
    cli_daemon.cli("create", "alpha", "--start", *counter("a", 3, then="A"))
    cli_daemon.cli("create", "beta", "--start", *counter("b", 3, then="B"))
    cli_daemon.wait_for("backlog of both", lambda: len(
        cli_daemon.cli("--json", "logs", "--all").json) >= 8)
    follower = cli_daemon.popen("--json", "logs", "--all", "-f")
    try:
        items = [json.loads(line) for line in read_lines(follower, 10 + 6)]
        backlog, live = items[:10], items[10:]
        assert [i["time"] for i in backlog] == sorted(i["time"] for i in backlog)
        assert {i["process"] for i in live} == {"alpha", "beta"}
        for item in items:
            assert item["line"][0].lower() == item["process"][0], item
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 0
    plain = cli_daemon.popen("logs", "--all", "-f", "-n", "0")
    try:
        for line in read_lines(plain, 4):
            name, bar, text = line.partition(" | ")
            assert bar and name in ("alpha", "beta") and text[0].lower() == name[0], line
    finally:
        plain.send_signal(signal.SIGINT)
        plain.wait(timeout=10)
    several = cli_daemon.popen("logs", "-f", "-n", "1", "alpha", "beta")
    try:
        # -n 1 is one line of the merged output, then both processes' live lines follow
        # (each prints every 0.2 s): a few lines name both, in whatever order they came
        first = read_lines(several, 4)
        assert {line.partition(" | ")[0] for line in first} == {"alpha", "beta"}
    finally:
        several.send_signal(signal.SIGINT)
        several.wait(timeout=10)


def test_events_json_is_one_event_per_line(cli_daemon):
    cli_daemon.cli("create", "ev", "sleep", "300")
    watcher = cli_daemon.popen("events", "--json", "--process", "ev")

    def event_arrives():
        # The watcher may subscribe after a first restart: trigger events until one shows.
        assert cli_daemon.cli("restart", "ev").code == 0
        ready, _, _ = select.select([watcher.stdout], [], [], 0.5)
        return ready and watcher.stdout.readline()
    try:
        event = json.loads(cli_daemon.wait_for("an event line", event_arrives))
        assert event["process"] == "ev" and {"seq", "time", "type"} <= set(event)
    finally:
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=10) == 0


def test_reload_config_reports_added_processes(cli_daemon):
    cli_daemon.write_config("fromfile", "command: sleep\nargs: ['300']\n")
    result = cli_daemon.cli("reload-config")
    assert result.code == 0, result
    assert "Added:     fromfile" in result.out
    assert cli_daemon.cli("--json", "reload-config").json["unchanged"] == ["fromfile"]


def test_stats_of_a_running_process(cli_daemon):
    cli_daemon.cli("create", "busy", "--start", "sleep", "300")
    running = cli_daemon.wait_state("busy", "running")
    result = cli_daemon.cli("stats", "busy")
    assert result.code == 0, result
    assert result.out.startswith(f"Resource Usage Statistics for 'busy' (PID: {running['pid']})")
    assert "Memory:" in result.out and "CPU:" in result.out and "PIDs:" in result.out


def test_deps_shows_both_trees_with_live_states(cli_daemon):
    cli_daemon.cli("create", "db", "sleep", "300")
    cli_daemon.cli("create", "cache", "sleep", "300")
    cli_daemon.cli("create", "app", "--requires", "db", "--after", "db", "--wants", "cache",
                   "sleep", "300")
    cli_daemon.cli("create", "web", "--requires", "app", "sleep", "300")
    cli_daemon.cli("create", "legacy", "--conflicts", "app", "sleep", "300")
    cli_daemon.cli("start", "db")
    cli_daemon.wait_state("db", "running")
    result = cli_daemon.cli("deps", "app")
    assert result.code == 0, result
    assert result.out.splitlines() == [
        "app (created)",
        "Depends on:",
        "├─ cache (created) [wants]",
        "└─ db (running) [requires, after]",
        "Needed by:",
        "└─ web (created) [requires]",
        "Conflicts with:",
        "   legacy (created)",
    ]
    reverse = cli_daemon.cli("deps", "db", "--reverse")
    assert reverse.out.splitlines() == ["db (running)", "Needed by:",
                                        "└─ app (created) [requires, after]",
                                        "   └─ web (created) [requires]"]
    graph = cli_daemon.cli("--json", "deps", "app").json
    assert graph["name"] == "app" and graph["state"] == "created"
    assert [(c["name"], c["state"]) for c in graph["dependencies"]["children"]] == [
        ("cache", "created"), ("db", "running")]
    assert graph["dependants"]["children"][0]["name"] == "web"
    assert graph["conflicts"] == [{"name": "legacy", "state": "created"}]


def test_shutdown_stops_the_daemon(own_cli_daemon):
    assert own_cli_daemon.cli("shutdown").code == 0
    assert own_cli_daemon.proc.wait(timeout=30) == 0
    assert own_cli_daemon.cli("ping").code == 3


def test_shell_completion_offers_process_names(cli_daemon):
    cli_daemon.cli("create", "alpha", "sleep", "1")
    cli_daemon.cli("create", "beta", "sleep", "1")
    env = cli_daemon.env(COMP_WORDS=f"dd-procmgr --socket {cli_daemon.socket} start al",
                         COMP_CWORD="4", _DD_PROCMGR_COMPLETE="bash_complete")
    result = cli_daemon.cli(socket=False, env=env)
    assert result.code == 0 and result.out.split() == ["plain,alpha"]
