"""Command splitting, relative paths and config warnings (issue 11, items 1, 2, 6)."""

import os
import shlex
import textwrap

import pytest
from hypothesis import given, strategies as st

from trio_procmgr.config.lint import spec_warnings
from trio_procmgr.config.loader import load_config_dir, parse_process
from trio_procmgr.config.resolve import ResolveError, split_command
from trio_procmgr.errors import ConfigError


def write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


# ------------------------------------------------------------------ splitting

def test_command_without_args_is_split_like_execstart(tmp_path):
    write(tmp_path, "agent.yaml", "command: /opt/agent/bin/agent run --name 'my agent'\n")
    spec = load_config_dir(tmp_path).processes["agent"]
    assert (spec.command, spec.args) == ("/opt/agent/bin/agent", ("run", "--name", "my agent"))


def test_command_with_args_is_one_word_and_warns(tmp_path):
    path = write(tmp_path, "agent.yaml", "command: /opt/my agent\nargs: [run]\n")
    cfg = load_config_dir(tmp_path)
    assert cfg.processes["agent"].command == "/opt/my agent"
    (issue,) = cfg.issues
    assert (issue.file, issue.line, issue.field, issue.severity) == (path, 1, "command", "warning")
    assert cfg.ok


def test_unbalanced_quotes_are_an_error_on_command(tmp_path):
    write(tmp_path, "x.yaml", "command: sleep 'oops\n")
    cfg = load_config_dir(tmp_path)
    (issue,) = cfg.issues
    assert (issue.field, issue.severity, issue.line) == ("command", "error", 1)
    assert not cfg.processes


def test_a_command_line_that_names_no_program_is_an_error():
    with pytest.raises(ResolveError):
        split_command("''")


@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                        min_size=1), min_size=1, max_size=5))
def test_split_reads_back_what_shlex_join_wrote(words):
    assert split_command(shlex.join(words)) == (words[0], tuple(words[1:]))


def test_runtime_command_is_never_split():
    spec = parse_process("w", {"command": "/opt/my app/bin"})
    assert (spec.command, spec.args) == ("/opt/my app/bin", ())
    assert [f for f, _ in spec_warnings(spec, {"w"})] == ["command"]


# ------------------------------------------------------------------ relative paths

def test_relative_command_resolves_against_the_files_directory(tmp_path):
    write(tmp_path, "w.yaml", "command: ./my-worker --fast\n")
    spec = load_config_dir(tmp_path).processes["w"]
    assert (spec.command, spec.args) == (str(tmp_path / "my-worker"), ("--fast",))


def test_relative_command_and_env_file_resolve_against_working_dir(tmp_path):
    write(tmp_path, "w.yaml", """\
        command: bin/x
        working_dir: app
        environment_file: [app.env, -/etc/abs.env, -opt.env]
    """)
    spec = load_config_dir(tmp_path).processes["w"]
    app = str(tmp_path / "app")
    assert spec.working_dir == app and spec.command == os.path.join(app, "bin/x")
    assert spec.environment_file == (f"{app}/app.env", "-/etc/abs.env", f"-{app}/opt.env")


def test_bare_name_stays_a_path_lookup(tmp_path):
    write(tmp_path, "w.yaml", "command: sleep 1000\n")
    spec = load_config_dir(tmp_path).processes["w"]
    assert (spec.command, spec.args) == ("sleep", ("1000",))


def test_dropin_paths_resolve_against_the_base_files_directory(tmp_path):
    write(tmp_path, "w.yaml", "command: sleep\n")
    write(tmp_path, "w.d/10.yaml", "command: ./runner\n")
    assert load_config_dir(tmp_path).processes["w"].command == str(tmp_path / "runner")


def test_relative_pidfile_is_an_error(tmp_path):
    write(tmp_path, "w.yaml", "command: sleep\npidfile: run/w.pid\n")
    (issue,) = load_config_dir(tmp_path).issues
    assert issue.field == "pidfile" and "absolute" in issue.message


def test_runtime_relative_environment_file_is_an_error():
    with pytest.raises(ConfigError, match="environment_file"):
        parse_process("w", {"command": "a", "environment_file": "x.env"})


# ------------------------------------------------------------------ warnings for describe

def test_soft_dependency_warning_goes_once_the_process_is_defined():
    spec = parse_process("web", {"command": "a", "wants": ["db"], "after": ["db"]})
    assert [f for f, _ in spec_warnings(spec, {"web"})] == ["wants", "after"]
    assert spec_warnings(spec, {"web", "db"}) == []


def test_planner_ignores_soft_dependencies_on_missing_processes():
    from trio_procmgr import planner

    specs = {"web": parse_process("web", {"command": "a", "wants": ["ghost"], "after": ["ghost"],
                                          "before": ["ghost2"], "conflicts": ["ghost3"]})}
    plan = planner.start_transaction(specs, ["web"])
    assert [name for layer in plan.layers for name in layer] == ["web"]


def test_a_definition_with_a_source_file_resolves_like_the_loader(tmp_path):
    from trio_procmgr.spec import SourceRef

    path = write(tmp_path, "w.yaml", "command: ./run --fast\n")
    loaded = load_config_dir(tmp_path).processes["w"]
    parsed = parse_process("w", {"command": "./run --fast"}, SourceRef(path))
    assert parsed == loaded and parsed.command == str(tmp_path / "run")


def test_a_template_instance_made_at_run_time_resolves_like_a_boot_instance(tmp_path):
    from trio_procmgr.engine.instances import instance_spec

    write(tmp_path, "w@.yaml", "command: ./worker --id %i\ninstances: [a]\n")
    cfg = load_config_dir(tmp_path)
    boot = cfg.processes["w@a"]
    assert (boot.command, boot.args) == (str(tmp_path / "worker"), ("--id", "a"))
    later = instance_spec(cfg.templates["w"], "b", from_config=False)
    assert (later.command, later.args) == (str(tmp_path / "worker"), ("--id", "b"))
    assert later.source.file is None
