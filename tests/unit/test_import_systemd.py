"""systemd units -> our processes and sockets (pure converter; real Debian units at the end)."""

from __future__ import annotations

import os

import pytest

from import_checks import assert_validates
from trio_procmgr.importers import SourceFile
from trio_procmgr.importers.systemd import convert_units


def convert(*units: tuple[str, str]):
    return convert_units([SourceFile(f"/u/{name}", text) for name, text in units])


def service(body: str, name: str = "app.service"):
    conversion = convert((name, body))
    return conversion, conversion.merged("process").get(name.rsplit(".", 1)[0])


def messages(conversion) -> list[str]:
    return [str(f) for f in conversion.findings]


@pytest.mark.parametrize("kind, ours, noted", [
    ("simple", "simple", False), ("exec", "simple", False), ("forking", "forking", False),
    ("oneshot", "oneshot", False), ("notify", "notify", False), ("notify-reload", "notify", True),
    ("dbus", "simple", True), ("idle", "simple", True),
])
def test_type_maps_to_the_closest_process_type(kind, ours, noted):
    conversion, proc = service(f"[Service]\nType={kind}\nExecStart=/bin/true\n")
    assert proc["process_type"] == ours
    assert any(f"Type={kind} converted approximately" in m for m in messages(conversion)) == noted


def test_exec_start_quoting_and_the_argv0_prefix():
    conversion, proc = service("[Service]\nExecStart=@/bin/echo myname \"a b\" 'c' d\\te\n")
    assert proc["command"] == "/bin/echo" and proc["args"] == ["a b", "c", "d\te"]
    assert "/u/app.service:2: ExecStart=@ (myname) has no equivalent (argv[0] cannot be set" in messages(conversion)[0]


@pytest.mark.parametrize("prefix", ["-", "+", "!"])
def test_exec_start_prefixes_without_equivalent_are_reported(prefix):
    conversion, proc = service(f"[Service]\nExecStart={prefix}/bin/true x\n")
    assert proc["command"] == "/bin/true" and proc["args"] == ["x"]
    assert any(f"ExecStart={prefix} has no equivalent" in m for m in messages(conversion))


def test_variables_in_exec_start_run_through_sh_unless_the_colon_prefix_says_literal():
    conversion, proc = service("[Service]\nExecStart=/usr/sbin/sshd -D $OPTS ${ONE}\n")
    assert proc["command"] == "/bin/sh"
    assert proc["args"] == ["-c", 'exec /usr/sbin/sshd -D $OPTS "${ONE}"']
    assert "runs as /bin/sh -c" in messages(conversion)[0]
    _, literal = service("[Service]\nExecStart=:/bin/echo $OPTS\n")
    assert literal["command"] == "/bin/echo" and literal["args"] == ["$OPTS"]


def test_an_empty_exec_start_resets_and_oneshot_keeps_the_first_of_several():
    _, proc = service("[Service]\nExecStart=/bin/a\nExecStart=\nExecStart=/bin/b\n")
    assert proc["command"] == "/bin/b"
    conversion, proc = service("[Service]\nType=oneshot\nExecStart=/bin/a\nExecStart=/bin/b\n")
    assert proc["command"] == "/bin/a"
    assert "/u/app.service:4: ExecStart=/bin/b has no equivalent" in messages(conversion)[0]


@pytest.mark.parametrize("body, line", [
    ("[Service]\nType=simple\n", None),
    ("[Service]\nExecStart=/bin/a\nExecStart=/bin/b\n", 3),
    ("[Service]\nExecStart=/bin/a \"open\n", 2),
    ("[Service]\nExecStart=/bin/a\nKillSignal=SIGNOPE\n", 3),
    ("[Service]\nExecStart=/bin/a\nRestartSec=soon\n", 3),
])
def test_a_unit_that_cannot_be_converted_is_an_error_with_its_line(body, line):
    conversion, proc = service(body)
    assert proc is None and not conversion.ok
    errors = [f for f in conversion.findings if f.error]
    assert len(errors) == 1 and errors[0].line == line and "error:" in str(errors[0])


