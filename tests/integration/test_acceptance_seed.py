"""The seed README (shared/seeds/002), run as a user would: its CLI and YAML verbatim.

Every example runs against the real ``dd-procmgrd`` through the real ``dd-procmgr``, in the
order of the seed's sections. What is adapted, and only that:

* ``./target/release/cli`` and ``cli`` are ``dd-procmgr``; ``./target/release/daemon`` and
  ``./target/release/dd-procmgrd`` are ``dd-procmgrd``;
* a program that is not installed (``/opt/datadog/bin/agent``, ``./my-worker``,
  ``/usr/bin/postgres`` ...) is a small stand-in script created by the test — at the
  seed's own path for ``/opt/...`` (a private tmpfs, see acceptance_daemon.py), next to
  the caller or the config file for ``./...``, and under ``/opt/stand-in/`` for the
  ``/usr/bin`` and ``/usr/sbin`` ones (the host's /usr is never written);
* ``<process-id>`` / ``<id>`` is the UUID that ``create`` printed;
* host paths the examples read (``/etc/app/...``, ``/var/www``) live in the test's temp dir.

Ports stay as written: the daemon has its own network namespace. Where the seed and
SPEC.md disagree, SPEC wins, and the test says so where it happens.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from acceptance_daemon import (SeedDaemon, needs_root, seed,  # noqa: F401 (fixtures)
                               shared_seed_daemon)
from cli_daemon import DAEMON, CliDaemon, Result, running_daemon
from support import pid_alive

pytestmark = needs_root

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
LIST_HEADER = ["NAME", "ID", "PID", "STATE", "HEALTH", "RUNS", "UPTIME", "COMMAND"]


def ok(result: Result) -> Result:
    assert result.code == 0, f"exit {result.code}\nstdout: {result.out}\nstderr: {result.err}"
    return result


def created_id(result: Result) -> str:
    """The UUID that ``create`` prints ("Returns a UUID that you'll use ...")."""
    found = UUID.search(ok(result).out)
    assert found, f"create printed no UUID: {result.out!r}"
    return found.group(0)


def list_rows(seed) -> dict[str, dict[str, str]]:
    """``dd-procmgr list`` parsed by its header: name -> column -> cell."""
    lines = ok(seed.cli("list")).out.splitlines()
    if lines[0].startswith("No processes."):
        return {}
    header = lines[0].split()
    assert header == LIST_HEADER, lines[0]
    starts = [lines[0].index(col) for col in header] + [None]
    rows = {}
    for line in lines[1:]:
        cells = {col: line[starts[i]:starts[i + 1]].strip() for i, col in enumerate(header)}
        rows[cells["NAME"]] = cells
    return rows


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def config(seed, name: str, text: str) -> Path:
    """A config file written verbatim, then ``reload-config`` as the seed says."""
    path = seed.write_config(name, text)
    ok(seed.cli("reload-config"))
    return path


def logs(seed, name: str) -> str:
    return ok(seed.cli("logs", name)).out


def wait_log(seed, name: str, needle: str) -> str:
    return seed.wait_for(f"{needle!r} in the logs of {name}",
                         lambda: (lambda text: text if needle in text else None)(logs(seed, name)))


def redis_says(seed, *args: str) -> str:
    """``redis-cli ARGS`` in the namespace, once redis listens: a simple service is
    `running` from its exec on, a moment before it accepts connections."""
    return seed.wait_for(f"redis-cli {' '.join(args)} to answer", lambda: (
        lambda done: done.stdout if done.returncode == 0 and done.stdout.strip() else None)(
        seed.run_inside("redis-cli", *args)))


def restarted(seed, name: str, old_pid: int) -> dict:
    return seed.wait_for(f"{name} to run again with a new pid",
                         lambda: (lambda r: r if r["state"] == "running" and r["pid"]
                                  not in (None, old_pid) else None)(seed.record(name)), 20)


# -- Example 3: Testing Start Limit Protection (started first, checked last) ----------------

@pytest.fixture(scope="module", autouse=True)
def crasher_daemon():
    """Example 3 verbatim takes 1+2+4+8 s of backoff to hit the default start limit: its
    own daemon starts it before the module's first test and the module's last test looks
    at it, so the wait overlaps the other tests instead of adding to them."""
    with running_daemon() as daemon:
        uuid = created_id(daemon.cli("create", "crasher", "bash", "-c", "exit 1",
                                     "--restart-policy", "always"))
        ok(daemon.cli("start", uuid))
        daemon.crasher_id = uuid
        yield daemon


# -- Quick Start: Start the Daemon ------------------------------------------------------

def test_start_the_daemon_help_names_the_config_dir_flag():
    done = subprocess.run([DAEMON, "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert "--config-dir" in done.stdout and "DD_PM_CONFIG_DIR" in done.stdout
    # SPEC §13 wins over the seed's `--tcp --grpc-port 50051`: the TCP listener is
    # `--tcp HOST:PORT --token-file F`, and RUST_LOG is `--log-level LEVEL`.
    assert "--tcp HOST:PORT" in done.stdout and "--log-level" in done.stdout


def test_start_the_daemon_with_the_config_dir_from_the_environment(tmp_path):
    """``DD_PM_CONFIG_DIR=/custom/path/processes.d dd-procmgrd``; the flag beats it."""
    from_env = tmp_path / "custom" / "path" / "processes.d"
    from_env.mkdir(parents=True)
    (from_env / "from-env.yaml").write_text("command: sleep\nargs: ['300']\n")
    (tmp_path / "d").mkdir()
    daemon = CliDaemon(tmp_path / "d")
    daemon.write_config("from-flag", "command: sleep\nargs: ['300']\n")
    for flags, expected in (([], "from-env"), (["--config-dir", str(daemon.config_dir)],
                                               "from-flag")):
        daemon.log_file = open(daemon.log, "w")
        daemon.proc = subprocess.Popen(
            [DAEMON, "--socket", daemon.socket, "--state-dir", str(daemon.state_dir),
             "--instance", daemon.instance, *flags], stdout=daemon.log_file,
            stderr=subprocess.STDOUT, env=daemon.env(DD_PM_CONFIG_DIR=str(from_env)),
            start_new_session=True)
        try:
            daemon.wait_for("the daemon to answer", lambda: daemon.cli("ping").code == 0)
            names = [r["name"] for r in daemon.cli("--json", "list").json]
            assert names == [expected], (flags, names)
        finally:
            daemon.stop()


# -- Quick Start: Use the CLI ------------------------------------------------------------

def test_quick_start_create_start_list_describe_stop_delete_reload(seed):
    pid_of_myapp = created_id(seed.cli("create", "myapp", "python3", "-m", "http.server", "8080"))
    assert seed.record("myapp")["state"] == "created"  # create does not start it
    started = ok(seed.cli("start", pid_of_myapp))
    assert "running" in started.out
    assert "Directory listing" in seed.fetch("127.0.0.1", 8080)
    row = list_rows(seed)["myapp"]
    assert (row["ID"], row["STATE"], row["RUNS"]) == (pid_of_myapp, "running", "1")
    assert row["COMMAND"] == "python3 -m http.server 8080"
    described = ok(seed.cli("describe", pid_of_myapp)).out
    assert re.search(r"^State:\s+running", described, re.M)
    assert re.search(rf"^ID:\s+{pid_of_myapp}$", described, re.M)
    ok(seed.cli("stop", pid_of_myapp))
    assert seed.record("myapp")["state"] == "stopped"
    ok(seed.cli("delete", pid_of_myapp))
    assert "myapp" not in list_rows(seed)
    # OR create and start in one command
    ok(seed.cli("create", "myapp", "python3", "-m", "http.server", "8080", "--auto-start"))
    assert seed.wait_state("myapp", "running")["runs"] == 1
    assert "Configuration reloaded" in ok(seed.cli("reload-config")).out


# -- CLI Commands: create ----------------------------------------------------------------

def test_create_examples_resolve_relative_commands_and_keep_their_flags(seed, tmp_path):
    here = tmp_path
    seed.stand_in(str(here / "my-worker"))
    seed.stand_in(str(here / "server"))
    ok(seed.cli_in(here, "create", "webserver", "python3", "-m", "http.server", "8080"))
    ok(seed.cli_in(here, "create", "worker", "./my-worker", "--threads", "4"))
    ok(seed.cli_in(here, "create", "database", "redis-server", "--port", "6379"))
    ok(seed.cli_in(here, "create", "api", "./server", "--auto-start"))
    worker = seed.record("worker")
    assert (worker["command"], worker["args"]) == (str(here / "my-worker"), ["--threads", "4"])
    assert seed.record("database")["args"] == ["--port", "6379"]
    assert {seed.record(n)["state"] for n in ("webserver", "worker", "database")} == {"created"}
    assert seed.wait_state("api", "running")
    ok(seed.cli("start", "worker"))
    wait_log(seed, "worker", f"stand-in {here}/my-worker --threads 4")
    ok(seed.cli("start", "database"))
    seed.wait_state("database", "running")
    assert "redis_version" in redis_says(seed, "-p", "6379", "info", "server")


def test_process_names_are_unique_and_name_or_uuid_both_work(seed):
    uuid = created_id(seed.cli("create", "webserver", "python3", "-m", "http.server", "8080"))
    again = seed.cli("create", "webserver", "python3", "-m", "http.server", "8080")
    assert again.code == 1
    assert again.err.strip() == "error: ALREADY_EXISTS: a process named 'webserver' already exists"
    for ref in (uuid, "webserver"):
        assert seed.record(ref)["id"] == uuid
        ok(seed.cli("start", ref))
        ok(seed.cli("stop", ref))
    ok(seed.cli("delete", uuid))
    gone = seed.cli("describe", "webserver")
    assert gone.code == 1 and "PROCESS_NOT_FOUND" in gone.err


# -- CLI Commands: start / stop / delete -------------------------------------------------

def test_start_restarts_a_process_that_exited_or_was_stopped(seed):
    uuid = created_id(seed.cli("create", "once", "true"))
    ok(seed.cli("start", uuid))
    assert seed.wait_state("once", "exited")["exit_code"] == 0
    ok(seed.cli("start", uuid))
    assert seed.wait_state("once", "exited")["runs"] == 2
    created_id(seed.cli("create", "svc", "sleep", "300", "--restart-policy", "always"))
    ok(seed.cli("start", "svc"))
    ok(seed.cli("stop", "svc"))
    stopped = seed.record("svc")
    # "Manually stopped processes won't auto-restart (systemd behavior)"
    assert stopped["state"] == "stopped" and stopped["next_restart_at"] is None
    ok(seed.cli("start", "svc"))
    assert seed.wait_state("svc", "running")["runs"] == 2


def test_stop_sends_sigterm(seed):
    script = seed.root / "term-reporter"
    script.write_text("#!/usr/bin/python3\nimport signal, sys, time\n"
                      "def bye(sig, _):\n    print('got', signal.Signals(sig).name, flush=True)\n"
                      "    sys.exit(0)\nsignal.signal(signal.SIGTERM, bye)\n"
                      "print('up', flush=True)\nwhile True: time.sleep(1)\n")
    script.chmod(0o755)
    uuid = created_id(seed.cli("create", "polite", str(script), "--auto-start"))
    wait_log(seed, "polite", "up")
    ok(seed.cli("stop", uuid))
    wait_log(seed, "polite", "got SIGTERM")


def test_delete_needs_force_for_a_running_process_and_remove_is_an_alias(seed):
    uuid = created_id(seed.cli("create", "victim", "sleep", "300", "--auto-start"))
    pid = seed.wait_state("victim", "running")["pid"]
    refused = seed.cli("delete", uuid)
    assert refused.code == 1 and refused.err.startswith("error: ")
    assert seed.record("victim")["state"] == "running"
    ok(seed.cli("delete", uuid, "--force"))
    assert seed.cli("describe", "victim").code == 1
    seed.wait_for("the deleted process's pid to go", lambda: not Path(f"/proc/{pid}").exists())
    created_id(seed.cli("create", "victim", "sleep", "300"))
    ok(seed.cli("remove", "victim"))
    assert "victim" not in list_rows(seed)


# -- CLI Commands: list / describe / stats -----------------------------------------------

def test_list_wide_has_the_seeds_timestamps_and_exit_columns(seed):
    # The seed lists CREATED, STARTED, ENDED, EXIT among the list columns; SPEC §11 fixes
    # the narrow table (NAME ID PID STATE HEALTH RUNS UPTIME COMMAND) and `-o wide` adds them.
    created_id(seed.cli("create", "fails", "sh", "-c", "exit 3", "--auto-start"))
    seed.wait_state("fails", "failed")
    assert list_rows(seed)["fails"]["PID"] == "-"  # "or - if not running"
    wide = ok(seed.cli("list", "-o", "wide")).out.splitlines()
    for column in ("CREATED", "STARTED", "ENDED", "EXIT"):
        assert column in wide[0].split()
    header = wide[0]
    assert wide[1][header.index("EXIT"):].split()[0] == "3"


def test_describe_shows_command_policy_config_and_exit(seed):
    workdir = seed.root / "www"
    workdir.mkdir()
    created_id(seed.cli("create", "shown", "sh", "-c", "exit 4", "--restart-policy", "never",
                        "--working-dir", str(workdir), "--env", "LOG_LEVEL=debug",
                        "--memory-limit", "512M", "--auto-start"))
    seed.wait_state("shown", "failed")
    text = ok(seed.cli("describe", "shown")).out
    for pattern in (r"^Name:\s+shown$", r"^Command:\s+sh -c 'exit 4'$", r"^State:\s+failed",
                    r"^Restart:\s+never$", r"^Runs:\s+1$", r"^Exit:\s+4$", r"^Started:\s+\d{4}-",
                    r"^Ended:\s+\d{4}-", rf"working_dir:\s+{workdir}", r"LOG_LEVEL:\s+debug",
                    r"memory:"):
        assert re.search(pattern, text, re.M), f"{pattern!r} not in:\n{text}"


def test_stats_shows_memory_cpu_and_pids_against_the_limits(seed):
    created_id(seed.cli("create", "my-app", "sleep", "300", "--memory-limit", "512M",
                        "--pids-limit", "100", "--auto-start"))
    seed.wait_state("my-app", "running")
    text = ok(seed.cli("stats", "my-app")).out
    pid = seed.record("my-app")["pid"]
    assert text.startswith(f"Resource Usage Statistics for 'my-app' (PID: {pid})")
    for pattern in (r"^Memory:$", r"^  Current: ", r"^  Limit:   488\.3 MiB \(\d+\.\d% used\)$",
                    r"^CPU:$", r"^  User time:   \d+\.\d\ds$", r"^  System time: ",
                    r"^  Total:       ", r"^PIDs:$", r"^  Current: 1$",
                    r"^  Limit:   100 \(1\.0% used\)$"):
        assert re.search(pattern, text, re.M), f"{pattern!r} not in:\n{text}"


# -- CLI Commands: update ----------------------------------------------------------------

def test_update_basic_examples_hot_restart_required_restart_process_and_dry_run(seed):
    created_id(seed.cli("create", "my-app", "sleep", "300", "--auto-start"))
    pid = seed.wait_state("my-app", "running")["pid"]
    hot = ok(seed.cli("update", "my-app", "--restart", "always")).out
    assert hot.splitlines() == ["[OK] Process configuration updated", "Updated fields:",
                                "  - restart"]
    needs = ok(seed.cli("update", "my-app", "--env", "NEW_VAR=value")).out
    assert "The following fields require restart to take effect:\n  - env" in needs
    assert seed.record("my-app")["pid"] == pid  # not restarted: env needs a restart
    applied = ok(seed.cli("update", "my-app", "--env", "KEY=value", "--restart-process")).out
    assert "✓ Process restarted successfully" in applied
    new_pid = restarted(seed, "my-app", pid)["pid"]
    assert {"KEY": "value", "NEW_VAR": "value"}.items() <= environ(new_pid).items()
    several = ok(seed.cli("update", "my-app", "--restart", "on-failure",
                          "--timeout-stop-sec", "30", "--cpu-limit", "2")).out
    # the seed's field names are SPEC's here: `restart`, not `restart_policy`
    assert "  - restart\n  - timeout_stop_sec\n  - resources" in several
    spec = seed.record("my-app")["spec"]
    assert (spec["restart"], spec["timeout_stop_sec"]) == ("on-failure", 30)
    dry = ok(seed.cli("update", "my-app", "--restart", "always", "--dry-run")).out
    assert dry.startswith("[OK] Dry run - validation successful (no changes applied)")
    assert seed.record("my-app")["spec"]["restart"] == "on-failure"
    assert seed.record("my-app")["pid"] == new_pid


def test_update_hot_example_and_incremental_resource_scaling(seed):
    for name in ("web-api", "high-load-service"):
        created_id(seed.cli("create", name, "sleep", "300", "--auto-start"))
    pid = seed.wait_state("web-api", "running")["pid"]
    out = ok(seed.cli("update", "web-api", "--cpu-limit", "4", "--memory-limit", "2G")).out
    assert out.splitlines() == ["[OK] Process configuration updated", "Updated fields:",
                                "  - resources"]
    limits = seed.record("web-api")["spec"]["resources"]["limits"]
    assert (limits["cpu"], limits["memory"]) == (4, 2 * 10**9)
    assert seed.record("web-api")["pid"] == pid
    for flags in (["--cpu-limit", "2"], ["--cpu-limit", "4"], ["--memory-limit", "4G"]):
        ok(seed.cli("update", "high-load-service", *flags))
    limits = seed.record("high-load-service")["spec"]["resources"]["limits"]
    assert (limits["cpu"], limits["memory"]) == (4, 4 * 10**9)


def test_update_restart_required_example_prints_the_seeds_lines(seed):
    created_id(seed.cli("create", "api-server", "sleep", "300", "--auto-start"))
    pid = seed.wait_state("api-server", "running")["pid"]
    out = ok(seed.cli("update", "api-server", "--env", "DATABASE_URL=postgres://newhost/db",
                      "--env", "LOG_LEVEL=info", "--restart-process")).out
    assert out.splitlines() == ["[OK] Process configuration updated", "Updated fields:",
                                "  - env",
                                "The following fields require restart to take effect:",
                                "  - env", "✓ Process restarted successfully"]
    env = environ(restarted(seed, "api-server", pid)["pid"])
    assert (env["DATABASE_URL"], env["LOG_LEVEL"]) == ("postgres://newhost/db", "info")


def test_update_dry_run_of_mixed_fields_lists_them_and_changes_nothing(seed):
    created_id(seed.cli("create", "my-app", "sleep", "300", "--auto-start"))
    before = seed.record("my-app")
    out = ok(seed.cli("update", "my-app", "--restart", "always", "--cpu-limit", "4",
                      "--env", "NEW_VAR=value", "--dry-run")).out
    # SPEC names the field `restart` where the seed printed `restart_policy`
    updated, needs = out.split("The following fields require restart to take effect:\n")
    assert updated.splitlines()[:2] == [
        "[OK] Dry run - validation successful (no changes applied)", "Updated fields:"]
    assert sorted(updated.splitlines()[2:]) == ["  - env", "  - resources", "  - restart"]
    assert needs.splitlines() == ["  - env"]
    after = seed.record("my-app")
    assert (after["spec"], after["pid"]) == (before["spec"], before["pid"])


def test_update_common_use_cases(seed):
    for name in ("flaky-service", "unstable-app", "data-processor", "user-script", "app",
                 "service"):
        created_id(seed.cli("create", name, "sleep", "300", "--auto-start"))
    ok(seed.cli("update", "flaky-service", "--restart", "always"))
    ok(seed.cli("update", "unstable-app", "--restart", "on-failure", "--restart-sec", "5",
                "--restart-max", "300"))
    ok(seed.cli("update", "data-processor", "--memory-limit", "8G", "--cpu-limit", "4"))
    ok(seed.cli("update", "user-script", "--pids-limit", "50"))
    assert seed.record("flaky-service")["spec"]["restart"] == "always"
    unstable = seed.record("unstable-app")["spec"]
    assert (unstable["restart"], unstable["restart_sec"], unstable["restart_max_delay"]) == (
        "on-failure", 5, 300)
    assert seed.record("data-processor")["spec"]["resources"]["limits"]["memory"] == 8 * 10**9
    assert seed.record("user-script")["spec"]["resources"]["limits"]["pids"] == 50
    app_pid, service_pid = (seed.record(n)["pid"] for n in ("app", "service"))
    ok(seed.cli("update", "app", "--env", "CONFIG_PATH=/etc/app/new-config.yaml",
                "--restart-process"))
    ok(seed.cli("update", "service", "--env", "LOG_LEVEL=debug", "--env", "RUST_LOG=debug",
                "--restart-process"))
    assert environ(restarted(seed, "app", app_pid)["pid"])["CONFIG_PATH"] == (
        "/etc/app/new-config.yaml")
    env = environ(restarted(seed, "service", service_pid)["pid"])
    assert (env["LOG_LEVEL"], env["RUST_LOG"]) == ("debug", "debug")


def test_update_mixed_hot_and_restart_required(seed):
    """The seed's mixed example without its inline comments (a `#` after `\\` ends the
    command in a shell, so the example cannot run as printed)."""
    created_id(seed.cli("create", "worker", "sleep", "300", "--auto-start"))
    pid = seed.wait_state("worker", "running")["pid"]
    out = ok(seed.cli("update", "worker", "--restart", "on-failure", "--cpu-limit", "2",
                      "--env", "THREADS=8", "--restart-process")).out
    assert "✓ Process restarted successfully" in out
    record = restarted(seed, "worker", pid)
    assert environ(record["pid"])["THREADS"] == "8"
    assert record["spec"]["restart"] == "on-failure"
    assert record["spec"]["resources"]["limits"]["cpu"] == 2


def test_update_change_process_ownership_runs_it_as_www_data(seed):
    created_id(seed.cli("create", "web-server", "sleep", "300", "--auto-start"))
    pid = seed.wait_state("web-server", "running")["pid"]
    ok(seed.cli("update", "web-server", "--user", "www-data", "--group", "www-data",
                "--restart-process"))
    new_pid = restarted(seed, "web-server", pid)["pid"]
    status = Path(f"/proc/{new_pid}/status").read_text()
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    gid = re.search(r"^Gid:\s+(\d+)", status, re.M).group(1)
    assert (uid, gid) == ("33", "33"), status


def test_update_every_restart_required_option_of_the_table(seed):
    created_id(seed.cli("create", "my-app", "sleep", "300", "--auto-start"))
    env_file = seed.root / "app.env"
    env_file.write_text("FROM_FILE=yes\n")
    data = seed.root / "data"
    data.mkdir()
    out = ok(seed.cli("update", "my-app", "--env", "LOG_LEVEL=debug", "--env-file",
                      str(env_file), "--working-dir", str(data), "--user", "www-data",
                      "--group", "www-data", "--runtime-directory", "myapp",
                      "--ambient-capability", "CAP_NET_BIND_SERVICE", "--kill-mode",
                      "control-group", "--kill-signal", "SIGINT", "--pidfile",
                      "/var/run/app.pid")).out
    needs = out.split("The following fields require restart to take effect:\n")[1]
    for field in ("env", "environment_file", "working_dir", "user", "group",
                  "runtime_directory", "ambient_capabilities", "kill_signal", "pidfile"):
        assert f"  - {field}\n" in needs + "\n", f"{field} not in {out}"
    pid = seed.record("my-app")["pid"]
    ok(seed.cli("restart", "my-app"))
    new_pid = restarted(seed, "my-app", pid)["pid"]
    env = environ(new_pid)
    assert (env["LOG_LEVEL"], env["FROM_FILE"]) == ("debug", "yes")
    assert os.readlink(f"/proc/{new_pid}/cwd") == str(data)
    assert seed.inside("/run/myapp").is_dir()
    assert seed.inside("/run/app.pid").read_text().strip() == str(new_pid)
    capabilities = re.search(r"^CapAmb:\s+([0-9a-f]+)", Path(f"/proc/{new_pid}/status")
                             .read_text(), re.M).group(1)
    assert int(capabilities, 16) & (1 << 10)  # CAP_NET_BIND_SERVICE is capability 10


# -- Restart Policies ----------------------------------------------------------------------

RESTART_POLICIES = """\
processes:
  web_server:
    command: "python3"
    args: ["-m", "http.server", "8080"]
    restart: "always"
  api_server:
    command: "./api-server"
    restart: "on-failure"
  worker:
    command: "./worker"
    restart: "on-success"
