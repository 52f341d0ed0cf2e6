"""Clients of the dd-procmgr RPC: :class:`BlockingClient` (scripts, the CLI) and
:class:`AsyncClient` (Trio programs).

Both speak through the sans-IO :class:`~trio_procmgr.rpc.protocol.Connection` and the
precompiled schema table, so params and results are plain dicts keyed by field *name*.
Importing this module costs neither Trio nor marshmallow nor yaml: ``AsyncClient`` imports
Trio when it connects. Errors the daemon reports are raised as the matching
:mod:`trio_procmgr.errors` class; failing to connect raises :class:`DaemonUnreachable`.
"""

from __future__ import annotations

import os
import socket

from dd_procmgr_rpc_schema.codec import Codec, MethodInfo, default_codec
from trio_procmgr import errors
from trio_procmgr.endpoints import parse_hostport
from trio_procmgr.paths import default_socket_path, read_only_socket_path
from trio_procmgr.rpc import protocol as P
from trio_procmgr.rpc.framing import DEFAULT_MAX_FRAME

TYPE_CHECKING = False  # typing costs ~3 ms of every CLI run; annotations only
if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Generator
    from typing import Any

    #: A decoded struct, by field name (the schema says which fields it has).
    Record = dict[str, Any]
    #: Spelled here too because ``AsyncClient.list`` shadows the builtin in its body.
    Records = list[Record]
    Names = list[str]

ROOT_INTERFACE = "ProcessManager"


class DaemonUnreachable(ConnectionError):
    """No daemon answered at ``socket`` (a path or HOST:PORT); ``reason`` says why."""

    def __init__(self, socket: str, reason: str, errno: int | None = None) -> None:
        super().__init__(f"cannot reach the daemon at {socket}: {reason}")
        self.socket = socket
        self.reason = reason
        self.errno = errno


def encode_params(codec: Codec, info: MethodInfo, params: dict[str, Any]) -> dict[int, Any]:
    """Wire params for ``info``; an unknown parameter name is a TypeError (caller's bug)."""
    known = codec.structs[info.params]["by_name"]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise TypeError(f"{info.name}() got unknown parameter(s): {', '.join(unknown)}; "
                        f"known: {', '.join(known) or 'none'}")
    return codec.to_wire(info.params, params)


def _struct(results: Record, field: str) -> Record:
    """The struct-valued field ``field`` of a decoded results struct."""
    struct: Record = results[field]
    return struct


def _structs(results: Record, field: str) -> Records:
    """The list-of-structs field ``field`` of a decoded results struct."""
    structs: Records = results[field]
    return structs


def bootstrap_params(codec: Codec, client_name: str, token: str | None) -> dict[int, Any]:
    return codec.to_wire("BootstrapParams", {
        "protocol_version": codec.protocol_version, "client_name": client_name,
        "max_frame": DEFAULT_MAX_FRAME, "token": token})


