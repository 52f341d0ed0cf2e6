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
import signal
import time
from pathlib import Path

import pytest

from acceptance_daemon import needs_root, seed, shared_seed_daemon  # noqa: F401 (fixtures)
from cli_daemon import Result

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


def restarted(seed, name: str, old_pid: int) -> dict:
    return seed.wait_for(f"{name} to run again with a new pid",
                         lambda: (lambda r: r if r["state"] == "running" and r["pid"]
                                  not in (None, old_pid) else None)(seed.record(name)), 20)


# -- Quick Start: Start the Daemon ------------------------------------------------------

def test_start_the_daemon_help_names_the_config_dir_flag():
    from cli_daemon import DAEMON
    import subprocess
    done = subprocess.run([DAEMON, "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert "--config-dir" in done.stdout and "DD_PM_CONFIG_DIR" in done.stdout
    # SPEC §13 wins over the seed's `--tcp --grpc-port 50051`: the TCP listener is
    # `--tcp HOST:PORT --token-file F`, and RUST_LOG is `--log-level LEVEL`.
    assert "--tcp HOST:PORT" in done.stdout and "--log-level" in done.stdout


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

def test_create_examples_resolve_relative_commands_and_keep_their_flags(seed):
    here = seed.root / "project"
    here.mkdir()
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
    assert "redis_version" in seed.run_inside("redis-cli", "-p", "6379", "info", "server").stdout


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
    assert "got SIGTERM" in logs(seed, "polite")


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
