"""The web listener's websocket streams: ``/events``, ``/logs`` and ``/stats``.

Each stream is fed from a bounded source (an event subscription, a log follower, the
latest stats snapshot), so a slow browser loses items and is told, and never stalls the
daemon. Every stream ends with a normal close: 1001 ("going away") when the daemon stops,
after what was queued (``daemon_stopping``, the processes' stopping/stopped events,
``daemon_stopped``) has been sent — never an abrupt 1006.

Browsers cannot set headers on a websocket, so with a token configured a client that sent
no ``Authorization`` header authenticates with its first message, ``{"token": "..."}``
(:func:`authenticate`), within :data:`AUTH_TIMEOUT` seconds and at most
:data:`MAX_CLIENT_MESSAGE` bytes; otherwise the server closes with code 4401.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any, Callable

import trio
import trio_websocket

from trio_procmgr.feeds import BoundedFeed

if TYPE_CHECKING:
    from trio_procmgr.daemon.livestats import LiveStats
    from trio_procmgr.engine.manager import ProcessManager

AUTH_TIMEOUT = 10.0
MAX_CLIENT_MESSAGE = 64 * 1024
CLOSE_GOING_AWAY = 1001
CLOSE_NORMAL = 1000
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
DRAIN_ON_CANCEL = 1000  # items still sent when the listener is cancelled mid-stream
CLOSE_TIMEOUT = 1.0
DEFAULT_LOG_LINES = 200
MAX_LOG_LINES = 1000


def token_matches(offered: str | None, token: str) -> bool:
    """Constant-time comparison of a client's token with the configured one."""
    return offered is not None and hmac.compare_digest(offered.encode(), token.encode())


def token_from_message(message: str | bytes) -> str | None:
    """The token of an auth message ``{"token": "..."}``; None for anything else."""
    try:
        data = json.loads(message)
    except (ValueError, UnicodeDecodeError):
        return None
    token = data.get("token") if isinstance(data, dict) else None
    return token if isinstance(token, str) else None


async def authenticate(ws: trio_websocket.WebSocketConnection, token: str) -> bool:
    """Wait for the first message and check its token; close with 4401 when it is wrong,
    missing or late. True when the client may go on."""
    message = None
    with trio.move_on_after(AUTH_TIMEOUT):
        message = await ws.get_message()
    if token_matches(token_from_message(message) if message is not None else None, token):
        return True
    why = "timed out waiting for the token" if message is None else "missing or wrong token"
    with trio.move_on_after(CLOSE_TIMEOUT):
        await ws.aclose(CLOSE_UNAUTHORIZED, why)
    return False


async def pump(ws: trio_websocket.WebSocketConnection, feed: Any,
               encode: Callable[[Any], str], stopping: Callable[[], bool]) -> None:
    """Send every item of ``feed`` until it ends, then close normally: 1001 when the
    daemon is stopping, else 1000. When the listener itself is cancelled (the daemon
    shutting down its listeners), what is already queued is still sent and the close is
    1001, within :data:`CLOSE_TIMEOUT`."""
    try:
        async for item in feed:
            await ws.send_message(encode(item))
    except trio.Cancelled:
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
            await _drain(ws, feed, encode)
            await ws.aclose(CLOSE_GOING_AWAY, "daemon stopping")
        raise
    code = CLOSE_GOING_AWAY if stopping() else CLOSE_NORMAL
    with trio.move_on_after(CLOSE_TIMEOUT):
        await ws.aclose(code, "daemon stopping" if code == CLOSE_GOING_AWAY else "stream ended")


async def _drain(ws: trio_websocket.WebSocketConnection, feed: Any,
                 encode: Callable[[Any], str]) -> None:
    for _ in range(DRAIN_ON_CANCEL):
        item = feed.get_nowait() if isinstance(feed, BoundedFeed) else None
        if item is None:
            return
        await ws.send_message(encode(item))


def _json(item: Any) -> str:
    return json.dumps(item, default=str)


async def serve_events(ws: trio_websocket.WebSocketConnection, manager: "ProcessManager",
                       query: dict[str, list[str]], maxsize: int,
                       stopping: Callable[[], bool]) -> None:
    """``/events``: matching events as JSON text frames (filters: process, type)."""
    with manager.hub.subscribe(processes=query.get("process") or None,
                               types=query.get("type") or None, maxsize=maxsize) as sub:
        await pump(ws, sub, _json, stopping)


def log_lines_wanted(query: dict[str, list[str]]) -> int:
    """``?lines=N`` of a ``/logs`` request, within 0..MAX_LOG_LINES (default 200)."""
    values = query.get("lines")
    try:
        wanted = int(values[0]) if values else DEFAULT_LOG_LINES
    except ValueError:
        wanted = DEFAULT_LOG_LINES
    return max(0, min(wanted, MAX_LOG_LINES))


async def serve_logs(ws: trio_websocket.WebSocketConnection, manager: "ProcessManager",
                     name: str, lines: int, stopping: Callable[[], bool]) -> None:
    """``/logs?process=NAME``: first ``{"type": "tail", "lines": [...]}`` (the ring's
    last lines), then one ``{"type": "line", ...}`` per new line. The follower is
    attached before the tail is read, with no checkpoint between, so no line is missed
    or repeated."""
    with manager.follow_logs(name) as sub:
        tail = manager.logs(name, lines=lines)
        await ws.send_message(_json({"type": "tail", "process": name, "lines": tail}))
        await pump(ws, sub, lambda item: _json({"type": "line", **item}), stopping)


async def serve_stats(ws: trio_websocket.WebSocketConnection, stats: "LiveStats",
                      stopping: Callable[[], bool]) -> None:
    """``/stats``: the latest stats snapshot every few seconds, pushed by the server."""
    with stats.watch():
        await pump(ws, _Snapshots(stats), lambda text: text, stopping)


class _Snapshots:
    """The stats snapshots as an async iterator of JSON texts (newest only)."""

    def __init__(self, stats: "LiveStats") -> None:
        self.stats = stats
        self.seen = stats.version  # only snapshots taken from now on

    def __aiter__(self) -> "_Snapshots":
        return self

    async def __anext__(self) -> str:
        try:
            self.seen, text = await self.stats.next_snapshot(self.seen)
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        return text
