"""The operator's verbs end to end: dd-procmgr against a real dd-procmgrd (issue 17, 11)."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import textwrap
import time

from cli_daemon import CLI, cli_daemon, shared_cli_daemon  # noqa: F401  (fixtures)

PY = sys.executable

# Parent and child both report the signals they get (USR1, HUP) on stdout.
TWO_PROCESSES = textwrap.dedent("""
    import os, signal, sys, time
    role = "parent"
    if os.fork() == 0:
        role = "child"
    def report(sig, _):
        print(f"{role} got {signal.Signals(sig).name}", flush=True)
    signal.signal(signal.SIGUSR1, report)
    signal.signal(signal.SIGHUP, report)
    print(f"{role} ready", flush=True)
    while True:
        time.sleep(0.1)
""")


def log_text(daemon, name: str) -> str:
    return daemon.cli("logs", name).out


def wait_log(daemon, name: str, *needles: str) -> str:
    return daemon.wait_for(f"{needles} in the logs of {name}",
                           lambda: (lambda t: t if all(n in t for n in needles) else None)(
                               log_text(daemon, name)))


def start_two(daemon, name: str = "pair", *extra: str) -> dict:
    assert daemon.cli("create", name, "--start", *extra, "--", PY, "-c", TWO_PROCESSES).code == 0
    wait_log(daemon, name, "parent ready", "child ready")
    return daemon.record(name)


def test_kill_signals_every_process_of_the_service(cli_daemon):
    before = start_two(cli_daemon)
    result = cli_daemon.cli("kill", "pair", "-s", "USR1")
    assert result.code == 0, result
    assert result.out.startswith("sent USR1 to pair (all its processes")
    wait_log(cli_daemon, "pair", "parent got SIGUSR1", "child got SIGUSR1")
    after = cli_daemon.record("pair")
    assert after["pid"] == before["pid"] and after["runs"] == 1 and after["state"] == "running"


def test_kill_main_reaches_only_the_main_process(cli_daemon):
    start_two(cli_daemon)
    assert cli_daemon.cli("kill", "--main", "-s", "SIGUSR1", "pair").code == 0
    wait_log(cli_daemon, "pair", "parent got SIGUSR1")
    cli_daemon.cli("kill", "--main", "-s", "HUP", "pair")  # a marker after USR1
    text = wait_log(cli_daemon, "pair", "parent got SIGHUP")
    assert "child got SIGUSR1" not in text


def test_kill_and_reload_refuse_a_process_that_does_not_run(cli_daemon):
    assert cli_daemon.cli("create", "idle", "sleep", "100").code == 0
    for args in (["kill", "idle"], ["reload", "idle"]):
        result = cli_daemon.cli(*args)
        assert result.code == 1 and result.err.startswith("error: NOT_RUNNING: "), result
        assert "idle" in result.err


def test_kill_with_an_unknown_signal_names_it(cli_daemon):
    start_two(cli_daemon)
    result = cli_daemon.cli("kill", "-s", "SIGNOPE", "pair")
    assert result.code == 1 and "INVALID_ARGUMENT" in result.err and "SIGNOPE" in result.err


def test_reload_sends_the_configured_signal_without_a_restart(cli_daemon):
    before = start_two(cli_daemon, "svc", "--reload-signal", "USR1")
    result = cli_daemon.cli("reload", "svc")
    assert result.code == 0 and "sent SIGUSR1" in result.out, result
    text = wait_log(cli_daemon, "svc", "parent got SIGUSR1")
    assert "child got SIGUSR1" not in text
    after = cli_daemon.record("svc")
    assert after["pid"] == before["pid"] and after["runs"] == 1


def test_reload_defaults_to_sighup(cli_daemon):
    start_two(cli_daemon, "hup")
    assert cli_daemon.cli("reload", "hup").code == 0
    wait_log(cli_daemon, "hup", "parent got SIGHUP")


def test_start_and_stop_are_idempotent(cli_daemon):
    assert cli_daemon.cli("create", "s", "--start", "sleep", "300").code == 0
    cli_daemon.wait_state("s", "running")
    again = cli_daemon.cli("start", "s")
    assert again.code == 0 and again.out.startswith("s: already running (pid "), again
    as_json = cli_daemon.cli("--json", "start", "s")
    assert as_json.code == 0 and as_json.json["already"] == "already running"
    assert cli_daemon.cli("stop", "s").code == 0
    stopped_again = cli_daemon.cli("stop", "s")
    assert stopped_again.code == 0 and stopped_again.out.strip() == "s: already stopped"
    assert cli_daemon.cli("create", "fresh", "sleep", "1").code == 0
    assert cli_daemon.cli("stop", "fresh").code == 0  # never started: already stopped too


GROUP_CONFIG = """
processes:
  ga: {command: sleep, args: ["300"]}
  gb: {command: sleep, args: ["301"]}
