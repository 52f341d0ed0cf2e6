"""Human output of dd-procmgr: durations, timestamps, tables, colour rules, record views."""

from __future__ import annotations

import io
import re
import time

from hypothesis import given, strategies as st

from dd_procmgr_cli import views
from dd_procmgr_cli.format import (
    colour_allowed, human_duration, human_size, local_timestamp, paint, render_pairs,
    render_table, shorten,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
NOW = 1_700_000_000.0


def record(**over):
    base = {"name": "web", "id": "93b3a49a-ccb7-4b0f-91e3-075839376acc", "state": "running",
            "pid": 1234, "runs": 2, "restarts": 1, "exit_code": None, "exit_signal": None,
            "created_at": NOW - 9000, "started_at": NOW - 8100, "ended_at": None,
            "health": "healthy", "next_restart_at": None, "reason": "started on request",
            "command": "python3", "args": ["-m", "http.server", "8080"],
            "description": "", "process_type": "simple", "restart": "always"}
    base.update(over)
    return base


# -- durations --------------------------------------------------------------------------

def test_durations_show_two_most_significant_units():
    assert human_duration(2 * 3600 + 15 * 60 + 7) == "2h 15m"
    assert human_duration(65) == "1m 5s"
    assert human_duration(3 * 86400 + 4 * 3600) == "3d 4h"
    assert human_duration(42) == "42s"


def test_durations_drop_a_zero_second_unit():
    assert human_duration(3600) == "1h"
    assert human_duration(2 * 3600 + 30) == "2h"


def test_short_durations_keep_precision():
    assert human_duration(0.25) == "250ms"
    assert human_duration(1.5) == "1.5s"
    assert human_duration(0) == "0s"
    assert human_duration(None) == "-"


@given(st.floats(min_value=0, max_value=10 * 365 * 86400, allow_nan=False))
def test_any_duration_renders_to_at_most_two_units(seconds):
    text = human_duration(seconds)
    assert text and len(text.split()) <= 2
    assert re.fullmatch(r"(\d+(\.\d)?(ms|d|h|m|s))( \d+(d|h|m|s))?", text), text


# -- timestamps, sizes, shortening -----------------------------------------------------------

def test_timestamps_are_local_iso_like():
    stamp = local_timestamp(NOW)
    assert stamp == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(NOW))
    assert local_timestamp(NOW + 0.123, millis=True).endswith(".123")
    assert local_timestamp(None) == "-"


def test_sizes_use_binary_units_like_the_seed():
    assert human_size(512 * 1024 * 1024) == "512 MiB"
    assert human_size(int(128.5 * 1024 * 1024)) == "128.5 MiB"
    assert human_size(100) == "100 B"


def test_shorten_marks_the_cut():
    assert shorten("abcdef", 4) == "abc…"
    assert shorten("abc", 4) == "abc"


# -- colour -------------------------------------------------------------------------------

class Tty(io.StringIO):
    def isatty(self):
        return True


def test_colour_only_on_a_tty_and_never_with_no_color():
    assert colour_allowed(Tty(), {})
    assert not colour_allowed(io.StringIO(), {})
    assert not colour_allowed(Tty(), {"NO_COLOR": ""})
    assert not colour_allowed(Tty(), {"TERM": "dumb"})


def test_paint_is_identity_when_disabled():
    assert paint("running", "green", False) == "running"
    assert paint("running", "green", True) == "\x1b[32mrunning\x1b[0m"


# -- tables ---------------------------------------------------------------------------------

def test_table_columns_align_even_with_colour():
    plain = render_table(["A", "BB"], [["xxx", "y"], ["z", "w"]])
    coloured = render_table(["A", "BB"], [["xxx", "y"], ["z", "w"]],
                            colours=[["red", None], [None, "green"]], colour=True)
    assert ANSI.sub("", coloured) == plain
    lines = plain.splitlines()
    assert [line.index(col) for line, col in zip(lines, ["BB", "y", "w"])] == [6, 6, 6]


@given(st.lists(st.lists(st.text(alphabet="abc-_ 12", max_size=8), min_size=3, max_size=3),
                max_size=6))
def test_every_table_column_starts_at_the_same_offset(rows):
    rows = [[cell.strip() or "-" for cell in row] for row in rows]
    header = ["ONE", "TWO", "THREE"]
    lines = render_table(header, rows).splitlines()
    width0 = max(len(r[0]) for r in rows + [header])
    for line in lines:
        assert line[width0:width0 + 3] == "   "