"""


def test_restart_policies_always_on_failure_on_success(seed):
    (seed.config_dir / "api-server").write_text("#!/bin/sh\necho api run; exit 1\n")
    (seed.config_dir / "worker").write_text("#!/bin/sh\necho job done; exit 0\n")
    for name in ("api-server", "worker"):
        (seed.config_dir / name).chmod(0o755)
    config(seed, "policies", RESTART_POLICIES)
    ok(seed.cli("start", "web_server", "api_server", "worker"))
    pid = seed.wait_state("web_server", "running")["pid"]
    os.kill(pid, signal.SIGKILL)  # always: a crash is restarted
    assert restarted(seed, "web_server", pid)["restarts"] == 1
    for name in ("api_server", "worker"):  # on-failure after exit 1, on-success after exit 0
        seed.wait_for(f"{name} to be restarted by its policy",
                      lambda: seed.record(name)["restarts"] >= 1)


def test_restart_policy_never_is_the_default_and_on_failure_ignores_success(seed):
    config(seed, "quiet", "processes:\n  quiet:\n    command: sh\n    args: [-c, 'exit 1']\n"
                          "  done:\n    command: 'true'\n    restart: on-failure\n")
    ok(seed.cli("start", "quiet", "done"))
    assert seed.wait_state("quiet", "failed")["next_restart_at"] is None
    assert seed.wait_state("done", "exited")["next_restart_at"] is None


# -- Exponential Backoff & Start Limits ----------------------------------------------------

def test_exponential_backoff_doubles_from_restart_sec(seed):
    (seed.config_dir / "api-server").write_text("#!/bin/sh\nexit 1\n")
    (seed.config_dir / "api-server").chmod(0o755)
    config(seed, "backoff", """\
