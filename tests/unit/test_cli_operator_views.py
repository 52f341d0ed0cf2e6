"""Rendering of the operator verbs' answers (list escaping, groups, events)."""

from __future__ import annotations

from dd_procmgr_cli.format import escape_controls
from dd_procmgr_cli.views import render_event, render_group, render_groups, render_list

GROUP = {"name": "pair", "strategy": "one_for_all", "state": "running", "members": ["a", "b"],
         "member_states": {"a": "running", "b": None}, "max_restarts": 3, "max_seconds": 5,
         "restarts": 1, "restarts_in_window": 1}


def test_control_characters_are_escaped():
    assert escape_controls("a\nb\tc\x1b") == "a\\nb\\tc\\x1b"
    assert escape_controls("plain") == "plain"


def test_a_multi_line_command_stays_on_one_row_and_is_cut():
    script = "import time\n" + "x = 1\n" * 40 + "time.sleep(1)"
    records = [{"name": "py", "id": "i", "state": "running", "command": "python3",
                "args": ["-c", script]},
               {"name": "n" * 100, "id": "j", "state": "created", "command": "sleep"}]
    lines = render_list(records, 0.0).splitlines()
    assert len(lines) == 3
    assert "\\n" in lines[1] and lines[1].endswith("…")
    assert "n" * 39 + "…" in lines[2] and "n" * 41 not in lines[2]


def test_events_without_a_count_do_not_print_count_dash():
    line = render_event({"seq": 1, "time": 0.0, "type": "state_changed", "process": "a",
                         "count": None, "to": "running"})
    assert "count" not in line and "to=running" in line


def test_groups_table_and_group_description():
    table = render_groups([GROUP])
    assert "pair" in table and "one_for_all" in table and "a (running), b (not loaded)" in table
    text = render_group(GROUP)
    assert "Strategy:" in text and "3 in 5s (1 used in the window)" in text
    assert "1. a (running)" in text and "2. b (not loaded)" in text
