"""SPEC §11–§19 walked through from the outside: the installed programs, as a user drives them.

One test per contract sentence that the other integration tests do not already check
(see the report in the qa branch's commits for the map). Everything goes through the
real ``dd-procmgr`` / ``dd-procmgrd`` binaries, real sockets and real files.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cli_daemon import (CLI, DAEMON, CliDaemon, cli_daemon,  # noqa: F401 (fixtures)
                        own_cli_daemon, shared_cli_daemon)
from support import pid_alive
from web_daemon import web_daemon

ROOT = Path(__file__).resolve().parents[2]
RECORD_FIELDS = {"name", "id", "state", "pid", "runs", "restarts", "exit_code", "exit_signal",
                 "created_at", "started_at", "ended_at", "health", "next_restart_at", "reason"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def ok(result):
    assert result.code == 0, result
    return result


# -- §11 CLI ------------------------------------------------------------------------------

def test_json_output_is_exactly_one_document_with_the_record_fields(cli_daemon):
    """"With --json, stdout holds exactly one JSON document (list: an array of records;
    describe/create/start/...: the record or result object with the §3.1 field names)"."""
    d = cli_daemon
    docs = {}
    for argv in (["create", "j", "sleep", "300"], ["start", "j"], ["describe", "j"],
                 ["list"], ["stats", "j"], ["update", "j", "--description", "x"],
                 ["restart", "j"], ["pause", "j"], ["resume", "j"], ["stop", "j"],
                 ["deps", "j"], ["reload-config"], ["ping"], ["version"], ["delete", "j"]):
        result = d.cli("--json", *argv)
        assert result.code == 0, (argv, result)
        docs[argv[0]] = json.loads(result.out)  # raises on a second document or text
    assert isinstance(docs["list"], list) and RECORD_FIELDS <= set(docs["list"][0])
    for verb in ("create", "start", "describe", "restart", "pause", "resume", "stop", "delete"):
        assert RECORD_FIELDS <= set(docs[verb]), (verb, docs[verb])
        assert docs[verb]["name"] == "j"
    assert docs["pause"]["state"] == "paused" and docs["stop"]["state"] == "stopped"


@pytest.mark.parametrize("argv, code", [
    (["start", "nope"], "PROCESS_NOT_FOUND"),
    (["create", "twice", "sleep", "1"], "ALREADY_EXISTS"),
    (["stop", "twice"], None),   # idempotent: stopping a created process is no refusal
    (["resume", "twice"], "INVALID_STATE"),
])
def test_a_refusal_is_exit_1_with_one_error_line_or_the_json_error_object(cli_daemon, argv,
                                                                          code):
    ok(cli_daemon.cli("create", "twice", "sleep", "300"))
    plain, as_json = cli_daemon.cli(*argv), cli_daemon.cli("--json", *argv)
    if code is None:
        assert (plain.code, as_json.code) == (0, 0)
        return
    assert (plain.code, as_json.code) == (1, 1)
    assert plain.out == "" and re.fullmatch(rf"error: {code}: [^\n]+\n", plain.err), plain
    error = json.loads(as_json.out)["error"]
    assert error["code"] == code and error["message"]


@pytest.mark.parametrize("argv", [["frobnicate"], ["start"], ["create", "x"],
                                  ["create", "x", "sleep", "--restart-policy", "sometimes"],
                                  ["list", "-o", "tall"], ["--no-such-flag", "list"]])
def test_usage_errors_exit_2_and_name_what_is_wrong(cli_daemon, argv):
    result = cli_daemon.cli(*argv)
    assert result.code == 2, result
    assert result.out == "" and result.err.strip(), result


def test_reload_config_refuses_on_errors_and_succeeds_with_warnings_only(cli_daemon):
    """Errors: exit 1 with the `error: CODE: message` line on stderr (SPEC §11); a soft
    dependency on an unknown process is only a warning (the file is applied, exit 0)."""
    d = cli_daemon
    d.write_config("softy", "command: sleep\nargs: ['300']\nwants: [ghost]\n")
    warned = d.cli("reload-config")
    assert warned.code == 0 and warned.err == "", warned
    assert warned.out.startswith("Configuration reloaded\n") and "Errors" not in warned.out
    softy = d.record("softy")  # applied; describe carries the warning (issue 11 item 6)
    assert softy["state"] == "created" and "ghost" in json.dumps(softy["warnings"])
    d.write_config("broken", "args: [x]\n")
    refused = d.cli("reload-config")
    assert refused.code == 1
    assert refused.err == "error: CONFIG_ERROR: 1 configuration error (listed above)\n"
    assert "broken.yaml:1: field 'command': missing required field" in refused.out
    assert json.loads(d.cli("--json", "reload-config").out)["errors"]


