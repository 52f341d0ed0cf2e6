"""supervisord programs and groups -> our processes and groups (pure converter)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from import_checks import assert_validates
from trio_procmgr.importers import SourceFile
from trio_procmgr.importers.supervisord import convert_files, parse_environment

PATH = "/etc/supervisor/conf.d/app.conf"


def convert(text: str, environ: dict | None = None):
    return convert_files([SourceFile(PATH, text)], environ or {})


def messages(conversion) -> list[str]:
    return [str(f) for f in conversion.findings]


def test_a_program_with_the_common_options(tmp_path):
    conversion = convert(
        "[program:web]\ncommand=/usr/bin/python3 -m http.server 8000 ; inline comment\n"
        "directory=/srv/web\nuser=www-data\nautostart=false\nautorestart=true\nstopsignal=INT\n"
        "stopwaitsecs=7\nexitcodes=0,2\nstartretries=4\n")
    proc = conversion.merged("process")["web"]
    assert proc["command"] == "/usr/bin/python3" and proc["args"] == ["-m", "http.server", "8000"]
    assert (proc["working_dir"], proc["user"], proc["auto_start"]) == ("/srv/web", "www-data", False)
    assert (proc["restart"], proc["kill_signal"], proc["timeout_stop_sec"]) == ("always", "SIGINT", "7s")
    assert proc["success_exit_status"] == [0, 2] and proc["start_limit_burst"] == 5
    assert any(m.startswith(f"{PATH}:10: startretries=4 converted approximately") for m in messages(conversion))
    assert_validates(tmp_path, conversion, "supervisord")


def test_supervisord_defaults_that_differ_from_ours_are_written_out():
    proc = convert("[program:w]\ncommand=/bin/sleep 1\n").merged("process")["w"]
    assert proc["auto_start"] is True and proc["restart"] == "on-failure"


@pytest.mark.parametrize("value, policy", [("true", "always"), ("false", "never"), ("unexpected", "on-failure")])
def test_autorestart(value, policy):
    assert convert(f"[program:w]\ncommand=/bin/true\nautorestart={value}\n").merged("process")["w"]["restart"] == policy


@pytest.mark.parametrize("options, mode", [
    ("stopasgroup=true\nkillasgroup=true\n", "process-group"),
    ("killasgroup=true\n", "mixed"),
    ("stopasgroup=false\nkillasgroup=false\n", "process"),
])
def test_group_signalling_maps_to_kill_mode(options, mode):
    assert convert(f"[program:w]\ncommand=/bin/true\n{options}").merged("process")["w"]["kill_mode"] == mode


def test_environment_quoting():
    assert parse_environment('A="1, 2",B=x,C=\'it is\',D=/a/b:c') == {
        "A": "1, 2", "B": "x", "C": "it is", "D": "/a/b:c"}
    with pytest.raises(ValueError):
        parse_environment("A=1,B")


_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters="\"'\\%"),
                 min_size=1, max_size=10)


@settings(max_examples=40)
@given(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), _VALUE, min_size=1, max_size=5))
def test_quoted_environment_values_round_trip(env):
    text = ",".join(f'{key}="{value}"' for key, value in env.items())
    assert parse_environment(text) == env


def test_expansions_program_name_here_and_environment():
    conversion = convert("[program:api]\ncommand=/opt/%(program_name)s/run --conf %(here)s/x --port %(ENV_PORT)s\n",
                         {"PORT": "9000"})
    proc = conversion.merged("process")["api"]
    assert proc["command"] == "/opt/api/run"
    assert proc["args"] == ["--conf", "/etc/supervisor/conf.d/x", "--port", "9000"]
    assert "expanded with this shell's $PORT" in messages(conversion)[0]
    missing = convert("[program:api]\ncommand=/bin/x %(ENV_NOPE)s\n")
    assert not missing.ok and f"{PATH}:2: error:" in messages(missing)[0]


def test_numprocs_become_replicas_with_the_instance_placeholder(tmp_path):
    conversion = convert("[program:worker]\ncommand=/bin/worker --n %(process_num)s\n"
                         "process_name=%(program_name)s_%(process_num)02d\nnumprocs=4\n")
    proc = conversion.merged("process")["worker"]
    assert proc["replicas"] == 4 and proc["args"] == ["--n", "%i"]
    assert "instances named worker@1..4" in messages(conversion)[0]
    assert_validates(tmp_path, conversion, "supervisord")


def test_priority_orders_programs_after_the_next_lower_priority(tmp_path):
    conversion = convert("[program:db]\ncommand=/bin/true\npriority=1\n[program:cache]\ncommand=/bin/true\n"
                         "priority=1\n[program:app]\ncommand=/bin/true\npriority=5\n[program:web]\n"
                         "command=/bin/true\n")
    procs = conversion.merged("process")
    assert "after" not in procs["db"] and "after" not in procs["cache"]
    assert procs["app"]["after"] == ["cache", "db"] and procs["web"]["after"] == ["app"]
    assert_validates(tmp_path, conversion, "supervisord")


def test_groups_and_logs(tmp_path):
    conversion = convert("[program:a]\ncommand=/bin/true\nstdout_logfile=/var/log/a.log\n"
                         "stdout_logfile_maxbytes=10MB\nstdout_logfile_backups=3\nredirect_stderr=true\n"
                         "[program:b]\ncommand=/bin/true\nstderr_logfile=/var/log/b.err\n"
                         "[group:ab]\nprograms=a,b\npriority=3\n")
    procs = conversion.merged("process")
    assert procs["a"]["log"] == {"file": "/var/log/a.log", "max_bytes": "10Mi", "backups": 3}
    assert procs["b"]["log"] == {"file": "/var/log/b.err"}
    assert conversion.merged("group") == {"ab": {"members": ["a", "b"]}}
    assert any(m.startswith(f"{PATH}:12: priority=3 has no equivalent") for m in messages(conversion))
    assert_validates(tmp_path, conversion, "supervisord")


def test_sections_and_options_without_equivalent_are_reported():
    conversion = convert("[supervisord]\nlogfile=/x\n[include]\nfiles=*.conf\n[program:a]\n"
                         "command=/bin/true\nstartsecs=10\numask=022\n[eventlistener:e]\ncommand=/bin/true\n")
    reported = messages(conversion)
    for start in (f"{PATH}:1: [supervisord] has no equivalent", f"{PATH}:3: [include] has no equivalent",
                  f"{PATH}:7: startsecs=10 has no equivalent", f"{PATH}:8: umask=022 has no equivalent",
                  f"{PATH}:9: [eventlistener:e] has no equivalent"):
        assert any(m.startswith(start) for m in reported), start
    assert conversion.ok


@pytest.mark.parametrize("text, line", [
    ("[program:a]\ncommand=/bin/true\ncommand=/bin/false\n", 3),
    ("[program:a]\nthis is not an option\n", 2),
    ("[program:a]\ndirectory=/x\n", 1),
    ("[program:a b]\ncommand=/bin/true\n", 1),
    ("[group:g]\nprograms=ghost\n[program:a]\ncommand=/bin/true\n", 2),
    ("[supervisord]\nnodaemon=true\n", None),
])
def test_files_that_cannot_be_converted_are_errors_with_their_line(text, line):
    conversion = convert(text)
    errors = [f for f in conversion.findings if f.error]
    assert not conversion.ok and errors and errors[0].line == line, messages(conversion)
