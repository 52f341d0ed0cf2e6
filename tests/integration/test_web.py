"""The event websocket and /metrics against a real manager and real sockets."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import urllib.error
import urllib.request
from contextlib import asynccontextmanager

import pytest
import trio
import trio_websocket
from prometheus_client.parser import text_string_to_metric_families

from support import PYTHON as PYTHON_EXE, specs
from trio_procmgr.daemon import web
from trio_procmgr.daemon.main import DaemonStartError


@asynccontextmanager
async def web_server(pm, **kw):
    kw.setdefault("ws", "127.0.0.1:0")
    kw.setdefault("metrics", None)
    kw.setdefault("token_file", None)
    async with trio.open_nursery() as nursery:
        info = await nursery.start(lambda task_status: web.serve_web(pm, task_status=task_status, **kw))
        yield info
        nursery.cancel_scope.cancel()


def url(info, path, scheme="ws"):
    host, port = info.ws_address
    return f"{scheme}://{host}:{port}{path}"


async def http_get(address, headers=None):
    def fetch():
        req = urllib.request.Request(address, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    return await trio.to_thread.run_sync(fetch)


async def test_websocket_client_sees_kill_failed_backoff_running_in_order(make_manager):
    cfg = specs(svc={"command": "sleep", "args": ["60"], "restart": "always", "restart_sec": 0.1})
    async with make_manager(cfg) as pm, web_server(pm) as info:
        await pm.start("svc")
        pid = pm.supervisor("svc").record.pid
        async with trio_websocket.open_websocket_url(
                url(info, "/events?process=svc&type=state_changed&type=process_exited")) as ws:
            with trio.fail_after(5):  # the server subscribes right after the handshake
                await pm.hub.wait_subscribers(1)
            os.kill(pid, signal.SIGKILL)
            seen = []
            with trio.fail_after(10):
                while not seen or seen[-1] != "running":
                    ev = json.loads(await ws.get_message())
                    seen.append(ev["to"] if ev["type"] == "state_changed" else
                                f"exited:{ev['exit_signal']}")
        assert seen == [f"exited:{int(signal.SIGKILL)}", "failed", "backoff", "starting", "running"]


async def test_slow_client_is_told_it_lost_events_while_a_fast_one_keeps_up(make_manager):
    async with make_manager(specs()) as pm, web_server(pm) as info:
        host, port = info.ws_address
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((host, port))
        slow.sendall(b"GET /events?type=padding&max_queue=10 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        try:
            async with trio_websocket.open_websocket_url(url(info, "/events?type=padding"),
                                                         message_queue_size=1000) as fast:
                with trio.fail_after(5):
                    await pm.hub.wait_subscribers(2)
                assert pm.web_stats["clients"] == 2
                count, pad = 300, "p" * 2_000  # 600 KB in all: within the 1 MiB feed bound
                received = []
                async with trio.open_nursery() as nursery:
                    async def read_fast():
                        while len(received) < count:
                            received.append(json.loads(await fast.get_message()))
                    nursery.start_soon(read_fast)
                    for i in range(count):
                        pm.hub.publish("padding", None, None, n=i, pad=pad)
                        await trio.sleep(0)  # the daemon carries on; only the slow client lags
                assert [e["n"] for e in received] == list(range(count))
                assert pm.hub.dropped > 0
            # now let the slow client read: somewhere in its stream is a "lost" notice
            slow.setblocking(False)
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(slow))
            data = bytearray()
            with trio.move_on_after(5):
                while b'"type": "lost"' not in data:
                    chunk = await stream.receive_some(1 << 16)
                    if not chunk:
                        break
                    data += chunk
            assert b'"type": "lost"' in data
        finally:
            slow.close()


async def test_metrics_are_prometheus_text_with_process_and_daemon_families(make_manager):
    cfg = specs(svc={"command": "sleep", "args": ["60"]}, idle={"command": "true"})
    async with make_manager(cfg) as pm, web_server(pm, metrics="127.0.0.1:0") as info:
        await pm.start("svc")
        pm.rpc_stats.update(calls={"start": 3, "list": 2}, errors={"NOT_RUNNING": 1})
        for address in (url(info, "/metrics", "http"),
                        "http://%s:%d/metrics" % info.metrics_address):
            status, text = await http_get(address)
            assert status == 200
            families = {f.name: f for f in text_string_to_metric_families(text)}
            state = {(s.labels["process"], s.labels["state"]): s.value
                     for s in families["dd_procmgr_process_state"].samples}
            assert state[("svc", "running")] == 1 and state[("idle", "created")] == 1
            assert state[("svc", "created")] == 0
            runs = {s.labels["process"]: s.value for s in families["dd_procmgr_process_runs"].samples}
            assert runs == {"svc": 1, "idle": 0}
            mem = {s.labels["process"]: s.value
                   for s in families["dd_procmgr_process_memory_bytes"].samples}
            assert mem["svc"] > 0 and "idle" not in mem
            assert families["dd_procmgr_daemon_uptime_seconds"].samples[0].value >= 0
            calls = {s.labels["method"]: s.value for s in families["dd_procmgr_rpc_calls"].samples}
            assert calls == {"start": 3, "list": 2}
            assert families["dd_procmgr_events_published"].samples[0].value >= 3
            assert "dd_procmgr_events_dropped" in families
            assert "dd_procmgr_process_health" in families
        status, _ = await http_get("http://%s:%d/events" % info.metrics_address)
        assert status == 404


async def test_token_is_required_when_configured(make_manager, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    async with make_manager(specs()) as pm, web_server(pm, token_file=str(token_file)) as info:
        status, _ = await http_get(url(info, "/metrics", "http"))
        assert status == 401
        status, _ = await http_get(url(info, "/metrics", "http"), {"Authorization": "Bearer wrong"})
        assert status == 401
        status, _ = await http_get(url(info, "/metrics", "http"), {"Authorization": "Bearer s3cret"})
        assert status == 200
        async with trio_websocket.open_websocket_url(url(info, "/events?token=s3cret")) as ws:
            with trio.fail_after(5):
                await pm.hub.wait_subscribers(1)
            pm.hub.publish("hello", None, None)
            assert json.loads(await ws.get_message())["type"] == "hello"


async def test_non_loopback_listener_without_a_token_is_refused(make_manager):
    async with make_manager(specs()) as pm:
        async with trio.open_nursery() as nursery:
            with pytest.raises(DaemonStartError, match="token"):  # as the daemon sees it
                await nursery.start(lambda task_status: web.serve_web(
                    pm, ws="0.0.0.0:0", metrics=None, token_file=None, task_status=task_status))


async def test_garbage_requests_do_not_disturb_the_server(make_manager):
    async with make_manager(specs()) as pm, web_server(pm) as info:
        host, port = info.ws_address
        for junk in (b"\x00\xff garbage\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 5000 + b"\r\n"):
            stream = await trio.open_tcp_stream(host, port)
            try:
                await stream.send_all(junk)
            except trio.BrokenResourceError:
                pass
            await stream.aclose()
        status, _ = await http_get(url(info, "/metrics", "http"))
        assert status == 200
        status, body = await http_get(url(info, "/events", "http"))
        assert status == 426


async def test_metrics_count_rpc_calls_and_errors_by_code(make_manager, tmp_path):
    """The RPC server's counters reach /metrics (daemon: RPC calls and errors)."""
    from trio_procmgr.client import AsyncClient
    from trio_procmgr.daemon.metrics import render
    from trio_procmgr.rpc.server import serve_rpc

    sock = str(tmp_path / "m.sock")
    async with make_manager() as pm, trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_rpc(pm, socket_path=sock,
                                                          task_status=task_status))
        async with AsyncClient(sock) as client:
            await client.list()
            with pytest.raises(Exception):
                await client.describe("missing")
        families = {f.name: f for f in text_string_to_metric_families(render(pm)[0].decode())}
        calls = {s.labels["method"]: s.value for s in families[_name(families, "rpc_calls")].samples
                 if s.name.endswith("_total")}
        errs = {s.labels["code"]: s.value for s in families[_name(families, "rpc_errors")].samples
                if s.name.endswith("_total")}
        assert calls.get("list") == 1 and calls.get("describe") == 1
        assert errs.get("PROCESS_NOT_FOUND") == 1
        nursery.cancel_scope.cancel()


