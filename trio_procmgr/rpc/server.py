"""The RPC server: a Trio shell around :mod:`trio_procmgr.rpc.protocol`.

What it guarantees:

* One task tree per connection: the reader, plus one task per in-flight call, each in its
  own cancel scope, so FINISH cancels exactly that call and a closed connection cancels
  all of them. Nothing a client sends can raise out of its connection's tree: malformed
  input gets ABORT(PROTOCOL_ERROR) and that connection closes; other clients never notice.
* Every CALL is validated against the schema (marshmallow) before the engine sees it;
  the answer to a bad one is INVALID_ARGUMENT naming the field.
* Access tiers (SPEC §14): the Unix socket is 0666 and every connection's peer
  credentials (SO_PEERCRED) decide its tier: root and members of ``admin_group`` may call
  mutating methods; everyone else reads, gets PERMISSION_DENIED for mutations, and sees
  answers with env values and secrets redacted (:mod:`trio_procmgr.rpc.redaction`).
  TCP clients must present the bearer token in BOOTSTRAP and then act as admins.
* Before a TCP peer authenticates (:mod:`trio_procmgr.preauth`) its first frame is capped
  at 64 KiB, it has 10 s to send a valid BOOTSTRAP, and at most 64 such peers wait at once.
* Streams (watch, logs follow) read from feeds bounded in bytes: a slow client loses
  items (told by a ``lost`` item), it never stalls the engine; its socket writes are
  bounded too (one frame queued), and a client that reads nothing for ``send_deadline``
  seconds is dropped.
* Error answers are clipped (:mod:`trio_procmgr.rpc.clipping`); an answer that cannot be
  encoded at all aborts that connection (ABORT INTERNAL) with one log line.
"""

from __future__ import annotations

import grp
import hmac
import logging
import os
import pwd
import socket as stdsocket
import stat
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

import trio

import trio_procmgr
from dd_procmgr_rpc_schema.codec import MethodInfo, default_codec
from dd_procmgr_rpc_schema.loader import SCHEMA_PATH, Schemas, validation_summary
from trio_procmgr import errors
from trio_procmgr.feeds import DEFAULT_MAX_BYTES
from trio_procmgr.listener_policy import ListenerError, plan_listeners
from trio_procmgr.paths import read_only_socket_path
from trio_procmgr.preauth import PreAuthGate, PreAuthLimits, PreAuthTicket
from trio_procmgr.rpc import protocol as P
from trio_procmgr.rpc.engine_api import bind_engine, engine_call
from trio_procmgr.rpc.clipping import clip_text, clip_value
from trio_procmgr.rpc.framing import DEFAULT_MAX_FRAME, FrameTooLarge
from trio_procmgr.rpc.redaction import redact

log = logging.getLogger("trio_procmgr.rpc")

MAX_STREAM_QUEUE = 100_000
FOLLOW_BACKLOG = 10  # `logs` with follow and no `lines` starts like `tail -f`
#: A client whose socket accepts nothing for this long is dropped (it stopped reading).
SEND_DEADLINE = 30.0
#: Capabilities one connection may hold at once (each `get` exports one until RELEASE).
MAX_CAPS = 10_000
#: Longest process name or id a call may carry (config names are at most 128 characters).
MAX_NAME = 256
#: Items written to the socket in one go by a stream that fell behind.
STREAM_BATCH = 256

#: A results (or params) struct by field name, as the codec decodes it (the schema says
#: which fields; the values are whatever msgpack carries).
Results = dict[str, Any]


@dataclass(slots=True)
class Peer:
    """Who is on the other end of one connection, and what they may do."""

    transport: str
    uid: int | None = None
    gid: int | None = None
    pid: int | None = None
    can_mutate: bool = False
    address: Any = None


@dataclass(slots=True)
class RpcServerInfo:
    """What ``serve_rpc`` reports through ``task_status.started``."""

    socket_path: str | None
    tcp_address: tuple[str, int] | None = None
    #: Listening fds by role ("unix", "tcp": list), handed to a re-exec'd image.
    fds: dict[str, Any] = field(default_factory=dict)


def peer_credentials(sock: Any) -> tuple[int, int, int]:
    """(pid, uid, gid) of a Unix socket peer (Linux SO_PEERCRED)."""
    raw = sock.getsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


def is_admin(uid: int, gid: int, admin_group: str | None) -> bool:
    """Root always; otherwise membership (primary or supplementary) of ``admin_group``."""
    if uid == 0:
        return True
    if not admin_group:
        return False
    try:
        group = grp.getgrnam(admin_group)
    except KeyError:
        return False
    if gid == group.gr_gid:
        return True
    try:
        user = pwd.getpwuid(uid)
    except KeyError:
        return False
    return user.pw_name in group.gr_mem or group.gr_gid in os.getgrouplist(user.pw_name, user.pw_gid)