processes:
  api_server:
    command: "./api-server"
    restart: "on-failure"
    restart_sec: 2              # Base delay: 2 seconds
    restart_max_delay: 60       # Cap at 60 seconds
""")
    ok(seed.cli("start", "api_server"))
    first = seed.wait_state("api_server", "backoff")
    assert first["next_restart_at"] - first["ended_at"] == pytest.approx(2, abs=0.9)
    second = seed.wait_for("the second backoff", lambda: (
        lambda r: r if r["state"] == "backoff" and r["restarts"] == 1 else None)(
        seed.record("api_server")))
    assert second["next_restart_at"] - second["ended_at"] == pytest.approx(4, abs=0.9)
    assert re.search(r"backoff", ok(seed.cli("describe", "api_server")).out)


# -- Configuration Directory -------------------------------------------------------------

WEB_SERVER = """\
# /etc/pm/processes.d/web-server.yaml
# Process name derived from filename: "web-server"

command: "python3"
args: ["-m", "http.server", "8080"]
auto_start: true                    # Start on daemon startup
restart: "always"                   # Restart policy

# Restart delay with exponential backoff
restart_sec: 2                      # Wait 2 seconds before first restart
restart_max_delay: 60               # Cap exponential backoff at 60 seconds

# Start limits (prevents infinite restart loops)
start_limit_burst: 5                # Max 5 restarts
start_limit_interval: 300           # Within 300 seconds (5 minutes)

