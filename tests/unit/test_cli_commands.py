"""Command lines become the right RPC calls, outputs and exit statuses.

The daemon is replaced by a recording stand-in for BlockingClient (same result shapes:
single-field results structs such as {"record": ...}) (the real
daemon is exercised in tests/integration/test_cli_*.py); what is checked here is
the CLI's own work: parsing, field mapping, JSON shape, exit codes, fast path.
"""

from __future__ import annotations

import json
import os

import pytest

from dd_procmgr_cli import entry
from dd_procmgr_cli.invocation import Invocation
from trio_procmgr import errors

NOW = 1_700_000_000.0


def rec(name, state="running", **over):
    base = {"name": name, "id": f"id-{name}", "state": state, "pid": 10, "runs": 1,
            "restarts": 0, "health": "none", "command": "sleep", "args": ["100"],
            "created_at": NOW, "started_at": NOW, "ended_at": None}
    base.update(over)
    return base


class FakeDaemon:
    def __init__(self, records=(), fail=None):
        self.records = {r["name"]: r for r in records}
        self.calls = []
        self.fail = fail or {}
        self.answers = {}
        self.stream_items = [{"seq": 1, "time": NOW, "type": "started", "process": "web", "id": "x"},
                             {"seq": 2, "time": NOW, "type": "exited", "process": "web", "id": "x"}]

    def call(self, method, **params):
        self.calls.append((method, params))
        if method in self.fail:
            raise self.fail[method]
        if method in self.answers:
            answer = self.answers[method]
            return answer(params) if callable(answer) else answer
        if method == "list":
            return {"processes": list(self.records.values())}
        if method in ("describe", "start", "stop", "restart", "delete", "pause", "resume"):
            if params["name"] not in self.records:
                raise errors.ProcessNotFound(f"no process named {params['name']!r}")
            return {"record": self.records[params["name"]]}
        if method == "create":
            return {"record": rec(params["name"], state="created", pid=None)}
        if method == "update":
            return {"updated_fields": sorted(params["changes"]), "restart_required": [],
                    "restarted": False, "dry_run": params["dry_run"]}
        if method in ("start_many", "stop_many", "restart_many"):
            outcomes = []
            for name in params["names"]:
                if name in self.records:
                    outcomes.append({"name": name, "record": self.records[name]})
                else:
                    outcomes.append({"name": name, "error": {
                        "code": "PROCESS_NOT_FOUND", "message": f"no process named {name!r}"}})
            return {"outcomes": outcomes}
        if method == "ping":
            return {"time": NOW}
        if method == "groups":
            return {"groups": []}
        if method == "reload_config":
            return {"added": ["a"], "removed": [], "changed": [], "unchanged": [], "errors": []}
        raise AssertionError(method)

    def call_many(self, method, params_list):
        out = []
        for params in params_list:
            try:
                out.append(self.call(method, **params))
            except errors.ProcMgrError as exc:
                out.append(exc)
        return out

    def stream(self, method, **params):
        self.calls.append((method, params))
        yield from self.stream_items

    def close(self):
        pass


@pytest.fixture
def daemon(monkeypatch):
    fake = FakeDaemon([rec("web"), rec("db", state="stopped", pid=None)])
    monkeypatch.setattr(Invocation, "client", lambda self, **kw: fake)
    return fake


def run(args, capsys, environ=None):
    code = entry.run(args, environ if environ is not None else {})
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json_is_one_array_of_records(daemon, capsys):
    code, out, _ = run(["--json", "list"], capsys)
    assert code == 0
    assert [r["name"] for r in json.loads(out)] == ["web", "db"]


def test_json_flag_is_accepted_after_the_command(daemon, capsys):
    for args in (["list", "--json"], ["stop", "web", "--json"], ["update", "web", "--json",
                                                                 "--restart", "always"]):
        code, out, _ = run(args, capsys)
        assert code == 0, args
        json.loads(out)


def test_fast_path_and_full_app_print_the_same(daemon, capsys, monkeypatch):
    commands = (["list", "-o", "wide"], ["stop", "web"], ["--json", "start", "db"],
                ["stop", "--all", "x"], ["restart"])
    fast = [run(args, capsys) for args in commands]
    monkeypatch.setattr("dd_procmgr_cli.fastpath.plan", lambda args, environ: None)
    slow = [run(args, capsys) for args in commands]
    assert fast == slow and "RESTARTS" in fast[0][1]
    assert fast[3][0] == fast[4][0] == 2, "usage errors: names with --all, nothing to act on"


