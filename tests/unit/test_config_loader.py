import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from trio_procmgr.config.loader import (
    load_config_dir, parse_process, resolve_config_dir, spec_to_raw, validate_dir,
)
from trio_procmgr.spec import (
    BACKOFF_KINDS, GROUP_STRATEGIES, KILL_MODES, PROCESS_TYPES, RESTART_POLICIES,
    HealthCheckSpec, LogSpec, ProcessSpec, Quantities, ResourcesSpec, SourceRef,
)


def write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


def only_issue(cfg):
    assert len(cfg.issues) == 1, [str(i) for i in cfg.issues]
    return cfg.issues[0]


# ------------------------------------------------------------------ directory layout

def test_empty_directory_gives_an_empty_valid_set(tmp_path):
    cfg = load_config_dir(tmp_path)
    assert cfg.ok and not cfg.processes and not cfg.sockets and not cfg.groups


def test_missing_directory_is_an_issue_not_an_exception(tmp_path):
    cfg = load_config_dir(tmp_path / "nope")
    assert "cannot read the configuration directory" in only_issue(cfg).message


def test_process_file_name_is_the_file_stem(tmp_path):
    write(tmp_path, "web-server.yaml", "command: python3\nargs: [-m, http.server]\n")
    write(tmp_path, "worker.yml", "command: sleep\n")
    cfg = load_config_dir(tmp_path)
    assert cfg.ok
    assert cfg.processes["web-server"].args == ("-m", "http.server")
    assert set(cfg.processes) == {"web-server", "worker"}
    assert cfg.processes["worker"].source == SourceRef(str(tmp_path / "worker.yml"))


def test_non_yaml_files_and_dotfiles_are_ignored(tmp_path):
    write(tmp_path, "README.md", "# not config\n")
    write(tmp_path, "web.yaml.bak", "garbage: [\n")
    write(tmp_path, ".hidden.yaml", "garbage: [\n")
    write(tmp_path, "web.yaml", "command: a\n")
    cfg = load_config_dir(tmp_path)
    assert cfg.ok and list(cfg.processes) == ["web"]
    assert cfg.files == (str(tmp_path / "web.yaml"),)


def test_map_file_defines_processes_sockets_and_groups(tmp_path):
    write(tmp_path, "stack.yaml", """\
        processes:
          web: {command: nginx, after: [db]}
          db: {command: postgres}
        sockets:
          web: {listen_stream: "127.0.0.1:8080"}
          db-sock: {listen_stream: /run/db.sock, service: db, fd_env: DB_FD, socket_mode: "0600"}
        groups:
          stack: {members: [db, web], strategy: one_for_all, max_restarts: 5, max_seconds: 1m}
        """)
    cfg = load_config_dir(tmp_path)
    assert cfg.ok, [str(i) for i in cfg.issues]
    assert set(cfg.processes) == {"web", "db"}
    assert cfg.processes["web"].source == SourceRef(str(tmp_path / "stack.yaml"), 2)
    web_sock = cfg.sockets["web"]
    assert (web_sock.service, web_sock.fd_name, web_sock.socket_mode) == ("web", "web", 0o660)
    assert cfg.sockets["db-sock"].socket_mode == 0o600
    assert cfg.groups["stack"].members == ("db", "web")
    assert cfg.groups["stack"].max_seconds == 60.0


def test_several_map_files_coexist(tmp_path):
    write(tmp_path, "a.yaml", "processes:\n  a: {command: a}\n")
    write(tmp_path, "b.yaml", "processes:\n  b: {command: b, requires: [a]}\n")
    cfg = load_config_dir(tmp_path)
    assert cfg.ok and set(cfg.processes) == {"a", "b"}


def test_mixing_map_keys_and_process_fields_is_an_error(tmp_path):
    path = write(tmp_path, "mixed.yaml", "processes:\n  a: {command: a}\ncommand: b\n")
    issue = only_issue(load_config_dir(tmp_path))
    assert (issue.file, issue.line, issue.field) == (path, 3, "command")


def test_a_file_that_is_not_a_map_is_an_issue(tmp_path):
    write(tmp_path, "list.yaml", "- a\n- b\n")
    assert "holds a list" in only_issue(load_config_dir(tmp_path)).message


# ------------------------------------------------------------------ issues: where and what

def test_bad_value_issue_names_file_line_field_and_expected(tmp_path):
    path = write(tmp_path, "web.yaml", "command: a\nrestart: always\nrestart_sec: 5 parsecs\n")
    issue = only_issue(load_config_dir(tmp_path))
    assert (issue.file, issue.line, issue.field) == (path, 3, "restart_sec")
    assert "duration" in issue.expected
    assert str(issue).startswith(f"{path}:3: field 'restart_sec':")