working_dir: "/var/www"             # Working directory (optional)
env:                                # Environment variables (optional)
  DEBUG: "true"
  PORT: "8080"
"""

BACKGROUND_JOB = """\
# /etc/pm/processes.d/background-job.yaml
command: "sleep"
args: ["60"]
auto_start: false
restart: "on-failure"

# Custom restart settings
restart_sec: 5
restart_max_delay: 120

# More lenient start limits
start_limit_burst: 10
start_limit_interval: 600
"""

API_SERVICE = """\
# /etc/pm/processes.d/api-service.yaml
command: "./my-service"
auto_start: true
restart: "always"
working_dir: "/opt/app"
env:
  LOG_LEVEL: "info"
  DATABASE_URL: "postgres://localhost/mydb"
"""


def test_configuration_directory_one_file_per_process_named_by_the_file(seed):
    www = seed.root / "var" / "www"  # /var/www of the host is not ours to write
    www.mkdir(parents=True)
    (www / "index.html").write_text("served from var/www\n")
    seed.write_config("web-server", WEB_SERVER.replace('"/var/www"', f'"{www}"'))
    seed.write_config("background-job", BACKGROUND_JOB)
    seed.stand_in("/opt/app/my-service")
    seed.write_config("api-service", API_SERVICE)
    assert ok(seed.cli("validate", str(seed.config_dir))).code == 0
    ok(seed.cli("reload-config"))
    assert set(list_rows(seed)) == {"web-server", "background-job", "api-service"}
    web = seed.wait_state("web-server", "running")  # auto_start
    assert "served from var/www" in seed.fetch("127.0.0.1", 8080)
    assert {"DEBUG": "true", "PORT": "8080"}.items() <= environ(web["pid"]).items()
    api = seed.wait_state("api-service", "running")
    # `./my-service` resolves against the file's working_dir (SPEC: relative to working_dir)
    assert api["command"] == "/opt/app/my-service"
    assert os.readlink(f"/proc/{api['pid']}/cwd") == "/opt/app"
    assert environ(api["pid"])["DATABASE_URL"] == "postgres://localhost/mydb"
    job = seed.record("background-job")
    assert job["state"] == "created"  # auto_start: false
    spec = job["spec"]
    assert (spec["restart_sec"], spec["start_limit_burst"], spec["start_limit_interval"]) == (
        5, 10, 600)
    ok(seed.cli("start", "background-job"))
    assert environ(seed.wait_state("background-job", "running")["pid"]) is not None


def test_environment_file_with_a_dash_is_optional_and_pidfile_follows_the_process(seed):
    env_file = seed.root / "svc.env"
    env_file.write_text("# comment\nGREETING='hello world'\n")
    config(seed, "svc", f"""\