groups:
  pair: {members: [ga, gb], strategy: one_for_all, max_restarts: 4, max_seconds: 60}
"""


def test_a_group_name_starts_and_stops_its_members_in_order(cli_daemon):
    cli_daemon.write_config("stack", GROUP_CONFIG)
    assert cli_daemon.cli("reload-config").code == 0
    started = cli_daemon.cli("start", "pair")
    assert started.code == 0, started
    assert [line.split()[1] for line in started.out.splitlines()] == ["ga", "gb"]
    ga, gb = cli_daemon.record("ga"), cli_daemon.record("gb")
    assert ga["state"] == gb["state"] == "running" and ga["started_at"] <= gb["started_at"]
    stopped = cli_daemon.cli("stop", "pair")
    assert [line.split()[1] for line in stopped.out.splitlines()] == ["gb", "ga"]
    assert cli_daemon.record("ga")["state"] == "stopped"


def test_groups_are_listed_and_described(cli_daemon):
    cli_daemon.write_config("stack", GROUP_CONFIG)
    assert cli_daemon.cli("reload-config").code == 0
    assert cli_daemon.cli("start", "ga").code == 0
    table = cli_daemon.cli("list", "--groups")
    assert table.code == 0 and "one_for_all" in table.out
    assert "ga (running), gb (created)" in table.out
    described = cli_daemon.cli("describe", "pair")
    assert described.code == 0 and "Restart budget: 4 in 1m" in described.out
    assert "1. ga (running)" in described.out and "2. gb (created)" in described.out
    as_json = cli_daemon.cli("--json", "describe", "pair").json
    assert as_json["strategy"] == "one_for_all" and as_json["members"] == ["ga", "gb"]
    wide = cli_daemon.cli("list", "-o", "wide").out.splitlines()
    column = wide[0].index("GROUP")
    assert [row[column:].split()[0] for row in wide[1:]] == ["pair", "pair"]


def test_enable_and_disable_switch_auto_start(cli_daemon):
    assert cli_daemon.cli("create", "w", "sleep", "100").code == 0
    result = cli_daemon.cli("enable", "w")
    assert result.code == 0 and result.out.strip() == "enabled w (auto_start: true)"
    assert cli_daemon.record("w")["spec"]["auto_start"] is True
    assert cli_daemon.cli("disable", "w").code == 0
    assert "auto_start" not in cli_daemon.record("w")["spec"]
    assert cli_daemon.record("w")["state"] == "created"  # enable does not start it


def test_cat_labels_each_field_with_its_file_or_drop_in(cli_daemon):
    cli_daemon.write_config("web", "command: sleep\nargs: ['400']\nrestart: on-failure\n")
    dropins = cli_daemon.config_dir / "web.yaml.d"
    dropins.mkdir()
    (dropins / "10-tune.yaml").write_text("restart_sec: 7\n")
    assert cli_daemon.cli("reload-config").code == 0
    result = cli_daemon.cli("cat", "web")
    assert result.code == 0, result
    text = result.out
    assert f"# from file {cli_daemon.config_dir / 'web.yaml'}\ncommand: sleep" in text
    assert f"# from drop-in {dropins / '10-tune.yaml'}\nrestart_sec: 7.0" in text
    sources = cli_daemon.cli("--json", "cat", "web").json["sources"]
    assert sources["restart"].startswith("file ") and sources["restart_sec"].startswith("drop-in ")


def test_cat_labels_a_runtime_update_of_a_file_defined_process(cli_daemon):
    cli_daemon.write_config("web", "command: sleep\nargs: ['400']\nrestart: on-failure\n")
    assert cli_daemon.cli("reload-config").code == 0
    assert cli_daemon.cli("enable", "web").code == 0
    assert cli_daemon.cli("update", "web", "--restart", "always").code == 0
    sources = cli_daemon.cli("--json", "cat", "web").json["sources"]
    assert sources["auto_start"] == sources["restart"] == "runtime"
    assert sources["command"] == f"file {cli_daemon.config_dir / 'web.yaml'}"


def test_cat_of_a_runtime_process_says_so(cli_daemon):
    assert cli_daemon.cli("create", "rt", "sleep", "10").code == 0
    text = cli_daemon.cli("cat", "rt").out
    assert "# from runtime (created with dd-procmgr create)\ncommand: sleep" in text


def editor(tmp_path, name: str, content: str) -> str:
    script = tmp_path / name
    script.write_text(f"#!/bin/sh\ncat > \"$1\" <<'EOF'\n{content}EOF\n")
    script.chmod(0o755)
    return str(script)


def test_edit_saves_a_valid_drop_in_and_reloads(cli_daemon, tmp_path):
    cli_daemon.write_config("web", "command: sleep\nargs: ['400']\n")
    assert cli_daemon.cli("reload-config").code == 0
    env = cli_daemon.env(EDITOR=editor(tmp_path, "ok.sh", "restart: always\n"))
    result = cli_daemon.cli("edit", "web", env=env)
    assert result.code == 0, result
    saved = cli_daemon.config_dir / "web.yaml.d" / "50-edit.yaml"
    assert saved.read_text() == "restart: always\n"
    assert "Changed:   web" in result.out
    assert cli_daemon.record("web")["restart"] == "always"


def test_edit_refuses_to_save_an_invalid_result(cli_daemon, tmp_path):
    cli_daemon.write_config("web", "command: sleep\nargs: ['400']\n")
    assert cli_daemon.cli("reload-config").code == 0
    env = cli_daemon.env(EDITOR=editor(tmp_path, "bad.sh", "restart: sometimes\n"))
    result = cli_daemon.cli("edit", "web", env=env)
    assert result.code == 1
    assert "not valid and was not saved" in result.err and "'restart'" in result.err
    assert "sometimes" in result.err
    assert not (cli_daemon.config_dir / "web.yaml.d").exists()
    assert cli_daemon.record("web")["restart"] == "never"


def test_edit_of_a_runtime_process_applies_an_update(cli_daemon, tmp_path):
    assert cli_daemon.cli("create", "rt", "sleep", "100").code == 0
    ident = cli_daemon.record("rt")["id"]
    env = cli_daemon.env(EDITOR=editor(tmp_path, "rt.sh",
                                       "command: sleep\nargs: ['200']\nrestart: always\n"))
    result = cli_daemon.cli("edit", "rt", env=env)
    assert result.code == 0, result
    record = cli_daemon.record("rt")
    assert record["args"] == ["200"] and record["restart"] == "always" and record["id"] == ident


def test_update_changes_command_and_args_keeping_id_and_history(cli_daemon):
    assert cli_daemon.cli("create", "u", "--start", "sleep", "300").code == 0
    before = cli_daemon.wait_state("u", "running")
    result = cli_daemon.cli("update", "u", "--command", PY, "--args",
                            "-c 'import time; time.sleep(300)'", "--restart-process")
    assert result.code == 0, result
    assert "command" in result.out and "args" in result.out
    after = cli_daemon.wait_state("u", "running")
    assert after["command"] == PY and after["args"] == ["-c", "import time; time.sleep(300)"]
    assert after["id"] == before["id"] and after["runs"] == 2 and after["pid"] != before["pid"]


def test_list_filters_by_pattern_and_state_and_sorts(cli_daemon):
    for name in ("web-1", "web-2", "db"):
        assert cli_daemon.cli("create", name, "sleep", "300").code == 0
    assert cli_daemon.cli("start", "web-2", "db").code == 0
    names = lambda r: [line.split()[0] for line in r.out.splitlines()[1:]]  # noqa: E731
    assert names(cli_daemon.cli("list", "web*")) == ["web-1", "web-2"]
    assert names(cli_daemon.cli("list", "--state", "running")) == ["web-2", "db"]
    assert names(cli_daemon.cli("list", "web*", "--state", "created,failed")) == ["web-1"]
    assert names(cli_daemon.cli("list", "--sort", "name")) == ["db", "web-1", "web-2"]
    by_mem = cli_daemon.cli("--json", "list", "--sort", "mem").json
    assert [r["name"] for r in by_mem][-1] == "web-1"  # not running: no memory, last
    bad = cli_daemon.cli("list", "--state", "sleeping")
    assert bad.code == 2 and "unknown state sleeping" in bad.err


def test_stats_of_several_and_all_in_one_table(cli_daemon):
    for name in ("a", "b"):
        assert cli_daemon.cli("create", name, "--start", "sleep", "300").code == 0
    table = cli_daemon.cli("stats", "a", "b")
    assert table.code == 0 and table.out.split()[:4] == ["NAME", "STATE", "PID", "CPU%"]
    every = cli_daemon.cli("--json", "stats", "--all").json
    assert sorted(item["name"] for item in every) == ["a", "b"]
    assert all(item["pid"] for item in every)


def test_logs_since_until_grep_and_json_lines_name_the_process(cli_daemon):
    script = "import time\nfor i in range(6): print(f'line {i}', flush=True)\ntime.sleep(300)"
    assert cli_daemon.cli("create", "talk", "--start", "--", PY, "-c", script).code == 0
    wait_log(cli_daemon, "talk", "line 5")
    assert cli_daemon.cli("logs", "talk", "--grep", "line [24]").out == "line 2\nline 4\n"
    assert cli_daemon.cli("logs", "talk", "--since", "10m", "-n", "2").out == "line 4\nline 5\n"
    assert cli_daemon.cli("logs", "talk", "--until", "1h").out == ""
    future = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 3600))
    assert cli_daemon.cli("logs", "talk", "--since", future).out == ""
    bad = cli_daemon.cli("logs", "talk", "--since", "yesterday")
    assert bad.code == 2 and "--since 'yesterday'" in bad.err
    items = cli_daemon.cli("--json", "logs", "talk").json
    assert {item["process"] for item in items} == {"talk"}


def test_tail_is_logs_follow_and_every_json_line_names_the_process(cli_daemon):
    assert cli_daemon.cli("create", "t", "--start", "--", PY, "-c",
                          "import time\nprint('backlog', flush=True)\ntime.sleep(1.5)\n"
                          "print('live', flush=True)\ntime.sleep(300)").code == 0
    wait_log(cli_daemon, "t", "backlog")
    follower = cli_daemon.popen("tail", "--json", "--grep", "backlog|live", "t")
    try:
        first = json.loads(follower.stdout.readline())
        second = json.loads(follower.stdout.readline())
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    assert (first["line"], first["process"]) == ("backlog", "t")
    assert (second["line"], second["process"]) == ("live", "t")


def test_a_relative_command_resolves_against_the_callers_cwd(cli_daemon, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    worker = app / "spawn_workers.sh"
    worker.write_text("#!/bin/sh\necho workers up in $(pwd)\nexec sleep 300\n")
    worker.chmod(0o755)
    (app / "env").write_text("GREETING=hi\n")
    argv = [CLI, "--socket", cli_daemon.socket, "create", "workers", "./spawn_workers.sh",
            "--auto-start", "--env-file", "env", "--working-dir", "."]
    done = subprocess.run(argv, cwd=app, capture_output=True, text=True, env=cli_daemon.env(),
                          timeout=30)
    assert done.returncode == 0, done
    record = cli_daemon.wait_state("workers", "running")
    assert record["command"] == str(worker)
    assert record["spec"]["working_dir"] == str(app)
    assert record["spec"]["environment_file"] == [str(app / "env")]
    wait_log(cli_daemon, "workers", f"workers up in {app}")


def test_json_of_mutating_commands_is_the_describe_record(cli_daemon):
    created = cli_daemon.cli("--json", "create", "j", "--restart", "on-failure", "sleep", "300")
    assert created.code == 0
    for doc in (created.json, cli_daemon.cli("--json", "start", "j").json,
                cli_daemon.cli("--json", "restart", "j").json,
                cli_daemon.cli("--json", "stop", "j").json,
                cli_daemon.cli("--json", "update", "j", "--description", "d").json["record"],
                cli_daemon.cli("--json", "delete", "j").json):
        assert doc["command"] == "sleep" and doc["args"] == ["300"], doc
        assert doc["restart"] == "on-failure" and doc["process_type"] == "simple"
        assert doc["spec"]["restart"] == "on-failure"


def test_events_text_has_no_count_noise(cli_daemon):
    assert cli_daemon.cli("create", "ev", "--start", "sleep", "300").code == 0
    follower = cli_daemon.popen("events", "--process", "ev")
    try:
        # The subscription is not observable from outside: poke (a harmless SIGCONT,
        # which is an event) until the follower prints one.
        def printed():
            assert cli_daemon.cli("kill", "-s", "CONT", "ev").code == 0
            ready, _, _ = select.select([follower.stdout], [], [], 0.5)
            return follower.stdout.readline() if ready else None
        line = cli_daemon.wait_for("an event line", printed)
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    assert "ev" in line and "process_signalled" in line and "signal=SIGCONT" in line
    assert "count=" not in line


def test_a_multi_line_command_stays_on_its_row(cli_daemon):
    script = "echo 1\n" + "true\n" * 30 + "sleep 300"
    # `sh` (a PATH lookup) keeps the command column short whatever the checkout path.
    assert cli_daemon.cli("create", "ml", "--", "sh", "-c", script).code == 0
    lines = cli_daemon.cli("list").out.splitlines()
    assert len(lines) == 2 and "\\n" in lines[1] and lines[1].endswith("…")


def test_completion_offers_group_names_for_start(cli_daemon):
    cli_daemon.write_config("stack", GROUP_CONFIG)
    assert cli_daemon.cli("reload-config").code == 0
    env = cli_daemon.env(DD_PM_SOCKET=cli_daemon.socket, _DD_PROCMGR_COMPLETE="bash_complete",
                         COMP_WORDS="dd-procmgr start ", COMP_CWORD="2")
    done = subprocess.run([CLI], capture_output=True, text=True, env=env, timeout=30)
    offered = {line.split(",", 1)[1] for line in done.stdout.split()}
    assert offered == {"ga", "gb", "pair"}


def test_edit_of_a_runtime_process_refuses_an_invalid_spec(cli_daemon, tmp_path):
    assert cli_daemon.cli("create", "rt", "sleep", "100").code == 0
    env = cli_daemon.env(EDITOR=editor(tmp_path, "rt-bad.sh",
                                       "command: sleep\nargs: ['100']\nrestart_sec: soon\n"))
    result = cli_daemon.cli("edit", "rt", env=env)
    assert result.code == 1 and "not valid and was not saved" in result.err
    assert "restart_sec" in result.err
    assert "restart_sec" not in cli_daemon.record("rt")["spec"]
