"""LISTEN_* values and the exec shim argv (pure), plus the shims run for real once."""

import os
import socket
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from trio_procmgr.listen_env import listen_environment, parse_listen, shim_argv


@pytest.mark.parametrize("value,family,host,port", [
    ("127.0.0.1:8126", socket.AF_INET, "127.0.0.1", 8126),
    ("0.0.0.0:80", socket.AF_INET, "0.0.0.0", 80),
    (":80", socket.AF_INET, "0.0.0.0", 80),
    ("*:80", socket.AF_INET, "0.0.0.0", 80),
    ("localhost:9", socket.AF_INET, "localhost", 9),
    ("[::]:8080", socket.AF_INET6, "::", 8080),
    ("[::1]:1", socket.AF_INET6, "::1", 1),
])
def test_parse_inet(value, family, host, port):
    addr = parse_listen(value)
    assert (addr.family, addr.host, addr.port) == (family, host, port)


def test_parse_unix_path():
    addr = parse_listen("/run/app/app.sock")
    assert addr.family == socket.AF_UNIX and addr.path == "/run/app/app.sock"


@pytest.mark.parametrize("value", ["8080", "host", "1.2.3.4:99999", "[::]", "relative/path.sock"])
def test_parse_rejects(value):
    with pytest.raises(ValueError):
        parse_listen(value)


def test_listen_environment_like_systemd():
    env = listen_environment([("apm-tcp", "DD_APM_NET_RECEIVER_FD"), ("apm-udp", None)])
    assert env == {"LISTEN_FDS": "2", "LISTEN_FDNAMES": "apm-tcp:apm-udp",
                   "DD_APM_NET_RECEIVER_FD": "3"}
    assert listen_environment([]) == {}


@given(st.lists(st.text(alphabet="abcdefgh-", min_size=1, max_size=8), min_size=1, max_size=6))
def test_listen_environment_counts_and_names(names):
    env = listen_environment([(n, f"FD_{i}") for i, n in enumerate(names)])
    assert int(env["LISTEN_FDS"]) == len(names)
    assert env["LISTEN_FDNAMES"].split(":") == names
    assert [env[f"FD_{i}"] for i in range(len(names))] == [str(3 + i) for i in range(len(names))]


def test_no_shim_when_nothing_is_needed():
    assert shim_argv(["/bin/true"], fd_sources=(), pid_vars=(), env={}, python="py") == ["/bin/true"]


def test_single_digit_fds_use_sh_others_python():
    assert shim_argv(["/x"], fd_sources=(5,), pid_vars=("LISTEN_PID",), env={}, python="py")[0] == "/bin/sh"
    assert shim_argv(["/x"], fd_sources=(), pid_vars=("WATCHDOG_PID",), env={}, python="py")[0] == "/bin/sh"
    assert shim_argv(["/x"], fd_sources=(12,), pid_vars=("LISTEN_PID",), env={}, python="py")[0] == "py"


def test_overlapping_sources_are_refused():
    with pytest.raises(ValueError):
        shim_argv(["/x"], fd_sources=(4, 3), pid_vars=(), env={}, python="py")


_HELPER = """
import json, os, socket, subprocess, sys
from trio_procmgr.listen_env import shim_argv
fd = int(sys.argv[1])
probe = ("import os,json;print(json.dumps([dict(os.environ),sorted(os.listdir('/proc/self/fd')),"
         "os.getpid()]))")
s = socket.socket()
os.dup2(s.fileno(), fd)
env = {"A": "1", "LISTEN_FDS": "1", "PYTHONCOERCECLOCALE": "0"}
argv = shim_argv([sys.executable, "-c", probe], fd_sources=(fd,),
                 pid_vars=("LISTEN_PID", "WATCHDOG_PID"), env=env, python=sys.executable)
out = subprocess.run(argv, env=env, pass_fds=(fd,), capture_output=True, text=True, check=True).stdout
print(json.dumps([argv[0], json.loads(out)]))
"""


@pytest.mark.parametrize("fd", [7, 23], ids=["sh", "python"])
def test_shims_set_own_pid_move_fd_to_3_and_add_nothing(fd):
    import json

    out = subprocess.run([sys.executable, "-c", _HELPER, str(fd)], capture_output=True,
                         text=True, check=True).stdout
    shim, (env, fds, pid) = json.loads(out)
    assert shim == ("/bin/sh" if fd < 10 else sys.executable)
    assert env == {"A": "1", "LISTEN_FDS": "1", "PYTHONCOERCECLOCALE": "0", "LISTEN_PID": str(pid), "WATCHDOG_PID": str(pid)}
    assert "3" in fds and str(fd) not in fds