def test_other_unit_kinds_are_refused():
    conversion = convert(("backup.timer", "[Timer]\nOnCalendar=daily\n"))
    assert not conversion.ok
    assert "only .service and .socket units have an equivalent" in messages(conversion)[0]


def test_environment_quoting_multiple_lines_and_files():
    conversion, proc = service(
        "[Service]\nExecStart=/bin/true\nEnvironment=\"A=1 2\" B=x\nEnvironment=C='q r'\n"
        "EnvironmentFile=-/etc/default/app\nEnvironmentFile=/etc/app.env\n")
    assert proc["env"] == {"A": "1 2", "B": "x", "C": "q r"}
    assert proc["environment_file"] == ["-/etc/default/app", "/etc/app.env"]
    assert conversion.ok and conversion.findings == []


def test_working_directory_prefixes():
    conversion, proc = service("[Service]\nExecStart=/bin/true\nWorkingDirectory=-/srv/app\n")
    assert proc["working_dir"] == "/srv/app"
    assert "WorkingDirectory=-/srv/app converted approximately" in messages(conversion)[0]
    conversion, proc = service("[Service]\nExecStart=/bin/true\nWorkingDirectory=~\n")
    assert "working_dir" not in proc and "has no equivalent" in messages(conversion)[0]


def test_restart_start_limits_and_timeouts(tmp_path):
    conversion, proc = service(
        "[Unit]\nStartLimitIntervalSec=1min\nStartLimitBurst=3\n[Service]\nExecStart=/bin/true\n"
        "Restart=on-abnormal\nRestartSec=1min 30s\nTimeoutSec=20\nTimeoutStopSec=infinity\n")
    assert proc["restart"] == "on-failure" and proc["restart_sec"] == "90s"
    assert proc["backoff"] == "fixed"
    assert (proc["start_limit_interval"], proc["start_limit_burst"]) == ("60s", 3)
    assert (proc["timeout_start_sec"], proc["timeout_stop_sec"]) == ("20s", "1h")
    assert any("Restart=on-abnormal converted approximately" in m for m in messages(conversion))
    assert_validates(tmp_path, conversion)


def test_old_start_limit_interval_and_systemd_default_restart_delay():
    _, proc = service("[Service]\nExecStart=/bin/true\nRestart=always\nStartLimitInterval=10\n")
    assert proc["start_limit_interval"] == "10s" and proc["restart_sec"] == "100ms"