class BlockingClient:
    """A synchronous client: one connection, one call at a time.

    ``timeout`` bounds connecting and each non-streaming call (``errors.Timeout`` after
    cancelling the call with FINISH); streams wait for items indefinitely.
    """

    def __init__(self, socket_path: str | None = None, *, tcp: str | None = None,
                 token: str | None = None, timeout: float | None = 10.0,
                 client_name: str = "dd-procmgr") -> None:
        self.codec = default_codec()
        self.timeout = timeout
        self.address = tcp if tcp is not None else (socket_path or default_socket_path())
        self.conn = P.Connection("client")
        self._sock = self._connect(tcp, token)
        try:
            qid, data = self.conn.bootstrap(bootstrap_params(self.codec, client_name, token))
            self._sock.sendall(data)
            self.server = self.codec.from_wire("BootstrapResults", self._wait_answer(qid, "bootstrap"))
            self._sock.sendall(self.conn.finish(qid))
        except BaseException:
            self._sock.close()
            raise

    def _connect(self, tcp: str | None, token: str | None) -> socket.socket:
        try:
            if tcp is not None:
                sock = socket.create_connection(parse_hostport(tcp), timeout=self.timeout)
            else:
                sock = self._connect_unix(self.address)
        except OSError as exc:
            raise DaemonUnreachable(self.address, exc.strerror or str(exc) or type(exc).__name__,
                                    exc.errno) from None
        return sock

    def _connect_unix(self, path: str) -> socket.socket:
        """Connect to ``path``; a user the socket's mode shuts out (EACCES) is connected
        to its read-only companion instead, when the daemon has one."""
        try:
            return self._open_unix(path)
        except PermissionError:
            companion = read_only_socket_path(path)
            if not os.path.exists(companion):
                raise
            sock = self._open_unix(companion)
            self.address = companion
            return sock

    def _open_unix(self, path: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return sock

    # -- public API ------------------------------------------------------------------------
    def call(self, method: str, **params: Any) -> Any:
        """Call a ProcessManager method; returns its results struct as a by-name dict."""
        info = self._method(method)
        if info.streams(params):
            raise TypeError(f"{method} with these params streams; use .stream()")
        qid = self._send_call(info, params)
        try:
            results = self._wait_answer(qid, method)
        finally:
            self._finish(qid)
        return self.codec.from_wire(info.results, results)

    def call_many(self, method: str, params_list: list[dict[str, Any]], *,
                  window: int = 32) -> list[Any]:
        """Make the same call for each params dict, ``window`` of them in flight at once
        on this one connection (the RPC answers in any order). Returns, in order, each
        results struct or the ProcMgrError that call raised — one slow or failing call
        does not hold back the others (``stop --all`` of 1000 processes).
        """
        info = self._method(method)
        results: list[Any] = [None] * len(params_list)
        pending: dict[int, int] = {}
        queued = iter(enumerate(params_list))

        def refill() -> None:
            for index, params in queued:
                pending[self._send_call(info, params)] = index
                if len(pending) >= window:
                    return

        refill()
        while pending:
            event = self._next_event(method)
            index = pending.pop(event.qid, None)
            if index is None:
                continue
            self._finish(event.qid)
            if isinstance(event, P.Return):
                results[index] = self.codec.from_wire(info.results, event.results)
            elif isinstance(event, P.Failure):
                results[index] = errors.error_for_code(event.code, event.message, dict(event.details))
            else:
                results[index] = errors.ProtocolError(f"{method}: unexpected stream item")
            refill()
        return results

    def stream(self, method: str, **params: Any) -> Generator[Record, None, Record]:
        """Iterate a streaming method's items (by-name dicts); closing the iterator
        cancels the stream. The generator's return value is the summary results."""
        info = self._method(method)
        if info.stream is None:
            raise TypeError(f"{method} does not stream; use .call()")
        if info.stream_when is not None:
            params.setdefault(info.stream_when, True)
        qid = self._send_call(info, params)
        self._sock.settimeout(None)
        try:
            while True:
                event = self._next_for(qid)
                if isinstance(event, P.StreamItem):
                    yield self.codec.from_wire(info.stream, event.item)
                elif isinstance(event, P.Return):
                    return self.codec.from_wire(info.results, event.results)
                else:
                    raise errors.error_for_code(event.code, event.message, dict(event.details))
        finally:
            if not self.conn.closed:  # the daemon may have gone: its socket is closed
                self._sock.settimeout(self.timeout)
                self._finish(qid)

    def close(self) -> None:
        try:
            self._sock.close()
        finally:
            self.conn.closed = True

    def __enter__(self) -> "BlockingClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------
    def _method(self, method: str) -> MethodInfo:
        try:
            return self.codec.method(ROOT_INTERFACE, method)
        except KeyError:
            raise errors.InvalidArgument(f"unknown RPC method {method!r}", method=method) from None

    def _send_call(self, info: MethodInfo, params: dict[str, Any]) -> int:
        qid, data = self.conn.call(P.ROOT, info.interface_ordinal, info.ordinal,
                                   encode_params(self.codec, info, params))
        self._sendall(data)
        return qid

    def _sendall(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise DaemonUnreachable(self.address, f"connection lost: {exc}") from None

    def _finish(self, qid: int) -> None:
        if self.conn.closed:
            return
        try:
            self._sock.sendall(self.conn.finish(qid))
        except OSError:
            pass

    def _wait_answer(self, qid: int, what: str) -> Any:
        event = self._next_for(qid, what)
        if isinstance(event, P.Return):
            return event.results
        if isinstance(event, P.Failure):
            raise errors.error_for_code(event.code, event.message, dict(event.details))
        raise errors.ProtocolError(f"{what}: the daemon streamed items for a non-streaming call")

    def _next_for(self, qid: int, what: str = "call") -> Any:
        """The next Return/Failure/StreamItem of question ``qid``."""
        while True:
            event = self._next_event(what)
            if event.qid == qid:
                return event

    def _next_event(self, what: str = "call") -> Any:
        """The next Return/Failure/StreamItem of any question."""
        while True:
            try:
                event = self.conn.next_event()
            except P.RemoteProtocolError as exc:
                self.close()
                raise errors.ProtocolError(f"the daemon sent invalid data: {exc.message}") from None
            if event is P.NEED_DATA:
                self.conn.receive_data(self._recv(what))
                continue
            if isinstance(event, P.Closed):
                self.close()
                raise DaemonUnreachable(self.address, "the daemon closed the connection")
            if isinstance(event, P.Abort):
                self.close()
                raise errors.error_for_code(event.code, event.message)
            if isinstance(event, P.Call):
                assert event.question is not None  # an inbound CALL always has its question
                self._sendall(self.conn.send_exception(event.question, "UNIMPLEMENTED",
                                                       "this client accepts no calls"))
                continue
            if isinstance(event, (P.Return, P.Failure, P.StreamItem)):
                return event

    def _recv(self, what: str) -> bytes:
        try:
            return self._sock.recv(65536)
        except socket.timeout:
            raise errors.Timeout(f"the daemon did not answer {what} within {self.timeout}s",
                                 timeout=self.timeout) from None
        except OSError as exc:
            self.close()
            raise DaemonUnreachable(self.address, f"connection lost: {exc}") from None


# -- Trio ---------------------------------------------------------------------------------

class AsyncClient:
    """A Trio client; many concurrent calls share one connection.

    Use ``async with AsyncClient(socket_path) as c:`` (or ``tcp=``/``token=``). Typed
    methods unwrap single-field results (``await c.list()`` is the list of records,
    ``await c.start(name)`` the record); :meth:`call` returns the whole results dict.
    """

    def __init__(self, socket_path: str | None = None, *, tcp: str | None = None,
                 token: str | None = None, client_name: str = "trio-procmgr") -> None:
        self.codec = default_codec()
        self.address = tcp if tcp is not None else (socket_path or default_socket_path())
        self._tcp, self._token, self._client_name = tcp, token, client_name
        self.conn = P.Connection("client")
        self._waiters: dict[int, Any] = {}
        self.server: dict[str, Any] | None = None

    async def __aenter__(self) -> "AsyncClient":
        import trio
        try:
            if self._tcp is not None:
                self._stream = await trio.open_tcp_stream(*parse_hostport(self._tcp))
            else:
                try:
                    self._stream = await trio.open_unix_socket(self.address)
                except PermissionError:  # shut out by the mode: the read-only companion
                    companion = read_only_socket_path(self.address)
                    if not os.path.exists(companion):
                        raise
                    self._stream = await trio.open_unix_socket(companion)
                    self.address = companion
        except OSError as exc:
            raise DaemonUnreachable(self.address, exc.strerror or str(exc)) from None
        self._send_lock = trio.Lock()
        self._nursery_manager = trio.open_nursery()
        nursery = self._nursery = await self._nursery_manager.__aenter__()
        nursery.start_soon(self._reader)
        try:
            qid, data = self.conn.bootstrap(bootstrap_params(self.codec, self._client_name, self._token))
            receive = self._expect(qid)
            await self._send(data)
            self.server = self.codec.from_wire("BootstrapResults", await self._answer(qid, receive))
            await self._send(self.conn.finish(qid))
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        import trio
        self._nursery_cancel()
        await self._nursery_manager.__aexit__(*exc)
        await trio.aclose_forcefully(self._stream)

    def _nursery_cancel(self) -> None:
        for send in self._waiters.values():
            send.close()
        self._waiters.clear()
        self._nursery.cancel_scope.cancel()

    async def _reader(self) -> None:
        import trio
        while True:
            try:
                event = self.conn.next_event()
            except P.RemoteProtocolError:
                break
            if event is P.NEED_DATA:
                try:
                    data = await self._stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                self.conn.receive_data(data)
                continue
            if isinstance(event, (P.Closed, P.Abort)):
                self._failure = event
                break
            qid = getattr(event, "qid", None)
            send = None if qid is None else self._waiters.get(qid)
            if send is not None:
                send.send_nowait(event)
        for send in self._waiters.values():
            send.close()
        self._waiters.clear()

    def _expect(self, qid: int) -> Any:
        import math
        import trio
        send, receive = trio.open_memory_channel(math.inf)
        self._waiters[qid] = send
        return receive

    async def _send(self, data: bytes) -> None:
        import trio
        with trio.CancelScope(shield=True):
            async with self._send_lock:
                try:
                    await self._stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise DaemonUnreachable(self.address, f"connection lost: {exc}") from None

    async def _next(self, qid: int, receive: Any) -> Any:
        import trio
        try:
            return await receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            failure = getattr(self, "_failure", None)
            if isinstance(failure, P.Abort):
                raise errors.error_for_code(failure.code, failure.message) from None
            raise DaemonUnreachable(self.address, "the daemon closed the connection") from None

    async def _answer(self, qid: int, receive: Any) -> Any:
        event = await self._next(qid, receive)
        if isinstance(event, P.Failure):
            raise errors.error_for_code(event.code, event.message, dict(event.details))
        return event.results

    async def _start(self, target: P.Target, interface: str, method: str,
                     params: dict[str, Any]) -> tuple[MethodInfo, int, Any]:
        info = self.codec.method(interface, method)
        qid, data = self.conn.call(target, info.interface_ordinal, info.ordinal,
                                   encode_params(self.codec, info, params))
        receive = self._expect(qid)
        await self._send(data)
        return info, qid, receive

    async def _finish(self, qid: int, *, release_caps: bool = False) -> None:
        self._waiters.pop(qid, None)
        if not self.conn.closed:
            try:
                await self._send(self.conn.finish(qid, release_caps=release_caps))
            except DaemonUnreachable:
                pass

    async def call_on(self, target: P.Target, interface: str, method: str, **params: Any) -> Record:
        """Call ``interface.method`` on ``target``; cancelling the caller sends FINISH."""
        info, qid, receive = await self._start(target, interface, method, params)
        try:
            return self.codec.from_wire(info.results, await self._answer(qid, receive))
        finally:
            await self._finish(qid)

    async def call(self, method: str, **params: Any) -> Record:
        """Call a root method by name; the whole results struct, by name."""
        return await self.call_on(P.ROOT, ROOT_INTERFACE, method, **params)

    async def stream_on(self, target: P.Target, interface: str, method: str,
                        **params: Any) -> AsyncGenerator[Record, None]:
        """Async iterator over a streaming method's items; leaving it early cancels it."""
        info = self.codec.method(interface, method)
        if info.stream_when is not None:
            params.setdefault(info.stream_when, True)
        info, qid, receive = await self._start(target, interface, method, params)
        try:
            while True:
                event = await self._next(qid, receive)
                if isinstance(event, P.StreamItem):
                    assert info.stream is not None  # the daemon streams only what streams
                    yield self.codec.from_wire(info.stream, event.item)
                elif isinstance(event, P.Return):
                    return
                else:
                    raise errors.error_for_code(event.code, event.message, dict(event.details))
        finally:
            await self._finish(qid)

    # -- typed root methods ----------------------------------------------------------------
    async def create(self, name: str, config: dict[str, Any], *, start: bool = False,
                     transient: bool = False) -> Record:
        return _struct(await self.call("create", name=name, config=config, start=start,
                                       transient=transient), "record")

    async def list(self) -> Records:
        return _structs(await self.call("list"), "processes")

    async def describe(self, name: str) -> Record:
        return _struct(await self.call("describe", name=name), "record")

    async def start(self, name: str) -> Record:
        return _struct(await self.call("start", name=name), "record")

    async def stop(self, name: str) -> Record:
        return _struct(await self.call("stop", name=name), "record")

    async def restart(self, name: str) -> Record:
        return _struct(await self.call("restart", name=name), "record")

    async def pause(self, name: str) -> Record:
        return _struct(await self.call("pause", name=name), "record")

    async def resume(self, name: str) -> Record:
        return _struct(await self.call("resume", name=name), "record")

    async def delete(self, name: str, *, force: bool = False) -> Record:
        return _struct(await self.call("delete", name=name, force=force), "record")

    async def update(self, name: str, changes: dict[str, Any], *, dry_run: bool = False,
                     restart_process: bool = False) -> Record:
        return await self.call("update", name=name, changes=changes, dry_run=dry_run,
                               restart_process=restart_process)

    async def stats(self, name: str) -> Record:
        return _struct(await self.call("stats", name=name), "stats")

    async def logs(self, name: str | None, *, lines: int | None = None,
                   stream: str | None = None) -> Records:
        """Buffered lines of ``name``; None: every process merged by time (lines carry
        ``process``), ``lines`` then counting the merged output."""
        return _structs(await self.call("logs", name=name, lines=lines, stream=stream), "lines")

    def follow_logs(self, name: str | None, *, lines: int | None = None,
                    stream: str | None = None) -> AsyncGenerator[Record, None]:
        """Async iterator: the last ``lines`` (default 10) then live lines; ``name`` None
        follows every process on this one stream (lines carry ``process``)."""
        return self.stream_on(P.ROOT, ROOT_INTERFACE, "logs", name=name, lines=lines,
                              stream=stream, follow=True)

    def watch(self, *, processes: Names | None = None, types: Names | None = None,
              max_queue: int = 1000) -> AsyncGenerator[Record, None]:
        """Async iterator of events (SPEC §12) matching the filters."""
        return self.stream_on(P.ROOT, ROOT_INTERFACE, "watch", processes=processes,
                              types=types, max_queue=max_queue)

    async def reload_config(self, config_dir: str | None = None) -> Record:
        return await self.call("reload_config", config_dir=config_dir)

    async def validate_config(self, config_dir: str) -> Record:
        return await self.call("validate_config", config_dir=config_dir)

    async def version(self) -> Record:
        return await self.call("version")

    async def ping(self) -> Record:
        return await self.call("ping")

    async def shutdown(self) -> None:
        await self.call("shutdown")

    async def get(self, name: str) -> "ProcessHandle":
        """A handle on one process. Only sends the ``get`` CALL: calls on the handle are
        pipelined on its promised result, so ``await (await c.get(n)).start()`` is one
        round trip."""
        info, qid, receive = await self._start(P.ROOT, ROOT_INTERFACE, "get", {"name": name})
        return ProcessHandle(self, qid, receive)


class ProcessHandle:
    """A ``Process`` capability (possibly still a promise). Release it with
    :meth:`release` or ``async with``; the daemon frees it when the connection closes too."""

    def __init__(self, client: AsyncClient, qid: int, receive: Any) -> None:
        self.client = client
        self.get_qid = qid
        self._receive = receive
        self.target = P.PromiseTarget(qid, (0,))

    async def _call(self, method: str, **params: Any) -> Record:
        return await self.client.call_on(self.target, "Process", method, **params)

    async def describe(self) -> Record:
        return _struct(await self._call("describe"), "record")

    async def start(self) -> Record:
        return _struct(await self._call("start"), "record")

    async def stop(self) -> Record:
        return _struct(await self._call("stop"), "record")

    async def restart(self) -> Record:
        return _struct(await self._call("restart"), "record")

    async def pause(self) -> Record:
        return _struct(await self._call("pause"), "record")

    async def resume(self) -> Record:
        return _struct(await self._call("resume"), "record")

    async def update(self, changes: dict[str, Any], *, dry_run: bool = False,
                     restart_process: bool = False) -> Record:
        return await self._call("update", changes=changes, dry_run=dry_run,
                                restart_process=restart_process)

    async def stats(self) -> Record:
        return _struct(await self._call("stats"), "stats")

    async def logs(self, *, lines: int | None = None, stream: str | None = None) -> Records:
        return _structs(await self._call("logs", lines=lines, stream=stream), "lines")

    async def delete(self, *, force: bool = False) -> Record:
        return _struct(await self._call("delete", force=force), "record")

    async def release(self) -> None:
        """Finish the ``get`` question and release the capability it exported."""
        await self.client._finish(self.get_qid, release_caps=True)

    async def __aenter__(self) -> "ProcessHandle":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()