def test_refusal_exits_1_with_one_error_line(daemon, capsys):
    code, out, err = run(["describe", "nope"], capsys)
    assert code == 1 and out == ""
    assert err == "error: PROCESS_NOT_FOUND: no process named 'nope'\n"


def test_refusal_with_json_is_an_error_object_on_stdout(daemon, capsys):
    code, out, _ = run(["--json", "stop", "nope"], capsys)
    assert code == 1
    assert json.loads(out)["error"]["code"] == "PROCESS_NOT_FOUND"


def test_unreachable_daemon_exits_3_naming_the_socket(monkeypatch, capsys):
    def refuse(self, **kw):
        raise ConnectionRefusedError(111, "Connection refused")
    monkeypatch.setattr(Invocation, "client", refuse)
    code, _, err = run(["--socket", "/tmp/x.sock", "ping"], capsys)
    assert code == 3
    assert "/tmp/x.sock" in err and "Connection refused" in err


def test_usage_errors_exit_2(daemon, capsys):
    assert run(["start"], capsys)[0] == 2
    assert run(["bogus-command"], capsys)[0] == 2
    assert run(["create", "x"], capsys)[0] == 2
    assert run(["update", "web"], capsys)[0] == 2
    assert run(["update", "web", "--env", "NOEQUALS"], capsys)[0] == 2
    assert daemon.calls == []


def test_create_keeps_the_commands_own_options_as_args(daemon, capsys):
    code, out, _ = run(["create", "worker", "./my-worker", "--threads", "4"], capsys)
    assert code == 0 and out.startswith("created worker id-worker")
    assert daemon.calls == [("create", {"name": "worker", "start": False, "transient": False,
                                        "config": {"command": os.path.join(os.getcwd(), "my-worker"),
                                                 "args": ["--threads", "4"]}})]


def test_create_with_auto_start_sets_the_field_and_starts_now(daemon, capsys):
    run(["create", "api", "./server", "--auto-start"], capsys)
    (_, params), = daemon.calls
    assert params["start"] is True and params["config"] == {"command": os.path.join(os.getcwd(), "server"),
                                                           "auto_start": True}


def test_create_maps_every_kind_of_flag(daemon, capsys):
    run(["create", "web", "--restart", "on-failure", "--restart-sec", "500ms",
         "--env", "A=1", "--env", "B=2", "--requires", "db", "--after", "db",
         "--health-check-http-endpoint", "http://127.0.0.1:1/h", "--memory-limit", "512M",
         "--transient", "--start", "--", "python3", "-m", "http.server", "--user", "x"],
        capsys)
    (_, params), = daemon.calls
    assert params["transient"] is True and params["start"] is True
    assert params["config"] == {
        "command": "python3", "args": ["-m", "http.server", "--user", "x"],
        "restart": "on-failure", "restart_sec": "500ms", "env": {"A": "1", "B": "2"},
        "requires": ["db"], "after": ["db"],
        "health_check": {"type": "http", "http_endpoint": "http://127.0.0.1:1/h"},
        "resources": {"limits": {"memory": "512M"}}}


def test_update_sends_changes_and_flags(daemon, capsys):
    code, out, _ = run(["update", "web", "--restart", "always", "--cpu-limit", "2",
                        "--dry-run"], capsys)
    assert code == 0 and "Dry run" in out
    assert daemon.calls == [("update", {"name": "web", "dry_run": True, "restart_process": False,
                                        "changes": {"restart": "always",
                                                    "resources": {"limits": {"cpu": 2}}}})]


def test_several_names_report_each_failure_and_exit_1(daemon, capsys):
    code, out, err = run(["stop", "web", "nope", "db"], capsys)
    assert code == 1
    assert out.splitlines() == ["stopped web (pid 10, running)", "stopped db (stopped)"]
    assert err.strip() == "error: PROCESS_NOT_FOUND: no process named 'nope'"


def test_stop_all_stops_only_live_processes_in_reverse_order(daemon, capsys):
    daemon.records["cache"] = rec("cache")
    run(["stop", "--all"], capsys)
    # one call, one transaction: the daemon orders the stops (dependants first)
    assert [c for c in daemon.calls if c[0].startswith("stop")] == [
        ("stop_many", {"names": ["cache", "web"]})]