command: sleep
args: ["300"]
environment_file: ["{env_file}", "-{seed.root}/missing.env"]
pidfile: /run/svc.pid
""")
    ok(seed.cli("start", "svc"))
    pid = seed.wait_state("svc", "running")["pid"]
    assert environ(pid)["GREETING"] == "hello world"
    assert seed.inside("/run/svc.pid").read_text().strip() == str(pid)
    ok(seed.cli("stop", "svc"))
    assert not seed.inside("/run/svc.pid").exists()


def test_config_without_command_is_refused_naming_the_field(seed):
    # Troubleshooting: "Verify `command` field is present (required) in each process file"
    seed.write_config("nocommand", "args: [x]\n")
    checked = seed.cli("validate", str(seed.config_dir))
    assert checked.code == 1
    assert "nocommand.yaml" in checked.out + checked.err and "command" in checked.out + checked.err
    reload = seed.cli("reload-config")
    assert reload.code == 1
    assert "nocommand.yaml:1: field 'command': missing required field" in reload.out


# -- Examples 1, 2 and 5 -------------------------------------------------------------------

def test_example_1_always_running_web_server(seed):
    uuid = created_id(seed.cli("create", "webserver", "python3", "-m", "http.server", "8080",
                               "--restart-policy", "always"))
    ok(seed.cli("start", uuid))
    pid = seed.wait_state("webserver", "running")["pid"]
    os.kill(pid, signal.SIGKILL)  # "restart if it crashes"
    restarted(seed, "webserver", pid)
    assert list_rows(seed)["webserver"]["RUNS"] == "2"
    assert "Directory listing" in seed.fetch("127.0.0.1", 8080)


def test_example_2_self_healing_service_counts_runs(seed, tmp_path):
    here = tmp_path
    (here / "my-api-server").write_text("#!/bin/sh\necho serving; exit 2\n")
    (here / "my-api-server").chmod(0o755)
    uuid = created_id(seed.cli_in(here, "create", "myapi", "./my-api-server",
                                  "--restart-policy", "on-failure"))
    ok(seed.cli("start", uuid))
    first = seed.wait_state("myapi", "backoff")  # 1st restart: ~1 second delay
    assert first["next_restart_at"] - first["ended_at"] == pytest.approx(1, abs=0.45)
    seed.wait_for("a second run", lambda: seed.record("myapi")["runs"] >= 2)
    assert int(list_rows(seed)["myapi"]["RUNS"]) >= 2  # "Check the RUNS column"
    assert re.search(r"^Runs:\s+[2-9]", ok(seed.cli("describe", uuid)).out, re.M)


def test_example_5_process_lifecycle_management(seed, tmp_path):
    here = tmp_path
    seed.stand_in(str(here / "app"))
    uuid = created_id(seed.cli_in(here, "create", "myapp", "./app", "--port", "8080"))
    assert "./app" not in ok(seed.cli("describe", uuid)).out.split("Command:")[1].split("\n")[0]
    ok(seed.cli("start", uuid))
    wait_log(seed, "myapp", f"stand-in {here}/app --port 8080")
    assert list_rows(seed)["myapp"]["STATE"] == "running"
    ok(seed.cli("stop", uuid))
    ok(seed.cli("delete", uuid))
    uuid = created_id(seed.cli_in(here, "create", "myapp", "./app", "--port", "8080"))
    ok(seed.cli("start", uuid))
    ok(seed.cli("delete", uuid, "--force"))
    assert list_rows(seed) == {}


# -- Example 4: Using Configuration File ---------------------------------------------------

MY_SERVICES = """\
# my-services.yaml
processes:
  nginx:
    command: "nginx"
    args: ["-g", "daemon off;"]
    auto_start: true
    restart: "always"
    restart_sec: 2
    restart_max_delay: 60
    start_limit_burst: 5
    start_limit_interval: 300

  redis:
    command: "redis-server"
    auto_start: true
    restart: "always"

  worker:
    command: "./worker"
    auto_start: true
    restart: "on-failure"
    env:
      QUEUE_URL: "redis://localhost:6379"
"""


def test_example_4_daemon_started_on_one_config_file(tmp_path):
    """``./target/release/daemon my-services.yaml``: the daemon takes the file itself."""
    if not (shutil.which("nginx") and shutil.which("redis-server")):
        pytest.skip("nginx and redis-server are installed by packaging/install-test-deps.sh")
    tmp_path.chmod(0o755)
    daemon = SeedDaemon(tmp_path)
    daemon.config_dir.rmdir()
    daemon.config_dir = tmp_path / "my-services.yaml"  # passed as --config-dir FILE
    daemon.config_dir.write_text(MY_SERVICES)
    worker = tmp_path / "worker"
    worker.write_text("#!/bin/sh\necho worker on $QUEUE_URL\nexec sleep 100000\n")
    worker.chmod(0o755)
    daemon.start()
    try:
        rows = daemon.wait_for("all three to run", lambda: (lambda r: r if {
            r.get(n, {}).get("STATE") for n in ("nginx", "redis", "worker")} == {"running"}
            else None)(list_rows(daemon)), timeout=30)
        assert rows["nginx"]["COMMAND"] == "nginx -g 'daemon off;'"
        assert "nginx" in daemon.fetch("127.0.0.1", 80)
        assert redis_says(daemon, "ping").strip() == "PONG"
        wait_log(daemon, "worker", "worker on redis://localhost:6379")
    finally:
        daemon.stop()


# -- Advanced Features: Dependencies (systemd-like) ----------------------------------------

DEPENDENCIES = """\
processes:
  database:
    command: /usr/bin/postgres
    auto_start: false

  cache:
    command: /usr/bin/redis-server
    requires: [database]     # Auto-starts database (hard dependency)
    after: [database]        # Ensures database starts first

  api:
    command: /usr/bin/api-server
    requires: [database, cache]  # Auto-starts both (must succeed)
    after: [database, cache]     # Ensures proper start order

  frontend:
    command: /usr/bin/nginx
    wants: [api]             # Auto-starts api (soft - continues if fails)
    after: [api]             # Ensures api starts first if it's going to

  # BindsTo example - tightly coupled services
  main-agent:
    command: /opt/agent/bin/agent run
    auto_start: true

  trace-agent:
    command: /opt/agent/bin/trace-agent
    binds_to: [main-agent]   # If main-agent stops/crashes, this stops too
    after: [main-agent]      # Ensures main-agent starts first

  # Conflicts example - mutually exclusive variants
  # Only ONE needs to declare the conflict (systemd's bidirectional behavior)
  datadog-agent:
    command: /opt/datadog/bin/agent run
    auto_start: true

  datadog-agent-exp:
    command: /opt/datadog/bin/agent-exp run
    conflicts: [datadog-agent]  # Only exp declares conflict
    auto_start: false
    # Bidirectional: Starting exp stops stable, starting stable ALSO stops exp
