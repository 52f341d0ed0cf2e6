"""Hostile and oversized configuration: each is an issue with file, line and field, fast.

Never a traceback, never an exception out of the loader (issue 14, items 1 and 2).
"""

import os
import textwrap
import time

import pytest
from hypothesis import given, settings, strategies as st

from trio_procmgr.config.loader import load_config_dir, load_config_path, parse_process
from trio_procmgr.config.yamldoc import MAX_FILE_BYTES, MAX_NODES, YamlError, read_yaml
from trio_procmgr.errors import ConfigError


def write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


def only_issue(cfg):
    assert len(cfg.issues) == 1, [str(i) for i in cfg.issues]
    return cfg.issues[0]


# ------------------------------------------------------------------ values out of range

@pytest.mark.parametrize("field, value", [
    ("restart_sec", "1" * 400),
    ("restart_sec", "'" + "9" * 400 + "s'"),
    ("restart_sec", "366d"),
    ("start_limit_burst", "5" * 5000),
    ("start_limit_burst", "10001"),
    ("description", "x" * 5000),
    ("command", "x" * 5000),
    ("args", "[" + ", ".join(["a"] * 1025) + "]"),
])
def test_out_of_range_value_is_an_issue_with_file_line_and_field(tmp_path, field, value):
    text = f"command: sleep\n{field}: {value}\n" if field != "command" else f"command: {value}\n"
    path = write(tmp_path, "web.yaml", text)
    issue = only_issue(load_config_dir(tmp_path))
    assert (issue.file, issue.field, issue.severity) == (path, field, "error")
    assert issue.line == (2 if field != "command" else 1)
    assert len(issue.message) < 600


@pytest.mark.parametrize("section, value", [
    ("resources: {limits: {cpu: %s}}", "1" + "0" * 399),
    ("resources: {limits: {memory: %s}}", "1" + "0" * 399),
    ("resources: {limits: {pids: %s}}", "1" + "0" * 399),
    ("health_check: {type: tcp, tcp_address: 'a:1', interval: %s}", "1" + "0" * 399),
    ("env: {A: %s}", "1" + "0" * 399),
])
def test_huge_numbers_in_nested_fields_are_issues(tmp_path, section, value):
    write(tmp_path, "web.yaml", "command: sleep\n" + section % value + "\n")
    cfg = load_config_dir(tmp_path)
    assert not cfg.processes and cfg.errors and all(i.line == 2 for i in cfg.issues)


def test_date_looking_strings_stay_strings(tmp_path):
    write(tmp_path, "web.yaml", "command: sleep\ndescription: 2020-13-45\nenv: {DAY: 2026-12-01}\n")
    cfg = load_config_dir(tmp_path)
    assert cfg.ok, cfg.issues
    assert cfg.processes["web"].description == "2020-13-45"
    assert cfg.processes["web"].env["DAY"] == "2026-12-01"


def test_an_explicit_timestamp_tag_is_a_string_too(tmp_path):
    write(tmp_path, "web.yaml", "command: sleep\ndescription: !!timestamp 2020-13-45\n")
    assert load_config_dir(tmp_path).processes["web"].description == "2020-13-45"


def test_runtime_definitions_are_bounded_too():
    with pytest.raises(ConfigError) as caught:
        parse_process("w", {"command": "a", "description": "x" * (50 * 1024 * 1024)})
    assert "description" in caught.value.message and len(caught.value.message) < 800


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["restart_sec", "timeout_stop_sec", "start_limit_burst", "watchdog_sec"]),
       st.integers(min_value=-10**60, max_value=10**60) | st.floats(allow_nan=True) | st.text(max_size=40))
def test_no_value_makes_the_loader_raise(field, value):
    try:
        parse_process("w", {"command": "a", field: value})
    except ConfigError:
        pass


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
FIELDS = ["command", "args", "restart_sec", "env", "resources", "health_check", "log", "user",
          "success_exit_status", "wants", "kill_signal", "environment_file", "description"]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), values, max_size=6))
def test_any_plain_values_give_a_spec_or_a_config_error(raw):
    try:
        parse_process("w", raw)
    except ConfigError as exc:
        assert exc.details["issues"]


# ------------------------------------------------------------------ YAML budgets

BOMB = "\n".join(
    [f"a0: &a0 [{', '.join(['lol'] * 9)}]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["command: sleep"]) + "\n"


def test_billion_laughs_is_refused_fast_with_a_clear_error(tmp_path):
    path = write(tmp_path, "bomb.yaml", BOMB)
    started = time.monotonic()
    issue = only_issue(load_config_dir(tmp_path))
    assert time.monotonic() - started < 1.0
    assert issue.file == path and f"more than {MAX_NODES} nodes" in issue.message


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "&a {command: sleep, x: *a}\n"])
def test_recursive_aliases_are_refused(tmp_path, text):
    write(tmp_path, "loop.yaml", text)
    assert "recursive alias" in only_issue(load_config_dir(tmp_path)).message