def test_nested_bad_value_points_at_its_own_line(tmp_path):
    path = write(tmp_path, "all.yaml", """\
        processes:
          api:
            command: a
            health_check:
              type: tcp
              tcp_address: "127.0.0.1:80"
              retries: zero
        """)
    issue = only_issue(load_config_dir(tmp_path))
    assert (issue.file, issue.line, issue.field) == (path, 7, "health_check.retries")
    assert issue.expected == "an integer between 1 and 1000"


def test_unknown_key_issue_has_its_line(tmp_path):
    write(tmp_path, "web.yaml", "command: a\n\nrestrat: always\n")
    issue = only_issue(load_config_dir(tmp_path))
    assert (issue.line, issue.field) == (3, "restrat")
    assert "did you mean 'restart'" in issue.message


def test_missing_required_field(tmp_path):
    write(tmp_path, "web.yaml", "args: [x]\n")
    issue = only_issue(load_config_dir(tmp_path))
    assert issue.field == "command" and "missing" in issue.message


def test_invalid_yaml_reports_the_line_and_the_others_still_load(tmp_path):
    path = write(tmp_path, "broken.yaml", "command: a\nargs: [x, y\nrestart: always\n")
    write(tmp_path, "good.yaml", "command: b\n")
    cfg = load_config_dir(tmp_path)
    issue = only_issue(cfg)
    assert issue.file == path and issue.line is not None and issue.expected == "valid YAML"
    assert list(cfg.processes) == ["good"]


def test_one_bad_entry_in_a_map_file_does_not_stop_the_others(tmp_path):
    write(tmp_path, "all.yaml", "processes:\n  bad: {command: a, restart: maybe}\n  good: {command: b}\n")
    cfg = load_config_dir(tmp_path)
    assert only_issue(cfg).line == 2
    assert list(cfg.processes) == ["good"]


def test_duplicate_yaml_key_is_an_error_and_nothing_of_the_file_is_applied(tmp_path):
    write(tmp_path, "web.yaml", "command: a\nrestart: always\nrestart: never\n")
    cfg = load_config_dir(tmp_path)
    issue = only_issue(cfg)
    assert (issue.line, issue.field, issue.severity) == (3, "restart", "error")
    assert issue.message.startswith("duplicate key")
    assert not cfg.processes


def test_transient_is_not_allowed_in_files(tmp_path):
    write(tmp_path, "web.yaml", "command: a\ntransient: true\n")
    cfg = load_config_dir(tmp_path)
    issue = only_issue(cfg)
    assert (issue.line, issue.field) == (2, "transient")
    assert not cfg.processes


def test_invalid_process_name_in_a_map_file(tmp_path):
    write(tmp_path, "all.yaml", "processes:\n  'bad name': {command: a}\n")
    issue = only_issue(load_config_dir(tmp_path))
    assert issue.field == "name" and issue.line == 2


def test_duplicate_process_name_across_files_keeps_the_first(tmp_path):
    first = write(tmp_path, "a.yaml", "processes:\n  web: {command: first}\n")
    second = write(tmp_path, "web.yaml", "command: second\n")
    cfg = load_config_dir(tmp_path)
    issue = only_issue(cfg)
    assert issue.file == second and first in issue.message and "duplicate" in issue.message
    assert cfg.processes["web"].command == "first"


def test_same_name_for_a_socket_and_a_process_is_fine(tmp_path):
    write(tmp_path, "all.yaml", "processes:\n  web: {command: a}\nsockets:\n  web: {listen_stream: ':80'}\n")
    assert load_config_dir(tmp_path).ok


# ------------------------------------------------------------------ drop-ins

def test_dropins_merge_in_lexical_order_maps_merge_lists_replace(tmp_path):
    write(tmp_path, "web.yaml", """\
        command: a
        args: [one, two]
        env: {A: base, B: base}
        restart: always
        """)
    write(tmp_path, "web.yaml.d/20-second.yaml", "env: {B: second}\nrestart_sec: 20\n")
    write(tmp_path, "web.d/10-first.yaml", "env: {C: first}\nargs: [three]\nrestart_sec: 10\n")
    write(tmp_path, "web.d/30-third.yml", "restart_sec: 30\n")
    cfg = load_config_dir(tmp_path)
    assert cfg.ok, [str(i) for i in cfg.issues]
    spec = cfg.processes["web"]
    assert dict(spec.env) == {"A": "base", "B": "second", "C": "first"}
    assert spec.args == ("three",)
    assert spec.restart_sec == 30.0
    assert spec.restart == "always"
    assert str(tmp_path / "web.d/10-first.yaml") in cfg.files