def test_start_stop_restart_take_several_names_or_all(cli_daemon):
    d = cli_daemon
    for name in ("a", "b", "c"):
        ok(d.cli("create", name, "sleep", "300"))
    ok(d.cli("start", "a", "b"))
    assert [d.record(n)["state"] for n in "abc"] == ["running", "running", "created"]
    ok(d.cli("restart", "--all"))
    assert {d.record(n)["state"] for n in "abc"} == {"running"}
    ok(d.cli("stop", "--all"))
    assert {d.record(n)["state"] for n in "abc"} == {"stopped"}
    both = d.cli("start", "a", "nope")
    assert both.code == 1 and "nope" in both.err


def test_ls_is_an_alias_of_list(cli_daemon):
    ok(cli_daemon.cli("create", "aliased", "sleep", "300"))
    assert ok(cli_daemon.cli("ls")).out == ok(cli_daemon.cli("list")).out


@pytest.mark.parametrize("command", ["rotate-logs", "status"])
def test_help_shows_an_optional_name_as_optional(command):
    """Both work without a name (every process), so the usage line must not demand one."""
    done = subprocess.run([CLI, command, "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == f"Usage: dd-procmgr {command} [OPTIONS] [NAME]..."


def test_stats_watch_refreshes_until_interrupted(cli_daemon):
    ok(cli_daemon.cli("create", "watched", "sleep", "300", "--auto-start"))
    watcher = cli_daemon.popen("stats", "--watch", "--interval", "0.2", "watched")
    seen, deadline = b"", time.monotonic() + 20
    try:
        while seen.count(b"Resource Usage Statistics for 'watched'") < 2:
            assert time.monotonic() < deadline, f"fewer than 2 refreshes: {seen!r}"
            if select.select([watcher.stdout], [], [], 0.5)[0]:
                seen += os.read(watcher.stdout.fileno(), 65536)
    finally:
        watcher.send_signal(signal.SIGINT)  # Ctrl-C ends it quietly
        _, err = watcher.communicate(timeout=20)
    assert watcher.returncode == 0 and "Traceback" not in err, err


def tty_output(argv: list[str], env: dict[str, str]) -> str:
    """What ``argv`` prints on a terminal (a pseudo-terminal the test reads)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def test_colour_only_on_a_tty_and_never_with_no_color(cli_daemon):
    ok(cli_daemon.cli("create", "tinted", "sleep", "300", "--auto-start"))
    argv = [CLI, "--socket", cli_daemon.socket, "list"]
    base = {k: v for k, v in cli_daemon.env().items() if k != "NO_COLOR"}
    base["TERM"] = "xterm"
    assert ANSI.search(tty_output(argv, base)), "no colour on a terminal"
    assert not ANSI.search(tty_output(argv, {**base, "NO_COLOR": "1"}))
    piped = subprocess.run(argv, capture_output=True, text=True, env=base, timeout=30)
    assert piped.returncode == 0 and not ANSI.search(piped.stdout)


# -- §12 Event stream ---------------------------------------------------------------------

def read_events(follower: subprocess.Popen, until, timeout: float = 20,
                fail: bool = True) -> list[dict] | None:
    """JSON lines of ``events --json`` until ``until(event)`` holds; at the deadline the
    test fails (or None comes back, with ``fail=False``).

    Reads the pipe's fd directly: a buffered readline would keep lines in its buffer
    while select() reports the fd idle.
    """
    events: list[dict] = []
    pending = getattr(follower, "pending", b"")
    fd = follower.stdout.fileno()
    deadline = time.monotonic() + timeout
    while True:
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            events.append(json.loads(line))
            if until(events[-1]):
                follower.pending = pending
                return events
        left = deadline - time.monotonic()
        if left <= 0 and not fail:
            follower.pending = pending
            return None
        assert left > 0, f"no matching event in {timeout}s; got {events}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"events ended early: {follower.stderr.read()}"
            pending += chunk


def watching(d, follower: subprocess.Popen) -> None:
    """Return once ``follower`` receives events: a marker process is created until one of
    its events comes through (the stream has no greeting to wait for)."""
    for attempt in range(20):
        ok(d.cli("create", f"marker{attempt}", "true"))
        if read_events(follower, lambda e: str(e.get("process", "")).startswith("marker"),
                       timeout=1.5, fail=False) is not None:
            return
    pytest.fail("the event watcher never received anything")


def test_events_have_seq_time_type_process_id_and_seq_increases(cli_daemon):
    d = cli_daemon
    follower = d.popen("--json", "events")
    try:
        watching(d, follower)
        ok(d.cli("create", "ev", "sh", "-c", "exit 3"))
        ok(d.cli("start", "ev"))
        events = read_events(follower, lambda e: e["type"] == "process_exited")
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    mine = [e for e in events if e.get("process") == "ev"]
    assert {"process_created", "process_started", "process_exited"} <= {e["type"] for e in mine}
    for event in mine:
        assert {"seq", "time", "type", "process", "id"} <= set(event), event
        assert event["id"] == d.record("ev")["id"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), seqs  # strictly increasing
    exited = next(e for e in mine if e["type"] == "process_exited")
    assert exited.get("exit_code") == 3


def test_every_kind_of_change_is_an_event(cli_daemon):
    """"Every state change, start, exit, restart scheduled (delay), start limit hit, config
    reload, process created/updated/deleted ... is an event"."""
    d = cli_daemon
    follower = d.popen("--json", "events")
    try:
        watching(d, follower)
        ok(d.cli("create", "flap", "sh", "-c", "exit 1", "--restart-policy", "always",
                 "--start-limit-burst", "2", "--restart-sec", "0.2"))
        ok(d.cli("start", "flap"))
        events = read_events(follower, lambda e: e["type"] == "start_limit_hit")
        ok(d.cli("update", "flap", "--description", "changed"))
        ok(d.cli("reload-config"))
        ok(d.cli("delete", "flap"))
        events += read_events(follower, lambda e: e["type"] == "process_deleted")
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    kinds = {e["type"] for e in events}
    assert {"process_created", "process_started", "process_exited", "state_changed",
            "restart_scheduled", "start_limit_hit", "process_updated", "config_reloaded",
            "process_deleted"} <= kinds, kinds
    scheduled = next(e for e in events if e["type"] == "restart_scheduled")
    assert scheduled.get("delay") == pytest.approx(0.2), scheduled
    changed = next(e for e in events if e["type"] == "state_changed")
    assert {"from", "to"} <= set(changed), changed


def test_events_filter_by_process_and_type(cli_daemon):
    d = cli_daemon
    follower = d.popen("--json", "events", "--process", "wanted", "--type", "process_exited")
    try:
        for name in ("other", "wanted"):
            ok(d.cli("create", name, "true"))
        ok(d.cli("start", "other"))
        d.wait_state("other", "exited")
        ok(d.cli("start", "wanted"))
        events = read_events(follower, lambda e: e.get("process") == "wanted")
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    assert [(e["type"], e["process"]) for e in events] == [("process_exited", "wanted")]


# -- §13 Daemon ---------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="the root default (/run/dd-procmgr.sock) is checked in a private "
                           "mount namespace, which needs root and unshare(1)")
def test_default_socket_as_root_is_run_dd_procmgr_sock(tmp_path):
    """No --socket anywhere: daemon and CLI meet at /run/dd-procmgr.sock (a private /run)."""
    log = open(tmp_path / "daemon.log", "w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_PM_")}
    daemon = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
         'mount -t tmpfs tmpfs /run && exec "$@"', "sh", DAEMON,
         "--config-dir", str(tmp_path), "--state-dir", str(tmp_path / "state"),
         "--instance", f"qa-default-{os.getpid()}"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        sock = Path(f"/proc/{daemon.pid}/root/run/dd-procmgr.sock")
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()
            assert time.monotonic() < deadline, "no socket at /run/dd-procmgr.sock"
            time.sleep(0.05)
        assert oct(sock.stat().st_mode & 0o777) in ("0o660", "0o666")
        ping = subprocess.run(["nsenter", "-t", str(daemon.pid), "-m", "--", CLI, "ping"],
                              capture_output=True, text=True, env=env, timeout=30)
        assert ping.returncode == 0, ping
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
        log.close()