def test_pairs_align_values():
    text = render_pairs([("Name", "web"), ("Description", "x")])
    assert text.splitlines() == ["Name:        web", "Description: x"]


# -- list view -------------------------------------------------------------------------------

def test_list_has_the_contract_columns_and_uptime():
    text = views.render_list([record()], NOW)
    header, row = text.splitlines()
    assert header.split() == ["NAME", "ID", "PID", "STATE", "HEALTH", "RUNS", "UPTIME",
                              "COMMAND"]
    assert "2h 15m" in row and "python3 -m http.server 8080" in row
    assert row.split()[:6] == ["web", record()["id"], "1234", "running", "healthy", "2"]


def test_wide_list_adds_lifecycle_columns():
    text = views.render_list([record(state="failed", pid=None, exit_code=None, exit_signal=9,
                                     ended_at=NOW - 5)], NOW, wide=True)
    header, row = text.splitlines()
    assert header.split()[-8:] == ["RESTARTS", "EXIT", "GROUP", "CREATED", "STARTED", "ENDED",
                                   "STATUS", "REASON"]
    assert "SIGKILL" in row and local_timestamp(NOW - 5) in row


def test_stopped_process_has_no_uptime_and_no_pid():
    row = views.render_list([record(state="stopped", pid=None)], NOW).splitlines()[1]
    assert row.split()[2] == "-" and row.split()[6] == "-"


def test_command_with_spaces_is_shell_quoted():
    assert views.command_line({"command": "sh", "args": ["-c", "echo hi"]}) == "sh -c 'echo hi'"


def test_empty_list_prints_a_hint():
    assert "dd-procmgr create" in views.render_list([], NOW)


# -- describe / stats / update / reload / events / logs ------------------------------------------

def test_describe_shows_state_reason_backoff_and_configuration():
    rec = record(state="backoff", pid=None, next_restart_at=NOW + 4, reason="exited with 1",
                 spec={"command": "python3", "restart": "always", "env": {"A": "1"},
                       "health_check": {"type": "tcp", "tcp_address": "127.0.0.1:80"}},
                 last_probes=[{"ok": False, "latency": 0.01}])
    text = views.render_describe(rec, NOW)
    assert "State:" in text and "backoff (exited with 1)" in text
    assert "Next restart: in 4s" in text
    assert "Configuration:" in text and "  env:\n    A: 1" in text
    assert "tcp_address: 127.0.0.1:80" in text
    assert "Runtime:" in text and "last_probes" in text


def test_stats_follow_the_seed_layout():
    text = views.render_stats({"pid": 1234, "cgroup": {
        "memory_current": int(128.5 * 2**20), "memory_limit": 512 * 2**20,
        "cpu_user_seconds": 5.23, "cpu_system_seconds": 1.45, "pids_current": 12,
        "pids_limit": 100, "oom_kills": 0}, "open_fds": 7, "sockets": ["tcp 0.0.0.0:80"]},
        "datadog-agent")
    assert text.startswith("Resource Usage Statistics for 'datadog-agent' (PID: 1234)")
    assert "  Current: 128.5 MiB" in text and "  Limit:   512 MiB (25.1% used)" in text
    assert "  Total:       6.68s" in text and "  Limit:   100 (12.0% used)" in text
    assert "Open fds:  7" in text and "sockets: [tcp 0.0.0.0:80]" in text


def test_stats_fall_back_to_process_figures_without_cgroup_accounting():
    text = views.render_stats({"pid": 5, "cgroup": {"memory_current": None},
                               "memory_rss": 2 * 2**20, "cpu_user": 1.0, "cpu_system": 0.5,
                               "threads": 3}, "x")
    assert "  Current: 2 MiB" in text and "  Total:       1.50s" in text
    assert "PIDs:\n  Current: 3\n  Limit:   none" in text


def test_cpu_percent_between_two_samples():
    first = {"time": 100.0, "cpu_user": 1.0, "cpu_system": 0.0}
    second = {"time": 102.0, "cpu_user": 2.0, "cpu_system": 0.5}
    assert views.cpu_percent(first, second) == 75.0
    assert views.cpu_percent(None, second) is None


def test_update_output_matches_the_seed():
    text = views.render_update({"updated_fields": ["env"], "restart_required": ["env"],
                                "restarted": True, "dry_run": False})
    assert text.splitlines() == [
        "[OK] Process configuration updated", "Updated fields:", "  - env",
        "The following fields require restart to take effect:", "  - env",
        "✓ Process restarted successfully"]