@dataclass(eq=False)
class Promise:
    """The pending or settled result of one inbound question (for pipelining)."""

    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: errors.ProcMgrError | None = None
    root: bool = False
    exported: list[int] = field(default_factory=list)

    def settle(self, result: Any = None, error: errors.ProcMgrError | None = None) -> None:
        if not self.done.is_set():
            self.result, self.error = result, error
            self.done.set()


@dataclass(slots=True)
class CapEntry:
    interface: str
    ref: str
    refs: int = 1


class RpcService:
    """What every connection shares: the engine, the schema and the access policy."""

    def __init__(self, manager: Any, *, admin_group: str | None = None, token: str | None = None,
                 max_frame: int = DEFAULT_MAX_FRAME, max_inflight: int = 64,
                 preauth: PreAuthLimits = PreAuthLimits(),
                 send_deadline: float = SEND_DEADLINE) -> None:
        self.manager = manager
        #: The engine's calls, bound once (see :mod:`trio_procmgr.rpc.engine_api`).
        self.engine_calls = bind_engine(manager)
        self.admin_group = admin_group
        self.token = token
        #: The read-only companion socket's path (its connections never mutate).
        self.read_only_path: str | None = None
        self.max_frame = max_frame
        self.max_inflight = max_inflight
        self.preauth = PreAuthGate(preauth)
        self.send_deadline = send_deadline
        self.codec = default_codec()
        self.schemas = Schemas(self.codec.compiled)
        self.connections: set[RpcConnection] = set()

    def validate_call(self, call: P.Call) -> tuple[MethodInfo, Results]:
        """The protocol's validation hook: method known, params well-typed (by name)."""
        info = self.codec.method_by_ordinal(call.interface, call.method)
        if info is None:
            raise errors.Unimplemented(
                f"this server has no method {call.method} on interface {call.interface}; "
                "check the schema hash from BOOTSTRAP", interface=call.interface, method=call.method)
        from marshmallow import ValidationError
        try:
            params = self.schemas.struct(info.params).load(call.params)
        except ValidationError as exc:
            name, message = validation_summary(exc.messages)
            raise errors.InvalidArgument(f"{info.name}: field '{name}': {message}",
                                         field=name, method=info.name) from None
        check_name(info.name, params.get("name"))
        return info, params

    def bootstrap_results(self) -> dict[int, Any]:
        return self.codec.to_wire("BootstrapResults", {
            "protocol_version": self.codec.protocol_version,
            "server_version": trio_procmgr.__version__,
            "max_frame": self.max_frame, "schema_hash": self.codec.schema_hash})

    def token_ok(self, presented: Any) -> bool:
        return (self.token is not None and isinstance(presented, str)
                and hmac.compare_digest(presented.encode(), self.token.encode()))


async def _maybe_await(value: Any) -> Any:
    if hasattr(value, "__await__"):
        return await value
    return value


