"""Every process field parses to its normalised spec value; each kind of bad value is an issue."""

import glob
import os
import signal

import pytest
import yaml

from trio_procmgr.config.jsonschema import export_json_schema
from trio_procmgr.config.loader import parse_process
from trio_procmgr.config.schema import ProcessSchema
from trio_procmgr.errors import ConfigError
from trio_procmgr.spec import (
    PROCESS_FIELD_NAMES, HealthCheckSpec, LogSpec, ProcessSpec, Quantities, ResourcesSpec,
)

FULL = {
    "command": "/usr/bin/api",
    "args": ["--port", "8080"],
    "description": "the API",
    "auto_start": True,
    "process_type": "notify",
    "restart": "on-failure",
    "restart_sec": "500ms",
    "restart_max_delay": "2m",
    "backoff": "linear",
    "start_limit_burst": 10,
    "start_limit_interval": "10m",
    "timeout_start_sec": 30,
    "timeout_stop_sec": "1m30s",
    "kill_signal": "INT",
    "reload_signal": "USR1",
    "kill_mode": "mixed",
    "success_exit_status": [0, 3, "SIGTERM"],
    "working_dir": "/srv",
    "env": {"PORT": 8080, "DEBUG": True, "NAME": "x"},
    "environment_file": "-/etc/api.env",
    "user": "api",
    "group": 1000,
    "pidfile": "/run/api.pid",
    "condition_path_exists": ["/etc/api.yaml", "!/etc/api.disabled", "|/a", "|!/b"],
    "runtime_directory": ["api", "api/cache"],
    "ambient_capabilities": ["CAP_NET_BIND_SERVICE", "sys_nice"],
    "requires": "db",
    "wants": ["cache"],
    "binds_to": ["agent"],
    "part_of": ["stack"],
    "conflicts": ["api-old"],
    "after": ["db", "cache"],
    "before": ["web"],
    "wait_healthy": True,
    "health_check": {"type": "http", "http_endpoint": "http://127.0.0.1:8080/health",
                     "expected_status": 200, "interval": "10s", "timeout": "2s",
                     "start_period": "1m", "retries": 5, "restart_after": 3},
    "ready_log_line": "listening on",
    "watchdog_sec": "20s",
    "resources": {"requests": {"cpu": "500m", "memory": "128M"},
                  "limits": {"cpu": 2, "memory": "1Gi", "pids": 100}},
    "log": {"mode": "capture", "file": "/var/log/api.log", "max_bytes": "50M", "backups": 5,
            "ring_lines": 200, "ring_bytes": "256Ki"},
}


def test_every_field_parses_to_its_normalised_value():
    spec = parse_process("api", FULL)
    assert spec == ProcessSpec(
        name="api", command="/usr/bin/api", args=("--port", "8080"), description="the API",
        auto_start=True, process_type="notify", restart="on-failure", restart_sec=0.5,
        restart_max_delay=120.0, backoff="linear", start_limit_burst=10,
        start_limit_interval=600.0, timeout_start_sec=30.0, timeout_stop_sec=90.0,
        kill_signal=int(signal.SIGINT), reload_signal=int(signal.SIGUSR1), kill_mode="mixed",
        success_exit_status=frozenset({0, 3}), success_exit_signals=frozenset({int(signal.SIGTERM)}),
        working_dir="/srv", env={"PORT": "8080", "DEBUG": "true", "NAME": "x"},
        environment_file=("-/etc/api.env",), user="api", group="1000", pidfile="/run/api.pid",
        condition_path_exists=("/etc/api.yaml", "!/etc/api.disabled", "|/a", "|!/b"),
        runtime_directory=("api", "api/cache"),
        ambient_capabilities=("CAP_NET_BIND_SERVICE", "CAP_SYS_NICE"),
        requires=("db",), wants=("cache",), binds_to=("agent",), part_of=("stack",),
        conflicts=("api-old",), after=("db", "cache"), before=("web",), wait_healthy=True,
        health_check=HealthCheckSpec(type="http", http_endpoint="http://127.0.0.1:8080/health",
                                     expected_status="200", interval=10.0, timeout=2.0,
                                     start_period=60.0, retries=5, restart_after=3),
        ready_log_line="listening on", watchdog_sec=20.0,
        resources=ResourcesSpec(requests=Quantities(cpu=0.5, memory=128_000_000),
                                limits=Quantities(cpu=2.0, memory=2**30, pids=100)),
        log=LogSpec(mode="capture", file="/var/log/api.log", max_bytes=50_000_000, backups=5,
                    ring_lines=200, ring_bytes=256 * 1024),
    )


