"""Health checks against real servers and commands; log-line readiness."""

from __future__ import annotations

import os
import socket

import pytest
import trio

from support import PYTHON, pid_alive, specs, wait_failed_probes
from trio_procmgr import errors
from trio_procmgr.states import State

FLIPPING_SERVER = r"""
import http.server, os, sys
flag = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = os.path.exists(flag)
        body = b"ok" if ok else b"down"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""

LISTENER = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); print("listening", flush=True)
time.sleep(60)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_is(value):
    return lambda sup: sup.record.health == value


async def test_http_check_follows_the_server_between_healthy_and_unhealthy(make_manager, tmp_path):
    port, flag = free_port(), tmp_path / "healthy"
    flag.touch()
    cfg = specs(web={"command": PYTHON, "args": ["-c", FLIPPING_SERVER, str(port), str(flag)],
                     "health_check": {"type": "http", "interval": 0.1, "timeout": 1, "retries": 2, "start_period": 10,
                                      "http_endpoint": f"http://127.0.0.1:{port}/health",
                                      "expected_status": "200-299"}})
    async with make_manager(cfg) as pm:
        with pm.hub.subscribe(types={"health_changed"}) as sub:
            await pm.start("web")
            sup = pm.supervisor("web")
            assert await sup.wait_until(health_is("healthy"), timeout=10)
            flag.unlink()
            assert await sup.wait_until(health_is("unhealthy"), timeout=10)
            flag.touch()
            assert await sup.wait_until(health_is("healthy"), timeout=10)
            seen = [(e["from"], e["to"]) for e in iter(sub.get_nowait, None)]
        assert seen == [("none", "starting"), ("starting", "healthy"),
                        ("healthy", "unhealthy"), ("unhealthy", "healthy")]
        results = pm.describe("web")["health_checks"]
        assert 1 <= len(results) <= 5
        assert results[-1]["ok"] and results[-1]["status"] == 200
        assert {"time", "latency", "output"} <= set(results[-1])
        await pm.stop("web")
        assert sup.record.health == "none"


async def test_tcp_check_is_healthy_against_a_listener_and_unhealthy_without_one(make_manager):
    port, closed = free_port(), free_port()
    cfg = specs(
        db={"command": PYTHON, "args": ["-c", LISTENER, str(port)],
            "health_check": {"type": "tcp", "tcp_address": f"127.0.0.1:{port}", "interval": 0.1}},
        nothing={"command": "sleep", "args": ["60"],
                 "health_check": {"type": "tcp", "tcp_address": f"127.0.0.1:{closed}",
                                  "interval": 0.05, "retries": 1}})
    async with make_manager(cfg) as pm:
        await pm.start("db")
        await pm.start("nothing")
        assert await pm.supervisor("db").wait_until(health_is("healthy"), timeout=10)
        assert await pm.supervisor("nothing").wait_until(health_is("unhealthy"), timeout=10)
        assert "refused" in pm.describe("nothing")["health_checks"][-1]["output"]


async def test_exec_probe_timeout_kills_the_probe_and_its_children(make_manager, tmp_path):
    pids = tmp_path / "pids"
    probe = ("import os, subprocess, time; p = subprocess.Popen(['sleep', '60']); "
             f"open({str(pids)!r}, 'a').write(f'{{os.getpid()}} {{p.pid}}\\n'); time.sleep(60)")
    cfg = specs(svc={"command": "sleep", "args": ["60"],
                     "health_check": {"type": "exec", "exec_command": [PYTHON, "-c", probe],
                                      "timeout": 0.5, "interval": 0.6, "retries": 1}})
    async with make_manager(cfg) as pm:
        await pm.start("svc")
        sup = pm.supervisor("svc")
        assert await sup.wait_until(health_is("unhealthy"), timeout=10)
        result = pm.describe("svc")["health_checks"][-1]
        assert not result["ok"] and "timed out" in result["output"]
        spawned = [int(p) for line in pids.read_text().splitlines() for p in line.split()]
        assert len(spawned) >= 2
        await pm.stop("svc")
    with trio.fail_after(5):
        while any(pid_alive(p) for p in spawned):
            await trio.sleep(0.02)


async def test_exec_probe_keeps_an_output_excerpt_and_exit_status(make_manager):
    cfg = specs(svc={"command": "sleep", "args": ["60"],
                     "health_check": {"type": "exec", "interval": 0.1, "retries": 1,
                                      "exec_command": ["sh", "-c", "echo not ready; exit 3"]}})
    async with make_manager(cfg) as pm:
        await pm.start("svc")
        assert await pm.supervisor("svc").wait_until(health_is("unhealthy"), timeout=10)
        result = pm.describe("svc")["health_checks"][-1]
        assert result["status"] == 3 and "not ready" in result["output"]


async def test_restart_after_consecutive_failures_kills_and_restarts(make_manager):
    cfg = specs(svc={"command": "sleep", "args": ["60"], "restart": "on-failure",
                     "restart_sec": 0.05, "start_limit_burst": 100,
                     "health_check": {"type": "exec", "exec_command": ["false"], "interval": 0.05,
                                      "retries": 1, "restart_after": 3}})
    async with make_manager(cfg) as pm:
        with pm.hub.subscribe(processes={"svc"}, types={"state_changed"}) as sub:
            await pm.start("svc")
            with trio.fail_after(10):
                async for ev in sub:
                    if ev["to"] == "failed":
                        break
            assert "health check failed 3 times" in ev["reason"]
            assert await pm.supervisor("svc").wait_until(
                lambda s: s.record.state is State.RUNNING and s.record.runs == 2, timeout=10)


async def test_start_period_ignores_failures_until_the_grace_ends(make_manager):
    cfg = specs(svc={"command": "sleep", "args": ["60"],
                     "health_check": {"type": "exec", "exec_command": ["false"], "interval": 0.05,
                                      "retries": 1, "start_period": 1.5}})
    async with make_manager(cfg) as pm:
        await pm.start("svc")
        sup = pm.supervisor("svc")
        with trio.fail_after(5):
            while len(sup.extras.get("health_checks", [])) < 2:
                await trio.sleep(0.02)
        assert sup.record.health == "starting"
        assert await sup.wait_until(health_is("unhealthy"), timeout=5)


async def test_wait_healthy_dependant_starts_only_after_the_dependency_is_healthy(make_manager, tmp_path):
    flag = tmp_path / "ready"
    cfg = specs(
        db={"command": "sleep", "args": ["60"],
            "health_check": {"type": "exec", "exec_command": ["test", "-f", str(flag)],
                             "interval": 0.05, "retries": 100}},
        app={"command": "sleep", "args": ["60"], "requires": ["db"], "after": ["db"],
             "wait_healthy": True})
    async with make_manager(cfg) as pm:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pm.start, "app")
            db = pm.supervisor("db")
            assert await db.wait_until(lambda s: s.record.state is State.RUNNING, timeout=5)
            await wait_failed_probes(db, 3)  # db has been running, and unhealthy, for 3 probes
            assert pm.supervisor("app").record.state is State.CREATED
            flag.touch()
        assert db.record.health == "healthy"
        assert pm.supervisor("app").record.state is State.RUNNING


async def test_ready_log_line_keeps_a_simple_service_starting_until_it_matches(make_manager):
    script = "import time; print('booting', flush=True); time.sleep(0.4); print('listening on 80', flush=True); time.sleep(60)"
    cfg = specs(svc={"command": PYTHON, "args": ["-c", script], "ready_log_line": r"listening on \d+"})
    async with make_manager(cfg) as pm:
        with pm.hub.subscribe(processes={"svc"}, types={"state_changed"}) as sub:
            rec = await pm.start("svc")
            assert rec["state"] == "running"
            states = [e["to"] for e in iter(sub.get_nowait, None)]
        assert states == ["starting", "running"]
        assert "listening on 80" in [line["line"] for line in pm.logs("svc")]


async def test_ready_log_line_that_never_matches_fails_at_the_start_timeout(make_manager):
    cfg = specs(svc={"command": "sleep", "args": ["60"], "ready_log_line": "never",
                     "timeout_start_sec": 0.3})
    async with make_manager(cfg) as pm:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_start_expecting_timeout, pm, "svc")
            sup = pm.supervisor("svc")
            assert await sup.wait_until(lambda s: s.record.state is State.FAILED, timeout=5)
        assert "start timeout" in sup.record.reason


async def _start_expecting_timeout(pm, name):
    with pytest.raises(errors.SpawnFailed, match="start timeout"):
        await pm.start(name)