def test_kill_pid_runtime_capabilities_status_condition_watchdog(tmp_path):
    conversion, proc = service(
        "[Unit]\nConditionPathExists=|!/etc/off\n[Service]\nExecStart=/bin/true\nKillMode=mixed\n"
        "KillSignal=INT\nPIDFile=app.pid\nRuntimeDirectory=app app/sub\nUser=www-data\nGroup=www-data\n"
        "AmbientCapabilities=CAP_NET_BIND_SERVICE\nSuccessExitStatus=3 SIGUSR1\nWatchdogSec=30\n")
    assert proc["kill_mode"] == "mixed" and proc["kill_signal"] == "SIGINT"
    assert proc["pidfile"] == "/run/app.pid"
    assert proc["runtime_directory"] == ["app", "app/sub"]
    assert proc["ambient_capabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert proc["success_exit_status"] == [0, 3, "SIGUSR1"]
    assert proc["condition_path_exists"] == ["|!/etc/off"] and proc["watchdog_sec"] == "30s"
    assert (proc["user"], proc["group"]) == ("www-data", "www-data")
    assert conversion.findings == []
    assert_validates(tmp_path, conversion)


def test_kill_mode_none_is_reported():
    conversion, proc = service("[Service]\nExecStart=/bin/true\nKillMode=none\n")
    assert "kill_mode" not in proc and "KillMode=none has no equivalent" in messages(conversion)[0]


def test_resources_convert_binary_sizes_percentages_and_weights(tmp_path):
    conversion, proc = service(
        "[Service]\nExecStart=/bin/true\nMemoryMax=512M\nMemoryLow=64M\nCPUQuota=150%\n"
        "CPUWeight=50\nTasksMax=100\nMemoryHigh=400M\nLimitNOFILE=65535\nMemorySwapMax=1G\n")
    assert proc["resources"] == {"limits": {"memory": "512Mi", "cpu": "1500m", "pids": 100},
                                 "requests": {"memory": "64Mi", "cpu": "500m"}}
    reported = messages(conversion)
    assert any(m.startswith("/u/app.service:8: MemoryHigh=400M has no equivalent") for m in reported)
    assert any(m.startswith("/u/app.service:9: LimitNOFILE=65535 has no equivalent") for m in reported)
    assert_validates(tmp_path, conversion)


def test_infinite_and_relative_limits():
    conversion, proc = service("[Service]\nExecStart=/bin/true\nMemoryMax=infinity\nTasksMax=50%\n")
    assert "resources" not in proc
    assert "TasksMax=50% has no equivalent" in messages(conversion)[0]


def test_dependencies_are_kept_only_between_imported_units(tmp_path):
    web = ("web.service", "[Unit]\nRequires=db.service\nAfter=db.service network.target\n"
                          "Wants=cache.service\n[Service]\nExecStart=/bin/true\n")
    db = ("db.service", "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
    both = convert(web, db)
    proc = both.merged("process")["web"]
    assert proc["requires"] == ["db"] and proc["after"] == ["db"]
    assert both.merged("process")["db"]["auto_start"] is True
    reported = messages(both)
    assert any("After=network.target has no equivalent (targets are not modelled" in m for m in reported)
    assert any("Wants=cache.service has no equivalent (cache is not among the imported files" in m for m in reported)
    assert_validates(tmp_path, both)
    alone = convert(web)
    assert "requires" not in alone.merged("process")["web"]
    assert any("Requires=db.service has no equivalent" in m for m in messages(alone))


def test_every_directive_without_equivalent_is_reported_with_file_and_line():
    conversion, _ = service("[Unit]\nDocumentation=man:x\n[Service]\nExecStart=/bin/true\n"
                            "ExecStartPre=/bin/prep\nProtectSystem=strict\nFrobnicate=yes\n"
                            "[X-Vendor]\nKey=v\n[Install]\nAlias=y.service\n")
    reported = messages(conversion)
    for line, directive in [(2, "Documentation=man:x"), (5, "ExecStartPre=/bin/prep"),
                            (6, "ProtectSystem=strict"), (7, "Frobnicate=yes"), (9, "Key=v"),
                            (11, "Alias=y.service")]:
        assert any(m.startswith(f"/u/app.service:{line}: {directive} has no equivalent (") for m in reported), directive
    assert conversion.ok


@pytest.mark.parametrize("line, signal", [
    ("/bin/kill -HUP $MAINPID", "SIGHUP"), ("/usr/bin/kill -s USR2 $MAINPID", "SIGUSR2"),
    ("-/bin/kill -SIGUSR1 ${MAINPID}", "SIGUSR1"), ("kill -1 $MAINPID", "SIGHUP"),
])
def test_a_reload_that_signals_the_main_pid_becomes_reload_signal(tmp_path, line, signal):
    conversion, proc = service(f"[Service]\nExecStart=/bin/true\nExecReload={line}\n")
    assert proc["reload_signal"] == signal
    assert not [m for m in messages(conversion) if "ExecReload" in m]
    assert_validates(tmp_path, conversion)


@pytest.mark.parametrize("line", ["/usr/sbin/nginx -s reload", "/bin/kill -HUP 42",
                                  "/bin/kill -NOSUCH $MAINPID"])
def test_any_other_reload_command_is_reported_and_not_mapped(line):
    conversion, proc = service(f"[Service]\nExecStart=/bin/true\nExecReload={line}\n")
    assert "reload_signal" not in proc
    assert any(m.startswith(f"/u/app.service:3: ExecReload={line} has no equivalent (only "
                            "`kill -SIGNAL $MAINPID` maps") for m in messages(conversion))


def test_a_template_keeps_its_instance_placeholder(tmp_path):
    conversion = convert(("worker@.service", "[Unit]\nDescription=worker %I\n[Service]\n"
                          "ExecStart=/usr/bin/worker --queue %i --home %h\nRuntimeDirectory=worker-%i\n"))
    proc = conversion.merged("process")["worker@"]
    assert proc["args"] == ["--queue", "%i", "--home", "%h"]
    assert proc["description"] == "worker %i" and proc["runtime_directory"] == ["worker-%i"]
    assert "specifier %h is not known here" in messages(conversion)[0]


def test_a_socket_unit_becomes_a_socket_entry_for_its_service(tmp_path):
    sock = ("echo.socket", "[Unit]\nDescription=x\n[Socket]\nListenStream=8080\nFileDescriptorName=web\n"
                           "SocketMode=0600\nBacklog=64\nAccept=no\n[Install]\nWantedBy=sockets.target\n")
    svc = ("echo.service", "[Service]\nExecStart=/bin/true\n")
    conversion = convert(sock, svc)
    assert conversion.merged("socket")["echo"] == {
        "listen_stream": "[::]:8080", "fd_name": "web", "socket_mode": "0600", "backlog": 64,
        "service": "echo"}
    assert_validates(tmp_path, conversion)
    unix = convert(("u.socket", "[Socket]\nListenStream=/run/u.sock\nService=echo.service\n"), svc)
    assert unix.merged("socket")["u"]["service"] == "echo"
    assert unix.merged("socket")["u"]["fd_name"] == "u.socket"


def test_socket_units_that_cannot_work_are_errors():
    accept = convert(("a.socket", "[Socket]\nListenStream=80\nAccept=yes\n"), ("a.service", "[Service]\nExecStart=/bin/true\n"))
    assert not accept.ok and "Accept=yes" in messages(accept)[0]
    orphan = convert(("b.socket", "[Socket]\nListenStream=80\n"))
    assert not orphan.ok and "b is not among the imported files" in messages(orphan)[0]
    abstract = convert(("c.socket", "[Socket]\nListenStream=@abstract\n"))
    assert not abstract.ok and abstract.findings[0].line == 2


DEBIAN_UNITS = ["redis-server.service", "redis-server@.service", "nginx.service", "ssh.service",
                "cron.service"]


@pytest.mark.parametrize("unit", DEBIAN_UNITS)
def test_real_debian_units_convert_and_validate(unit, tmp_path):
    path = f"/lib/systemd/system/{unit}"
    if not os.path.exists(path):
        pytest.skip(f"{path} is missing: packaging/install-test-deps.sh installs its package")
    with open(path) as handle:
        conversion = convert_units([SourceFile(path, handle.read())])
    assert conversion.ok, messages(conversion)
    assert all(str(f).startswith(f"{path}:") for f in conversion.findings)
    assert_validates(tmp_path, conversion)


def test_real_redis_unit_keeps_what_makes_it_work():
    path = "/lib/systemd/system/redis-server.service"
    if not os.path.exists(path):
        pytest.skip(f"{path} is missing: packaging/install-test-deps.sh installs redis-server")
    with open(path) as handle:
        proc = convert_units([SourceFile(path, handle.read())]).merged("process")["redis-server"]
    assert proc["process_type"] == "notify" and proc["user"] == "redis" and proc["auto_start"] is True
    assert proc["command"] == "/usr/bin/redis-server" and "--supervised" in proc["args"]