def test_the_full_example_covers_every_file_field():
    file_fields = set(PROCESS_FIELD_NAMES) - {"success_exit_signals", "transient"}
    assert file_fields == set(FULL)
    assert set(ProcessSchema().fields) == file_fields | {"transient"}


def test_defaults_come_from_the_spec():
    assert parse_process("x", {"command": "sleep"}) == ProcessSpec(name="x", command="sleep")


def test_log_accepts_a_bare_mode():
    assert parse_process("x", {"command": "a", "log": "null"}).log == LogSpec(mode="null")


def test_exec_probe_accepts_a_shell_like_string():
    spec = parse_process("x", {"command": "a", "health_check": {"type": "exec", "exec_command": "pg_isready -q"}})
    assert spec.health_check.exec_command == ("pg_isready", "-q")


def test_null_restores_the_default():
    assert parse_process("x", {"command": "a", "restart_sec": None}).restart_sec == 1.0


def test_transient_is_accepted_at_run_time():
    assert parse_process("x", {"command": "a", "transient": True}).transient


def _issues(raw, name="x"):
    with pytest.raises(ConfigError) as info:
        parse_process(name, raw)
    return info.value.details["issues"]


@pytest.mark.parametrize("field, value, expected", [
    ("command", 5, "an executable"),
    ("args", "unclosed 'quote", "list of strings"),
    ("auto_start", "yes", "true or false"),
    ("process_type", "daemon", "one of simple, oneshot, forking, notify"),
    ("restart", "sometimes", "one of never, always"),
    ("restart_sec", "5 parsecs", "a duration"),
    ("restart_max_delay", -1, "a duration"),
    ("backoff", "random", "exponential"),
    ("start_limit_burst", 0, "an integer between 1 and 10000"),
    ("start_limit_burst", "5", "an integer between 1 and 10000"),
    ("start_limit_interval", [], "a duration"),
    ("timeout_stop_sec", "forever", "a duration"),
    ("kill_signal", "SIGNOPE", "a signal"),
    ("kill_mode", "all", "control-group"),
    ("success_exit_status", [300], "exit codes"),
    ("success_exit_status", ["SIGWHAT"], "exit codes"),
    ("working_dir", "", "a directory path"),
    ("env", ["A=1"], "a map of variable names"),
    ("environment_file", "relative.env", "an absolute path"),
    ("user", "a:b", "user/group name"),
    ("group", -1, "user/group name"),
    ("pidfile", "api.pid", "an absolute file path"),
    ("condition_path_exists", ["|relative"], "an absolute path"),
    ("runtime_directory", "/run/api", "a relative directory"),
    ("runtime_directory", "../escape", "a relative directory"),
    ("ambient_capabilities", ["NET BIND"], "a capability name"),
    ("requires", ["bad name"], "process name"),
    ("after", {"db": 1}, "process name"),
    ("wait_healthy", 1, "true or false"),
    ("health_check", {"type": "smoke"}, "one of http, tcp, exec"),
    ("health_check", "http", "a map"),
    ("ready_log_line", "", "a non-empty string"),
    ("watchdog_sec", "1 fortnight", "a duration"),
    ("resources", {"limits": {"memory": "lots"}}, "a size"),
    ("resources", {"limits": {"cpu": "0"}}, "a CPU quantity"),
    ("log", "loud", "a mode"),
    ("log", {"max_bytes": "big"}, "a size"),
])
def test_each_bad_value_names_field_and_expectation(field, value, expected):
    issues = _issues({"command": "a", field: value} if field != "command" else {field: value})
    assert issues, "an issue is expected"
    issue = issues[0]
    assert issue["field"].split(".")[0].split("[")[0] == field
    assert expected in (issue["expected"] or ""), issue


