"""Length-prefixed msgpack framing: what goes in comes out, whatever the chunking, and
oversized or empty frames are refused before any body is buffered."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_procmgr.rpc.framing import (HEADER, NEED_DATA, FrameDecoder, FrameTooLarge,
                                      FramingError, encode_frame)

scalars = st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats(allow_nan=False) \
    | st.text(max_size=20) | st.binary(max_size=20)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.integers(0, 50) | st.text(max_size=5), inner, max_size=4),
                      max_leaves=20)


def drain(decoder: FrameDecoder) -> list:
    out = []
    while (value := decoder.next_frame()) is not NEED_DATA:
        out.append(value)
    return out


@given(st.lists(values, min_size=1, max_size=5), st.data())
@settings(max_examples=200, deadline=None)
def test_frames_survive_any_chunking(batch, data):
    wire = b"".join(encode_frame(v) for v in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    decoder = FrameDecoder()
    got, start = [], 0
    for cut in cuts + [len(wire)]:
        decoder.feed(wire[start:cut])
        start = cut
        got.extend(drain(decoder))
    assert got == batch
    assert decoder.buffered == 0


def test_oversized_length_is_refused_from_the_header_alone():
    decoder = FrameDecoder(max_frame=1024)
    decoder.feed(HEADER.pack(1025))
    with pytest.raises(FrameTooLarge):
        decoder.next_frame()


def test_frame_of_exactly_max_size_is_accepted():
    body = msgpack.packb("x" * 1000)
    decoder = FrameDecoder(max_frame=len(body))
    decoder.feed(HEADER.pack(len(body)) + body)
    assert decoder.next_frame() == "x" * 1000


def test_zero_length_frame_is_refused():
    decoder = FrameDecoder()
    decoder.feed(b"\0\0\0\0")
    with pytest.raises(FramingError):
        decoder.next_frame()


def test_body_with_two_values_is_refused():
    body = msgpack.packb(1) + msgpack.packb(2)
    decoder = FrameDecoder()
    decoder.feed(HEADER.pack(len(body)) + body)
    with pytest.raises(FramingError):
        decoder.next_frame()


def test_partial_frame_waits_for_more_bytes():
    wire = encode_frame([1, 2, 3])
    decoder = FrameDecoder()
    decoder.feed(wire[:-1])
    assert decoder.next_frame() is NEED_DATA
    assert decoder.buffered == len(wire) - 1
    decoder.feed(wire[-1:])
    assert decoder.next_frame() == [1, 2, 3]


def test_encoding_beyond_the_peers_maximum_fails_locally():
    with pytest.raises(FrameTooLarge):
        encode_frame("y" * 100, max_frame=50)


def test_integer_map_keys_round_trip():
    decoder = FrameDecoder()
    decoder.feed(encode_frame({0: "a", 21: {"k": b"\x00"}}))
    assert decoder.next_frame() == {0: "a", 21: {"k": b"\x00"}}


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_random_bytes_only_ever_raise_framing_errors(blob):
    decoder = FrameDecoder(max_frame=4096)
    decoder.feed(blob)
    try:
        drain(decoder)
    except FramingError:
        pass


@pytest.mark.parametrize("depth", [65, 1000, 5000])
def test_deeply_nested_frames_are_refused_as_framing_errors(depth):
    body = b"\x91" * depth + b"\xc0"
    decoder = FrameDecoder()
    decoder.feed(len(body).to_bytes(4, "big") + body)
    with pytest.raises(FramingError):  # ours ("nests ... deep") or msgpack's own stack limit
        decoder.next_frame()


def test_nesting_within_the_limit_decodes():
    body = b"\x91" * 63 + b"\xc0"
    decoder = FrameDecoder()
    decoder.feed(len(body).to_bytes(4, "big") + body)
    assert decoder.next_frame() is not NEED_DATA
