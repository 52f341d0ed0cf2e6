"""The RPC message layer (RPC.md §2-§5), sans-IO, shared by server and both clients.

:class:`Connection` is fed bytes (:meth:`Connection.receive_data`) and hands out events
(:meth:`Connection.next_event`); sending a message returns the bytes to write. It never
touches a socket, a clock or Trio, and imports neither Trio nor marshmallow.

Question bookkeeping, in one place:

* inbound questions (we answer): ``OPEN --answer--> ANSWERED --FINISH--> gone`` and
  ``OPEN --FINISH--> gone`` (cancelled: any later answer is swallowed, and returns b"").
  A qid may be reused by the peer once it sent FINISH; the :class:`Question` object a
  handler holds stays bound to its own question, so a late answer never reaches the new
  one.
* outbound questions (we asked): ``OPEN --STREAM*--> OPEN --RETURN/EXCEPTION--> gone``;
  ``finish()`` before the answer cancels it. Our qids are never reused, so an answer for
  a qid below the next one that is no longer open is a late answer and is ignored; any
  other unknown qid is the peer's protocol error.

Errors say whose fault they are: :class:`RemoteProtocolError` (answer ABORT and close)
and :class:`LocalProtocolError` (a bug in our own shell).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from trio_procmgr.rpc.framing import (DEFAULT_MAX_FRAME, NEED_DATA, FrameDecoder,
                                      FramingError, encode_frame)

#: The smallest max_frame a peer may announce: every answer the protocol itself must be
#: able to send (an EXCEPTION with a clipped message) fits in it.
MIN_PEER_FRAME = 4096

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "Kind", "ROOT", "CapTarget", "PromiseTarget", "Bootstrap", "Call", "Return", "Failure",
    "StreamItem", "Finish", "Release", "Abort", "CallRejected", "Closed", "Question",
    "Connection", "RemoteProtocolError", "LocalProtocolError", "NEED_DATA",
    "parse_message", "message_to_wire",
]


class Kind(enum.IntEnum):
    BOOTSTRAP = 0
    CALL = 1
    RETURN = 2
    EXCEPTION = 3
    STREAM = 4
    FINISH = 5
    RELEASE = 6
    ABORT = 7


class RemoteProtocolError(Exception):
    """The peer broke the protocol; send ABORT with ``code`` and close."""

    def __init__(self, message: str, code: str = "PROTOCOL_ERROR") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class LocalProtocolError(Exception):
    """We tried something the protocol forbids (a bug in the caller of Connection)."""


class _Value:
    """A small value object: equality, hash and repr from its ``__slots__``.

    Plain classes rather than NamedTuples or dataclasses: the blocking client (the CLI)
    imports this module on every run, and generating a dozen classes with ``typing``
    cost several milliseconds of start-up. Treat instances as immutable.
    """

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._values() == self._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self.__slots__, self._values()))
        return f"{type(self).__name__}({fields})"


# -- targets ------------------------------------------------------------------------------
ROOT = 0


class CapTarget(_Value):
    __slots__ = ("cap_id",)

    def __init__(self, cap_id: int) -> None:
        self.cap_id = cap_id


class PromiseTarget(_Value):
    """The capability at ``path`` (field ordinals) in the promised result of ``qid``."""

    __slots__ = ("qid", "path")

    def __init__(self, qid: int, path: tuple[int, ...] = ()) -> None:
        self.qid = qid
        self.path = path


Target = int | CapTarget | PromiseTarget


# -- messages and events ------------------------------------------------------------------
class Question:
    """One inbound question, as handed to the shell that answers it."""

    __slots__ = ("qid", "state")

    def __init__(self, qid: int, state: str = "open") -> None:
        self.qid = qid
        self.state = state  # open | answered | finished

    def __repr__(self) -> str:
        return f"Question({self.qid}, {self.state!r})"


class Bootstrap(_Value):
    __slots__ = ("qid", "params", "question")

    def __init__(self, qid: int, params: Any, question: Question | None = None) -> None:
        self.qid, self.params, self.question = qid, params, question


class Call(_Value):
    """An inbound or outbound CALL; ``info`` is whatever the validation hook attached
    (the server: method info and by-name params)."""

    __slots__ = ("qid", "target", "interface", "method", "params", "question", "info")

    def __init__(self, qid: int, target: Target, interface: int, method: int, params: Any,
                 question: Question | None = None, info: Any = None) -> None:
        self.qid, self.target, self.interface, self.method = qid, target, interface, method
        self.params, self.question, self.info = params, question, info


class Return(_Value):
    __slots__ = ("qid", "results")

    def __init__(self, qid: int, results: Any) -> None:
        self.qid, self.results = qid, results


class Failure(_Value):
    """An EXCEPTION message: the question failed with ``code``."""

    __slots__ = ("qid", "code", "message", "details")

    def __init__(self, qid: int, code: str, message: str = "",
                 details: Mapping[str, Any] | None = None) -> None:
        self.qid, self.code, self.message = qid, code, message
        self.details = {} if details is None else details


class StreamItem(_Value):
    __slots__ = ("qid", "item")

    def __init__(self, qid: int, item: Any) -> None:
        self.qid, self.item = qid, item


class Finish(_Value):
    """FINISH; extension: ``[5, qid, true]`` also releases the capabilities its result
    exported (``release_caps``)."""

    __slots__ = ("qid", "release_caps")

    def __init__(self, qid: int, release_caps: bool = False) -> None:
        self.qid, self.release_caps = qid, release_caps


class Release(_Value):
    __slots__ = ("cap_id", "count")

    def __init__(self, cap_id: int, count: int = 1) -> None:
        self.cap_id, self.count = cap_id, count


class Abort(_Value):
    __slots__ = ("code", "message")

    def __init__(self, code: str, message: str = "") -> None:
        self.code, self.message = code, message


class CallRejected(_Value):
    """An inbound CALL the validation hook refused; answer it with ``error``."""

    __slots__ = ("call", "error")

    def __init__(self, call: Call, error: Exception) -> None:
        self.call, self.error = call, error


class Closed(_Value):
    """The peer closed its side cleanly (at a frame boundary)."""

    __slots__ = ()


Message = Bootstrap | Call | Return | Failure | StreamItem | Finish | Release | Abort


# -- wire <-> messages --------------------------------------------------------------------
def _uint(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RemoteProtocolError(f"{what} must be an unsigned integer, got {value!r:.40}")
    return value


def _map(value: Any, what: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise RemoteProtocolError(f"{what} must be a map, got {type(value).__name__}")
    return value


def parse_target(value: Any) -> Target:
    if isinstance(value, int) and not isinstance(value, bool):
        if value != ROOT:
            raise RemoteProtocolError(f"integer target must be 0 (the bootstrap capability), got {value}")
        return ROOT
    if isinstance(value, list) and value:
        if value[0] == 1 and len(value) == 2:
            return CapTarget(_uint(value[1], "capability id"))
        if value[0] == 2 and len(value) in (2, 3):
            path = value[2] if len(value) == 3 else []
            if not isinstance(path, list):
                raise RemoteProtocolError("promise path must be a list of field ordinals")
            return PromiseTarget(_uint(value[1], "promised qid"),
                                 tuple(_uint(p, "path ordinal") for p in path))
    raise RemoteProtocolError(f"bad call target {value!r:.60}")


def target_to_wire(target: Target) -> Any:
    if isinstance(target, CapTarget):
        return [1, target.cap_id]
    if isinstance(target, PromiseTarget):
        return [2, target.qid, list(target.path)]
    return target


def parse_message(value: Any) -> Message:
    """A message from one decoded frame; raises RemoteProtocolError for a malformed one."""
    if not isinstance(value, list) or not value:
        raise RemoteProtocolError("a frame must hold a non-empty array")
    kind = value[0]
    if not isinstance(kind, int) or isinstance(kind, bool) or kind not in Kind._value2member_map_:
        raise RemoteProtocolError(f"unknown message kind {kind!r:.20}")
    kind = Kind(kind)
    expected = {Kind.BOOTSTRAP: (3,), Kind.CALL: (6,), Kind.RETURN: (3,), Kind.EXCEPTION: (3,),
                Kind.STREAM: (3,), Kind.FINISH: (2, 3), Kind.RELEASE: (3,), Kind.ABORT: (2,)}[kind]
    if len(value) not in expected:
        raise RemoteProtocolError(f"{kind.name} must have {expected[0]} elements, got {len(value)}")
    if kind is Kind.BOOTSTRAP:
        return Bootstrap(_uint(value[1], "qid"), _map(value[2], "bootstrap params"))
    if kind is Kind.CALL:
        return Call(_uint(value[1], "qid"), parse_target(value[2]),
                    _uint(value[3], "interface ordinal"), _uint(value[4], "method ordinal"),
                    value[5])
    if kind is Kind.RETURN:
        return Return(_uint(value[1], "qid"), value[2])
    if kind is Kind.EXCEPTION:
        body = _map(value[2], "exception body")
        code, message, details = body.get(0), body.get(1, ""), body.get(2) or {}
        if not isinstance(code, str) or not isinstance(message, str) or not isinstance(details, Mapping):
            raise RemoteProtocolError("exception body must be {0: code str, 1: message str, 2: details map}")
        return Failure(_uint(value[1], "qid"), code, message, details)
    if kind is Kind.STREAM:
        return StreamItem(_uint(value[1], "qid"), value[2])
    if kind is Kind.FINISH:
        release = value[2] if len(value) == 3 else False
        if not isinstance(release, bool):
            raise RemoteProtocolError("FINISH release flag must be a bool")
        return Finish(_uint(value[1], "qid"), release)
    if kind is Kind.RELEASE:
        return Release(_uint(value[1], "capability id"), _uint(value[2], "release count"))
    body = _map(value[1], "abort body")
    return Abort(str(body.get(0, "PROTOCOL_ERROR")), str(body.get(1, "")))


def message_to_wire(msg: Message) -> list[Any]:
    if isinstance(msg, Bootstrap):
        return [Kind.BOOTSTRAP, msg.qid, msg.params]
    if isinstance(msg, Call):
        return [Kind.CALL, msg.qid, target_to_wire(msg.target), msg.interface, msg.method, msg.params]
    if isinstance(msg, Return):
        return [Kind.RETURN, msg.qid, msg.results]
    if isinstance(msg, Failure):
        return [Kind.EXCEPTION, msg.qid, {0: msg.code, 1: msg.message, 2: dict(msg.details)}]
    if isinstance(msg, StreamItem):
        return [Kind.STREAM, msg.qid, msg.item]
    if isinstance(msg, Finish):
        return [Kind.FINISH, msg.qid] + ([True] if msg.release_caps else [])
    if isinstance(msg, Release):
        return [Kind.RELEASE, msg.cap_id, msg.count]
    if isinstance(msg, Abort):
        return [Kind.ABORT, {0: msg.code, 1: msg.message}]
    raise LocalProtocolError(f"not a message: {msg!r}")


# -- the state machine --------------------------------------------------------------------

class Connection:
    """One end of one RPC connection.

    ``role`` is ``"server"`` (receives BOOTSTRAP, which must come first) or ``"client"``.
    ``validate`` (optional) is called with every inbound CALL; what it returns is attached
    as ``Call.info``; if it raises, the event is :class:`CallRejected` carrying the error.
    ``max_inflight`` bounds inbound questions not yet answered; a CALL beyond it is
    rejected with RESOURCE_EXHAUSTED (the question still exists so FINISH works).
    """

    def __init__(self, role: str, *, max_frame: int = DEFAULT_MAX_FRAME,
                 max_inflight: int = 128, validate: Callable[[Call], Any] | None = None) -> None:
        if role not in ("server", "client"):
            raise ValueError("role must be 'server' or 'client'")
        self.role = role
        self.max_frame = max_frame
        self.peer_max_frame = DEFAULT_MAX_FRAME
        self.max_inflight = max_inflight
        self.validate = validate
        self.bootstrapped = False
        self.closed = False
        self._decoder = FrameDecoder(max_frame)
        self._eof = False
        self._inbound: dict[int, Question] = {}
        self._outbound: set[int] = set()
        self._bootstrap_qid: int | None = None
        self._next_qid = 0

    # -- receiving -----------------------------------------------------------------------
    def set_max_frame(self, max_frame: int) -> None:
        """Change the largest frame we accept (the server lifts its small pre-authentication
        cap once a TCP peer showed its token)."""
        self.max_frame = max_frame
        self._decoder.max_frame = max_frame

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed its side."""
        if data:
            self._decoder.feed(data)
        else:
            self._eof = True

    @property
    def open_inbound(self) -> int:
        return sum(1 for q in self._inbound.values() if q.state == "open")

    def next_event(self) -> Any:
        """The next event, NEED_DATA, or Closed; raises RemoteProtocolError."""
        while True:
            if self.closed:
                return Closed()
            try:
                value = self._decoder.next_frame()
            except FramingError as exc:
                raise RemoteProtocolError(str(exc), exc.code) from exc
            if value is NEED_DATA:
                if self._eof:
                    if self._decoder.buffered:
                        raise RemoteProtocolError(
                            f"connection closed inside a frame ({self._decoder.buffered} bytes pending)")
                    self.closed = True
                    return Closed()
                return NEED_DATA
            event = self._on_message(parse_message(value))
            if event is not None:
                return event

    def _on_message(self, msg: Message) -> Any:
        if isinstance(msg, (Bootstrap, Call)):
            return self._on_question(msg)
        if isinstance(msg, (Return, Failure, StreamItem)):
            return self._on_answer(msg)
        if isinstance(msg, Finish):
            question = self._inbound.pop(msg.qid, None)
            if question is None:
                return None  # FINISH of a question we already forgot
            question.state = "finished"
            return msg
        if isinstance(msg, Abort):
            self.closed = True
        return msg

    def _on_question(self, msg: Bootstrap | Call) -> Any:
        if msg.qid in self._inbound:
            raise RemoteProtocolError(f"question {msg.qid} is still open")
        if isinstance(msg, Bootstrap):
            if self.role != "server":
                raise RemoteProtocolError("only a client may send BOOTSTRAP")
            if self.bootstrapped:
                raise RemoteProtocolError("BOOTSTRAP was already sent on this connection")
            self.bootstrapped = True
            announced = msg.params.get(2)
            if isinstance(announced, int) and not isinstance(announced, bool):
                if announced < MIN_PEER_FRAME:
                    raise RemoteProtocolError(f"BOOTSTRAP announces max_frame={announced}; "
                                              f"the minimum is {MIN_PEER_FRAME}")
                self.peer_max_frame = announced
        elif self.role == "server" and not self.bootstrapped:
            raise RemoteProtocolError("send BOOTSTRAP before any CALL")
        if len(self._inbound) >= 4 * self.max_inflight:
            raise RemoteProtocolError(f"{len(self._inbound)} questions were never finished; send "
                                      "FINISH after each answer", "RESOURCE_EXHAUSTED")
        question = Question(msg.qid)
        self._inbound[msg.qid] = question
        if isinstance(msg, Bootstrap):
            return Bootstrap(msg.qid, msg.params, question)
        call = Call(msg.qid, msg.target, msg.interface, msg.method, msg.params, question)
        if isinstance(msg.target, PromiseTarget) and msg.target.qid == msg.qid:
            return CallRejected(call, _self_pipeline(msg.qid))
        if self.open_inbound > self.max_inflight:
            return CallRejected(call, _resource_exhausted(self.max_inflight))
        if self.validate is None:
            return call
        try:
            info = self.validate(call)
        except Exception as exc:  # the hook's errors are answers, not crashes
            return CallRejected(call, exc)
        return Call(call.qid, call.target, call.interface, call.method, call.params, question, info)

    def _on_answer(self, msg: Return | Failure | StreamItem) -> Any:
        if msg.qid not in self._outbound:
            if msg.qid < self._next_qid:
                return None  # late answer to a question we finished early
            raise RemoteProtocolError(f"answer for question {msg.qid}, which was never asked")
        if not isinstance(msg, StreamItem):
            self._outbound.discard(msg.qid)
            if msg.qid == self._bootstrap_qid and isinstance(msg, Return) and isinstance(msg.results, Mapping):
                announced = msg.results.get(2)
                if isinstance(announced, int) and not isinstance(announced, bool) and announced > 0:
                    self.peer_max_frame = announced
        return msg

    # -- sending: questions ----------------------------------------------------------------
    def _frame(self, msg: Message) -> bytes:
        if self.closed:
            raise LocalProtocolError("the connection is closed")
        return encode_frame(message_to_wire(msg), self.peer_max_frame)

    def _new_qid(self) -> int:
        qid = self._next_qid
        self._next_qid += 1
        self._outbound.add(qid)
        return qid

    def bootstrap(self, params: Mapping[int, Any]) -> tuple[int, bytes]:
        qid = self._new_qid()
        self._bootstrap_qid = qid
        return qid, self._frame(Bootstrap(qid, dict(params)))

    def call(self, target: Target, interface: int, method: int, params: Any) -> tuple[int, bytes]:
        qid = self._new_qid()
        return qid, self._frame(Call(qid, target, interface, method, params))

    def finish(self, qid: int, *, release_caps: bool = False) -> bytes:
        """End (or cancel) one of our questions; its late answers are then ignored."""
        self._outbound.discard(qid)
        return self._frame(Finish(qid, release_caps))

    def release(self, cap_id: int, count: int = 1) -> bytes:
        return self._frame(Release(cap_id, count))

    def is_open(self, qid: int) -> bool:
        return qid in self._outbound

    # -- sending: answers ------------------------------------------------------------------
    def _answer(self, question: Question, msg: Message, final: bool) -> bytes:
        """The answer's bytes, or b"" when nobody can receive it any more (the question was
        finished, or the connection was aborted or closed while the call ran)."""
        if self.closed or question.state == "finished" or self._inbound.get(question.qid) is not question:
            return b""
        if question.state == "answered":
            raise LocalProtocolError(f"question {question.qid} was already answered")
        data = self._frame(msg)
        if final:
            question.state = "answered"
        return data

    def send_return(self, question: Question, results: Any) -> bytes:
        """RETURN bytes, or b"" if the peer already finished the question.

        Raises framing.FrameTooLarge when the peer would refuse the frame; answer with
        :meth:`send_exception` instead.
        """
        return self._answer(question, Return(question.qid, results), True)

    def send_exception(self, question: Question, code: str, message: str,
                       details: Mapping[str, Any] | None = None) -> bytes:
        return self._answer(question, Failure(question.qid, code, message, dict(details or {})), True)

    def send_stream(self, question: Question, item: Any) -> bytes:
        return self._answer(question, StreamItem(question.qid, item), False)

    def abort(self, code: str, message: str) -> bytes:
        """ABORT bytes; the connection is closed afterwards (send them, then close)."""
        data = b"" if self.closed else encode_frame(message_to_wire(Abort(code, message)))
        self.closed = True
        return data


def _self_pipeline(qid: int) -> Exception:
    from trio_procmgr.errors import InvalidArgument
    return InvalidArgument(f"call {qid} is pipelined on its own promise, which can never "
                           "settle; target an earlier question", qid=qid)


def _resource_exhausted(limit: int) -> Exception:
    from trio_procmgr.errors import ResourceExhausted
    return ResourceExhausted(f"too many calls in flight on this connection (limit {limit}); "
                             "wait for answers before sending more", limit=limit)