def test_under_systemd_the_daemon_notifies_ready_watchdog_and_stopping(tmp_path):
    """"Under systemd: READY=1 after boot, WATCHDOG=1 pings, STOPPING=1" — the test plays
    systemd: it owns NOTIFY_SOCKET and arms a 0.4 s watchdog."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_PM_")}
    env.update(NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="400000")
    sock = str(tmp_path / "pm.sock")
    daemon = subprocess.Popen(
        [DAEMON, "--config-dir", str(tmp_path), "--socket", sock, "--state-dir",
         str(tmp_path / "state"), "--instance", f"qa-notify-{os.getpid()}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)

    def receive_until(word: str) -> list[str]:
        seen = []
        notify.settimeout(30)
        while not any(word in message for message in seen):
            seen.append(notify.recv(4096).decode())
        return seen

    try:
        assert "READY=1" in receive_until("READY=1")[-1]
        assert subprocess.run([CLI, "--socket", sock, "ping"], capture_output=True,
                              env=env).returncode == 0  # ready means it answers
        pings = [m for m in receive_until("WATCHDOG=1") + receive_until("WATCHDOG=1")
                 if m == "WATCHDOG=1"]
        assert len(pings) >= 2
    finally:
        daemon.send_signal(signal.SIGTERM)  # once: the daemon is shutting down after it
    try:
        assert receive_until("STOPPING=1")
        assert daemon.wait(timeout=60) == 0
    finally:
        notify.close()


def test_sigint_stops_every_process_in_reverse_order_and_exits_0(own_cli_daemon):
    d = own_cli_daemon
    ok(d.cli("create", "base", "sleep", "300"))
    ok(d.cli("create", "top", "sleep", "300", "--requires", "base", "--after", "base"))
    ok(d.cli("start", "top"))
    pids = {n: d.wait_state(n, "running")["pid"] for n in ("base", "top")}
    d.proc.send_signal(signal.SIGINT)
    assert d.proc.wait(timeout=60) == 0
    assert not any(pid_alive(pid) for pid in pids.values())
    stops = re.findall(r"process (base|top): \w+ -> stopping", d.log.read_text())
    assert stops == ["top", "base"], d.log_text()


def test_log_format_json_gives_one_json_object_per_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_PM_")}
    sock = str(tmp_path / "pm.sock")
    daemon = subprocess.Popen(
        [DAEMON, "--config-dir", str(tmp_path), "--socket", sock, "--log-format", "json",
         "--state-dir", str(tmp_path / "state"), "--instance", f"qa-json-{os.getpid()}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([CLI, "--socket", sock, "ping"], capture_output=True,
                             env=env).returncode != 0:
            assert time.monotonic() < deadline and daemon.poll() is None
            time.sleep(0.05)
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, _ = daemon.communicate(timeout=60)
    assert daemon.returncode == 0
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, "the daemon logged nothing"
    for line in lines:
        record = json.loads(line)
        assert {"level", "message"} <= set(record) or {"levelname", "msg"} <= set(record), record


def test_log_dir_appends_each_processs_output_to_name_log_and_rotate_logs_shifts_it(tmp_path):
    root = Path(tempfile.mkdtemp(prefix="pmlogdir-"))
    daemon = CliDaemon(root)
    daemon.write_config("talker", "command: sh\nargs: ['-c', 'echo said-it; exec sleep 300']\n"
                                  "auto_start: true\n")
    env = daemon.env()
    log = open(daemon.log, "w")
    daemon.log_file = log
    daemon.proc = subprocess.Popen(
        [DAEMON, "--config-dir", str(daemon.config_dir), "--socket", daemon.socket,
         "--state-dir", str(daemon.state_dir), "--instance", daemon.instance,
         "--log-dir", str(root / "logs")], stdout=log, stderr=subprocess.STDOUT, env=env,
        start_new_session=True)
    try:
        daemon.wait_for("said-it in logs/talker.log", lambda: (root / "logs" / "talker.log")
                        .exists() and "said-it" in (root / "logs" / "talker.log").read_text())
        rotated = daemon.cli("rotate-logs")  # every process's file, like logrotate's HUP
        assert rotated.code == 0, rotated
        assert "said-it" in (root / "logs" / "talker.log.1").read_text()
        assert "said-it" not in (root / "logs" / "talker.log").read_text()
        assert "talker" in ok(daemon.cli("rotate-logs", "talker")).out
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


# -- §16 Templates and replicas -------------------------------------------------------------

def test_template_specifiers_are_replaced_in_every_listed_field(cli_daemon, tmp_path):
    d = cli_daemon
    (tmp_path / "site-a").mkdir()
    d.write_config("web@", f"""\
