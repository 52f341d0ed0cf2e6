"""Socket activation against the real engine: activation, LISTEN_*, re-activation, unix."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import sys
from pathlib import Path

import pytest
import trio

from trio_procmgr import errors
from trio_procmgr.config.loader import load_config_dir, parse_process
from trio_procmgr.spec import ConfigSet, SocketSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STANDIN = EXAMPLES / "bin" / "trace-agent-standin.py"

# Serves HTTP on fd 3 and answers with its view of the activation environment.
ECHO_ENV = r"""
import json, os, socket, sys
fd3 = socket.socket(fileno=3)
info = {"pid": os.getpid(), "env": {k: v for k, v in os.environ.items()
        if k.startswith("LISTEN_") or k == "MY_FD"},
        "fd3": [fd3.family.name, fd3.type.name, fd3.getsockname()[1] if fd3.family != socket.AF_UNIX else fd3.getsockname()],
        "fds": sorted(int(f) for f in os.listdir("/proc/self/fd"))}
if fd3.type == socket.SOCK_DGRAM:
    data, peer = fd3.recvfrom(100)
    sys.exit(0)
while True:
    c, _ = fd3.accept()
    c.recv(100)
    c.sendall(json.dumps(info).encode())
    c.close()
    if os.environ.get("CRASH_AFTER_ONE"):
        os._exit(7)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(sockets: dict[str, SocketSpec], **procs) -> ConfigSet:
    return ConfigSet(processes={n: parse_process(n, r) for n, r in procs.items()}, sockets=sockets)


def echo_service(**extra) -> dict:
    return {"command": sys.executable, "args": ["-c", ECHO_ENV], "timeout_stop_sec": 5, **extra}


async def ask(port: int) -> dict:
    def go() -> dict:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"hi")
            data = b""
            while chunk := c.recv(4096):
                data += chunk
        return json.loads(data)
    return await trio.to_thread.run_sync(go)


async def test_first_connection_starts_the_service_with_systemd_environment(make_manager):
    port = free_port()
    sock = SocketSpec(name="web", service="svc", listen_stream=f"127.0.0.1:{port}", fd_env="MY_FD")
    async with make_manager(config({"web": sock}, svc=echo_service())) as pm:
        sup = pm.supervisor("svc")
        assert sup.record.state.value == "created"
        answer = await ask(port)
        assert answer["env"] == {"LISTEN_FDS": "1", "LISTEN_PID": str(answer["pid"]),
                                 "LISTEN_FDNAMES": "web", "MY_FD": "3"}
        assert answer["pid"] == sup.record.pid
        assert answer["fd3"] == ["AF_INET", "SOCK_STREAM", port]
        assert answer["fds"][:4] == [0, 1, 2, 3]
        assert pm.describe("svc")["sockets"][0]["activations"] == 1


async def test_crashed_service_is_reactivated_and_no_connection_is_refused(make_manager):
    port = free_port()
    sock = SocketSpec(name="web", service="svc", listen_stream=f"127.0.0.1:{port}")
    svc = echo_service(env={"CRASH_AFTER_ONE": "1"}, restart="never")
    async with make_manager(config({"web": sock}, svc=svc)) as pm:
        sup = pm.supervisor("svc")
        pids = set()
        for _ in range(3):
            pids.add((await ask(port))["pid"])
            await sup.wait_until(lambda s: s.record.state.value == "failed", timeout=10)
        assert len(pids) == 3 and sup.record.runs == 3


async def test_stopped_service_is_started_again_by_traffic(make_manager):
    port = free_port()
    sock = SocketSpec(name="web", service="svc", listen_stream=f"127.0.0.1:{port}")
    async with make_manager(config({"web": sock}, svc=echo_service(auto_start=True))) as pm:
        first = (await ask(port))["pid"]
        await pm.stop("svc")
        second = (await ask(port))["pid"]
        assert first != second


async def test_unix_socket_mode_and_datagram(make_manager, tmp_path):
    path = tmp_path / "sub" / "svc.sock"
    sock = SocketSpec(name="dg", service="svc", listen_datagram=str(path), socket_mode=0o600)
    async with make_manager(config({"dg": sock}, svc=echo_service(restart="never"))) as pm:
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
            c.sendto(b"x", str(path))
        sup = pm.supervisor("svc")
        assert await sup.wait_until(lambda s: s.record.state.value == "exited", timeout=10)
    assert not path.exists()


def test_accept_true_is_refused_by_the_loader_and_the_engine(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "sockets:\n  s: {listen_stream: '127.0.0.1:9', service: p, accept: true}\n"
        "processes:\n  p: {command: sleep}\n")
    cfg = load_config_dir(str(tmp_path))
    assert not cfg.sockets and "accept: true" in str(cfg.issues[0]) and "not supported" in str(cfg.issues[0])
    from trio_procmgr.engine.manager import ProcessManager
    with pytest.raises(errors.ConfigError, match="not supported"):
        ProcessManager(config({"s": SocketSpec(name="s", service="p", listen_stream="127.0.0.1:9",
                                               accept=True)}, p={"command": "sleep"}))


def test_socket_for_unknown_service_is_a_config_error(tmp_path):
    (tmp_path / "a.yaml").write_text("sockets:\n  s: {listen_stream: '127.0.0.1:9'}\n")
    cfg = load_config_dir(str(tmp_path))
    assert not cfg.sockets and "unknown process 's'" in str(cfg.issues[0])


async def test_trace_agent_example_serves_after_activation(make_manager, tmp_path):
    port = free_port()
    text = (EXAMPLES / "trace-agent-sockets.yaml").read_text()
    text = text.replace("127.0.0.1:8126", f"127.0.0.1:{port}").replace(
        "examples/bin/trace-agent-standin.py", str(STANDIN)).replace(
        "command: python3", f"command: {sys.executable}")
    (tmp_path / "trace-agent-sockets.yaml").write_text(text)
    cfg = load_config_dir(str(tmp_path))
    assert not cfg.issues
    async with make_manager(cfg) as pm:
        assert pm.supervisor("trace-agent").record.state.value == "created"

        def get() -> dict:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(b"PUT /v0.4/traces HTTP/1.1\r\nHost: x\r\n\r\n")
                data = b""
                while chunk := c.recv(4096):
                    data += chunk
            return json.loads(data.split(b"\r\n\r\n", 1)[1])

        body = await trio.to_thread.run_sync(get)
        assert body["socket_from"] == "DD_APM_NET_RECEIVER_FD"
        assert body["pid"] == pm.supervisor("trace-agent").record.pid
