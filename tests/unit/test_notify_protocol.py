"""Parsing sd_notify datagrams: what counts, what is garbage, what is ignored."""

import pytest
from hypothesis import given, strategies as st

from trio_procmgr.notify_protocol import MAX_DATAGRAM, NotifyGarbage, NotifyMessage, parse_notify


def test_ready_and_status_in_one_datagram():
    msg = parse_notify(b"READY=1\nSTATUS=Processing requests...")
    assert msg.ready and msg.status == "Processing requests..."


def test_every_known_key():
    msg = parse_notify(b"MAINPID=42\nSTOPPING=1\nRELOADING=1\nWATCHDOG=1\n"
                       b"EXTEND_TIMEOUT_USEC=5000000\nERRNO=2\nWATCHDOG_USEC=300\nBARRIER=1\n")
    assert (msg.mainpid, msg.stopping, msg.reloading, msg.watchdog_ping) == (42, True, True, True)
    assert (msg.extend_timeout_usec, msg.errno, msg.watchdog_usec, msg.barrier) == (5000000, 2, 300, True)


def test_watchdog_trigger():
    assert parse_notify(b"WATCHDOG=trigger").watchdog_trigger


def test_bad_values_are_ignored_one_by_one():
    msg = parse_notify(b"MAINPID=abc\nREADY=2\nSTATUS=ok\nMAINPID=0")
    assert msg.mainpid is None and not msg.ready and msg.status == "ok"
    assert msg.invalid == ("MAINPID=abc", "READY=2", "MAINPID=0")


def test_unknown_keys_are_ignored_and_listed():
    msg = parse_notify(b"X_CUSTOM=1\nREADY=1")
    assert msg.ready and msg.unknown == ("X_CUSTOM",)


def test_status_may_be_empty_and_contain_equals_signs():
    assert parse_notify(b"STATUS=").status == ""
    assert parse_notify(b"STATUS=a=b").status == "a=b"


def test_last_assignment_wins():
    assert parse_notify(b"STATUS=one\nSTATUS=two").status == "two"


@pytest.mark.parametrize("data", [b"", b"\n\n", b"READY=1\0", b"\xff\xfeREADY=1",
                                  b"hello world", b"READY=1\njunk", b"lower=1",
                                  b"STATUS=" + b"x" * MAX_DATAGRAM])
def test_garbage_raises(data):
    with pytest.raises(NotifyGarbage):
        parse_notify(data)


@given(st.binary(max_size=200))
def test_any_bytes_give_a_message_or_garbage_never_another_error(data):
    try:
        assert isinstance(parse_notify(data), NotifyMessage)
    except NotifyGarbage:
        pass


@given(st.text(alphabet=st.characters(blacklist_characters="\n\0", blacklist_categories=("Cs",)),
               max_size=300))
def test_status_text_round_trips(text):
    assert parse_notify(f"STATUS={text}".encode()).status == text
