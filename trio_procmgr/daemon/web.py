"""The daemon's HTTP side: the dashboard, its JSON API, live websockets, and metrics.

``--ws HOST:PORT`` serves the dashboard page ``/`` and its ``/assets/*``, the API
``/api/processes[/NAME[/ACTION]]`` (webapi.py), the websockets ``/events``, ``/logs`` and
``/stats`` (webstreams.py) and ``/metrics``; ``--metrics HOST:PORT`` serves ``/metrics``
alone. A tiny front reads each connection's request head (bounded, with h11): plain
requests are answered here, a websocket upgrade is replayed into trio-websocket.

Access (SPEC §14), decided in one place, :func:`access_verdict`:

* the page and its assets are public (they hold no data);
* without ``--token-file`` the listener is read-only: anyone local may watch (events,
  logs, stats, metrics, the API's GETs, env values redacted), every change is refused
  with 403, and a non-loopback address is refused at start;
* with a token file every other request needs it: ``Authorization: Bearer <token>``;
  a websocket may instead send ``{"token": ...}`` as its first message (browsers cannot
  set headers on websockets); ``?token=`` in the URL still works for old clients but the
  page never uses it (URLs end up in logs);
* a browser request from another origin (``Origin`` not this listener) is refused, and in
  read-only mode the ``Host`` must be a loopback name (no DNS-rebinding page can watch).

Nothing a client sends can take the daemon down: each connection is its own task tree
with a bounded head and a read deadline.
"""

from __future__ import annotations

import json
import logging
import socket as stdsocket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import h11
import trio
import trio_websocket

from trio_procmgr import errors
from trio_procmgr.daemon import dashboard, webapi, webstreams
from trio_procmgr.daemon.livestats import LiveStats
from trio_procmgr.endpoints import is_loopback

if TYPE_CHECKING:
    from trio_procmgr.engine.manager import ProcessManager

log = logging.getLogger("trio_procmgr.web")

HEAD_TIMEOUT = 10.0
MAX_HEAD = 16 * 1024
DEFAULT_QUEUE = 1000
MAX_QUEUE = 100_000
MAX_UNAUTHENTICATED = 64
WEBSOCKET_PATHS = ("/events", "/logs", "/stats")

ALLOW = "allow"
UNAUTHENTICATED = "unauthenticated"
READ_ONLY = "read_only"


def access_verdict(kind: str, token: str | None, offered: str | None) -> str:
    """May a request of ``kind`` (static, read, mutate) go on? Pure; the one place the
    listener's access rules live.

    ALLOW, UNAUTHENTICATED (401: a token is configured and was not given or is wrong)
    or READ_ONLY (403: no token is configured, so nothing may change).
    """
    if kind == "static":
        return ALLOW
    if token is None:
        return READ_ONLY if kind == "mutate" else ALLOW
    return ALLOW if webstreams.token_matches(offered, token) else UNAUTHENTICATED


def offered_token(headers: dict[str, str], query: dict[str, list[str]]) -> str | None:
    """The token a request carries: the bearer header, else the legacy ``?token=``."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    tokens = query.get("token")
    return tokens[0] if tokens else None


def origin_allowed(headers: dict[str, str], *, read_only: bool) -> bool:
    """Refuse cross-origin browser requests and, when read-only, non-loopback Host names.

    Websockets are not covered by the browser's same-origin policy, so without this any
    web page could read the event stream through a local browser.
    """
    host = headers.get("host", "")
    origin = headers.get("origin")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        return False
    if read_only and host:
        return is_loopback(host_name(host))
    return True


def host_name(host: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8080`` -> ``::1``, ``a:80`` -> ``a``)."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host


def request_kind(method: str, path: str) -> str:
    """static (the page), mutate (an API call that changes something) or read."""
    if dashboard.is_asset(path):
        return "static"
    if path.startswith(webapi.PREFIX) and method != "GET":
        return "mutate"
    return "read"


@dataclass(slots=True)
class WebInfo:
    """What ``serve_web`` reports through ``task_status.started`` (bound addresses)."""

    ws_address: tuple[str, int] | None = None
    metrics_address: tuple[str, int] | None = None
    #: Listening fds by flag ("--ws", "--metrics"), handed to a re-exec'd image.
    fds: dict[str, list[int]] = field(default_factory=dict)


@dataclass(slots=True)
class Request:
    """One parsed request head."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    @property
    def upgrade(self) -> bool:
        return "websocket" in self.headers.get("upgrade", "").lower()