def test_dropin_null_restores_the_default(tmp_path):
    write(tmp_path, "web.yaml", "command: a\nrestart_sec: 9\nenv: {A: '1', B: '2'}\n")
    write(tmp_path, "web.yaml.d/override.yaml", "restart_sec: null\nenv: {B: null}\n")
    spec = load_config_dir(tmp_path).processes["web"]
    assert spec.restart_sec == 1.0 and dict(spec.env) == {"A": "1"}


def test_dropins_apply_to_a_process_of_a_map_file(tmp_path):
    write(tmp_path, "stack.yaml", "processes:\n  db: {command: postgres}\n")
    write(tmp_path, "db.d/limits.yaml", "resources: {limits: {memory: 1Gi}}\n")
    spec = load_config_dir(tmp_path).processes["db"]
    assert spec.resources.limits.memory == 2**30


def test_error_in_a_dropin_points_at_the_dropin(tmp_path):
    write(tmp_path, "web.yaml", "command: a\n")
    dropin = write(tmp_path, "web.yaml.d/bad.yaml", "# comment\nrestart: maybe\n")
    issue = only_issue(load_config_dir(tmp_path))
    assert (issue.file, issue.line, issue.field) == (dropin, 2, "restart")


def test_error_in_base_under_a_merged_map_keeps_the_base_line(tmp_path):
    base = write(tmp_path, "web.yaml", "command: a\nhealth_check:\n  type: tcp\n  tcp_address: 'h:1'\n  retries: -1\n")
    write(tmp_path, "web.yaml.d/more.yaml", "health_check:\n  interval: 5s\n")
    issue = only_issue(load_config_dir(tmp_path))
    assert (issue.file, issue.line) == (base, 5)


def test_dropin_for_an_unknown_process_is_an_issue(tmp_path):
    write(tmp_path, "ghost.d/x.yaml", "restart: always\n")
    assert "unknown process 'ghost'" in only_issue(load_config_dir(tmp_path)).message


# ------------------------------------------------------------------ cross-checks

def test_unknown_dependency_drops_the_process(tmp_path):
    path = write(tmp_path, "web.yaml", "command: a\nrequires: [db]\n")
    write(tmp_path, "other.yaml", "command: b\n")
    cfg = load_config_dir(tmp_path)
    issue = only_issue(cfg)
    assert (issue.file, issue.line, issue.field) == (path, 2, "requires")
    assert "unknown process 'db'" in issue.message
    assert list(cfg.processes) == ["other"]


@pytest.mark.parametrize("field", ["requires", "binds_to", "part_of"])
def test_hard_dependency_on_an_unknown_process_is_an_error(tmp_path, field):
    write(tmp_path, "web.yaml", f"command: a\n{field}: ghost\n")
    cfg = load_config_dir(tmp_path)
    issue = only_issue(cfg)
    assert (issue.field, issue.severity) == (field, "error") and not cfg.processes


@pytest.mark.parametrize("field", ["wants", "after", "before", "conflicts"])
def test_soft_dependency_on_an_unknown_process_is_a_warning_and_the_process_loads(tmp_path, field):
    path = write(tmp_path, "web.yaml", f"command: a\n{field}: ghost\n")
    cfg = load_config_dir(tmp_path)
    issue = only_issue(cfg)
    assert (issue.file, issue.line, issue.field, issue.severity) == (path, 2, field, "warning")
    assert "unknown process 'ghost'" in issue.message
    assert list(cfg.processes) == ["web"] and cfg.ok and cfg.warnings == (issue,) and not cfg.errors


def test_soft_dependency_on_a_broken_process_keeps_the_dependant(tmp_path):
    write(tmp_path, "db.yaml", "command: a\nrestart: maybe\n")
    write(tmp_path, "web.yaml", "command: b\nwants: db\n")
    cfg = load_config_dir(tmp_path)
    assert list(cfg.processes) == ["web"]
    assert [i.severity for i in cfg.issues if i.field == "wants"] == ["warning"]


def test_dependants_of_a_broken_process_are_dropped_too(tmp_path):
    write(tmp_path, "db.yaml", "command: a\nrestart: maybe\n")
    write(tmp_path, "web.yaml", "command: b\nrequires: db\n")
    cfg = load_config_dir(tmp_path)
    assert not cfg.processes
    assert any("'db', which failed to load" in i.message for i in cfg.issues)