def test_dry_run_update_says_nothing_was_applied():
    text = views.render_update({"updated_fields": ["restart", "resources"],
                                "restart_required": [], "restarted": False, "dry_run": True})
    assert text.splitlines()[0] == "[OK] Dry run - validation successful (no changes applied)"
    assert "require restart" not in text


def test_reload_lists_names():
    text = views.render_reload({"added": ["a", "b"], "removed": [], "changed": ["c"],
                                "unchanged": ["d", "e"], "errors": []})
    assert "Added:     a, b" in text and "Removed:   -" in text and "Unchanged: 2" in text


def test_refused_reload_says_nothing_changed_and_lists_each_error():
    text = views.render_reload({"added": [], "removed": [], "changed": [], "unchanged": ["d"],
                                "errors": [{"file": "x.yaml", "line": 3, "field": "restart",
                                            "message": "unknown policy",
                                            "expected": "never, always"},
                                           {"file": "y.yaml", "message": "cycle"}]})
    assert text.splitlines()[0] == "Configuration not reloaded: nothing changed. Errors:"
    assert "x.yaml:3: field 'restart': unknown policy (expected never, always)" in text
    assert "y.yaml: cycle" in text and "Added" not in text


def test_reload_keeps_warnings_apart_from_errors():
    warning = {"file": "w.yaml", "line": 3, "field": "wants", "severity": "warning",
               "message": "wants unknown process 'ghost'"}
    error = {"file": "x.yaml", "line": 1, "field": "command", "severity": "error",
             "message": "missing required field"}
    only_warning = {"added": ["w"], "errors": [warning]}
    assert views.reload_errors(only_warning) == []
    text = views.render_reload(only_warning)
    assert text.startswith("Configuration reloaded\n") and "Errors" not in text
    assert "Warnings (applied):\n  w.yaml:3: warning: field 'wants'" in text
    both = views.render_reload({"errors": [warning, error]})
    assert views.reload_errors({"errors": [warning, error]}) == [error]
    assert both.startswith("Configuration not reloaded: nothing changed. Errors:\n  x.yaml:1:")
    assert both.endswith("\nWarnings:\n  w.yaml:3: warning: field 'wants': wants unknown "
                         "process 'ghost'")


def test_issue_line_matches_config_issue_str():
    from trio_procmgr.spec import ConfigIssue
    issue = ConfigIssue(file="a.yaml", line=2, field="args", message="not a list",
                        expected="list of strings")
    assert views.issue_line(issue.to_dict()) == str(issue)
    bare = ConfigIssue(file="b.yaml", message="cycle a -> b -> a")
    assert views.issue_line(bare.to_dict()) == str(bare)


def test_event_line_shows_time_process_type_and_details():
    line = views.render_event({"seq": 3, "time": NOW, "type": "exited", "process": "web",
                               "id": "x", "exit_code": 1})
    assert line == f"{local_timestamp(NOW, millis=True)}  web  exited  exit_code=1"


def test_log_lines_optionally_carry_time_stream_and_prefix():
    item = {"time": NOW, "stream": "stderr", "line": "boom\n"}
    assert views.render_log(item) == "boom"
    assert views.render_log(item, timestamps=True, prefix="web") == \
        f"web | {local_timestamp(NOW, millis=True)} stderr boom"
    assert views.render_log({"line": b"\xffbin"}) == "\ufffdbin"


def test_deps_draws_both_trees_with_relations_and_marks():
    node = lambda name, state, directives, *children, **flags: dict(  # noqa: E731
        name=name, state=state, directives=list(directives), children=list(children), **flags)
    graph = {"name": "web", "state": "running",
             "dependencies": node("web", "running", (),
                                  node("db", "running", ("requires", "after"),
                                       node("disk", None, ("requires",), missing=True)),
                                  node("cache", "stopped", ("wants",),
                                       node("db", "running", ("after",), repeated=True))),
             "dependants": node("web", "running", ()),
             "conflicts": [{"name": "old-web", "state": "stopped"}]}
    assert views.render_deps(graph).splitlines() == [
        "web (running)",
        "Depends on:",
        "├─ db (running) [requires, after]",
        "│  └─ disk (not loaded) [requires] (not defined)",
        "└─ cache (stopped) [wants]",
        "   └─ db (running) [after] (see above)",
        "Needed by:",
        "   (none)",
        "Conflicts with:",
        "   old-web (stopped)",
    ]
    assert views.render_deps(graph, forward=False).splitlines()[:2] == ["web (running)",
                                                                        "Needed by:"]