"""

# programs of the seed that are not installed, and where their stand-ins go
NOT_INSTALLED = {"/usr/bin/postgres": "/opt/stand-in/usr/bin/postgres",
                 "/usr/bin/api-server": "/opt/stand-in/usr/bin/api-server",
                 "/usr/bin/nginx": "/opt/stand-in/usr/bin/nginx"}


def adapted(text: str) -> str:
    for path, stand_in in NOT_INSTALLED.items():
        text = text.replace(f"command: {path}\n", f"command: {stand_in}\n")
    return text


def started_in_order(seed, *names: str) -> None:
    records = [seed.wait_state(n, "running") for n in names]
    stamps = [r["started_at"] for r in records]
    assert stamps == sorted(stamps), dict(zip(names, stamps))


def test_dependencies_via_config_file(seed):
    for path in ("/opt/agent/bin/agent", "/opt/agent/bin/trace-agent", "/opt/datadog/bin/agent",
                 "/opt/datadog/bin/agent-exp", *NOT_INSTALLED.values()):
        seed.stand_in(path)
    config(seed, "deps", adapted(DEPENDENCIES))
    main = seed.wait_state("main-agent", "running")
    # `command: /opt/agent/bin/agent run` is split like ExecStart= (no args given)
    assert (main["command"], main["args"]) == ("/opt/agent/bin/agent", ["run"])
    wait_log(seed, "main-agent", "stand-in /opt/agent/bin/agent run")
    ok(seed.cli("start", "frontend"))
    started_in_order(seed, "database", "cache", "api", "frontend")
    assert redis_says(seed, "ping").strip() == "PONG"  # the real one
    ok(seed.cli("start", "trace-agent"))
    seed.wait_state("trace-agent", "running")
    ok(seed.cli("stop", "main-agent"))
    assert seed.wait_state("trace-agent", "stopped")  # bound to main-agent
    seed.wait_state("datadog-agent", "running")
    ok(seed.cli("start", "datadog-agent-exp"))
    assert seed.record("datadog-agent")["state"] == "stopped"
    assert seed.wait_state("datadog-agent-exp", "running")
    ok(seed.cli("start", "datadog-agent"))  # bidirectional
    assert seed.record("datadog-agent-exp")["state"] == "stopped"
    assert seed.wait_state("datadog-agent", "running")


def test_dependencies_via_cli(seed):
    for path in ("/opt/agent/bin/agent", "/opt/agent/bin/trace-agent", "/opt/datadog/bin/agent",
                 "/opt/datadog/bin/agent-exp", *NOT_INSTALLED.values()):
        seed.stand_in(path)
    postgres, api = NOT_INSTALLED["/usr/bin/postgres"], NOT_INSTALLED["/usr/bin/api-server"]
    ok(seed.cli("create", "database", postgres))
    ok(seed.cli("create", "cache", "/usr/bin/redis-server", "--requires", "database",
                "--after", "database"))
    ok(seed.cli("create", "api", api, "--requires", "database", "--requires", "cache",
                "--after", "database", "--after", "cache"))
    ok(seed.cli("start", "api"))
    started_in_order(seed, "database", "cache", "api")
    ok(seed.cli("create", "main-agent", "/opt/agent/bin/agent", "run"))
    ok(seed.cli("create", "trace-agent", "/opt/agent/bin/trace-agent", "--binds-to",
                "main-agent", "--after", "main-agent"))
    ok(seed.cli("start", "main-agent"))
    # The seed says starting main-agent auto-starts trace-agent; SPEC §6.1 (systemd) pulls
    # the *bound* unit's dependency in, not the reverse: trace-agent waits for its own start.
    assert seed.record("trace-agent")["state"] == "created"
    ok(seed.cli("start", "trace-agent"))
    seed.wait_state("trace-agent", "running")
    ok(seed.cli("stop", "main-agent"))  # trace-agent will cascade-stop
    assert seed.wait_state("trace-agent", "stopped")
    ok(seed.cli("create", "datadog-agent", "/opt/datadog/bin/agent", "run"))
    ok(seed.cli("create", "datadog-agent-exp", "/opt/datadog/bin/agent-exp", "run",
                "--conflicts", "datadog-agent"))
    ok(seed.cli("start", "datadog-agent"))
    ok(seed.cli("start", "datadog-agent-exp"))
    assert seed.record("datadog-agent")["state"] == "stopped"
    ok(seed.cli("start", "datadog-agent"))
    assert seed.record("datadog-agent-exp")["state"] == "stopped"
    assert seed.record("datadog-agent")["state"] == "running"


def test_wants_continues_when_the_dependency_fails_and_requires_does_not(seed):
    """The behaviour table: `wants` - "continues"; `requires` - "hard fail"."""
    ok(seed.cli("create", "dep", "/opt/not/installed"))
    ok(seed.cli("create", "soft", "sleep", "300", "--wants", "dep", "--after", "dep"))
    ok(seed.cli("create", "hard", "sleep", "300", "--requires", "dep", "--after", "dep"))
    ok(seed.cli("start", "soft"))
    assert seed.record("soft")["state"] == "running"
    assert seed.record("dep")["state"] == "failed"
    refused = seed.cli("start", "hard")
    assert refused.code == 1 and "DEPENDENCY_FAILED" in refused.err
    assert seed.record("hard")["state"] != "running"


def test_a_dependency_cycle_is_rejected(seed):
    # "Circular Dependencies: Automatically detected and rejected with an error."
    seed.write_config("cycle", "processes:\n  a: {command: sleep, args: ['9'], after: [b]}\n"
                               "  b: {command: sleep, args: ['9'], after: [a]}\n")
    checked = seed.cli("validate", str(seed.config_dir))
    assert checked.code == 1 and "cycle" in checked.out.lower()


# -- Advanced Features: Process Types ------------------------------------------------------

PROCESS_TYPES = """\
processes:
  # Simple type - default behavior
  web-server:
    command: /usr/bin/nginx
    args: ["-g", "daemon off;"]
    process_type: simple

  # Oneshot - runs once and exits
  db-migration:
    command: /usr/bin/migrate
    args: ["up"]
    process_type: oneshot

  # Forking - traditional daemon
  legacy-daemon:
    command: /usr/sbin/some-daemon
    process_type: forking
"""


def test_process_types_simple_oneshot_forking(seed):
    seed.stand_in("/opt/stand-in/usr/bin/nginx")
    seed.stand_in("/opt/stand-in/usr/bin/migrate", "oneshot")
    seed.stand_in("/opt/stand-in/usr/sbin/some-daemon", "forking")
    text = PROCESS_TYPES
    for binary in ("/usr/bin/nginx", "/usr/bin/migrate", "/usr/sbin/some-daemon"):
        text = text.replace(f"command: {binary}\n", f"command: /opt/stand-in{binary}\n")
    config(seed, "types", text)
    ok(seed.cli("start", "web-server", "db-migration", "legacy-daemon"))
    assert seed.wait_state("web-server", "running")
    migration = seed.wait_state("db-migration", "exited")  # "runs once and exits"
    assert migration["exit_code"] == 0
    wait_log(seed, "db-migration", "stand-in /opt/stand-in/usr/bin/migrate up done")
    legacy = seed.wait_state("legacy-daemon", "running")
    # SPEC §4 wins over "Cannot track exit (no PID after fork)": the forked child is watched
    forked = wait_log(seed, "legacy-daemon", "forked ").split("forked ")[1].split()[0]
    assert legacy["pid"] == int(forked)
    os.kill(legacy["pid"], signal.SIGKILL)
    assert seed.wait_state("legacy-daemon", "failed")


# -- Socket Activation ---------------------------------------------------------------------

SOCKET_ACTIVATION = """\
processes:
  web-server:
    command: /usr/bin/web-server
    auto_start: false  # Socket activation starts it
    restart: never     # Socket handles restarts

sockets:
  web:
    listen_stream: "0.0.0.0:8080"  # TCP socket
    service: web-server
    accept: false  # Pass listening socket to service
"""

TRACE_AGENT = """\
processes:
  trace-agent:
    command: /opt/datadog-agent/embedded/bin/trace-agent
    auto_start: false
    restart: never  # Socket re-activation handles this
    env:
      DD_APM_ENABLED: "true"

sockets:
  apm-tcp:
    listen_stream: "0.0.0.0:8126"
    service: trace-agent
    accept: false
"""


def test_socket_activation_starts_on_first_connection_and_again_after_a_crash(tmp_path):
    tmp_path.chmod(0o755)
    daemon = SeedDaemon(tmp_path)
    daemon.write_config("web", SOCKET_ACTIVATION.replace(
        "command: /usr/bin/web-server", "command: /opt/stand-in/usr/bin/web-server"))
    daemon.write_config("apm", TRACE_AGENT)
    daemon.start()
    try:
        daemon.stand_in("/opt/stand-in/usr/bin/web-server", "socket")
        daemon.stand_in("/opt/datadog-agent/embedded/bin/trace-agent", "socket")
        check_web_server_activation(daemon)
        check_trace_agent_activation(daemon)
    finally:
        daemon.stop()


def check_web_server_activation(seed) -> None:
    assert seed.record("web-server")["state"] == "created"  # nothing runs before a client
    answer = seed.fetch("127.0.0.1", 8080)
    assert answer.startswith("served by /opt/stand-in/usr/bin/web-server pid ")
    record = seed.wait_state("web-server", "running")
    assert answer.endswith(f"pid {record['pid']}")
    wait_log(seed, "web-server", f"LISTEN_FDS=1 LISTEN_PID={record['pid']}")
    os.kill(record["pid"], signal.SIGKILL)  # "If service crashes, socket remains open"
    seed.wait_state("web-server", "failed")
    again = seed.fetch("127.0.0.1", 8080)  # "Next connection triggers automatic restart"
    assert again.endswith(f"pid {seed.wait_state('web-server', 'running')['pid']}")
    assert seed.record("web-server")["runs"] == 2


def check_trace_agent_activation(seed) -> None:
    """Example: DataDog Trace Agent."""
    answer = seed.fetch("127.0.0.1", 8126)
    assert answer.startswith("served by /opt/datadog-agent/embedded/bin/trace-agent")
    pid = seed.wait_state("trace-agent", "running")["pid"]
    env = environ(pid)
    assert (env["DD_APM_ENABLED"], env["LISTEN_FDS"], env["LISTEN_FDNAMES"]) == (
        "true", "1", "apm-tcp")


def test_a_socket_added_by_reload_config_listens(seed):
    seed.stand_in("/opt/stand-in/usr/bin/web-server", "socket")
    config(seed, "web", SOCKET_ACTIVATION.replace("command: /usr/bin/web-server",
                                                  "command: /opt/stand-in/usr/bin/web-server"))
    done = seed.run_inside("ss", "-ltn", "sport", "= :8080")
    assert ":8080" in done.stdout, "nothing listens on 8080 after the reload"


# -- Resource Limits -----------------------------------------------------------------------

CPU_LIMITS = """\
processes:
  my-app:
    command: /usr/bin/my-app
    resources:
      requests:
        cpu: 500m      # 0.5 CPU cores baseline
      limits:
        cpu: 2000m     # 2 CPU cores maximum
