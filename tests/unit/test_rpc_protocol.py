"""The sans-IO RPC connection: the test vectors, question bookkeeping, and fuzzing."""

from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dd_procmgr_rpc_schema
from trio_procmgr import errors
from trio_procmgr.rpc import protocol as P
from trio_procmgr.rpc.framing import FrameDecoder, FrameTooLarge, encode_frame

VECTORS = os.path.join(os.path.dirname(dd_procmgr_rpc_schema.__file__), "vectors")


def load_vectors(name: str) -> list[dict]:
    with open(os.path.join(VECTORS, name), encoding="utf-8") as fh:
        return json.load(fh)["frames"]


def from_json(value):
    """Vector convention: object keys made of digits are integer keys on the wire."""
    if isinstance(value, dict):
        return {(int(k) if re.fullmatch(r"\d+", k) else k): from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def events(conn: P.Connection, data: bytes = b"") -> list:
    if data:
        conn.receive_data(data)
    out = []
    while (ev := conn.next_event()) is not P.NEED_DATA:
        out.append(ev)
        if isinstance(ev, P.Closed):
            break
    return out


def bootstrapped_server(**kw) -> P.Connection:
    server = P.Connection("server", **kw)
    [boot] = events(server, encode_frame([0, 0, {0: 1}]))
    server.send_return(boot.question, {})
    return server


@pytest.mark.parametrize("vector", load_vectors("messages.json"), ids=lambda v: v["name"])
def test_valid_vector_decodes_to_its_value_and_reencodes_identically(vector):
    decoder = FrameDecoder()
    decoder.feed(bytes.fromhex(vector["hex"]))
    value = decoder.next_frame()
    assert value == from_json(vector["value"])
    msg = P.parse_message(value)
    assert P.Kind(value[0]).name == vector["meaning"]["kind"]
    assert encode_frame(P.message_to_wire(msg)).hex() == vector["hex"]


@pytest.mark.parametrize("vector", load_vectors("rejected.json"), ids=lambda v: v["name"])
def test_rejected_vector_is_a_protocol_error(vector):
    server = P.Connection("server")
    server.receive_data(bytes.fromhex(vector["hex"]))
    if vector["expect"] == "abort_at_eof":
        assert server.next_event() is P.NEED_DATA
        server.receive_data(b"")
    with pytest.raises(P.RemoteProtocolError) as info:
        server.next_event()
    assert info.value.code == "PROTOCOL_ERROR"


def test_call_before_bootstrap_is_a_protocol_error():
    server = P.Connection("server")
    with pytest.raises(P.RemoteProtocolError, match="BOOTSTRAP"):
        events(server, encode_frame([1, 1, 0, 0, 2, {}]))


def test_second_bootstrap_is_a_protocol_error():
    server = bootstrapped_server()
    with pytest.raises(P.RemoteProtocolError):
        events(server, encode_frame([0, 5, {0: 1}]))


def test_bootstrap_announces_the_clients_max_frame():
    server = P.Connection("server")
    [boot] = events(server, encode_frame([0, 0, {0: 1, 2: 4096}]))
    with pytest.raises(FrameTooLarge):
        server.send_return(boot.question, {0: "z" * 5000})


@pytest.mark.parametrize("announced", [1, 64, 4095])
def test_bootstrap_announcing_a_tiny_max_frame_is_a_protocol_error(announced):
    server = P.Connection("server")
    with pytest.raises(P.RemoteProtocolError, match="minimum is 4096") as info:
        events(server, encode_frame([0, 0, {0: 1, 2: announced}]))
    assert info.value.code == "PROTOCOL_ERROR"


def test_a_call_pipelined_on_its_own_promise_is_rejected():
    server = bootstrapped_server()
    [rejected] = events(server, encode_frame([1, 5, [2, 5, [0]], 0, 13, {}]))
    assert isinstance(rejected, P.CallRejected)
    assert rejected.error.code == "INVALID_ARGUMENT" and "own promise" in rejected.error.message


def test_an_answer_after_abort_is_dropped_quietly():
    server = bootstrapped_server()
    [call] = events(server, encode_frame([1, 1, 0, 0, 2, {}]))
    server.abort("PROTOCOL_ERROR", "bye")
    assert server.send_return(call.question, {0: []}) == b""
    assert server.send_exception(call.question, "INTERNAL", "x") == b""
    assert server.send_stream(call.question, {}) == b""


def test_reusing_an_open_qid_is_a_protocol_error():
    server = bootstrapped_server()
    events(server, encode_frame([1, 1, 0, 0, 2, {}]))
    with pytest.raises(P.RemoteProtocolError, match="still open"):
        events(server, encode_frame([1, 1, 0, 0, 2, {}]))


def test_finish_before_the_answer_swallows_the_late_answer():
    server = bootstrapped_server()
    [call] = events(server, encode_frame([1, 1, 0, 0, 2, {}]))
    [finish] = events(server, encode_frame([5, 1]))
    assert isinstance(finish, P.Finish) and call.question.state == "finished"
    assert server.send_return(call.question, {}) == b""


def test_late_answer_never_reaches_a_new_question_with_the_reused_qid():
    server = bootstrapped_server()
    [old] = events(server, encode_frame([1, 1, 0, 0, 2, {}]))
    events(server, encode_frame([5, 1]))
    [new] = events(server, encode_frame([1, 1, 0, 0, 6, {}]))
    assert server.send_return(old.question, {0: "old"}) == b""
    assert server.send_return(new.question, {0: "new"}) == encode_frame([2, 1, {0: "new"}])


def test_answering_twice_is_a_local_error():
    server = bootstrapped_server()
    [call] = events(server, encode_frame([1, 1, 0, 0, 2, {}]))
    server.send_return(call.question, {})
    with pytest.raises(P.LocalProtocolError):
        server.send_exception(call.question, "INTERNAL", "again")


def test_calls_beyond_the_inflight_limit_are_rejected_as_resource_exhausted():
    server = bootstrapped_server(max_inflight=2)
    evs = events(server, b"".join(encode_frame([1, q, 0, 0, 2, {}]) for q in (1, 2, 3)))
    assert [type(e) for e in evs] == [P.Call, P.Call, P.CallRejected]
    assert evs[2].error.code == "RESOURCE_EXHAUSTED"


def test_validation_hook_rejection_carries_its_error():
    def validate(call):
        raise errors.InvalidArgument("field 'name': expected a string", field="name")

    server = bootstrapped_server(validate=validate)
    [ev] = events(server, encode_frame([1, 1, 0, 0, 10, {0: 5}]))
    assert isinstance(ev, P.CallRejected) and ev.error.details == {"field": "name"}


def test_validation_hook_result_is_attached_to_the_call():
    server = bootstrapped_server(validate=lambda call: ("checked", call.method))
    [ev] = events(server, encode_frame([1, 1, 0, 0, 10, {0: "web"}]))
    assert ev.info == ("checked", 10)


def test_client_and_server_converse_in_memory():
    client, server = P.Connection("client"), P.Connection("server")
    boot_qid, data = client.bootstrap({0: 1, 2: 4096})
    [boot] = events(server, data)
    assert events(client, server.send_return(boot.question, {0: 1, 2: 2048}))[0].qid == boot_qid
    assert client.peer_max_frame == 2048
    qid, data = client.call(P.PromiseTarget(boot_qid), 0, 3, {})
    [call] = events(server, data)
    assert call.target == P.PromiseTarget(boot_qid, ())
    items = server.send_stream(call.question, {2: "state_changed"}) + server.send_return(call.question, {0: 1})
    got = events(client, items)
    assert [type(e) for e in got] == [P.StreamItem, P.Return]
    assert not client.is_open(qid)


def test_client_ignores_answers_to_questions_it_finished():
    client = P.Connection("client")
    qid, _ = client.call(P.ROOT, 0, 2, {})
    client.finish(qid)
    assert events(client, encode_frame([2, qid, {}])) == []


def test_answer_to_a_question_never_asked_is_a_protocol_error():
    client = P.Connection("client")
    with pytest.raises(P.RemoteProtocolError):
        events(client, encode_frame([2, 7, {}]))


def test_abort_closes_the_connection():
    client = P.Connection("client")
    [abort, closed] = events(client, encode_frame([7, {0: "PROTOCOL_ERROR", 1: "bye"}]) + encode_frame([2, 0, {}]))
    assert abort == P.Abort("PROTOCOL_ERROR", "bye") and isinstance(closed, P.Closed)


def test_eof_inside_a_frame_is_a_protocol_error_and_at_a_boundary_is_closed():
    server = P.Connection("server")
    server.receive_data(encode_frame([0, 0, {0: 1}])[:-1] + b"")
    assert server.next_event() is P.NEED_DATA
    server.receive_data(b"")
    with pytest.raises(P.RemoteProtocolError, match="inside a frame"):
        server.next_event()
    other = P.Connection("server")
    other.receive_data(b"")
    assert isinstance(other.next_event(), P.Closed)


messages = st.one_of(
    st.builds(lambda q, p: [1, q, 0, 0, p, {}], st.integers(0, 5), st.integers(0, 30)),
    st.builds(lambda q: [5, q], st.integers(0, 5)),
    st.builds(lambda c, n: [6, c, n], st.integers(0, 3), st.integers(0, 3)),
    st.lists(st.integers(-1, 9) | st.text(max_size=2) | st.none(), max_size=7),
)


@given(st.lists(messages, max_size=12), st.binary(max_size=40))
@settings(max_examples=300, deadline=None)
def test_fuzzed_input_yields_events_or_remote_protocol_errors_only(msgs, tail):
    server = P.Connection("server", max_inflight=3)
    data = encode_frame([0, 0, {0: 1}]) + b"".join(encode_frame(m) for m in msgs) + tail
    try:
        for ev in events(server, data):
            if isinstance(ev, (P.Call, P.Bootstrap)):
                server.send_return(ev.question, {})
    except P.RemoteProtocolError as exc:
        assert exc.code in ("PROTOCOL_ERROR", "RESOURCE_EXHAUSTED")