def test_nested_field_paths_are_dotted():
    issues = _issues({"command": "a", "health_check": {"type": "tcp", "tcp_address": "h:1", "interval": "x"}})
    assert [i["field"] for i in issues] == ["health_check.interval"]


def test_list_item_errors_name_the_index():
    issues = _issues({"command": "a", "args": ["ok", 5]})
    assert issues[0]["field"] == "args[1]"


def test_unknown_key_is_rejected_with_a_suggestion():
    issues = _issues({"command": "a", "restrat": "always"})
    assert issues[0]["field"] == "restrat"
    assert "did you mean 'restart'" in issues[0]["message"]


def test_unknown_nested_key_is_rejected():
    issues = _issues({"command": "a", "resources": {"limits": {"gpu": 1}}})
    assert issues[0]["field"] == "resources.limits.gpu"


def test_missing_command_is_reported():
    issues = _issues({"args": []})
    assert issues[0]["field"] == "command" and "missing" in issues[0]["message"]


def test_health_check_needs_its_target():
    issues = _issues({"command": "a", "health_check": {"type": "http"}})
    assert issues[0]["field"] == "health_check.http_endpoint"


def test_requests_may_not_exceed_limits():
    issues = _issues({"command": "a", "resources": {"requests": {"memory": "2G"}, "limits": {"memory": "1G"}}})
    assert issues[0]["field"].startswith("resources")


def test_pids_is_only_a_limit():
    issues = _issues({"command": "a", "resources": {"requests": {"pids": 5}}})
    assert issues[0]["field"] == "resources.requests.pids"


def test_invalid_process_name_is_an_issue():
    issues = _issues({"command": "a"}, name="../etc")
    assert issues[0]["field"] == "name"


def test_all_problems_are_reported_at_once():
    issues = _issues({"command": "a", "restart": "x", "backoff": "y", "nope": 1})
    assert {i["field"] for i in issues} == {"restart", "backoff", "nope"}


def test_config_error_message_is_actionable():
    with pytest.raises(ConfigError, match=r"invalid process 'x': restart: invalid value 'x' \(expected one of never"):
        parse_process("x", {"command": "a", "restart": "x"})


# ------------------------------------------------------------------ JSON Schema

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def validator():
    schema = export_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_json_schema_accepts_the_full_process_file(validator):
    assert list(validator.iter_errors(FULL)) == []


def test_json_schema_accepts_a_map_file(validator):
    doc = yaml.safe_load("""
processes:
  web: {command: nginx, restart: always, restart_sec: 2s}
  db: {command: postgres, log: inherit, resources: {limits: {memory: 512Mi}}}
sockets:
  web: {listen_stream: "0.0.0.0:8080", service: web, socket_mode: 0660}
groups:
  stack: {members: [db, web], strategy: one_for_all, max_seconds: 10s}
""")
    assert list(validator.iter_errors(doc)) == []


@pytest.mark.parametrize("doc", [
    {"command": "a", "restrat": "always"},
    {"command": "a", "restart": "sometimes"},
    {"command": "a", "restart_sec": "5 parsecs"},
    {"args": ["x"]},
    {"processes": {"a": {"command": "a"}}, "command": "b"},
    {"command": "a", "transient": True},
])
def test_json_schema_rejects_what_the_loader_rejects(validator, doc):
    assert list(validator.iter_errors(doc)) != []


def test_json_schema_validates_the_shipped_examples(validator):
    root = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
    files = [f for f in glob.glob(os.path.join(root, "**", "*.y*ml"), recursive=True)
             if ".d" + os.sep not in f]
    for path in files:
        with open(path) as handle:
            doc = yaml.safe_load(handle)
        assert list(validator.iter_errors(doc)) == [], path
