"""PM2 ecosystem files -> our processes (pure converter)."""

from __future__ import annotations

import json

import pytest

from import_checks import assert_validates
from trio_procmgr.importers import SourceFile
from trio_procmgr.importers.pm2 import convert_files

PATH = "/srv/app/ecosystem.json"


def convert(apps, path: str = PATH, text: str | None = None):
    body = text if text is not None else json.dumps({"apps": apps}, indent=2)
    return convert_files([SourceFile(path, body)])


def messages(conversion) -> list[str]:
    return [str(f) for f in conversion.findings]


def test_a_node_app_runs_under_node_in_the_files_directory(tmp_path):
    conversion = convert([{"name": "api", "script": "server.js", "args": "--port 3000 --name 'a b'",
                           "env": {"NODE_ENV": "production", "WORKERS": 2, "DEBUG": False}}])
    proc = conversion.merged("process")["api"]
    assert proc["command"] == "node" and proc["args"] == ["server.js", "--port", "3000", "--name", "a b"]
    assert proc["working_dir"] == "/srv/app"
    assert proc["env"] == {"NODE_ENV": "production", "WORKERS": "2", "DEBUG": "false"}
    assert (proc["restart"], proc["auto_start"]) == ("always", True)
    assert conversion.findings == []
    assert_validates(tmp_path, conversion, "pm2")


def test_interpreters_args_lists_and_binaries():
    conversion = convert([
        {"name": "py", "script": "app.py", "args": ["-v", 3], "cwd": "/opt/py"},
        {"name": "bin", "script": "/usr/bin/worker", "interpreter": "none"},
        {"script": "/opt/tool.js", "interpreter": "/usr/bin/nodejs", "interpreter_args": "--inspect"},
    ])
    procs = conversion.merged("process")
    assert (procs["py"]["command"], procs["py"]["args"], procs["py"]["working_dir"]) == ("python3", ["app.py", "-v", "3"], "/opt/py")
    assert procs["bin"]["command"] == "/usr/bin/worker" and "args" not in procs["bin"]
    assert procs["tool"]["command"] == "/usr/bin/nodejs" and procs["tool"]["args"] == ["--inspect", "/opt/tool.js"]


def test_restart_behaviour_memory_and_stop(tmp_path):
    conversion = convert([{"name": "w", "script": "/bin/w", "autorestart": False, "max_memory_restart": "300M",
                           "exp_backoff_restart_delay": 100, "max_restarts": 10, "kill_timeout": 3000,
                           "watch": False},
                          {"name": "f", "script": "/bin/f", "restart_delay": 2500}])
    w, f = conversion.merged("process")["w"], conversion.merged("process")["f"]
    assert w["restart"] == "never" and w["resources"] == {"limits": {"memory": "300Mi"}}
    assert (w["backoff"], w["restart_sec"], w["restart_max_delay"]) == ("exponential", "100ms", "15s")
    assert (w["start_limit_burst"], w["timeout_stop_sec"]) == (11, "3s")
    assert (f["backoff"], f["restart_sec"]) == ("fixed", "2500ms")
    reported = messages(conversion)
    assert any("max_memory_restart=300M converted approximately: resources.limits.memory" in m for m in reported)
    assert not any("watch=" in m for m in reported)
    assert_validates(tmp_path, conversion, "pm2")


def test_instances_become_replicas(tmp_path):
    conversion = convert([{"name": "api", "script": "/bin/api", "instances": 4, "exec_mode": "cluster"},
                          {"name": "max", "script": "/bin/api", "instances": "max"}])
    procs = conversion.merged("process")
    assert procs["api"]["replicas"] == 4 and "replicas" not in procs["max"]
    assert any('exec_mode="cluster" has no equivalent' in m for m in messages(conversion))
    assert any("instances=max has no equivalent" in m for m in messages(conversion))
    assert_validates(tmp_path, conversion, "pm2")


def test_per_environment_variables_are_reported():
    conversion = convert([{"name": "a", "script": "/bin/a", "env_production": {"X": "1"}}])
    assert "env_production={\"X\": \"1\"} has no equivalent (PM2's per-environment variables" in messages(conversion)[0]


def test_watch_and_cron_restart_are_reported_with_their_lines():
    conversion = convert([{"name": "a", "script": "/bin/a", "watch": True, "cron_restart": "0 * * * *"}])
    reported = messages(conversion)
    assert any(m.startswith(f"{PATH}:6: watch=true has no equivalent") for m in reported), reported
    assert any(m.startswith(f"{PATH}:7: cron_restart=\"0 * * * *\" has no equivalent") for m in reported)
    assert conversion.ok


def test_a_plain_object_config_js_is_read_and_code_is_refused():
    plain = convert(None, "/srv/ecosystem.config.js",
                    "module.exports = {\n  apps: [{name: 'web', script: '/bin/web'}]\n};\n")
    assert plain.ok and plain.merged("process")["web"]["command"] == "/bin/web"
    code = convert(None, "/srv/ecosystem.config.js",
                   "const x = require('x');\nmodule.exports = { apps: [{ name: x.name, script: 'a' }] }\n")
    assert not code.ok and "convert it to JSON first" in messages(code)[0]


@pytest.mark.parametrize("text, line", [
    ('{"apps": [ {"name": "a", ]}', 1),
    ('{"apps": []}', 1),
    ('{\n "apps": [\n  {"name": "a"}\n ]\n}', 3),
    ('{\n "apps": [\n  {"name": "a b", "script": "/x"}\n ]\n}', 3),
    ('{\n "apps": [\n  {"script": "/x",\n   "kill_timeout": "soon"}\n ]\n}', 4),
])
def test_malformed_files_are_errors_with_their_line(text, line):
    conversion = convert(None, text=text)
    errors = [f for f in conversion.findings if f.error]
    assert not conversion.ok and errors and errors[0].line == line, messages(conversion)
