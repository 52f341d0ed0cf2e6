"""dd-procmgr top in a real terminal (tmux), against a real daemon: keys and screen."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid

import pytest

from cli_daemon import CLI, cli_daemon, shared_cli_daemon  # noqa: F401  (fixtures)

PY = sys.executable
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (packaging/install-test-deps.sh installs it)")


class Terminal:
    """A 160x48 tmux pane on a private tmux server running one command."""

    def __init__(self, daemon, command: list[str]) -> None:
        self.daemon = daemon
        self.server = f"pmtop-{uuid.uuid4().hex[:8]}"
        env = f"DD_PM_SOCKET={daemon.socket} TERM=xterm-256color"
        self.tmux("new-session", "-d", "-s", "top", "-x", "160", "-y", "48",
                  f"env {env} " + " ".join(command))

    def tmux(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.server, *args], capture_output=True,
                              text=True, timeout=30)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "top").stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "top", *keys)

    def wait_for(self, what: str, check) -> str:
        return self.daemon.wait_for(f"{what} on the top screen",
                                    lambda: (lambda s: s if check(s) else None)(self.screen()),
                                    timeout=30)

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", "top").returncode == 0

    def close(self) -> None:
        self.tmux("kill-server")


def row(screen: str, name: str) -> str:
    return next((line for line in screen.splitlines() if line[1:].split()[:1] == [name]), "")


@pytest.fixture
def terminal(cli_daemon):
    opened = []

    def open_top(*args: str) -> Terminal:
        term = Terminal(cli_daemon, [CLI, "top", "--interval", "0.5", *args])
        opened.append(term)
        return term
    yield open_top
    for term in opened:
        term.close()


def test_top_shows_every_process_and_acts_on_the_selected_one(cli_daemon, terminal):
    script = "import time\nprint('hello from api', flush=True)\ntime.sleep(300)"
    assert cli_daemon.cli("create", "api", "--start", "--", PY, "-c", script).code == 0
    assert cli_daemon.cli("create", "batch", "sleep", "300").code == 0
    term = terminal()
    screen = term.wait_for("both processes", lambda s: "running" in row(s, "api")
                           and "created" in row(s, "batch"))
    assert row(screen, "api").startswith(">")  # first row selected
    assert "S start" in screen and "q quit" in screen
    term.wait_for("the api log tail", lambda s: "── logs: api" in s and "hello from api" in s)
    api = row(term.screen(), "api").split()
    assert api[3] != "-" and api[5] in ("KiB", "MiB")  # CPU% and MEM from the stats push

    term.keys("j")
    term.wait_for("batch selected", lambda s: row(s, "batch").startswith(">"))
    term.keys("S")
    term.wait_for("batch started by the S key", lambda s: "running" in row(s, "batch"))
    assert cli_daemon.record("batch")["state"] == "running"
    term.keys("T")
    term.wait_for("batch stopped by the T key", lambda s: "stopped" in row(s, "batch"))
    assert cli_daemon.record("batch")["state"] == "stopped"


def test_top_sorts_filters_and_quits(cli_daemon, terminal):
    for name in ("web-1", "web-2", "db"):
        assert cli_daemon.cli("create", name, "sleep", "300").code == 0
    term = terminal()
    term.wait_for("the table", lambda s: row(s, "db") and row(s, "web-2"))
    term.keys("s")
    term.wait_for("the next sort key", lambda s: "sort: state" in s)
    term.keys("/", "w", "e", "b", "Enter")
    screen = term.wait_for("the filter", lambda s: "filter: web" in s and not row(s, "db"))
    assert row(screen, "web-1") and row(screen, "web-2")
    term.keys("q")
    cli_daemon.wait_for("top to quit on q", lambda: not term.alive())


def test_top_without_a_terminal_prints_one_snapshot(cli_daemon):
    assert cli_daemon.cli("create", "one", "--start", "sleep", "300").code == 0
    result = cli_daemon.cli("top")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].startswith("dd-procmgr top — 1 processes (1 running)")
    assert lines[1].split()[:3] == ["NAME", "STATE", "PID"] and lines[2].split()[:2] == ["one", "running"]
    as_json = cli_daemon.cli("--json", "top").json
    assert as_json["processes"][0]["name"] == "one" and as_json["stats"][0]["name"] == "one"
