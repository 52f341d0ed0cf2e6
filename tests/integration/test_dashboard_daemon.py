"""The web listener of a real ``dd-procmgrd`` as its watchers see it going away (SPEC §15,
issue 13.6): the stopping events reach every websocket, then a normal close (1001)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import urllib.request
from urllib.parse import urlsplit

import trio
import trio_websocket

from web_daemon import web_daemon

CONFIG = "processes:\n  svc: {command: sleep, args: ['3600'], auto_start: true}\n"


def event_watchers(origin: str) -> float:
    """``dd_procmgr_websocket_clients`` of the daemon's /metrics."""
    with urllib.request.urlopen(origin + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return float(re.search(r"^dd_procmgr_websocket_clients (\S+)$", text, re.M)[1])


async def read_until_closed(ws, into: list) -> int:
    """Append every JSON message to ``into``; the close code once the server closes."""
    try:
        while True:
            into.append(json.loads(await ws.get_message()))
    except trio_websocket.ConnectionClosed as exc:
        return exc.reason.code


async def watch_daemon_stop() -> tuple[list[dict], dict[str, int]]:
    """Start a daemon, watch /events and /logs, SIGTERM it: (events, close code by path)."""
    daemon = await trio.to_thread.run_sync(web_daemon, None, CONFIG)
    try:
        await trio.to_thread.run_sync(daemon.wait_state, "svc", "running")
        base = "ws://" + urlsplit(daemon.origin).netloc
        events, logs, codes = [], [], {}
        async with trio.open_nursery() as nursery:
            async def watch(path, into):
                async with trio_websocket.open_websocket_url(base + path) as ws:
                    codes[path] = await read_until_closed(ws, into)
            nursery.start_soon(watch, "/events", events)
            nursery.start_soon(watch, "/logs?process=svc", logs)
            with trio.fail_after(10):  # the log stream starts with its tail
                while not logs:
                    await trio.sleep(0.02)
            with trio.fail_after(10):  # /events sends nothing before the stop: ask /metrics
                while await trio.to_thread.run_sync(event_watchers, daemon.origin) < 1:
                    await trio.sleep(0.05)
            daemon.proc.send_signal(signal.SIGTERM)
            with trio.fail_after(30):
                while len(codes) < 2:
                    await trio.sleep(0.05)
        await trio.to_thread.run_sync(daemon.proc.wait, 30)
    finally:
        await trio.to_thread.run_sync(daemon.stop)
        shutil.rmtree(daemon.root, ignore_errors=True)
    return events, codes


async def test_websocket_watchers_get_a_going_away_close_when_the_daemon_stops():
    _, codes = await watch_daemon_stop()
    assert codes == {"/events": 1001, "/logs?process=svc": 1001}  # never an abrupt 1006


async def test_websocket_watchers_see_the_stopping_events_before_the_close():
    events, _ = await watch_daemon_stop()
    kinds = [(e["type"], e.get("process"), e.get("to")) for e in events]
    assert kinds[0] == ("daemon_stopping", None, None), kinds
    assert ("state_changed", "svc", "stopping") in kinds
    assert ("state_changed", "svc", "stopped") in kinds
    assert kinds[-1][0] == "daemon_stopped"
