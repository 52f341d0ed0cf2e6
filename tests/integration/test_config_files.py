"""Config files against the real daemon: command splitting, argv[0] as written, relative
commands, soft dependencies, a bad file among good ones, a single file as the config
(issues 11 and 14)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from cli_daemon import CLI, DAEMON, CliDaemon

BOMB = "\n".join(
    [f"a0: &a0 [{', '.join(['lol'] * 9)}]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]) + "\n"

FILES = {
    "plain.yaml": "command: sleep 1000\nauto_start: true\n",
    "rel.yaml": "command: ./my-worker 1001\nauto_start: true\n",
    "soft.yaml": "command: sleep 1002\nwants: ghost\nafter: [ghost]\nauto_start: true\n",
    "missing.yaml": "command: ./not-there\n",
    "burst.yaml": "command: sleep 1003\nauto_start: true\nstart_limit_burst: " + "5" * 5000 + "\n",
    "date.yaml": "command: sleep 1004\nauto_start: true\ndescription: 2020-13-45\n",
    "bomb.yaml": BOMB,
    "dup.yaml": "command: sleep 1005\nauto_start: true\nauto_start: false\n",
    "loop.yaml": "a: &a [*a]\n",
}


@contextmanager
def daemon_with(files: dict[str, str], *, single: str | None = None) -> Iterator[CliDaemon]:
    root = Path(tempfile.mkdtemp(prefix="pmcfg-"))
    daemon = CliDaemon(root)
    for name, text in files.items():
        (daemon.config_dir / name).write_text(text)
    worker = daemon.config_dir / "my-worker"
    worker.write_text("#!/bin/sh\nexec sleep \"$@\"\n")
    worker.chmod(0o755)
    if single is not None:
        daemon.config_dir = daemon.config_dir / single
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon() -> Iterator[CliDaemon]:
    with daemon_with(FILES) as d:
        yield d


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode().split("\0")[:-1]


def test_command_is_split_and_argv0_stays_as_written(daemon):
    record = daemon.wait_state("plain", "running")
    assert (record["command"], record["args"]) == ("sleep", ["1000"])
    assert cmdline(record["pid"]) == ["sleep", "1000"]


def test_relative_command_runs_from_the_files_directory(daemon):
    record = daemon.wait_state("rel", "running")
    assert record["command"] == str(daemon.config_dir / "my-worker")
    assert cmdline(record["pid"]) == ["sleep", "1001"]


def test_soft_dependency_on_an_unknown_process_starts_and_warns(daemon):
    record = daemon.wait_state("soft", "running")
    assert any("wants" in w and "ghost" in w for w in record["warnings"])
    assert any("after" in w and "ghost" in w for w in record["warnings"])


def test_missing_relative_command_says_where_it_looked(daemon):
    result = daemon.cli("start", "missing")
    assert result.code != 0
    assert str(daemon.config_dir / "not-there") in result.out + result.err


def test_bad_files_are_logged_and_the_good_ones_start(daemon):
    assert daemon.wait_state("date", "running")["description"] == "2020-13-45"
    names = {r["name"] for r in daemon.cli("--json", "list").json}
    assert names == {"plain", "rel", "soft", "missing", "date"}
    log = daemon.log_text()
    for bad in ("burst.yaml", "bomb.yaml", "dup.yaml", "loop.yaml"):
        assert bad in log
    assert "Traceback" not in log


def test_runtime_create_tolerates_a_soft_dependency_on_an_unknown_process(daemon):
    result = daemon.cli("create", "lonely", "sleep", "1006", "--wants", "nobody", "--conflicts",
                        "nobody2")
    assert result.code == 0, result
    try:
        daemon.cli("start", "lonely")
        assert daemon.wait_state("lonely", "running")
        result = daemon.cli("create", "hard", "sleep", "1", "--requires", "nobody")
        assert result.code != 0 and "nobody" in result.err
    finally:
        daemon.cli("delete", "--force", "lonely")


def test_daemon_accepts_a_single_config_file(tmp_path):
    files = {"my-services.yaml": "processes:\n  web: {command: sleep 1007, auto_start: true}\n"
                                 "  db: {command: sleep 1008}\n",
             "ignored.yaml": "command: sleep 1\n"}
    with daemon_with(files, single="my-services.yaml") as d:
        assert cmdline(d.wait_state("web", "running")["pid"]) == ["sleep", "1007"]
        names = {r["name"] for r in d.cli("--json", "list").json}
        assert names == {"web", "db"}


def test_daemon_refuses_a_missing_config_path_with_a_clear_error(tmp_path):
    done = subprocess.run([DAEMON, str(tmp_path / "nope.yaml"), "--socket", str(tmp_path / "s"),
                           "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"configuration {tmp_path / 'nope.yaml'}: No such file or directory" in done.stderr
    assert "Traceback" not in done.stderr


def run_validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "validate", str(path)], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1"})


def test_validate_exits_0_on_warnings_and_1_on_errors_without_traceback(tmp_path):
    (tmp_path / "soft.yaml").write_text("command: sleep\nargs: ['1']\nwants: ghost\n")
    result = run_validate(tmp_path)
    assert result.returncode == 0, result
    assert f"{tmp_path / 'soft.yaml'}:3: warning: field 'wants':" in result.stdout
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    result = run_validate(tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    for bad in ("burst.yaml", "bomb.yaml", "dup.yaml", "loop.yaml"):
        assert bad in result.stdout
    assert run_validate(tmp_path / "soft.yaml").returncode == 0


def test_rpc_validate_carries_the_severity_of_each_issue(daemon):
    from trio_procmgr.client import BlockingClient

    with BlockingClient(daemon.socket, timeout=60) as client:
        result = client.call("validate_config", config_dir=str(daemon.config_dir))
        only_soft = client.call("validate_config", config_dir=str(daemon.config_dir / "soft.yaml"))
    by_file = {(os.path.basename(i["file"]), i["severity"]) for i in result["issues"]}
    assert ("soft.yaml", "warning") in by_file and ("dup.yaml", "error") in by_file
    assert result["ok"] is False
    assert only_soft["ok"] is True and {i["severity"] for i in only_soft["issues"]} == {"warning"}