def _name(families, suffix):
    return next(n for n in families if n.endswith(suffix))


# ---------------------------------------------------------------------- dashboard side

async def http_call(address, method="GET", headers=None):
    """(status, parsed JSON or text) of one request."""
    def fetch():
        req = urllib.request.Request(address, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, body, ctype = resp.status, resp.read().decode(), resp.headers["Content-Type"]
        except urllib.error.HTTPError as exc:
            status, body, ctype = exc.code, exc.read().decode(), exc.headers["Content-Type"]
        return status, json.loads(body) if ctype == "application/json" else body

    return await trio.to_thread.run_sync(fetch)


@asynccontextmanager
async def token_server(pm, tmp_path, token="s3cret"):
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    async with web_server(pm, token_file=str(token_file)) as info:
        yield info


BEARER = {"Authorization": "Bearer s3cret"}


async def test_read_only_listener_serves_the_page_and_reads_but_refuses_every_change(make_manager):
    cfg = specs(svc={"command": "sleep", "args": ["60"], "env": {"API_KEY": "hunter2"}})
    async with make_manager(cfg) as pm, web_server(pm) as info:
        await pm.start("svc")
        status, page = await http_call(url(info, "/", "http"))
        assert status == 200 and 'data-access="read-only"' in page
        status, listed = await http_call(url(info, "/api/processes", "http"))
        assert status == 200 and [r["name"] for r in listed["processes"]] == ["svc"]
        status, record = await http_call(url(info, "/api/processes/svc", "http"))
        assert record["state"] == "running" and record["spec"]["env"] == {"API_KEY": "<redacted>"}
        for action in ("stop", "restart", "pause", "start", "resume"):
            status, body = await http_call(url(info, f"/api/processes/svc/{action}", "http"), "POST")
            assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED", action
            assert "read-only" in body["error"]["message"]
        assert pm.supervisor("svc").record.state.value == "running"
        assert pm.supervisor("svc").record.runs == 1


async def test_with_a_token_everything_but_the_page_needs_it(make_manager, tmp_path):
    async with make_manager(specs(svc={"command": "sleep", "args": ["60"]})) as pm, \
            token_server(pm, tmp_path) as info:
        for path in ("/", "/assets/app.js", "/assets/app.css", "/assets/favicon.svg"):
            status, _ = await http_call(url(info, path, "http"))
            assert status == 200, path
        for method, path in (("GET", "/api/processes"), ("GET", "/api/processes/svc"),
                             ("POST", "/api/processes/svc/start"), ("GET", "/metrics")):
            status, body = await http_call(url(info, path, "http"), method)
            assert status == 401, path
            status, _ = await http_call(url(info, path, "http"), method,
                                        {"Authorization": "Bearer wrong"})
            assert status == 401, path
        status, record = await http_call(url(info, "/api/processes/svc/start", "http"), "POST", BEARER)
        assert status == 200 and record["state"] == "running" and record["pid"]
        status, record = await http_call(url(info, "/api/processes/svc/stop", "http"), "POST", BEARER)
        assert status == 200 and record["state"] == "stopped"
        assert pm.supervisor("svc").record.state.value == "stopped"


async def test_api_errors_are_json_with_a_code_and_a_fitting_status(make_manager, tmp_path):
    async with make_manager(specs(svc={"command": "sleep", "args": ["60"]})) as pm, \
            token_server(pm, tmp_path) as info:
        cases = [("POST", "/api/processes/missing/stop", 404, "PROCESS_NOT_FOUND"),
                 ("POST", "/api/processes/svc/explode", 404, "UNIMPLEMENTED"),
                 ("GET", "/api/processes/svc/stop", 405, "INVALID_ARGUMENT"),
                 ("POST", "/api/processes/svc/resume", 409, None)]
        for method, path, want_status, want_code in cases:
            status, body = await http_call(url(info, path, "http"), method, BEARER)
            assert status == want_status, (path, body)
            assert set(body["error"]) == {"code", "message"} and body["error"]["message"]
            if want_code:
                assert body["error"]["code"] == want_code
        status, _ = await http_call(url(info, "/api/processes", "http"), headers=BEARER)
        assert status == 200  # the listener carries on


async def test_browser_websockets_authenticate_with_their_first_message(make_manager, tmp_path):
    async with make_manager(specs()) as pm, token_server(pm, tmp_path) as info:
        async with trio_websocket.open_websocket_url(url(info, "/events")) as ws:
            await ws.send_message(json.dumps({"token": "wrong"}))
            with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                with trio.fail_after(5):
                    await ws.get_message()
            assert closed.value.reason.code == 4401
        assert pm.hub.subscribers == 0, "an unauthenticated client was subscribed"
        async with trio_websocket.open_websocket_url(url(info, "/events")) as ws:
            await ws.send_message(json.dumps({"token": "s3cret"}))
            with trio.fail_after(5):
                await pm.hub.wait_subscribers(1)
            pm.hub.publish("hello", None, None)
            assert json.loads(await ws.get_message())["type"] == "hello"


async def test_cross_origin_and_rebinding_requests_are_refused(make_manager):
    async with make_manager(specs()) as pm, web_server(pm) as info:
        host, port = info.ws_address
        for headers in ({"Origin": "http://evil.example"}, {"Host": f"evil.example:{port}"}):
            status, body = await http_call(url(info, "/api/processes", "http"), headers=headers)
            assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED", headers
        with pytest.raises(trio_websocket.HandshakeError):
            async with trio_websocket.open_websocket_url(
                    url(info, "/events"), extra_headers=[("Origin", "http://evil.example")]):
                pass
        status, _ = await http_call(url(info, "/api/processes", "http"),
                                    headers={"Origin": f"http://{host}:{port}"})
        assert status == 200


async def test_logs_websocket_sends_the_tail_then_live_lines(make_manager):
    script = "import sys, time\nprint('one'); print('two'); sys.stdout.flush()\n" \
             "line = sys.stdin.readline()\ntime.sleep(0.5); print('three', flush=True)\ntime.sleep(60)"
    cfg = specs(talker={"command": PYTHON_EXE, "args": ["-c", script]})
    async with make_manager(cfg) as pm, web_server(pm) as info:
        await pm.start("talker")
        with trio.fail_after(10):
            while len(pm.logs("talker")) < 2:
                await trio.sleep(0.02)
        async with trio_websocket.open_websocket_url(url(info, "/logs?process=talker&lines=5")) as ws:
            with trio.fail_after(10):
                tail = json.loads(await ws.get_message())
                assert tail["type"] == "tail"
                assert [item["line"] for item in tail["lines"]] == ["one", "two"]
                live = json.loads(await ws.get_message())
            assert live["type"] == "line" and live["line"] == "three" and live["stream"] == "stdout"
        async with trio_websocket.open_websocket_url(url(info, "/logs?process=nope")) as ws:
            with pytest.raises(trio_websocket.ConnectionClosed) as closed:
                with trio.fail_after(5):
                    await ws.get_message()
        assert closed.value.reason.code == 4404 and "nope" in closed.value.reason.reason


async def test_stats_websocket_pushes_rows_with_cpu_and_memory(make_manager):
    burn = "import time\nend = time.time() + 60\nwhile time.time() < end: pass"
    cfg = specs(burner={"command": PYTHON_EXE, "args": ["-c", burn]}, idle={"command": "true"})
    async with make_manager(cfg) as pm, web_server(pm) as info:
        await pm.start("burner")
        async with trio_websocket.open_websocket_url(url(info, "/stats")) as ws:
            with trio.fail_after(15):
                first = json.loads(await ws.get_message())
                second = json.loads(await ws.get_message())
        assert first["type"] == second["type"] == "stats"
        assert second["time"] - first["time"] >= 1.5  # pushed on the server's clock
        rows = {r["name"]: r for r in second["processes"]}
        assert set(rows) == {"burner", "idle"}
        assert rows["burner"]["state"] == "running" and rows["burner"]["memory"] > 0
        assert rows["burner"]["cpu_percent"] > 20  # a busy loop
        assert rows["idle"]["cpu_percent"] is None and rows["idle"]["memory"] is None


async def test_websocket_watchers_see_the_daemon_go_then_a_normal_close(make_manager):
    """SPEC §15 / issue 13.6: daemon_stopping, the processes' stop events, then 1001."""
    cfg = specs(svc={"command": "sleep", "args": ["60"]})
    received, closed = [], []
    async with trio.open_nursery() as nursery:
        async with make_manager(cfg) as pm:
            info = await nursery.start(lambda task_status: web.serve_web(
                pm, ws="127.0.0.1:0", metrics=None, token_file=None, task_status=task_status))
            await pm.start("svc")
            ws = await trio_websocket.connect_websocket_url(nursery, url(info, "/events"))
            with trio.fail_after(5):
                await pm.hub.wait_subscribers(1)

            async def read_all():
                try:
                    while True:
                        received.append(json.loads(await ws.get_message()))
                except trio_websocket.ConnectionClosed as exc:
                    closed.append(exc.reason.code)
            nursery.start_soon(read_all)
        # the manager has stopped everything and closed the hub
        with trio.fail_after(10):
            while not closed:
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    kinds = [(e["type"], e.get("to")) for e in received]
    assert kinds[0] == ("daemon_stopping", None)
    assert ("state_changed", "stopping") in kinds and ("state_changed", "stopped") in kinds
    assert kinds.index(("state_changed", "stopping")) < kinds.index(("state_changed", "stopped"))
    assert closed == [1001]


async def test_pages_assets_are_self_contained(make_manager):
    """No CDN, no outside URL: the page may load and connect only to its own origin."""
    async with make_manager(specs()) as pm, web_server(pm) as info:
        for path in ("/", "/assets/app.js", "/assets/app.css"):
            status, text = await http_call(url(info, path, "http"))
            assert status == 200
            assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text), path
            assert "http://" not in text and "https://" not in text, path
        headers = await trio.to_thread.run_sync(
            lambda: urllib.request.urlopen(url(info, "/", "http"), timeout=5).headers)
        assert "default-src 'none'" in headers["Content-Security-Policy"]