def test_remove_is_an_alias_of_delete_with_force(daemon, capsys):
    run(["remove", "--force", "db"], capsys)
    assert daemon.calls == [("delete", {"name": "db", "force": True})]


def test_events_json_is_one_object_per_line(daemon, capsys):
    code, out, err = run(["events", "--json", "--process", "web", "--type", "exited"], capsys)
    assert code == 3 and err == "dd-procmgr: daemon stopped (connection closed)\n"
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [1, 2]
    assert daemon.calls == [("watch", {"processes": ["web"], "types": ["exited"]})]


def test_reload_prints_added_names(daemon, capsys):
    code, out, _ = run(["reload-config"], capsys)
    assert code == 0 and "Added:     a" in out


def test_socket_comes_from_the_environment(monkeypatch, capsys):
    seen = {}

    def client(self, **kw):
        seen["socket"] = self.socket
        return FakeDaemon()
    monkeypatch.setattr(Invocation, "client", client)
    run(["ping"], capsys, environ={"DD_PM_SOCKET": "/tmp/env.sock"})
    assert seen["socket"] == "/tmp/env.sock"
    monkeypatch.setenv("DD_PM_SOCKET", "/tmp/env2.sock")
    run(["delete", "web"], capsys, environ={})  # the full parser reads os.environ itself
    assert seen["socket"] == "/tmp/env2.sock"


def test_deps_is_one_rpc_call_and_json_is_its_result(daemon, capsys):
    graph = {"name": "web", "state": "running", "conflicts": [],
             "dependencies": {"name": "web", "children": [
                 {"name": "db", "state": "stopped", "directives": ["requires"], "children": []}]},
             "dependants": {"name": "web", "children": []}}
    daemon.answers["deps"] = {"graph": graph}
    code, out, _ = run(["deps", "web"], capsys)
    assert code == 0 and daemon.calls == [("deps", {"name": "web"})]
    assert out.splitlines() == ["web (running)", "Depends on:", "└─ db (stopped) [requires]",
                                "Needed by:", "   (none)"]
    code, out, _ = run(["--json", "deps", "web"], capsys)
    assert json.loads(out) == graph


def test_logs_all_follow_is_a_single_stream_of_every_process(daemon, capsys):
    daemon.stream_items = [{"time": NOW, "stream": "stdout", "line": "hi", "process": "web"},
                           {"time": NOW, "stream": "stderr", "line": "oops", "process": "db"}]
    code, out, err = run(["logs", "--all", "-f"], capsys)
    assert code == 3 and out.splitlines() == ["web | hi", "db | oops"]
    assert err == "dd-procmgr: daemon stopped (connection closed)\n"
    assert daemon.calls == [("logs", {"name": None, "lines": None, "stream": None,
                                      "follow": True})]


def test_logs_of_several_names_merge_by_time_and_n_counts_the_merged_lines(daemon, capsys):
    daemon.answers["logs"] = lambda params: {"lines": [
        {"time": NOW + (1 if params["name"] == "web" else 2) + i, "stream": "stdout",
         "line": f"{params['name']}{i}"} for i in range(0, 4, 2)]}
    code, out, _ = run(["logs", "-n", "3", "web", "db"], capsys)
    assert code == 0 and out.splitlines() == ["db | db0", "web | web2", "db | db2"]


@pytest.mark.parametrize("args", [["list"], ["ls", "--json"], ["--socket=/s", "status"],
                                  ["describe", "a", "b"], ["--timeout", "2", "ping"],
                                  ["start", "x"], ["stop", "--all"], ["restart", "a", "b", "--json"],
                                  ["pause", "x"], ["resume", "--all"]])
def test_hot_commands_take_the_fast_path(args):
    from dd_procmgr_cli import fastpath
    assert fastpath.plan(args, {}) is not None


@pytest.mark.parametrize("args", [["list", "--help"], ["list", "-o", "narrow"],
                                  ["stop", "--help"], ["start", "-x"], ["delete", "x"],
                                  ["--timeout", "abc", "list"], ["describe"], []])
def test_anything_unusual_goes_to_the_full_parser(args):
    from dd_procmgr_cli import fastpath
    assert fastpath.plan(args, {}) is None