class RpcConnection:
    """The shell around one protocol Connection; owns that connection's task tree."""

    def __init__(self, service: RpcService, stream: trio.abc.Stream, peer: Peer) -> None:
        self.service = service
        self.manager = service.manager
        self.codec = service.codec
        self.stream = stream
        self.peer = peer
        self.ticket: PreAuthTicket | None = None
        first = service.max_frame
        if peer.transport == "tcp":
            first = min(first, service.preauth.limits.first_frame)
        self.conn = P.Connection("server", max_frame=first,
                                 max_inflight=service.max_inflight, validate=service.validate_call)
        self.scopes: dict[P.Question, trio.CancelScope] = {}
        self.promises: dict[int, Promise] = {}
        self.caps: dict[int, CapEntry] = {}
        self._next_cap = 1
        self.nursery: trio.Nursery | None = None

    async def run(self) -> None:
        """Serve until the peer leaves or breaks the protocol; cancels every call then.

        A single writer task owns ``send_all`` so a call cancelled by FINISH can never
        leave half a frame on the wire; what is queued (an ABORT) is flushed for at most
        a second before the connection closes. At most one write waits in the queue, so a
        client that does not read holds up its own calls, never the daemon's memory.
        """
        out_send, out_recv = trio.open_memory_channel[bytes](1)
        self.out = out_send
        self.service.connections.add(self)
        try:
            async with trio.open_nursery() as outer:
                outer.start_soon(self._writer, out_recv, outer.cancel_scope)
                async with trio.open_nursery() as calls:
                    self.nursery = calls
                    await self._read_loop()
                    calls.cancel_scope.cancel()
                out_send.close()
                outer.cancel_scope.deadline = trio.current_time() + 1
        finally:
            self.service.connections.discard(self)
            self.caps.clear()
            self.promises.clear()
            self.scopes.clear()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    async def _writer(self, out_recv: trio.MemoryReceiveChannel[bytes],
                      scope: trio.CancelScope) -> None:
        """Write queued frames; drop the client when a write waits ``send_deadline``."""
        async with out_recv:
            async for data in out_recv:
                try:
                    with trio.move_on_after(self.service.send_deadline) as stuck:
                        await self.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    scope.cancel()
                    return
                if stuck.cancelled_caught:
                    log.info("rpc: dropping a %s client that read nothing for %.0f s",
                             self.peer.transport, self.service.send_deadline)
                    scope.cancel()
                    return

    async def _send(self, data: bytes) -> None:
        if not data:
            return
        try:
            await self.out.send(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def _abort(self, code: str, message: str) -> None:
        message = clip_text(message)
        log.info("rpc: aborting connection from %s: %s: %s", self.peer.transport, code, message)
        await self._send(self.conn.abort(code, message))

    async def _abort_and_close(self, code: str, message: str) -> None:
        """ABORT from inside a call: stop reading and end every call of this connection."""
        await self._abort(code, message)
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()

    async def _send_error(self, question: P.Question, err: errors.ProcMgrError) -> None:
        """EXCEPTION for ``question``, clipped; an error that cannot even be encoded
        aborts the connection with one log line (never a traceback per call)."""
        try:
            details = self.codec.value_to_wire("any", clip_value(err.details))
            data = self.conn.send_exception(question, err.code, clip_text(err.message), details)
        except Exception as exc:  # a value msgpack refuses: the answer is unsendable
            log.warning("rpc: cannot encode the %s answer to question %d (%s); aborting the "
                        "connection", err.code, question.qid, clip_text(repr(exc), 200))
            await self._abort_and_close("INTERNAL", "the daemon could not encode its answer")
            return
        await self._send(data)

    async def _read_loop(self) -> None:
        while True:
            try:
                event = self.conn.next_event()
            except P.RemoteProtocolError as exc:
                await self._abort(exc.code, exc.message)
                return
            if event is P.NEED_DATA:
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                self.conn.receive_data(data)
                continue
            if isinstance(event, (P.Closed, P.Abort)):
                return
            if not await self._on_event(event):
                return

    async def _on_event(self, event: Any) -> bool:
        """Handle one event; False means the connection must close."""
        if isinstance(event, P.Bootstrap):
            return await self._on_bootstrap(event)
        if isinstance(event, P.CallRejected):
            question = event.call.question
            assert question is not None  # the Connection attaches one to every inbound CALL
            self.promises[question.qid] = promise = Promise()
            err = _as_error(event.error)
            promise.settle(error=err)
            await self._send_error(question, err)
        elif isinstance(event, P.Call):
            self._start_call(event)
        elif isinstance(event, P.Finish):
            self._on_finish(event)
        elif isinstance(event, P.Release):
            self._release(event.cap_id, event.count)
        return True

    async def _on_bootstrap(self, event: P.Bootstrap) -> bool:
        if self.peer.transport == "tcp":
            presented = event.params.get(3)
            if not self.service.token_ok(presented):
                what = "needs a token" if presented is None else "refused the token sent"
                await self._abort("UNAUTHENTICATED", f"this listener {what}: pass --token-file "
                                  "FILE holding the daemon's token (or set DD_PM_TOKEN_FILE, or "
                                  "DD_PM_TOKEN to the token itself)")
                return False
            self.peer.can_mutate = True
            self.conn.set_max_frame(self.service.max_frame)
            if self.ticket is not None:
                self.ticket.authenticated()
        self.promises[event.qid] = Promise(root=True)
        self.promises[event.qid].settle(result=None)
        assert event.question is not None  # the Connection attaches one to every inbound BOOTSTRAP
        await self._send(self.conn.send_return(event.question, self.service.bootstrap_results()))
        return True

    def _start_call(self, call: P.Call) -> None:
        promise = Promise()
        self.promises[call.qid] = promise
        scope = trio.CancelScope()
        assert call.question is not None  # the Connection attaches one to every inbound CALL
        assert self.nursery is not None  # calls arrive only while _read_loop runs in it
        self.scopes[call.question] = scope
        self.nursery.start_soon(self._run_call, call, promise, scope)

    def _on_finish(self, event: P.Finish) -> None:
        for question, scope in list(self.scopes.items()):
            if question.qid == event.qid and question.state == "finished":
                scope.cancel()
        promise = self.promises.pop(event.qid, None)
        if promise is not None:
            promise.settle(error=errors.Cancelled(f"question {event.qid} was finished"))
            if event.release_caps:
                for cap_id in promise.exported:
                    self._release(cap_id, 1)

    def _release(self, cap_id: int, count: int) -> None:
        entry = self.caps.get(cap_id)
        if entry is not None:
            entry.refs -= count
            if entry.refs <= 0:
                del self.caps[cap_id]

    def export(self, interface: str, ref: str, promise: Promise) -> dict[str, int]:
        """A new capability for ``ref``; RESOURCE_EXHAUSTED beyond MAX_CAPS unreleased."""
        if len(self.caps) >= MAX_CAPS:
            raise errors.ResourceExhausted(
                f"this connection holds {len(self.caps)} capabilities; RELEASE (or FINISH with "
                "release) the ones you no longer use", limit=MAX_CAPS)
        cap_id = self._next_cap
        self._next_cap += 1
        self.caps[cap_id] = CapEntry(interface, ref)
        promise.exported.append(cap_id)
        return {"$cap": cap_id}

    async def _run_call(self, call: P.Call, promise: Promise, scope: trio.CancelScope) -> None:
        question = call.question
        assert question is not None  # the Connection attaches one to every inbound CALL
        try:
            with scope:
                try:
                    info, params = call.info
                    _count(self.manager, "calls", info.name)
                    interface, ref = await self._resolve_target(call.target)
                    if interface != info.interface:
                        raise errors.InvalidArgument(
                            f"the call target is a {interface} but the call names {info.interface}.{info.name}",
                            target_interface=interface)
                    if info.mutates and not self.peer.can_mutate:
                        raise errors.PermissionDenied(
                            f"{info.name} changes the daemon; only root or members of the admin "
                            "group may call it", uid=self.peer.uid, method=info.name)
                    handler = CallHandler(self, info, params, ref, question, promise)
                    results = await handler.run()
                    if not self.peer.can_mutate:
                        results = redact(results)
                    wire = self.codec.to_wire(info.results, results)
                    promise.settle(result=wire)
                    await self._answer(question, wire)
                    if handler.after_answer is not None:
                        await handler.after_answer()
                except errors.ProcMgrError as exc:
                    _count(self.manager, "errors", exc.code)
                    promise.settle(error=exc)
                    await self._send_error(question, exc)
                except Exception as exc:
                    log.exception("rpc: %s failed", getattr(call.info, "name", "call"))
                    err = errors.Internal(f"the daemon failed to handle this call: {exc}")
                    _count(self.manager, "errors", err.code)
                    promise.settle(error=err)
                    await self._send_error(question, err)
        finally:
            promise.settle(error=errors.Cancelled("the call was cancelled"))
            self.scopes.pop(question, None)

    async def _answer(self, question: P.Question, wire: Any) -> None:
        """RETURN; too large for the peer: RESOURCE_EXHAUSTED; unencodable: ABORT."""
        try:
            data = self.conn.send_return(question, wire)
        except FrameTooLarge as exc:
            await self._send_error(question, errors.ResourceExhausted(str(exc)))
            return
        except (TypeError, ValueError, OverflowError) as exc:  # msgpack refused a value
            log.warning("rpc: cannot encode the answer to question %d (%s); aborting the "
                        "connection", question.qid, clip_text(repr(exc), 200))
            await self._abort_and_close("INTERNAL", "the daemon could not encode its answer")
            return
        await self._send(data)

    async def send_stream(self, question: P.Question, wire_items: list[Any]) -> bool:
        """Send STREAM items in one write; False when the caller already finished the
        question (or the connection is gone). An item too large for the peer is skipped."""
        chunks = []
        for wire_item in wire_items:
            try:
                data = self.conn.send_stream(question, wire_item)
            except FrameTooLarge:
                continue
            if not data:
                return False
            chunks.append(data)
        await self._send(b"".join(chunks))
        return True

    async def _resolve_target(self, target: P.Target) -> tuple[str, str | None]:
        """(interface name, process ref or None for the root)."""
        if isinstance(target, int):  # parse_target admits no integer but ROOT
            return "ProcessManager", None
        if isinstance(target, P.CapTarget):
            entry = self.caps.get(target.cap_id)
            if entry is None:
                raise errors.InvalidArgument(f"capability {target.cap_id} does not exist on this "
                                             "connection (released?)", cap_id=target.cap_id)
            return entry.interface, entry.ref
        promise = self.promises.get(target.qid)
        if promise is None:
            raise errors.InvalidArgument(f"pipelined call on question {target.qid}, which is not "
                                         "open on this connection", qid=target.qid)
        await promise.done.wait()
        if promise.error is not None:
            raise promise.error
        if promise.root and not target.path:
            return "ProcessManager", None
        value = promise.result
        for ordinal in target.path:
            value = value.get(ordinal) if isinstance(value, dict) else None
        if not (isinstance(value, dict) and isinstance(value.get("$cap"), int)):
            raise errors.InvalidArgument(f"no capability at path {list(target.path)} of question "
                                         f"{target.qid}'s result", qid=target.qid)
        return await self._resolve_target(P.CapTarget(value["$cap"]))


def _as_error(exc: Exception) -> errors.ProcMgrError:
    if isinstance(exc, errors.ProcMgrError):
        return exc
    return errors.Internal(f"the daemon failed to check this call: {exc}")


class CallHandler:
    """Runs one validated call against the engine and returns its results by name."""

    def __init__(self, rpc: RpcConnection, info: MethodInfo, params: Results, ref: str | None,
                 question: P.Question, promise: Promise) -> None:
        self.rpc, self.info, self.params, self.ref = rpc, info, params, ref
        self.question, self.promise = question, promise
        self.manager = rpc.manager
        self.after_answer: Callable[[], Awaitable[object]] | None = None

    def engine(self, name: str) -> Any:
        """The engine's bound call ``name`` (UNIMPLEMENTED when this engine lacks it)."""
        return engine_call(self.rpc.service.engine_calls, name)

    def target_ref(self) -> str:
        return self.ref if self.ref is not None else self.params["name"]

    async def run(self) -> dict[str, Any]:
        name = self.info.name
        handler = HANDLERS.get(name)
        if handler is None:
            raise errors.Unimplemented(f"this daemon does not implement {name} yet", method=name)
        return await handler(self)

    async def do_record_call(self) -> Results:
        """start, stop, restart, pause, resume, describe: one engine call on the target,
        answered with its full record."""
        record = await _maybe_await(self.engine(self.info.name)(self.target_ref()))
        return {"record": self.full_record(record)}

    async def do_create(self) -> Results:
        p = self.params
        record = await self.engine("create")(p["name"], p["config"], start=p["start"],
                                             transient=p["transient"])
        return {"record": self.full_record(record)}

    def full_record(self, record: Any, before: Results | None = None) -> Any:
        """The engine's record with the config fields ``describe`` shows (command, args,
        restart, process_type, spec ...), so every mutating call answers the same shape.
        ``before`` is the summary taken before a delete, when the process is gone."""
        summary = self.rpc.service.engine_calls.get("summary")
        if summary is None or not isinstance(record, dict) or not record.get("name"):
            return record
        try:
            extra = summary(record["name"])
        except errors.ProcessNotFound:
            extra = before or {}
        return {**extra, **record}

    async def do_start_many(self) -> Results:
        return await self._many("start")

    async def do_stop_many(self) -> Results:
        return await self._many("stop")

    async def do_restart_many(self) -> Results:
        return await self._many("restart")

    async def _many(self, verb: str) -> Results:
        from trio_procmgr.engine.batch import act_on_many

        outcomes = await act_on_many(self.manager, verb, list(self.params["names"]))
        for item in outcomes:
            if item.get("record") is not None:
                item["record"] = self.full_record(item["record"])
        return {"outcomes": outcomes}

    async def do_scale(self) -> Results:
        return {"record": await self.engine("scale")(self.params["name"], self.params["replicas"])}

    async def do_instantiate(self) -> Results:
        p = self.params
        return {"record": await self.engine("instantiate")(p["template"], p["instance"], start=p["start"])}

    async def do_get(self) -> Results:
        ref = self.params["name"]
        self.engine("resolve")(ref)
        record = self.engine("describe")(ref)
        stable = record.get("id") or record.get("name") or ref
        return {"process": self.rpc.export("Process", stable, self.promise)}

    async def do_list(self) -> Results:
        return {"processes": await _maybe_await(self.engine("list")())}

    async def do_delete(self) -> Results:
        summary = self.rpc.service.engine_calls.get("summary")
        before = summary(self.target_ref()) if summary is not None else None
        record = await self.engine("delete")(self.target_ref(), force=self.params["force"])
        return {"record": self.full_record(record, before)}

    async def do_update(self) -> Results:
        p = self.params
        result: Results = await self.engine("update")(
            self.target_ref(), p["changes"], dry_run=p["dry_run"], restart_process=p["restart_process"])
        if isinstance(result, dict) and result.get("record"):
            result = {**result, "record": self.full_record(result["record"])}
        return result

    async def do_stats(self) -> Results:
        return {"stats": await _maybe_await(self.engine("stats")(self.target_ref()))}

    async def do_logs(self) -> Results:
        """Buffered lines, or (follow) the last lines then live ones, like ``tail -f``.

        Without a name: every process, one stream, each line carrying ``process``. The
        subscription opens before the backlog is read, with no checkpoint in between, so
        following never drops nor repeats a line at the seam.
        """
        p = self.params
        ref = self.ref if self.ref is not None else p["name"]
        if not p["follow"]:
            return {"lines": self._log_tail(ref, p["lines"], p["stream"])}
        lines = FOLLOW_BACKLOG if p["lines"] is None else p["lines"]
        with self.engine("follow_logs")(ref, stream=p["stream"]) as sub:
            backlog = self._log_tail(ref, lines, p["stream"]) if lines else []
            if backlog and not await self._stream_items("LogLine", backlog):
                return {"lines": [], "items_sent": 0, "items_dropped": 0}
            sent, dropped = await self._pour(sub, "LogLine")
        return {"lines": [], "items_sent": sent + len(backlog), "items_dropped": dropped}

    def _log_tail(self, ref: str | None, lines: int | None, stream: str | None) -> list[Results]:
        """The last ``lines`` of one process, or of all of them merged by time; each line
        names its ``process``, like the live lines that follow."""
        tail = self.engine("logs")
        if ref is not None:
            name = self.engine("resolve")(ref)
            return [dict(item, process=name) for item in tail(ref, lines=lines, stream=stream)]
        merged = [dict(item, process=record["name"])
                  for record in self.engine("list")()
                  for item in tail(record["name"], lines=lines, stream=stream)]
        merged.sort(key=lambda item: item.get("time") or 0.0)
        return merged[-lines:] if lines else merged

    async def do_watch(self) -> Results:
        p = self.params
        hub = self.manager.hub
        maxsize = max(1, min(p["max_queue"], MAX_STREAM_QUEUE))
        with hub.subscribe(processes=p["processes"], types=p["types"], maxsize=maxsize,
                           max_bytes=DEFAULT_MAX_BYTES) as sub:
            sent, dropped = await self._pour(sub, "Event")
        return {"items_sent": sent, "items_dropped": dropped}

    async def _pour(self, feed: Any, struct_name: str) -> tuple[int, int]:
        """Copy a feed to the stream in batches until either ends: (sent, dropped).

        Whatever queued while the last write was in flight goes out in one write, so a
        watcher that reads as fast as it can keeps up with bursts (500 processes
        restarting) instead of getting one item per loop iteration.
        """
        sent = dropped = 0
        while True:
            try:
                items = await feed.batch(STREAM_BATCH)
            except trio.EndOfChannel:
                return sent, dropped
            dropped += sum(int(i.get("count") or 0) for i in items if i.get("type") == "lost")
            if not await self._stream_items(struct_name, items):
                return sent, dropped
            sent += len(items)

    async def _stream_items(self, struct_name: str, items: list[Any]) -> bool:
        if not self.rpc.peer.can_mutate:
            items = [redact(item) for item in items]
        to_wire = self.rpc.codec.to_wire
        return await self.rpc.send_stream(self.question, [to_wire(struct_name, i) for i in items])

    async def do_reload_config(self) -> Results:
        config_dir = self.params["config_dir"]
        if config_dir is None:
            results: Results = await self.engine("reload_config")()
        else:
            from trio_procmgr.config.loader import load_config_dir
            config = await trio.to_thread.run_sync(load_config_dir, config_dir)
            results = await self.engine("reload_config")(config)
        return results

    async def do_validate_config(self) -> Results:
        from trio_procmgr.config.loader import validate_dir
        found = await trio.to_thread.run_sync(validate_dir, self.params["config_dir"])
        issues = list(getattr(found, "issues", found) or ())
        issues = [i.to_dict() if hasattr(i, "to_dict") else dict(i) for i in issues]
        return {"ok": not any(i.get("severity", "error") == "error" for i in issues), "issues": issues}

    async def do_version(self) -> Results:
        codec = self.rpc.codec
        return {"protocol_version": codec.protocol_version,
                "server_version": trio_procmgr.__version__, "schema_hash": codec.schema_hash}

    async def do_ping(self) -> Results:
        from trio_procmgr.daemon.metrics import state_write_errors

        failed, error = state_write_errors(self.manager)
        return {"time": time.time(), "state_write_errors": failed, "state_error": error}

    async def do_shutdown(self) -> Results:
        shutdown = self.engine("shutdown")
        self.after_answer = shutdown
        return {}

    async def do_daemon_reexec(self) -> Results:
        """The new program is checked now (its failure is this call's error, the daemon
        keeps running); the exec itself is scheduled to follow this answer."""
        await self.engine("daemon_reexec")()
        return {}

    async def do_rotate_logs(self) -> Results:
        await _maybe_await(self.engine("rotate_logs")(self.params["name"]))
        return {}

    async def do_deps(self) -> Results:
        return {"graph": await _maybe_await(self.engine("deps")(self.params["name"]))}

    async def do_kill(self) -> Results:
        p = self.params
        record = await self.engine("kill")(self.target_ref(), p["signal"], whom=p["whom"])
        return {"record": record}

    async def do_reload(self) -> Results:
        return {"record": await self.engine("reload")(self.target_ref())}

    async def do_groups(self) -> Results:
        return {"groups": self.engine("groups")()}

    async def do_stats_all(self) -> Results:
        """Stats of many processes; with ``follow`` one batch (stats plus the list
        records) every ``interval`` seconds until the caller finishes the question,
        so a live view costs one stream instead of N calls per refresh."""
        p = self.params
        stats_many = self.engine("stats_many")
        if not p["follow"]:
            return {"stats": stats_many(p["names"])}
        interval = max(0.2, float(p["interval"]))
        sent = 0
        while True:
            batch = {"time": time.time(), "stats": stats_many(p["names"]),
                     "processes": self.engine("list")()}
            if not await self._stream_items("StatsBatch", [batch]):
                return {"stats": [], "items_sent": sent}
            sent += 1
            await trio.sleep(interval)

    async def do_schema(self) -> Results:
        with open(SCHEMA_PATH, encoding="utf-8") as fh:
            text = fh.read()
        return {"schema_yaml": text, "schema_hash": self.rpc.codec.schema_hash}


#: Schema method name -> its handler, for both interfaces (a ``Process`` call targets
#: its handle's process). Built once; a test walks the schema against it.
HANDLERS: dict[str, Callable[[CallHandler], Awaitable[dict[str, Any]]]] = {
    **{name: CallHandler.do_record_call
       for name in ("start", "stop", "restart", "pause", "resume", "describe")},
    "create": CallHandler.do_create, "get": CallHandler.do_get, "list": CallHandler.do_list,
    "watch": CallHandler.do_watch, "reload_config": CallHandler.do_reload_config,
    "validate_config": CallHandler.do_validate_config, "version": CallHandler.do_version,
    "ping": CallHandler.do_ping, "shutdown": CallHandler.do_shutdown,
    "daemon_reexec": CallHandler.do_daemon_reexec, "delete": CallHandler.do_delete,
    "update": CallHandler.do_update, "stats": CallHandler.do_stats,
    "logs": CallHandler.do_logs, "rotate_logs": CallHandler.do_rotate_logs,
    "deps": CallHandler.do_deps, "schema": CallHandler.do_schema,
    "start_many": CallHandler.do_start_many, "stop_many": CallHandler.do_stop_many,
    "restart_many": CallHandler.do_restart_many, "scale": CallHandler.do_scale,
    "instantiate": CallHandler.do_instantiate, "kill": CallHandler.do_kill,
    "reload": CallHandler.do_reload, "groups": CallHandler.do_groups,
    "stats_all": CallHandler.do_stats_all,
}


# -- listeners ----------------------------------------------------------------------------

#: The main socket (SPEC §14): root and the socket's group connect, SO_PEERCRED then
#: decides who may change things (root and the admin group).
SOCKET_MODE = 0o660
#: The read-only companion (``x.ro.sock``): every local user may connect; every call
#: that changes something answers PERMISSION_DENIED there, and answers are redacted.
READ_ONLY_SOCKET_MODE = 0o666


def _bind_unix_socket(path: str, admin_group: str | None,
                      mode: int = SOCKET_MODE) -> stdsocket.socket:
    """A listening Unix socket at ``path`` with ``mode``, replacing only a dead socket file."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, mode=0o755, exist_ok=True)
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise errors.InvalidState(f"{path} exists and is not a socket; remove it or choose "
                                      "another --socket", path=path)
        probe = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nothing answers
        else:
            raise errors.AlreadyRunning(f"another daemon is listening on {path}; stop it or use "
                                        "another --socket", path=path)
        finally:
            probe.close()
    sock = stdsocket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
    old_umask = os.umask(0o111)
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    os.chmod(path, mode)
    if admin_group:
        os.chown(path, -1, grp.getgrnam(admin_group).gr_gid)
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve_rpc(manager: Any, *, socket_path: str | None = None, tcp: str | None = None,
                    token_file: str | None = None, admin_group: str | None = None,
                    max_frame: int = DEFAULT_MAX_FRAME, max_inflight: int = 64,
                    preauth: PreAuthLimits = PreAuthLimits(),
                    send_deadline: float = SEND_DEADLINE,
                    inherited: Mapping[str, Any] | None = None,
                    task_status: trio.TaskStatus[RpcServerInfo] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the RPC until cancelled; reports :class:`RpcServerInfo` once listening.

    ``tcp`` needs ``token_file`` (refused otherwise: a TCP peer has no credentials to
    check; the rule is :mod:`trio_procmgr.listener_policy`'s). The socket file is removed
    on exit.
    """
    if socket_path is None and tcp is None:
        from trio_procmgr.paths import default_socket_path
        socket_path = default_socket_path()
    try:
        plan = plan_listeners(tcp=tcp, token_file=token_file if tcp is not None else None)
    except ListenerError as exc:
        raise errors.InvalidArgument(str(exc), tcp=tcp) from None
    service = RpcService(manager, admin_group=admin_group, token=plan.token, max_frame=max_frame,
                         max_inflight=max_inflight, preauth=preauth, send_deadline=send_deadline)
    listeners: list[trio.SocketListener] = []
    info = RpcServerInfo(socket_path=socket_path)
    owned: dict[str, int] = {}  # socket files we created -> their inode
    inherited = inherited or {}
    if socket_path is not None:
        read_only_path = read_only_socket_path(socket_path)
        unix = inherited.get("unix")
        kept: dict[str, int] = unix if isinstance(unix, dict) else {}
        for path, mode in ((socket_path, SOCKET_MODE), (read_only_path, READ_ONLY_SOCKET_MODE)):
            if kept.get(path) is not None:  # a re-exec: the path never disappeared
                sock = stdsocket.socket(fileno=kept[path])
                sock.setblocking(False)
            else:
                sock = _bind_unix_socket(path, admin_group, mode)
            owned[path] = os.stat(path).st_ino
            info.fds.setdefault("unix", {})[path] = sock.fileno()
            listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
        service.read_only_path = read_only_path
    try:
        if plan.tcp is not None:
            if inherited.get("tcp"):
                tcp_listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(
                    stdsocket.socket(fileno=fd))) for fd in inherited["tcp"]]
            else:
                tcp_listeners = await trio.open_tcp_listeners(plan.tcp.port, host=plan.tcp.host)
            listeners.extend(tcp_listeners)
            info.tcp_address = tcp_listeners[0].socket.getsockname()[:2]
            info.fds["tcp"] = [listener.socket.fileno() for listener in tcp_listeners]

        async def handle(stream: trio.SocketStream) -> None:
            await _serve_connection(service, stream)

        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handle, listeners)
            log.info("rpc: listening on %s%s", socket_path,
                     f" and tcp {info.tcp_address}" if info.tcp_address else "")
            task_status.started(info)
    finally:
        for path, inode in owned.items():
            try:
                if os.stat(path).st_ino == inode:
                    os.unlink(path)
            except OSError:
                pass


