"""The daemon's HTTP side: the live event stream over a websocket, and Prometheus metrics.

``--ws HOST:PORT`` serves ``/events`` (websocket upgrade) and ``/metrics`` (plain GET) on
one port; ``--metrics HOST:PORT`` serves ``/metrics`` alone. A tiny front reads each
connection's request head (bounded, with h11): plain requests are answered here, a
websocket upgrade is replayed into trio-websocket. Guarantees:

* listeners bind where asked; a non-loopback address without ``--token-file`` is refused
  at start. With a token file, every request needs ``Authorization: Bearer <token>`` (or
  ``?token=<token>`` for browsers' websockets), else 401;
* ``/events?process=a&process=b&type=state_changed&max_queue=N`` sends matching events
  as JSON text frames. Each client reads from its own bounded subscription: a slow client
  loses events and is sent ``{"type": "lost", "count": N}``; the daemon never waits for it;
* nothing a client sends can take the daemon down: each connection is its own task tree
  with a bounded head and a read deadline.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import h11
import trio
import trio_websocket

from trio_procmgr.endpoints import parse_hostport

if TYPE_CHECKING:
    from trio_procmgr.engine.manager import ProcessManager

log = logging.getLogger("trio_procmgr.web")

HEAD_TIMEOUT = 10.0
MAX_HEAD = 16 * 1024
DEFAULT_QUEUE = 1000
MAX_QUEUE = 100_000


@dataclass(slots=True)
class WebInfo:
    """What ``serve_web`` reports through ``task_status.started`` (bound addresses)."""

    ws_address: tuple[str, int] | None = None
    metrics_address: tuple[str, int] | None = None


class ReplayStream(trio.abc.Stream):
    """A stream whose first bytes were already read: hands them out again first."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            n = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            await trio.lowlevel.checkpoint()
            return data
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()


class WebServer:
    def __init__(self, manager: "ProcessManager", token: str | None) -> None:
        self.manager = manager
        self.token = token
        self.stats = manager.__dict__.setdefault("web_stats", {"clients": 0, "connections": 0})

    # ---------------------------------------------------------------- front
    async def handle(self, stream: trio.abc.Stream, *, events: bool) -> None:
        """One connection: never raises (a broken client only ends its own task)."""
        self.stats["connections"] += 1
        try:
            async with stream:
                await self._handle(stream, events)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError,
                trio_websocket.ConnectionClosed, trio_websocket.HandshakeError, OSError):
            pass
        except Exception:  # a bug serving one client must not end the listener
            log.exception("web: error while serving a connection")

    async def _handle(self, stream: trio.abc.Stream, events: bool) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        raw = bytearray()
        request = None
        with trio.move_on_after(HEAD_TIMEOUT):
            while request is None:
                event = conn.next_event()
                if isinstance(event, h11.Request):
                    request = event
                elif event is h11.NEED_DATA:
                    data = await stream.receive_some(MAX_HEAD)
                    raw += data
                    conn.receive_data(data)
                else:
                    return
        if request is None:
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        target = urlsplit(request.target.decode("latin-1"))
        query = parse_qs(target.query)
        if not self._authorized(headers, query):
            await respond(stream, conn, 401, b"missing or wrong bearer token\n",
                          extra=[("WWW-Authenticate", 'Bearer realm="dd-procmgrd"')])
            return
        upgrade = "websocket" in headers.get("upgrade", "").lower()
        if upgrade and events and target.path == "/events":
            await self._serve_events(ReplayStream(stream, bytes(raw)), query)
        elif request.method != b"GET":
            await respond(stream, conn, 405, b"only GET\n", extra=[("Allow", "GET")])
        elif target.path == "/metrics":
            from trio_procmgr.daemon.metrics import render

            body, ctype = render(self.manager)
            await respond(stream, conn, 200, body, content_type=ctype)
        elif target.path == "/events" and events:
            await respond(stream, conn, 426, b"/events is a websocket: send an Upgrade request\n",
                          extra=[("Upgrade", "websocket")])
        else:
            paths = "/events, /metrics" if events else "/metrics"
            await respond(stream, conn, 404, f"not found; this listener serves {paths}\n".encode())

    def _authorized(self, headers: dict[str, str], query: dict[str, list[str]]) -> bool:
        if self.token is None:
            return True
        auth = headers.get("authorization", "")
        offered = auth[7:].strip() if auth[:7].lower() == "bearer " else \
            (query.get("token") or [""])[0]
        return hmac.compare_digest(offered.encode(), self.token.encode())

    # ---------------------------------------------------------------- events
    async def _serve_events(self, stream: trio.abc.Stream, query: dict[str, list[str]]) -> None:
        try:
            maxsize = int((query.get("max_queue") or [DEFAULT_QUEUE])[0])
        except ValueError:
            maxsize = DEFAULT_QUEUE
        maxsize = max(1, min(maxsize, MAX_QUEUE))
        async with trio.open_nursery() as nursery:
            request = await trio_websocket.wrap_server_stream(nursery, stream)
            ws = await request.accept()
            self.stats["clients"] += 1
            try:
                with self.manager.hub.subscribe(processes=query.get("process") or None,
                                                types=query.get("type") or None,
                                                maxsize=maxsize) as sub:
                    nursery.start_soon(_watch_close, ws, nursery.cancel_scope)
                    async for event in sub:
                        await ws.send_message(json.dumps(event, default=str))
                await ws.aclose(1001, "daemon stopping")
            finally:
                self.stats["clients"] -= 1
                nursery.cancel_scope.cancel()