def test_ordering_cycle_is_spelled_out_and_its_members_dropped(tmp_path):
    write(tmp_path, "all.yaml", """\
        processes:
          a: {command: a, after: [c]}
          b: {command: b, after: [a]}
          c: {command: c, after: [b]}
          d: {command: d}
        """)
    cfg = load_config_dir(tmp_path)
    assert list(cfg.processes) == ["d"]
    assert len(cfg.issues) == 3
    assert all("ordering cycle a -> b -> c -> a" in i.message for i in cfg.issues)
    assert {i.field for i in cfg.issues} == {"after"}


def test_cycle_through_before_edges(tmp_path):
    write(tmp_path, "all.yaml", "processes:\n  a: {command: a, before: [b]}\n  b: {command: b, before: [a]}\n")
    cfg = load_config_dir(tmp_path)
    assert not cfg.processes
    assert "a -> b -> a" in cfg.issues[0].message


def test_requires_alone_is_not_an_ordering_cycle(tmp_path):
    write(tmp_path, "all.yaml", "processes:\n  a: {command: a, requires: [b]}\n  b: {command: b, requires: [a]}\n")
    assert load_config_dir(tmp_path).ok


def test_process_ordered_after_itself_is_a_cycle(tmp_path):
    write(tmp_path, "a.yaml", "command: a\nafter: a\n")
    assert "a -> a" in only_issue(load_config_dir(tmp_path)).message


def test_socket_for_an_unknown_service_is_dropped(tmp_path):
    path = write(tmp_path, "all.yaml", "processes:\n  web: {command: a}\nsockets:\n  apm: {listen_stream: ':8126'}\n")
    cfg = load_config_dir(tmp_path)
    issue = only_issue(cfg)
    assert (issue.file, issue.line, issue.field) == (path, 4, "service")
    assert "unknown process 'apm'" in issue.message and not cfg.sockets


def test_socket_needs_a_listener(tmp_path):
    write(tmp_path, "all.yaml", "processes:\n  web: {command: a}\nsockets:\n  web: {backlog: 5}\n")
    assert "listen_stream or listen_datagram" in only_issue(load_config_dir(tmp_path)).message


def test_group_with_unknown_member_is_dropped(tmp_path):
    write(tmp_path, "all.yaml", "processes:\n  a: {command: a}\ngroups:\n  g: {members: [a, ghost]}\n")
    cfg = load_config_dir(tmp_path)
    assert "unknown process 'ghost'" in only_issue(cfg).message and not cfg.groups


def test_a_process_may_belong_to_one_group_only(tmp_path):
    write(tmp_path, "all.yaml", "processes:\n  a: {command: a}\ngroups:\n  g1: {members: [a]}\n  g2: {members: [a]}\n")
    cfg = load_config_dir(tmp_path)
    assert "already a member of group 'g1'" in only_issue(cfg).message
    assert list(cfg.groups) == ["g1"]


def test_validate_dir_lists_the_issues(tmp_path):
    write(tmp_path, "a.yaml", "command: a\nrestart: x\n")
    write(tmp_path, "b.yaml", "command: b\n")
    assert [i.field for i in validate_dir(tmp_path)] == ["restart"]


# ------------------------------------------------------------------ config dir resolution

def test_flag_wins_over_environment():
    assert resolve_config_dir("/flag", {"DD_PM_CONFIG_DIR": "/env"}) == "/flag"


def test_environment_is_used_without_a_flag():
    assert resolve_config_dir(None, {"DD_PM_CONFIG_DIR": "/env"}) == "/env"


def test_default_directory_only_when_it_exists():
    expected = "/etc/pm/processes.d" if os.path.isdir("/etc/pm/processes.d") else None
    assert resolve_config_dir(None, {}) == expected


def test_loader_does_not_import_trio():
    code = "import sys, trio_procmgr.config.loader; assert 'trio' not in sys.modules, 'trio imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ spec <-> raw round trip

names = st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)
words = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8)
abs_paths = st.from_regex(r"/[a-z]{1,6}(/[a-z.]{1,6}){0,2}", fullmatch=True)
durations = st.floats(0, 10**6, allow_nan=False) | st.integers(0, 10**6).map(float)
sizes = st.integers(0, 2**40)
positive = st.floats(0.001, 10**4, allow_nan=False)
signals = st.sampled_from(sorted(int(s) for s in signal.valid_signals()))
optional = lambda s: st.none() | s  # noqa: E731