"""

MEMORY_LIMITS = """\
processes:
  my-app:
    resources:
      requests:
        memory: 128M   # Soft limit (throttling)
      limits:
        memory: 512M   # Hard limit (OOM kill)
"""

PID_LIMITS = """\
processes:
  my-app:
    resources:
      limits:
        pids: 100      # Max 100 processes/threads
"""


def test_resource_limit_snippets_merge_as_drop_ins_and_show_in_stats(seed):
    # The seed's three snippets describe one process; the memory and PID ones have no
    # command, so they become drop-ins over the CPU one (SPEC §2.2: maps merge key by key).
    # A drop-in holds the process's fields at top level, so their `processes: my-app:`
    # wrapper is taken off; the fields are the seed's.
    seed.stand_in("/opt/stand-in/usr/bin/my-app")
    seed.write_config("my-app-resources", CPU_LIMITS.replace(
        "command: /usr/bin/my-app", "command: /opt/stand-in/usr/bin/my-app"))
    drop_ins = seed.config_dir / "my-app.yaml.d"
    drop_ins.mkdir()
    for name, snippet in (("10-memory", MEMORY_LIMITS), ("20-pids", PID_LIMITS)):
        fields = yaml.safe_load(snippet)["processes"]["my-app"]
        (drop_ins / f"{name}.yaml").write_text(yaml.safe_dump(fields))
    ok(seed.cli("validate", str(seed.config_dir)))
    ok(seed.cli("reload-config"))
    resources = seed.record("my-app")["spec"]["resources"]
    assert resources["requests"] == {"cpu": 0.5, "memory": 128 * 10**6}
    assert resources["limits"] == {"cpu": 2, "memory": 512 * 10**6, "pids": 100}
    ok(seed.cli("start", "my-app"))
    seed.wait_state("my-app", "running")
    text = ok(seed.cli("stats", "my-app")).out  # "dd-procmgr stats my-app"
    assert re.search(r"^  Limit:   488\.3 MiB", text, re.M)  # 512M = 512,000,000 bytes
    assert re.search(r"^  Limit:   100 ", text, re.M)


def test_a_memory_only_snippet_alone_is_refused_for_its_missing_command(seed):
    seed.write_config("snippet", MEMORY_LIMITS)
    checked = seed.cli("validate", str(seed.config_dir))
    assert checked.code == 1
    assert "snippet.yaml" in checked.out and "'command': missing required field" in checked.out


# -- Troubleshooting -----------------------------------------------------------------------

def test_start_limit_config_snippet_as_a_drop_in(seed):
    """"Or increase limits in config": the two keys merged over a process file."""
    base = seed.write_config("worker", "command: sleep\nargs: ['300']\n")
    Path(f"{base}.d").mkdir()
    Path(f"{base}.d/limits.yaml").write_text("start_limit_burst: 10\nstart_limit_interval: 600\n")
    ok(seed.cli("reload-config"))
    spec = seed.record("worker")["spec"]
    assert (spec["start_limit_burst"], spec["start_limit_interval"]) == (10, 600)


SPAWN_WORKERS = """#!/bin/sh
pids=""
for i in 1 2 3; do sleep 100000 & pids="$pids $!"; done
echo "workers:$pids"
wait
"""


@pytest.mark.parametrize("flags", [[], ["--kill-mode", "control-group"]],
                         ids=["default", "control-group"])
def test_stopping_workers_kills_the_script_and_every_child(seed, tmp_path, flags):
    (tmp_path / "spawn_workers.sh").write_text(SPAWN_WORKERS)
    (tmp_path / "spawn_workers.sh").chmod(0o755)
    ok(seed.cli_in(tmp_path, "create", "workers", "./spawn_workers.sh", *flags, "--auto-start"))
    line = wait_log(seed, "workers", "workers: ").split("workers: ")[1].splitlines()[0]
    children = [int(pid) for pid in line.split()]
    main = seed.record("workers")["pid"]
    assert len(children) == 3
    ok(seed.cli("stop", "workers"))
    for pid in [main, *children]:  # "spawn_workers.sh AND all child workers are killed!"
        assert not pid_alive(pid), f"{pid} survived the stop"


def test_kill_mode_process_kills_only_the_main_process(seed, tmp_path):
    (tmp_path / "spawn_workers.sh").write_text(SPAWN_WORKERS)
    (tmp_path / "spawn_workers.sh").chmod(0o755)
    ok(seed.cli_in(tmp_path, "create", "workers", "./spawn_workers.sh", "--kill-mode", "process",
                   "--auto-start"))
    line = wait_log(seed, "workers", "workers: ").split("workers: ")[1].splitlines()[0]
    children = [int(pid) for pid in line.split()]
    ok(seed.cli("stop", "workers"))
    try:  # "process: Kill only main process (orphans children)"
        assert all(Path(f"/proc/{pid}").exists() for pid in children)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        seed.wait_for("the orphans to be reaped", lambda: not any(
            Path(f"/proc/{pid}").exists() for pid in children))


# -- Conditional Process Starting ----------------------------------------------------------

def test_condition_path_exists_and_not_or_logic(seed, tmp_path):
    seed.stand_in(str(tmp_path / "myapp"))
    etc = tmp_path / "etc"  # the seed's /etc/app/... live in the test's temp dir
    (etc / "app" / "managed").mkdir(parents=True)
    (tmp_path / "var" / "lib" / "app").mkdir(parents=True)
    config_file = etc / "app" / "config.yaml"

    def create(name: str, *conditions: str) -> str:
        args = [a for c in conditions for a in ("--condition-path-exists", c)]
        ok(seed.cli_in(tmp_path, "create", name, "./myapp", *args))
        done = seed.cli("start", name)
        return seed.record(name)["state"] if done.code in (0, 1) else f"exit {done.code}"

    assert create("app", f"{etc}/app/config.yaml") == "condition_failed"
    assert seed.record("app")["reason"]
    config_file.write_text("x: 1\n")
    ok(seed.cli("start", "app"))
    assert seed.wait_state("app", "running")
    assert create("app-and", f"{etc}/app/config.yaml",
                  f"{tmp_path}/var/lib/app/data") == "condition_failed"
    (tmp_path / "var" / "lib" / "app" / "data").mkdir()
    assert create("app-and2", f"{etc}/app/config.yaml", f"{tmp_path}/var/lib/app/data") == "running"
    assert create("app-not", f"!{etc}/app/override.conf") == "running"
    (etc / "app" / "override.conf").write_text("")
    assert create("app-not2", f"!{etc}/app/override.conf") == "condition_failed"
    assert create("app-or", f"|{etc}/app/config.yaml",
                  f"|{etc}/app/managed/config.yaml") == "running"
    assert create("app-or2", f"|{etc}/nothing.yaml", f"|{etc}/app/managed/config.yaml") == (
        "condition_failed")
    (etc / "otel").mkdir()
    (etc / "otel" / "config.yaml").write_text("")
    seed.stand_in(str(tmp_path / "otel-agent"))
    ok(seed.cli_in(tmp_path, "create", "otel-collector", "./otel-agent",
                   "--condition-path-exists", str(tmp_path / "otel-agent"),
                   "--condition-path-exists", f"!{etc}/otel/disabled",
                   "--condition-path-exists", f"|{etc}/otel/config.yaml",
                   "--condition-path-exists", f"|{etc}/otel/managed/config.yaml"))
    ok(seed.cli("start", "otel-collector"))
    assert seed.wait_state("otel-collector", "running")
    (etc / "otel" / "disabled").write_text("")
    ok(seed.cli("stop", "otel-collector"))
    skipped = seed.cli("start", "otel-collector")  # "Conditions are checked every time"
    assert seed.record("otel-collector")["state"] == "condition_failed", skipped


# -- Runtime Directories -------------------------------------------------------------------

def test_runtime_directories_created_owned_and_removed(seed, tmp_path):
    seed.stand_in("/opt/datadog/bin/agent")
    # user dd-agent does not exist on a test machine: www-data stands in for it
    ok(seed.cli("create", "datadog-agent", "/opt/datadog/bin/agent", "--runtime-directory",
                "datadog", "--user", "www-data", "--group", "www-data"))
    ok(seed.cli("start", "datadog-agent"))
    seed.wait_state("datadog-agent", "running")
    made = seed.inside("/run/datadog")
    info = made.stat()
    assert (oct(info.st_mode & 0o777), info.st_uid, info.st_gid) == ("0o755", 33, 33)
    seed.stand_in(str(tmp_path / "myapp"))
    ok(seed.cli_in(tmp_path, "create", "myapp", "./myapp", "--runtime-directory", "myapp",
                   "--runtime-directory", "myapp/cache", "--runtime-directory", "myapp/tmp"))
    seed.stand_in(str(tmp_path / "service"))
    ok(seed.cli_in(tmp_path, "create", "service", "./service", "--runtime-directory",
                   "myservice/data/temp"))
    ok(seed.cli("start", "myapp", "service"))
    seed.wait_state("service", "running")
    for path in ("/run/myapp/cache", "/run/myapp/tmp", "/run/myservice/data/temp"):
        assert seed.inside(path).is_dir(), path
    ok(seed.cli("stop", "datadog-agent", "myapp", "service"))
    assert not made.exists() and not seed.inside("/run/myapp").exists()
    absolute = seed.cli_in(tmp_path, "create", "bad", "./service", "--runtime-directory",
                           "/tmp/mydir")  # "Absolute paths ... rejected at creation time"
    assert absolute.code == 1 and "/tmp/mydir" in absolute.err and "absolute" in absolute.err


RUNTIME_DIRECTORY_YAML = """\
processes:
  datadog-agent:
    command: /opt/datadog/bin/agent
    user: dd-agent
    group: dd-agent
    runtime_directory:
      - datadog        # Creates /run/datadog
      - datadog/logs   # Creates /run/datadog/logs
    auto_start: true