async def _watch_close(ws: Any, scope: trio.CancelScope) -> None:
    """Discard what the client sends; end the connection's tree once it closes."""
    try:
        while True:
            await ws.get_message()
    except trio_websocket.ConnectionClosed:
        scope.cancel()


async def respond(stream: trio.abc.Stream, conn: h11.Connection, status: int, body: bytes, *,
                  content_type: str = "text/plain; charset=utf-8",
                  extra: list[tuple[str, str]] | None = None) -> None:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))),
               ("Connection", "close"), *(extra or [])]
    data = conn.send(h11.Response(status_code=status, headers=headers))
    data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
    await stream.send_all(data)


async def serve_web(manager: "ProcessManager", *, ws: str | None, metrics: str | None,
                    token_file: str | None, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the event websocket (``ws``) and/or metrics (``metrics``) until cancelled.

    Raises ListenerError (a DaemonStartError; before ``task_status.started``) for a bad
    address, an unreadable token file, a non-loopback address without a token (the rule
    lives in :mod:`trio_procmgr.listener_policy`), or a failed bind.
    """
    from trio_procmgr.listener_policy import ListenerError, plan_listeners

    plan = plan_listeners(ws=ws, metrics=metrics, token_file=token_file)
    token = plan.token
    wanted = [(e.flag, e.flag == "--ws", str(e)) for e in (plan.ws, plan.metrics) if e is not None]
    server = WebServer(manager, token)
    info = WebInfo()
    async with trio.open_nursery() as nursery:
        for flag, events, text in wanted:
            host, port = parse_hostport(text)
            try:
                listeners = await trio.open_tcp_listeners(port, host=host)
            except OSError as exc:
                raise ListenerError(f"{flag} {text}: cannot listen: {exc}") from None
            bound = listeners[0].socket.getsockname()[:2]
            if events:
                info.ws_address = bound
            else:
                info.metrics_address = bound
            log.info("serving %s on %s:%d", "/events and /metrics" if events else "/metrics", *bound)

            async def handler(stream: trio.abc.Stream, events: bool = events) -> None:
                await server.handle(stream, events=events)

            nursery.start_soon(trio.serve_listeners, handler, listeners)
        task_status.started(info)
