"""Commands that work without a daemon (validate, schema), and the import budget."""

from __future__ import annotations

import json
import subprocess
import sys

from cli_daemon import CLI, cli_daemon, shared_cli_daemon  # noqa: F401  (fixtures)

HEAVY = ("trio", "marshmallow", "yaml", "asyncio")


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"})


def test_validate_accepts_a_good_directory(tmp_path):
    (tmp_path / "web.yaml").write_text("command: sleep\nargs: ['1']\nrestart: always\n")
    result = run("validate", str(tmp_path))
    assert result.returncode == 0, result
    assert result.stdout.strip() == f"{tmp_path}: configuration OK"


def test_validate_prints_each_issue_with_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("command: sleep\nrestart: sometimes\n")
    result = run("validate", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{bad}:2: field 'restart': ")
    assert "(expected one of never, always, on-failure, on-success)" in result.stdout
    as_json = json.loads(run("--json", "validate", str(tmp_path)).stdout)
    assert as_json["ok"] is False and as_json["issues"][0]["field"] == "restart"


def test_validate_of_a_missing_directory_is_a_usage_error(tmp_path):
    assert run("validate", str(tmp_path / "nope")).returncode == 2


def test_schema_is_a_json_schema_naming_the_process_fields():
    result = run("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "restart_sec" in result.stdout and "health_check" in result.stdout


def imported_modules(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "dd_procmgr_cli.entry",
                           *args], capture_output=True, text=True, timeout=60)
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:")}


def test_daemon_commands_import_neither_trio_nor_marshmallow_nor_yaml(cli_daemon):
    cli_daemon.cli("create", "x", "sleep", "1")
    for args in (["list"], ["describe", "x"], ["stats", "x"], ["update", "x", "--restart",
                                                               "always"]):
        modules = imported_modules("--socket", cli_daemon.socket, *args)
        assert "dd_procmgr_cli.commands" in modules
        heavy = {m for m in modules if m.split(".")[0] in HEAVY}
        assert not heavy, (args, heavy)


def test_hot_commands_do_not_import_asyncclick(cli_daemon):
    modules = imported_modules("--socket", cli_daemon.socket, "list")
    assert "dd_procmgr_cli.fastpath" in modules
    assert not {m for m in modules if m.startswith("asyncclick")}