def test_a_few_aliases_are_fine(tmp_path):
    write(tmp_path, "all.yaml", """\
        processes:
          a: &base {command: sleep, args: ['1'], restart: always}
          b: *base
    """)
    assert set(load_config_dir(tmp_path).processes) == {"a", "b"}


def test_deep_nesting_is_refused():
    with pytest.raises(YamlError, match="nested deeper"):
        read_yaml("x: " + "[" * 100 + "]" * 100, "f")


def test_a_file_over_the_size_cap_is_not_parsed(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("command: sleep\ndescription: '" + "x" * MAX_FILE_BYTES + "'\n")
    issue = only_issue(load_config_dir(tmp_path))
    assert issue.file == str(path) and "too large" in issue.message


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_yaml_or_a_yaml_error(text):
    try:
        read_yaml(text, "f")
    except YamlError:
        pass


# ------------------------------------------------------------------ files that cannot be read

def test_symlink_loop_dangling_symlink_and_directory_are_each_reported(tmp_path):
    write(tmp_path, "good.yaml", "command: sleep\n")
    os.symlink("loop-b.yaml", tmp_path / "loop-a.yaml")
    os.symlink("loop-a.yaml", tmp_path / "loop-b.yaml")
    os.symlink("/nonexistent/x.yaml", tmp_path / "dangling.yaml")
    (tmp_path / "dir.yaml").mkdir()
    os.mkfifo(tmp_path / "fifo.yaml")
    cfg = load_config_dir(tmp_path)
    got = {os.path.basename(i.file): i.message for i in cfg.issues}
    assert got == {"loop-a.yaml": "symlink loop", "loop-b.yaml": "symlink loop",
                   "dangling.yaml": "dangling symlink (to '/nonexistent/x.yaml')",
                   "dir.yaml": "a directory, not a file", "fifo.yaml": "not a regular file"}
    assert list(cfg.processes) == ["good"]


def test_invalid_utf8_is_reported(tmp_path):
    (tmp_path / "web.yaml").write_bytes(b"command: \xff\xfe\n")
    assert "cannot read file" in only_issue(load_config_dir(tmp_path)).message


def test_a_broken_dropin_leaves_its_process_out(tmp_path):
    write(tmp_path, "web.yaml", "command: sleep\n")
    write(tmp_path, "other.yaml", "command: sleep\n")
    write(tmp_path, "web.d/10.yaml", "restart: [\n")
    cfg = load_config_dir(tmp_path)
    assert list(cfg.processes) == ["other"]
    assert any("drop-ins cannot be used" in i.message for i in cfg.issues)


def test_missing_directory_is_an_error_and_no_process(tmp_path):
    cfg = load_config_path(tmp_path / "moved")
    assert not cfg.processes and len(cfg.errors) == 1
    assert "cannot read the configuration directory" in cfg.errors[0].message


def test_a_single_file_loads_as_if_it_were_alone_in_a_directory(tmp_path):
    path = write(tmp_path, "my-services.yaml", """\
        processes:
          web: {command: sleep, args: ['1']}
          db: {command: sleep, args: ['2']}
    """)
    write(tmp_path, "other.yaml", "command: sleep\n")
    cfg = load_config_path(path)
    assert cfg.ok and set(cfg.processes) == {"web", "db"} and cfg.files == (path,)


def test_a_single_process_file_is_named_by_its_stem(tmp_path):
    path = write(tmp_path, "worker.yml", "command: sleep\n")
    assert list(load_config_path(path).processes) == ["worker"]


def test_loads_in_parallel_threads_agree(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    for index in range(20):
        write(tmp_path, f"p{index}.yaml", f"command: sleep {index}\nrestart: always\nwants: ghost\n")
    write(tmp_path, "bad.yaml", "command: sleep\nrestart_sec: 366d\n")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: load_config_dir(tmp_path), range(16)))
    first = results[0]
    assert len(first.processes) == 20 and len(first.errors) == 1 and len(first.warnings) == 20
    assert all(r.processes == first.processes and r.issues == first.issues for r in results)


def test_a_map_file_of_thousands_of_processes_loads_in_linear_time(tmp_path):
    lines = ["processes:"] + [f"  p{i}: {{command: sleep {i}, restart: always, env: {{A: b}}}}"
                              for i in range(4000)]
    write(tmp_path, "all.yaml", "\n".join(lines) + "\n")
    started = time.monotonic()
    cfg = load_config_dir(tmp_path)
    assert len(cfg.processes) == 4000 and cfg.ok
    assert time.monotonic() - started < 15, "quadratic: one line-map scan per process?"