class ReplayStream(trio.abc.Stream):
    """A stream whose first bytes were already read: hands them out again first."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
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


async def read_head(stream: trio.abc.Stream) -> tuple[h11.Connection, Request | None, bytes]:
    """Read one request head (at most MAX_HEAD bytes, within HEAD_TIMEOUT)."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    raw = bytearray()
    with trio.move_on_after(HEAD_TIMEOUT):
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                           for k, v in event.headers}
                target = urlsplit(event.target.decode("latin-1"))
                return conn, Request(event.method.decode("latin-1"), target.path,
                                     parse_qs(target.query), headers), bytes(raw)
            if event is not h11.NEED_DATA:
                break
            data = bytes(await stream.receive_some(MAX_HEAD))
            raw += data
            conn.receive_data(data)
    return conn, None, bytes(raw)


class WebServer:
    def __init__(self, manager: "ProcessManager", token: str | None) -> None:
        self.manager = manager
        self.token = token
        self.stats = manager.web_stats
        self.live = LiveStats(manager)
        self.stopping = False
        self.unauthenticated = 0
        manager.hub.listeners.append(self._on_event)

    @property
    def read_only(self) -> bool:
        return self.token is None

    def _on_event(self, event: dict[str, Any]) -> None:
        if event["type"] in ("daemon_stopping", "daemon_stopped"):
            self.stopping = True
        if event["type"] == "daemon_stopped":
            self.live.close()

    def close(self) -> None:
        """Detach from the manager (the listener is going away)."""
        self.live.close()
        if self._on_event in self.manager.hub.listeners:
            self.manager.hub.listeners.remove(self._on_event)

    def is_stopping(self) -> bool:
        return self.stopping

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
        conn, req, raw = await read_head(stream)
        if req is None:
            return
        if not events and req.path != "/metrics":
            await respond(stream, conn, 404, b"not found; this listener serves /metrics\n")
            return
        if not origin_allowed(req.headers, read_only=self.read_only):
            await respond_json(stream, conn, 403, webapi.error_body(
                "PERMISSION_DENIED", "cross-origin request refused (Origin/Host is not "
                "this listener)"))
            return
        verdict = access_verdict(request_kind(req.method, req.path), self.token,
                                 offered_token(req.headers, req.query))
        deferred = (verdict == UNAUTHENTICATED and req.upgrade and req.path in WEBSOCKET_PATHS
                    and "authorization" not in req.headers and "token" not in req.query)
        if verdict == UNAUTHENTICATED and not deferred:
            await respond_json(stream, conn, 401, webapi.error_body(
                "UNAUTHENTICATED", "missing or wrong bearer token"),
                extra=[("WWW-Authenticate", 'Bearer realm="dd-procmgrd"')])
        elif verdict == READ_ONLY:
            await respond_json(stream, conn, 403, webapi.error_body(
                "PERMISSION_DENIED", "this listener is read-only: start dd-procmgrd with "
                "--token-file to allow changes from the web"))
        elif req.upgrade and req.path in WEBSOCKET_PATHS:
            await self._websocket(ReplayStream(stream, raw), conn, req, authenticate=deferred)
        else:
            await self._plain(stream, conn, req)

    async def _plain(self, stream: trio.abc.Stream, conn: h11.Connection, req: Request) -> None:
        if dashboard.is_asset(req.path) and req.method == "GET":
            body, ctype = dashboard.asset(req.path, read_only=self.read_only)
            await respond(stream, conn, 200, body, content_type=ctype,
                          extra=dashboard.SECURITY_HEADERS)
        elif req.path == webapi.PREFIX or req.path.startswith(webapi.PREFIX + "/"):
            await self._api(stream, conn, req)
        elif req.method != "GET":
            await respond(stream, conn, 405, b"only GET\n", extra=[("Allow", "GET")])
        elif req.path == "/metrics":
            from trio_procmgr.daemon.metrics import render

            body, ctype = render(self.manager)
            await respond(stream, conn, 200, body, content_type=ctype)
        elif req.path in WEBSOCKET_PATHS:
            await respond(stream, conn, 426, f"{req.path} is a websocket: send an Upgrade "
                          "request\n".encode(), extra=[("Upgrade", "websocket")])
        else:
            await respond(stream, conn, 404, b"not found; this listener serves /, /api/processes, "
                          b"/events, /logs, /stats, /metrics\n")

    async def _api(self, stream: trio.abc.Stream, conn: h11.Connection, req: Request) -> None:
        try:
            route = webapi.parse_route(req.method, req.path)
        except webapi.RouteError as exc:
            await respond_json(stream, conn, exc.status, exc.body)
            return
        status, body = await webapi.answer(self.manager, route, read_only=self.read_only)
        await respond_json(stream, conn, status, body)

    # ---------------------------------------------------------------- websockets
    async def _websocket(self, stream: trio.abc.Stream, conn: h11.Connection, req: Request,
                         *, authenticate: bool) -> None:
        if authenticate and self.unauthenticated >= MAX_UNAUTHENTICATED:
            await respond_json(stream, conn, 503, webapi.error_body(
                "RESOURCE_EXHAUSTED", "too many connections waiting to authenticate"))
            return
        async with trio.open_nursery() as nursery:
            request = await trio_websocket.wrap_server_stream(
                nursery, stream, message_queue_size=4,
                max_message_size=webstreams.MAX_CLIENT_MESSAGE)
            ws = await request.accept()
            try:
                if authenticate and not await self._authenticate(ws):
                    return
                nursery.start_soon(_discard_client_messages, ws, nursery.cancel_scope)
                await self._stream(ws, req)
            finally:
                nursery.cancel_scope.cancel()

    async def _authenticate(self, ws: trio_websocket.WebSocketConnection) -> bool:
        assert self.token is not None
        self.unauthenticated += 1
        try:
            return await webstreams.authenticate(ws, self.token)
        finally:
            self.unauthenticated -= 1

    async def _stream(self, ws: trio_websocket.WebSocketConnection, req: Request) -> None:
        if req.path == "/logs":
            await self._logs(ws, req)
        elif req.path == "/stats":
            await webstreams.serve_stats(ws, self.live, self.is_stopping)
        else:
            self.stats["clients"] += 1
            try:
                await webstreams.serve_events(ws, self.manager, req.query,
                                              queue_size(req.query), self.is_stopping)
            finally:
                self.stats["clients"] -= 1

    async def _logs(self, ws: trio_websocket.WebSocketConnection, req: Request) -> None:
        """``/logs``: resolved only once the client is authenticated, so an unknown name
        tells nothing to a client without the token (close code 4404)."""
        try:
            name = self.manager.registry.resolve((req.query.get("process") or [""])[0])
        except errors.ProcMgrError as exc:
            with trio.move_on_after(webstreams.CLOSE_TIMEOUT):
                await ws.aclose(webstreams.CLOSE_NOT_FOUND, exc.message[:120])
            return
        await webstreams.serve_logs(ws, self.manager, name,
                                    webstreams.log_lines_wanted(req.query), self.is_stopping)


