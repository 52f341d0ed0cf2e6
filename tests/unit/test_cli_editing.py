"""cat's attribution of each field to a file, a drop-in or a runtime change; edit's checks."""

from __future__ import annotations

import pytest

from dd_procmgr_cli.editing import check_dropin, file_layers, runtime_changes, sources


@pytest.fixture
def config_dir(tmp_path):
    (tmp_path / "web.yaml").write_text("command: sleep\nargs: ['400']\nrestart: on-failure\n"
                                       "restart_sec: 5s\n")
    dropins = tmp_path / "web.yaml.d"
    dropins.mkdir()
    (dropins / "10-tune.yaml").write_text("restart_sec: 7\n")
    (dropins / "20-more.yaml").write_text("restart_sec: 8\ndescription: tuned\n")
    return tmp_path


def test_the_last_layer_that_set_a_field_is_its_origin(config_dir):
    layers = file_layers(str(config_dir / "web.yaml"), "web")
    effective = {"command": "sleep", "args": ["400"], "description": "tuned",
                 "restart": "on-failure", "restart_sec": 8.0}
    origin = sources("web", effective, layers)
    assert origin["command"] == f"file {config_dir / 'web.yaml'}"
    assert origin["restart_sec"] == f"drop-in {config_dir / 'web.yaml.d' / '20-more.yaml'}"


def test_a_value_the_files_do_not_hold_is_a_runtime_change(config_dir):
    layers = file_layers(str(config_dir / "web.yaml"), "web")
    effective = {"command": "sleep", "args": ["400"], "description": "tuned",
                 "restart": "always", "restart_sec": 8.0, "auto_start": True}
    origin = sources("web", effective, layers)
    assert origin["restart"] == origin["auto_start"] == "runtime"


def test_a_field_reset_at_runtime_is_reported(config_dir):
    layers = file_layers(str(config_dir / "web.yaml"), "web")
    origin = sources("web", {"command": "sleep", "args": ["400"], "restart_sec": 8.0,
                             "description": "tuned"}, layers)
    assert origin["restart"] == "runtime (reset to the default)"


def test_a_process_in_a_map_file(tmp_path):
    (tmp_path / "stack.yaml").write_text("processes:\n  db: {command: postgres}\n")
    layers = file_layers(str(tmp_path / "stack.yaml"), "db")
    assert sources("db", {"command": "postgres"}, layers) == {
        "command": f"file {tmp_path / 'stack.yaml'}"}


def test_check_dropin_reports_only_new_problems_and_writes_nothing(config_dir):
    assert check_dropin(str(config_dir), "web", "restart: always\n") == []
    problems = check_dropin(str(config_dir), "web", "restart: sometimes\n")
    assert len(problems) == 1 and "'restart'" in problems[0]
    assert str(config_dir / "web.yaml.d" / "50-edit.yaml") in problems[0]
    assert not (config_dir / "web.yaml.d" / "50-edit.yaml").exists()


def test_runtime_changes_are_the_difference_and_removals_are_refused():
    old = {"command": "sleep", "args": ["1"], "restart": "always"}
    assert runtime_changes("x", old, {"command": "sleep", "args": ["2"], "restart": "always"}) \
        == {"args": ["2"]}
    with pytest.raises(ValueError, match="removing fields \\(restart\\)"):
        runtime_changes("x", old, {"command": "sleep", "args": ["1"]})
    with pytest.raises(ValueError, match="map of process fields"):
        runtime_changes("x", old, ["not", "a", "map"])
