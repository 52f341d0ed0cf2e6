"""create/update flags become exactly the config mapping a YAML file would hold."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from dd_procmgr_cli.fieldflags import (
    FIELD_FLAGS, FlagValueError, changes_from_options, create_spec, number_or_text, parse_env,
)

SECTION_2_3_FIELDS = {
    "description", "auto_start", "process_type", "restart", "restart_sec",
    "restart_max_delay", "backoff", "start_limit_burst", "start_limit_interval",
    "timeout_start_sec", "timeout_stop_sec", "kill_signal", "kill_mode",
    "success_exit_status", "working_dir", "env", "environment_file", "user", "group",
    "pidfile", "condition_path_exists", "runtime_directory", "ambient_capabilities",
    "requires", "wants", "binds_to", "conflicts", "after", "before", "part_of",
    "health_check", "watchdog_sec", "resources", "log", "wait_healthy",
}


def test_every_process_field_has_a_flag():
    covered = {flag.path[0] for flag in FIELD_FLAGS}
    assert SECTION_2_3_FIELDS <= covered


def test_flag_names_are_unique():
    names = [name for flag in FIELD_FLAGS for name in flag.flags]
    assert len(names) == len(set(names))


def test_unset_flags_are_absent():
    assert changes_from_options({"restart_policy": None, "env": (), "requires": ()}) == {}


def test_numbers_become_numbers_and_units_stay_text():
    changes = changes_from_options({"restart_sec": "5", "timeout_stop_sec": "500ms",
                                    "cpu_limit": "0.5", "memory_limit": "512M",
                                    "start_limit_burst": 3})
    assert changes == {"restart_sec": 5, "timeout_stop_sec": "500ms",
                       "start_limit_burst": 3,
                       "resources": {"limits": {"cpu": 0.5, "memory": "512M"}}}


def test_nested_fields_merge_into_one_mapping():
    changes = changes_from_options({"cpu_request": "500m", "cpu_limit": "2",
                                    "memory_limit": "1Gi", "pids_limit": 100})
    assert changes == {"resources": {"requests": {"cpu": "500m"},
                                     "limits": {"cpu": 2, "memory": "1Gi", "pids": 100}}}


def test_health_check_type_is_inferred_from_its_target():
    assert changes_from_options({"health_check_tcp_address": "127.0.0.1:6379"}) == \
        {"health_check": {"type": "tcp", "tcp_address": "127.0.0.1:6379"}}
    assert changes_from_options({"health_check_exec": "pg_isready -q", "health_check_retries": 2}) \
        == {"health_check": {"type": "exec", "exec_command": ["pg_isready", "-q"], "retries": 2}}
    assert changes_from_options({"health_check_interval": "10s"}) == \
        {"health_check": {"interval": "10s"}}


def test_explicit_health_check_type_wins():
    assert changes_from_options({"health_check_type": "http",
                                 "health_check_tcp_address": "h:1"})["health_check"]["type"] == "http"


def test_dependency_lists_accept_repeats_and_commas():
    assert changes_from_options({"requires": ("db,cache", "queue")}) == \
        {"requires": ["db", "cache", "queue"]}


def test_paths_are_never_split_on_commas():
    assert changes_from_options({"condition_path_exists": ("/a,b", "!/c")}) == \
        {"condition_path_exists": ["/a,b", "!/c"]}


def test_env_later_wins_and_values_keep_equals_signs():
    assert parse_env(["A=1", "B=x=y", "A=2", "EMPTY="]) == {"A": "2", "B": "x=y", "EMPTY": ""}
    with pytest.raises(FlagValueError, match="KEY=VALUE"):
        parse_env(["NOVALUE"])


def test_success_exit_status_accepts_codes_and_signals():
    assert changes_from_options({"success_exit_status": ("0", "143", "term", "SIGHUP")}) == \
        {"success_exit_status": [0, 143, "SIGTERM", "SIGHUP"]}


def test_bool_flags_can_be_turned_off():
    assert changes_from_options({"auto_start": False, "wait_healthy": True}) == \
        {"auto_start": False, "wait_healthy": True}


def test_create_spec_holds_command_and_args():
    assert create_spec("python3", ["-m", "http.server"], {"restart_policy": "always"}) == \
        {"command": "python3", "args": ["-m", "http.server"], "restart": "always"}
    assert create_spec("sleep", [], {}) == {"command": "sleep"}


def test_bad_exec_quoting_is_a_flag_error():
    with pytest.raises(FlagValueError, match="--health-check-exec"):
        changes_from_options({"health_check_exec": "echo 'unterminated"})


@given(st.integers())
def test_integers_round_trip(n):
    assert number_or_text(str(n)) == n


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip(x):
    assert number_or_text(repr(x)) == x


@given(st.from_regex(r"[0-9]+(ms|s|m|h|M|G|Gi|Ki)", fullmatch=True))
def test_unit_strings_stay_text(text):
    assert number_or_text(text) == text


def test_relative_paths_resolve_against_the_callers_cwd():
    from dd_procmgr_cli.fieldflags import resolve_relative_paths
    spec = {"command": "./spawn_workers.sh", "working_dir": "data",
            "environment_file": ["env", "-opt.env", "/etc/abs.env", "-/etc/maybe.env"]}
    assert resolve_relative_paths(spec, "/home/u/app") == {
        "command": "/home/u/app/spawn_workers.sh", "working_dir": "/home/u/app/data",
        "environment_file": ["/home/u/app/env", "-/home/u/app/opt.env", "/etc/abs.env",
                             "-/etc/maybe.env"]}


def test_a_bare_command_stays_a_path_lookup():
    from dd_procmgr_cli.fieldflags import resolve_relative_paths
    assert resolve_relative_paths({"command": "sleep"}, "/x") == {"command": "sleep"}
    assert resolve_relative_paths({"command": "bin/x"}, "/x") == {"command": "/x/bin/x"}


def test_update_command_and_args_flags():
    from dd_procmgr_cli.fieldflags import command_changes
    assert command_changes("python3", "-c 'print(1)'") == {"command": "python3",
                                                             "args": ["-c", "print(1)"]}
    assert command_changes(None, "") == {"args": []}
    with pytest.raises(FlagValueError, match="--args"):
        command_changes(None, "'unclosed")