def queue_size(query: dict[str, list[str]]) -> int:
    """``?max_queue=N`` of an ``/events`` request, within 1..MAX_QUEUE."""
    values = query.get("max_queue")
    try:
        wanted = int(values[0]) if values else DEFAULT_QUEUE
    except ValueError:
        wanted = DEFAULT_QUEUE
    return max(1, min(wanted, MAX_QUEUE))


async def _discard_client_messages(ws: Any, scope: trio.CancelScope) -> None:
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


async def respond_json(stream: trio.abc.Stream, conn: h11.Connection, status: int,
                       body: dict[str, Any], *,
                       extra: list[tuple[str, str]] | None = None) -> None:
    await respond(stream, conn, status, json.dumps(body, default=str).encode(),
                  content_type="application/json", extra=[("Cache-Control", "no-store"),
                                                          *(extra or [])])


async def serve_web(manager: "ProcessManager", *, ws: str | None, metrics: str | None,
                    token_file: str | None, inherited: dict[str, list[int]] | None = None,
                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the dashboard and websockets (``ws``) and/or metrics (``metrics``) until
    cancelled.

    Raises ListenerError (a DaemonStartError; before ``task_status.started``) for a bad
    address, an unreadable token file, a non-loopback address without a token (the rule
    lives in :mod:`trio_procmgr.listener_policy`), or a failed bind.
    """
    from trio_procmgr.listener_policy import ListenerError, plan_listeners

    listeners_plan = plan_listeners(ws=ws, metrics=metrics, token_file=token_file)
    token = listeners_plan.token
    plan = [(e.flag, e.flag == "--ws", e.host, e.port)
            for e in (listeners_plan.ws, listeners_plan.metrics) if e is not None]
    server = WebServer(manager, token)
    info = WebInfo()
    async with trio.open_nursery() as nursery:
        for flag, events, host, port in plan:
            try:
                fds = (inherited or {}).get(flag)
                if fds:  # a re-exec: the same listening sockets
                    listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(
                        stdsocket.socket(fileno=fd))) for fd in fds]
                else:
                    listeners = await trio.open_tcp_listeners(port, host=host)
            except OSError as exc:
                raise ListenerError(f"{flag} {host}:{port}: cannot listen: {exc}") from None
            info.fds[flag] = [listener.socket.fileno() for listener in listeners]
            bound = listeners[0].socket.getsockname()[:2]
            if events:
                info.ws_address = bound
            else:
                info.metrics_address = bound
            log.info("serving %s on %s:%d (%s)", "the dashboard, /events and /metrics"
                     if events else "/metrics", *bound, "read-only" if token is None
                     else "token required")

            async def handler(stream: trio.abc.Stream, events: bool = events) -> None:
                await server.handle(stream, events=events)

            nursery.start_soon(trio.serve_listeners, handler, listeners)
        if ws:
            nursery.start_soon(server.live.run)
        task_status.started(info)
        try:
            await trio.sleep_forever()
        finally:
            server.close()