command: sh
args: ["-c", "echo inst=%i name=%n cwd=$(pwd) env=$SITE; exec sleep 300"]
env: {{SITE: "site-%i"}}
working_dir: "{tmp_path}/site-%i"
pidfile: "{tmp_path}/%n.pid"
log: {{file: "{tmp_path}/logs/%n.log"}}
health_check: {{type: exec, exec_command: [test, -e, "{tmp_path}/%i.ready"], interval: 0.2,
               retries: 1}}
""")
    ok(d.cli("reload-config"))
    ok(d.cli("start", "web@a"))
    record = d.wait_state("web@a", "running")
    d.wait_for("the instance's first line", lambda: "inst=" in d.cli("logs", "web@a").out)
    line = d.cli("logs", "web@a").out
    assert f"inst=a name=web@a cwd={tmp_path}/site-a env=site-a" in line
    assert (tmp_path / "web@a.pid").read_text().strip() == str(record["pid"])
    d.wait_for("the instance's log file", lambda: (tmp_path / "logs" / "web@a.log").exists()
               and "inst=a" in (tmp_path / "logs" / "web@a.log").read_text())
    assert d.wait_for("unhealthy: a.ready is missing",
                      lambda: d.record("web@a")["health"] == "unhealthy")
    (tmp_path / "a.ready").write_text("")
    assert d.wait_for("healthy once a.ready exists",
                      lambda: d.record("web@a")["health"] == "healthy")


def test_describe_of_a_replicated_name_summarises_its_instances(cli_daemon):
    d = cli_daemon
    d.write_config("pool", "command: sleep\nargs: ['300']\nreplicas: 3\nauto_start: true\n")
    ok(d.cli("reload-config"))
    for i in (1, 2, 3):
        d.wait_state(f"pool@{i}", "running")
    names = [r["name"] for r in json.loads(ok(d.cli("--json", "list")).out)]
    assert {"pool@1", "pool@2", "pool@3"} <= set(names)
    summary = d.cli("describe", "pool")
    assert summary.code == 0, summary
    for i in (1, 2, 3):
        assert f"pool@{i}" in summary.out
    assert "running" in summary.out


# -- §17 Import of real Debian units ----------------------------------------------------------

DEBIAN_UNITS = ["nginx.service", "ssh.service", "cron.service", "redis-server.service"]


@pytest.mark.parametrize("unit", DEBIAN_UNITS)
def test_a_debian_unit_converts_names_what_it_drops_and_validates(tmp_path, unit):
    path = Path("/lib/systemd/system") / unit
    if not path.exists():
        pytest.skip(f"{path} comes with its Debian package (packaging/install-test-deps.sh)")
    env = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    out = tmp_path / "out"
    done = subprocess.run([CLI, "import", "systemd", str(path), "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    written = list(out.glob("*.yaml"))
    assert written, done.stderr
    for finding in done.stderr.splitlines():
        if "no equivalent" in finding:  # each names its file and line
            assert re.match(rf"{re.escape(str(path))}:\d+: ", finding), finding
    checked = subprocess.run([CLI, "validate", str(out)], capture_output=True, text=True,
                             env=env, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- §18 Dashboard over plain HTTP ------------------------------------------------------------

def test_dashboard_page_and_its_assets_are_served_same_origin_and_read_only():
    daemon = web_daemon(None, "command: sleep\nargs: ['300']\nauto_start: true\n")
    try:
        daemon.wait_state("demo", "running")
        with urllib.request.urlopen(daemon.origin + "/", timeout=10) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/html")
            page = resp.read().decode()
        assert '<body data-access="read-only">' in page  # the page says it is read-only
        refs = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert refs, page[:500]
        for ref in refs:
            assert ref.startswith("/") and not ref.startswith("//"), ref  # same origin
            with urllib.request.urlopen(daemon.origin + ref, timeout=10) as resp:
                assert resp.status == 200 and resp.read(), ref
        with urllib.request.urlopen(daemon.origin + "/api/processes", timeout=10) as resp:
            listed = json.loads(resp.read())
        assert "demo" in json.dumps(listed)
        stop = urllib.request.Request(daemon.origin + "/api/processes/demo/stop", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(stop, timeout=10)
        assert refused.value.code in (401, 403)
        assert daemon.record("demo")["state"] == "running"
    finally:
        daemon.stop()
        shutil.rmtree(daemon.root, ignore_errors=True)


def test_with_a_token_the_page_is_open_and_actions_need_the_bearer():
    daemon = web_daemon("s3cret-qa", "command: sleep\nargs: ['300']\nauto_start: true\n")
    try:
        daemon.wait_state("demo", "running")
        with urllib.request.urlopen(daemon.origin + "/", timeout=10) as resp:
            assert resp.status == 200  # the static page itself needs no token
            assert '<body data-access="token">' in resp.read().decode()
        url = daemon.origin + "/api/processes/demo/stop"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10)
        assert refused.value.code == 401
        assert daemon.record("demo")["state"] == "running"
        stop = urllib.request.Request(url, method="POST",
                                      headers={"Authorization": "Bearer s3cret-qa"})
        with urllib.request.urlopen(stop, timeout=30) as resp:
            assert resp.status == 200
        assert daemon.record("demo")["state"] == "stopped"
    finally:
        daemon.stop()
        shutil.rmtree(daemon.root, ignore_errors=True)


# -- §19 Packaging ------------------------------------------------------------------------------

def test_the_unit_passes_systemd_analyze_verify_with_an_existing_binary(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze comes with systemd (packaging/install-test-deps.sh)")
    text = (ROOT / "packaging" / "dd-procmgrd.service").read_text()
    assert "/usr/bin/dd-procmgrd" in text
    unit = tmp_path / "dd-procmgrd.service"
    unit.write_text(text.replace("/usr/bin/dd-procmgrd", DAEMON))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    problems = [line for line in done.stderr.splitlines() if "dd-procmgrd.service" in line]
    assert done.returncode == 0 and not problems, done.stderr


def test_make_man_builds_both_pages(tmp_path):
    done = subprocess.run([sys.executable, "-m", "dd_procmgr_cli.manpage", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pages = sorted(p.name for p in tmp_path.iterdir())
    assert any(p.startswith("dd-procmgr.1") for p in pages), pages
    assert any(p.startswith("dd-procmgrd.8") or p.startswith("dd-procmgrd.1") for p in pages)
    if shutil.which("man"):
        page = next(p for p in tmp_path.iterdir() if p.name.startswith("dd-procmgr.1"))
        shown = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                               env={**os.environ, "MANPAGER": "cat", "MANWIDTH": "100"},
                               timeout=60)
        assert shown.returncode == 0 and "dd-procmgr" in shown.stdout


# -- Defects found on the way, routed (strict xfail: they fail while the defect is there) ----

def test_a_reload_with_one_bad_file_changes_nothing(cli_daemon):
    """SPEC §15 (atomic reload, landed on main by contain): one error, nothing changes."""
    d = cli_daemon
    d.write_config("good", "command: sleep\nargs: ['300']\n")
    ok(d.cli("reload-config"))
    d.write_config("good", "command: sleep\nargs: ['301']\n")
    d.write_config("bad", "args: [x]\n")  # no command
    reload = d.cli("reload-config")
    assert reload.code == 1 and "bad.yaml" in reload.out + reload.err
    assert d.record("good")["args"] == ["300"]


def test_events_carry_no_null_count(cli_daemon):
    """Issue 11 item 10: only `lost` events have a count (fixed on main by rpc)."""
    d = cli_daemon
    follower = d.popen("--json", "events")
    try:
        watching(d, follower)
        ok(d.cli("create", "quiet", "true"))
        events = read_events(follower, lambda e: e.get("process") == "quiet")
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    assert "count" not in events[-1], events[-1]


def test_stats_memory_is_not_zero_after_a_hot_memory_limit(cli_daemon):
    """SPEC §8: a hot-applied v1 memory limit moves the service's charges with it."""
    d = cli_daemon
    ok(d.cli("create", "hot", sys.executable, "-c",
             "import time; x = bytearray(32 << 20); time.sleep(300)", "--auto-start"))
    d.wait_state("hot", "running")
    ok(d.cli("update", "hot", "--memory-limit", "512M"))
    stats = json.loads(ok(d.cli("--json", "stats", "hot")).out)
    assert stats["memory_limit"] == 512 * 10**6
    assert stats["memory_current"] >= 16 << 20, stats