async def _serve_connection(service: RpcService, stream: trio.SocketStream) -> None:
    """One client's whole life; never lets an exception escape to the listener."""
    try:
        sock = stream.socket
        if sock.family == stdsocket.AF_UNIX:
            pid, uid, gid = peer_credentials(sock)
            read_only = sock.getsockname() == service.read_only_path
            peer = Peer("unix", uid, gid, pid,
                        can_mutate=not read_only and is_admin(uid, gid, service.admin_group))
            await RpcConnection(service, stream, peer).run()
        else:
            await _serve_unauthenticated(service, stream, Peer("tcp", address=sock.getpeername()))
    except Exception:
        log.exception("rpc: connection handler failed")
        await trio.aclose_forcefully(stream)


async def _serve_unauthenticated(service: RpcService, stream: trio.SocketStream, peer: Peer) -> None:
    """A TCP peer: refused at once beyond the pending cap, closed at the auth deadline."""
    with service.preauth.admit() as ticket:
        if ticket is None:
            log.info("rpc: refusing a TCP connection from %s: %d unauthenticated connections "
                     "already wait", peer.address, service.preauth.limits.max_pending)
            await trio.aclose_forcefully(stream)
            return
        connection = RpcConnection(service, stream, peer)
        connection.ticket = ticket
        with ticket.scope:
            await connection.run()
        if ticket.timed_out:
            log.info("rpc: closed a TCP connection from %s that did not authenticate within "
                     "%.0f s", peer.address, service.preauth.limits.deadline)


def check_name(method: str, name: Any) -> None:
    """Refuse an over-long process name or id before it reaches the engine or a message."""
    if isinstance(name, str) and len(name) > MAX_NAME:
        raise errors.InvalidArgument(
            f"{method}: field 'name': {len(name)} characters is longer than the maximum "
            f"of {MAX_NAME} for a process name or id", field="name", method=method)


def _count(manager: Any, kind: str, key: str) -> None:
    """Bump the per-method call / per-code error counters the metrics endpoint reads."""
    stats = getattr(manager, "rpc_stats", None)
    if stats is not None:
        bucket = stats.setdefault(kind, {})
        bucket[key] = bucket.get(key, 0) + 1
