"""list filters, sorting and group nouns, decided without a daemon."""

from __future__ import annotations

import pytest

from dd_procmgr_cli.selection import (
    SelectionError, expand_groups, filter_records, parse_states, sort_records,
)

RECORDS = [
    {"name": "web-1", "id": "a", "state": "running", "restarts": 1, "started_at": 100.0},
    {"name": "web-2", "id": "b", "state": "failed", "restarts": 5, "started_at": None},
    {"name": "db", "id": "c", "state": "running", "restarts": 0, "started_at": 50.0},
    {"name": "cron", "id": "d", "state": "stopped", "restarts": 0, "started_at": None},
]


def names(records):
    return [r["name"] for r in records]


def test_states_accept_commas_and_repetition():
    assert parse_states(["running,failed", "stopped"]) == {"running", "failed", "stopped"}


def test_an_unknown_state_is_named_with_the_allowed_ones():
    with pytest.raises(SelectionError, match="unknown state sleeping; expected one of created"):
        parse_states(["running,sleeping"])


def test_glob_patterns_and_state_filters_combine():
    assert names(filter_records(RECORDS, ["web*"], set())) == ["web-1", "web-2"]
    assert names(filter_records(RECORDS, ["web*"], {"running"})) == ["web-1"]
    assert names(filter_records(RECORDS, [], {"stopped"})) == ["cron"]
    assert names(filter_records(RECORDS, ["c"], set())) == ["db"]  # an exact id


def test_uptime_sorts_longest_running_first_and_dead_ones_last():
    assert names(sort_records(RECORDS, "uptime", now=200.0)) == ["db", "web-1", "cron", "web-2"]


def test_restarts_and_state_orders():
    assert names(sort_records(RECORDS, "restarts", now=0))[:2] == ["web-2", "web-1"]
    assert names(sort_records(RECORDS, "state", now=0))[0] == "web-2"  # failed first


def test_cpu_and_mem_sort_by_the_stats_given():
    stats = {"db": {"cpu_percent": 50.0, "memory_current": 10},
             "cron": {"cpu_percent": 1.0, "memory_current": 999}}
    assert names(sort_records(RECORDS, "cpu", 0, stats))[0] == "db"
    assert names(sort_records(RECORDS, "mem", 0, stats))[0] == "cron"


def test_unknown_sort_key_is_refused():
    with pytest.raises(SelectionError, match="expected one of name, state"):
        sort_records(RECORDS, "colour", 0)


def test_a_group_name_stands_for_its_members_in_order_and_reversed_for_stop():
    groups = [{"name": "pair", "members": ["a", "b", "c"]}]
    assert expand_groups(["pair"], {"a", "b", "c"}, groups) == ["a", "b", "c"]
    assert expand_groups(["pair"], {"a", "b", "c"}, groups, reverse=True) == ["c", "b", "a"]
    assert expand_groups(["x", "pair", "a"], {"a", "b", "c", "x"}, groups) == ["x", "a", "b", "c"]


def test_a_process_named_like_a_group_wins():
    groups = [{"name": "pair", "members": ["a", "b"]}]
    assert expand_groups(["pair"], {"pair", "a", "b"}, groups) == ["pair"]
