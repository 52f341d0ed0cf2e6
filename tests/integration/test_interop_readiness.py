"""Real third-party programs: systemd-notify, redis-server, sdnotify, gunicorn, nginx,
systemd-socket-activate. Installed by packaging/install-test-deps.sh; skipped (with the
reason) where a program is missing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from support import pid_alive, specs
from trio_procmgr.config.loader import parse_process
from trio_procmgr.spec import ConfigSet, SocketSpec

pytestmark = pytest.mark.interop


def need(program: str) -> str:
    path = shutil.which(program) or next(
        (p for p in (f"/usr/sbin/{program}", f"/usr/bin/{program}") if os.path.exists(p)), None)
    if path is None:
        pytest.skip(f"{program} is not installed (packaging/install-test-deps.sh installs it)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str = "/") -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_systemd_notify_ready_and_status(make_manager):
    need("systemd-notify")
    cfg = specs(n={"command": "sh", "process_type": "notify", "args": [
        "-c", "sleep 0.2; systemd-notify --ready --status=hello; exec sleep 100"]})
    async with make_manager(cfg) as pm:
        sup = pm.supervisor("n")
        await pm.start("n")
        assert sup.record.state.value == "running"
        d = pm.describe("n")
        assert d["status_text"] == "hello" and d["notify"]["dropped"] == 0, d["notify"]


@pytest.mark.linux_only("MAINPID= needs a pidfd on a pid the daemon did not spawn")
async def test_systemd_notify_pid_option_sets_the_main_pid(make_manager):
    need("systemd-notify")
    cfg = specs(n={"command": "sh", "process_type": "notify", "args": [
        "-c", 'sleep 100 & systemd-notify --ready --pid=$! --status=forked; wait']})
    async with make_manager(cfg) as pm:
        await pm.start("n")
        sup = pm.supervisor("n")

        def cmdline() -> bytes:
            with open(f"/proc/{sup.record.pid}/cmdline", "rb") as f:
                return f.read()

        # the main PID is the shell's child, which may not have exec'd sleep yet
        with trio.fail_after(10):
            while not cmdline().startswith(b"sleep"):
                await trio.sleep(0.01)


async def test_redis_supervised_systemd(make_manager):
    redis = need("redis-server")
    port = free_port()
    cfg = specs(r={"command": redis, "process_type": "notify", "timeout_start_sec": 20,
                   "args": ["--supervised", "systemd", "--port", str(port), "--save", "",
                            "--appendonly", "no", "--bind", "127.0.0.1", "--dir", "/tmp"]})
    async with make_manager(cfg) as pm:
        await pm.start("r")
        sup = pm.supervisor("r")
        assert sup.record.state.value == "running"
        assert "Ready to accept connections" in sup.record.status_text

        def ping() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(b"PING\r\n")
                return c.recv(100)
        assert await trio.to_thread.run_sync(ping) == b"+PONG\r\n"


async def test_python_sdnotify_package(make_manager):
    pytest.importorskip("sdnotify")
    code = ("import sdnotify,time;n=sdnotify.SystemdNotifier();time.sleep(0.2);"
            "n.notify('STATUS=sdnotify says hi\\nREADY=1');time.sleep(100)")
    cfg = specs(p={"command": sys.executable, "args": ["-c", code], "process_type": "notify"})
    async with make_manager(cfg) as pm:
        await pm.start("p")
        assert pm.supervisor("p").record.status_text == "sdnotify says hi"


async def test_gunicorn_behind_an_activated_socket(make_manager, tmp_path):
    pytest.importorskip("gunicorn")
    (tmp_path / "app.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'hello from gunicorn']\n")
    port = free_port()
    cfg = ConfigSet(processes={"g": parse_process("g", {
        "command": sys.executable, "working_dir": str(tmp_path), "timeout_stop_sec": 10,
        "args": ["-m", "gunicorn", "--workers", "1", "app:app"]})},
        sockets={"http": SocketSpec(name="http", service="g", listen_stream=f"127.0.0.1:{port}")})
    async with make_manager(cfg) as pm:
        assert pm.supervisor("g").record.state.value == "created"
        status, body = await trio.to_thread.run_sync(http_get, port)
        assert (status, body) == (200, b"hello from gunicorn")
        assert pm.supervisor("g").record.state.value == "running"


NGINX_CONF = """
daemon on;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "nginx ok"; }} }}
}}
"""


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    data = f.read()
            except OSError:
                continue
            if int(data[data.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(entry))
    return out


@pytest.mark.linux_only("a forking main process is watched through a pidfd")
async def test_nginx_forking_with_pidfile_restarts_after_sigkill_of_master(make_manager, tmp_path):
    nginx = need("nginx")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=tmp_path, port=port))
    cfg = specs(web={"command": nginx, "args": ["-c", str(conf), "-p", str(tmp_path)],
                     "process_type": "forking", "pidfile": str(tmp_path / "nginx.pid"),
                     "restart": "always", "restart_sec": 0.2, "timeout_stop_sec": 10,
                     "timeout_start_sec": 20})
    async with make_manager(cfg) as pm:
        await pm.start("web")
        sup = pm.supervisor("web")
        master = sup.record.pid
        assert master == int((tmp_path / "nginx.pid").read_text())
        with trio.fail_after(10):
            while len(workers := children_of(master)) < 2:  # the master forks them after the pidfile
                await trio.sleep(0.02)
        assert (await trio.to_thread.run_sync(http_get, port)) == (200, b"nginx ok")
        os.kill(master, signal.SIGKILL)
        assert await sup.wait_until(lambda s: s.record.runs == 2 and s.record.state.value == "running",
                                    timeout=20), sup.record.to_dict()
        assert not any(pid_alive(w) for w in workers)
        assert sup.record.pid != master
        assert (await trio.to_thread.run_sync(http_get, port)) == (200, b"nginx ok")
        await pm.stop("web")
        assert not pid_alive(sup.instance.main_pid if sup.instance else master)


PRINT_LISTEN = ("import os,json;print(json.dumps(dict(pid=os.getpid(),env={k:v for k,v in "
                "os.environ.items() if k.startswith('LISTEN_')})),flush=True)")


async def test_listen_environment_matches_systemd_socket_activate(make_manager):
    ssa = need("systemd-socket-activate")
    port = free_port()
    proc = subprocess.Popen([ssa, "-l", f"127.0.0.1:{port}", "--fdname=p", sys.executable, "-c", PRINT_LISTEN],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                await trio.sleep(0.05)
        theirs = json.loads(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    port2 = free_port()
    cfg = ConfigSet(processes={"p": parse_process("p", {"command": sys.executable,
                                                        "args": ["-c", PRINT_LISTEN]})},
                    sockets={"p": SocketSpec(name="p", service="p", listen_stream=f"127.0.0.1:{port2}")})
    async with make_manager(cfg) as pm:
        socket.create_connection(("127.0.0.1", port2), timeout=1).close()
        sup = pm.supervisor("p")
        assert await sup.wait_until(lambda s: s.record.state.value == "exited", timeout=10)
        ours = json.loads(next(l["line"] for l in pm.logs("p") if l["line"].startswith("{")))
    assert set(ours["env"]) == set(theirs["env"]) == {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"}
    assert ours["env"]["LISTEN_FDS"] == theirs["env"]["LISTEN_FDS"] == "1"
    assert ours["env"]["LISTEN_PID"] == str(ours["pid"]) and theirs["env"]["LISTEN_PID"] == str(theirs["pid"])
    assert ours["env"]["LISTEN_FDNAMES"] == "p"  # fd_name defaults to the socket's name