health = st.builds(
    HealthCheckSpec,
    type=st.sampled_from(["http", "tcp", "exec"]),
    http_endpoint=st.just("http://127.0.0.1:8080/health"),
    expected_status=st.sampled_from(["200", "200-399", "200,204"]),
    tcp_address=st.just("127.0.0.1:6379"),
    exec_command=st.lists(words, min_size=1, max_size=3).map(tuple),
    interval=positive, timeout=positive, start_period=durations,
    retries=st.integers(1, 10), restart_after=st.integers(0, 10),
)
quantities = st.builds(Quantities, cpu=optional(positive), memory=optional(sizes), pids=optional(st.integers(1, 10**5)))
resources = st.builds(
    ResourcesSpec,
    requests=st.builds(Quantities, cpu=optional(st.floats(0.001, 1)), memory=optional(st.integers(0, 2**20))),
    limits=st.builds(Quantities, cpu=optional(st.floats(1, 64)), memory=optional(st.integers(2**20, 2**40)),
                     pids=optional(st.integers(1, 10**5))),
)
logs = st.builds(LogSpec, mode=st.sampled_from(["capture", "inherit", "null"]), file=optional(abs_paths),
                 max_bytes=sizes, backups=st.integers(0, 10), ring_lines=st.integers(0, 10**5),
                 ring_bytes=st.integers(0, 2**28))
deps = st.lists(names, unique=True, max_size=3).map(tuple)

process_specs = st.builds(
    ProcessSpec,
    name=names, command=words, args=st.lists(st.text(max_size=10), max_size=4).map(tuple),
    description=st.text(max_size=20), auto_start=st.booleans(),
    process_type=st.sampled_from(PROCESS_TYPES), restart=st.sampled_from(RESTART_POLICIES),
    restart_sec=durations, restart_max_delay=durations, backoff=st.sampled_from(BACKOFF_KINDS),
    start_limit_burst=st.integers(1, 100), start_limit_interval=durations,
    timeout_start_sec=durations, timeout_stop_sec=durations, kill_signal=signals,
    kill_mode=st.sampled_from(KILL_MODES),
    success_exit_status=st.frozensets(st.integers(0, 255), max_size=4),
    success_exit_signals=st.frozensets(signals, max_size=3),
    working_dir=optional(abs_paths),
    env=st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,6}", fullmatch=True), st.text(max_size=10).filter(lambda v: "\0" not in v), max_size=3),
    environment_file=st.lists(abs_paths.map(lambda p: p) | abs_paths.map(lambda p: "-" + p), max_size=2).map(tuple),
    user=optional(names | st.integers(0, 65535).map(str)), group=optional(names),
    pidfile=optional(abs_paths),
    condition_path_exists=st.lists(st.sampled_from(["", "!", "|", "|!"]).flatmap(lambda pre: abs_paths.map(lambda p: pre + p)), max_size=3).map(tuple),
    runtime_directory=st.lists(st.from_regex(r"[a-z]{1,5}(/[a-z]{1,5})?", fullmatch=True), unique=True, max_size=2).map(tuple),
    ambient_capabilities=st.lists(st.sampled_from(["CAP_NET_BIND_SERVICE", "CAP_SYS_NICE"]), unique=True).map(tuple),
    requires=deps, wants=deps, binds_to=deps, conflicts=deps, after=deps, before=deps, part_of=deps,
    wait_healthy=st.booleans(), health_check=optional(health), ready_log_line=optional(words),
    watchdog_sec=durations, resources=optional(resources), log=logs, transient=st.booleans(),
)


@settings(max_examples=100, deadline=None)
@given(process_specs)
def test_spec_to_raw_round_trips_through_parse_process(spec):
    raw = spec_to_raw(spec)
    assert parse_process(spec.name, raw) == spec


@settings(max_examples=30, deadline=None)
@given(process_specs)
def test_spec_to_raw_is_plain_yaml_and_json(spec):
    raw = spec_to_raw(spec)
    assert parse_process(spec.name, yaml.safe_load(yaml.safe_dump(raw))) == spec
    assert parse_process(spec.name, json.loads(json.dumps(raw))) == spec


def test_spec_to_raw_leaves_defaults_out_and_names_signals():
    spec = parse_process("w", {"command": "a", "kill_signal": 2, "success_exit_status": [0, "SIGHUP"]})
    assert spec_to_raw(spec) == {"command": "a", "kill_signal": "SIGINT", "success_exit_status": [0, "SIGHUP"]}


def test_update_style_merge_over_raw():
    spec = parse_process("w", {"command": "a", "env": {"A": "1"}, "restart": "always"})
    raw = spec_to_raw(spec) | {"restart_sec": "5s"}
    updated = parse_process("w", raw)
    assert updated.restart_sec == 5.0 and updated.restart == "always" and dict(updated.env) == {"A": "1"}