"""


def test_runtime_directory_via_config_file(seed):
    seed.stand_in("/opt/datadog/bin/agent")
    # dd-agent is not a user here (and not ours to add): www-data stands in for it
    config(seed, "agent", RUNTIME_DIRECTORY_YAML.replace("dd-agent", "www-data"))
    pid = seed.wait_state("datadog-agent", "running")["pid"]
    assert seed.inside("/run/datadog/logs").is_dir()
    assert seed.inside("/run/datadog/logs").stat().st_uid == 33
    assert re.search(r"^Uid:\s+33\s", Path(f"/proc/{pid}/status").read_text(), re.M)


def test_an_unknown_user_is_a_failed_start_naming_the_user(seed):
    seed.stand_in("/opt/datadog/bin/agent")
    config(seed, "agent", RUNTIME_DIRECTORY_YAML.replace("dd-agent", "no-such-user-qa"))
    record = seed.wait_state("datadog-agent", "failed")
    assert "no-such-user-qa" in record["reason"] and "user" in record["reason"]
    assert record["reason"].lstrip().startswith(("unknown user", "user", "spawn failed"))


# -- Production Deployment -----------------------------------------------------------------

PRODUCTION = """\
processes:
  my_service:
    command: "./my-service"
    auto_start: true
    restart: "always"

    # Production-ready restart settings
    restart_sec: 3              # 3 second base delay
    restart_max_delay: 300      # Cap at 5 minutes

    # Generous but protective limits
    start_limit_burst: 10       # Allow 10 restarts
    start_limit_interval: 600   # Within 10 minutes

    working_dir: "/opt/app"
    env:
      LOG_LEVEL: "info"
"""


def test_production_deployment_recommended_settings(seed):
    seed.stand_in("/opt/app/my-service")
    config(seed, "production", PRODUCTION)
    record = seed.wait_state("my_service", "running")
    assert record["command"] == "/opt/app/my-service"
    assert environ(record["pid"])["LOG_LEVEL"] == "info"
    os.kill(record["pid"], signal.SIGKILL)
    backoff = seed.wait_state("my_service", "backoff")
    assert backoff["next_restart_at"] - backoff["ended_at"] == pytest.approx(3, abs=0.9)


def test_example_3_start_limit_protection(crasher_daemon):
    """Kept last in the module: the crasher has been failing since the module began."""
    uuid = crasher_daemon.crasher_id
    crashed = crasher_daemon.wait_state("crasher", "crashed", timeout=40)
    assert (crashed["runs"], crashed["restarts"]) == (5, 4)  # default: 5 starts in 5 minutes
    assert "start limit" in crashed["reason"].lower()
    assert crashed["next_restart_at"] is None  # "Auto-restart stops"
    assert list_rows(crasher_daemon)["crasher"]["STATE"] == "crashed"
    # "Logs show 'Start limit exceeded'": the daemon's log names the transition and why
    assert re.search(r"crasher.*crashed.*start limit", crasher_daemon.log_text(), re.I)
    ok(crasher_daemon.cli("start", uuid))  # "Manual restart is required ... resets the counter"
    again = crasher_daemon.wait_for("the crasher to run again", lambda: (
        lambda r: r if r["runs"] >= 6 and r["state"] != "crashed" else None)(
        crasher_daemon.record("crasher")))
    assert again["start_limit"]["recent_starts"] == 1


# -- SPEC §17: converted Debian units run here --------------------------------------------

def imported(seed, unit: str) -> str:
    path = Path("/lib/systemd/system") / unit
    if not path.exists():
        pytest.skip(f"{path} comes with its Debian package (packaging/install-test-deps.sh)")
    done = seed.cli("import", "systemd", str(path), socket=False)
    assert done.code == 0, done.err
    return done.out


def test_the_converted_nginx_unit_runs_as_a_forking_service(seed):
    """nginx's own unit, converted: forking, pidfile /run/nginx.pid (a private /run here),
    port 80 (a private network namespace)."""
    config(seed, "nginx", imported(seed, "nginx.service"))
    record = seed.wait_state("nginx", "running", timeout=30)  # auto_start from WantedBy=
    master = int(seed.inside("/run/nginx.pid").read_text())
    assert record["pid"] == master
    assert "nginx" in seed.fetch("127.0.0.1", 80)
    ok(seed.cli("stop", "nginx"))
    assert not pid_alive(master)


def test_the_converted_ssh_unit_runs_with_notify_readiness(seed):
    config(seed, "ssh", imported(seed, "ssh.service"))
    record = seed.wait_state("ssh", "running", "failed", timeout=60)
    assert record["state"] == "running", record["reason"]
    assert seed.inside("/run/sshd").is_dir()  # RuntimeDirectory=sshd
    banner = seed.run_inside(sys.executable, "-c", (
        "import socket; s = socket.create_connection(('127.0.0.1', 22), timeout=10); "
        "print(s.recv(64).decode())"))
    assert banner.stdout.startswith("SSH-2.0-OpenSSH"), banner
    ok(seed.cli("stop", "ssh"))
