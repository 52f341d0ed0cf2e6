"""The pure pieces of RPC hardening: listener policy, error clipping, redaction for
read-only peers, and feeds bounded in bytes."""

from __future__ import annotations

import pytest
import trio

from trio_procmgr.feeds import BoundedFeed, item_size
from trio_procmgr.listener_policy import ListenerError, plan_listeners
from trio_procmgr.daemon.startup import DaemonStartError
from trio_procmgr.rpc.clipping import MAX_DETAIL_TEXT, MAX_MESSAGE, clip_text, clip_value
from trio_procmgr.rpc.redaction import REDACTED, redact


def token(path: str) -> str:
    if path == "empty":
        raise ValueError("token file empty is empty")
    return "s3cret"


# -- listener policy ----------------------------------------------------------------------

def test_tcp_needs_a_token_even_on_loopback():
    with pytest.raises(ListenerError, match="--tcp 127.0.0.1:7000: a TCP listener needs --token-file"):
        plan_listeners(tcp="127.0.0.1:7000", read_token=token)


def test_tcp_with_a_token_is_planned():
    plan = plan_listeners(tcp="0.0.0.0:7000", token_file="t", read_token=token)
    assert (plan.tcp.host, plan.tcp.port, plan.token) == ("0.0.0.0", 7000, "s3cret")
    assert plan.web_needs_token and not plan.web_read_only


@pytest.mark.parametrize("flag", ["ws", "metrics"])
def test_a_non_loopback_web_address_needs_a_token(flag):
    with pytest.raises(ListenerError, match="non-loopback address"):
        plan_listeners(**{flag: "0.0.0.0:8080"}, read_token=token)


def test_a_loopback_web_listener_without_a_token_is_read_only():
    plan = plan_listeners(ws="127.0.0.1:8080", metrics=":9100", read_token=token)
    assert plan.web_read_only and plan.ws.loopback and plan.metrics.host == "127.0.0.1"


@pytest.mark.parametrize("kwargs, message", [
    ({"ws": "nonsense"}, "--ws: 'nonsense' is not HOST:PORT"),
    ({"tcp": "127.0.0.1:99999", "token_file": "t"}, "--tcp:"),
    ({"token_file": "empty"}, "--token-file: token file empty is empty"),
])
def test_bad_flags_name_the_flag(kwargs, message):
    with pytest.raises(ListenerError, match=message):
        plan_listeners(read_token=token, **kwargs)


def test_listener_errors_stop_the_daemon_at_start():
    assert issubclass(ListenerError, DaemonStartError)


# -- clipping -------------------------------------------------------------------------------

def test_long_messages_are_clipped_and_say_how_much():
    clipped = clip_text("n" * (8 * 1024 * 1024))
    assert len(clipped) <= MAX_MESSAGE and "more characters" in clipped
    assert clip_text("short") == "short"


def test_details_are_clipped_in_length_breadth_and_depth():
    deep = {"a": {"b": {"c": {"d": {"e": "too deep"}}}}}
    value = clip_value({"name": "x" * 10_000, "many": list(range(1000)), "deep": deep})
    assert len(value["name"]) <= MAX_DETAIL_TEXT
    assert len(value["many"]) == 32
    assert isinstance(value["deep"]["a"]["b"]["c"], str)


# -- redaction ------------------------------------------------------------------------------

def test_env_values_and_secret_keys_are_redacted_names_kept():
    record = {"name": "db", "spec": {"env": {"PASSWORD": "hunter2"}, "command": "pg",
                                     "environment_file": ["/etc/db.env"]},
              "health": {"http": {"token": "abc"}}, "processes": [{"env": {"K": "v"}}]}
    shown = redact(record)
    assert shown["spec"]["env"] == {"PASSWORD": REDACTED}
    assert shown["spec"]["environment_file"] == ["/etc/db.env"]
    assert shown["health"]["http"]["token"] == REDACTED
    assert shown["processes"][0]["env"] == {"K": REDACTED}
    assert record["spec"]["env"]["PASSWORD"] == "hunter2"  # a copy: the engine's is intact


# -- feeds bounded in bytes -----------------------------------------------------------------

def test_a_feed_drops_what_exceeds_its_byte_bound_and_counts_it():
    feed = BoundedFeed(maxsize=10_000, max_bytes=10_000)
    line = {"line": "x" * 1000}
    kept = sum(feed.offer(dict(line)) for _ in range(50))
    assert kept == 9 and feed.lost_total == 41
    assert feed.queued_bytes <= 10_000
    assert feed.get_nowait() == {"type": "lost", "count": 41}
    assert feed.get_nowait() == line


def test_item_size_grows_with_content():
    assert item_size({"line": "x" * 1000}) > 1000 > item_size({"line": "x"})


async def test_batch_hands_out_everything_queued_at_once():
    feed = BoundedFeed(maxsize=100)
    for i in range(5):
        feed.offer({"n": i})
    assert [item["n"] for item in await feed.batch(3)] == [0, 1, 2]
    assert [item["n"] for item in await feed.batch()] == [3, 4]
    feed.close()
    with pytest.raises(trio.EndOfChannel):
        await feed.batch()


def test_a_watcher_that_is_behind_gets_each_process_latest_state_in_seq_order():
    from trio_procmgr.events import EventHub

    hub = EventHub(clock=lambda: 0.0)
    sub = hub.subscribe(maxsize=3)
    hub.publish("state_changed", "a", "1", **{"from": "stopped", "to": "starting"})
    hub.publish("state_changed", "b", "2", **{"from": "stopped", "to": "starting"})
    hub.publish("process_started", "a", "1", pid=1)
    for to in ("running", "stopping", "stopped", "starting", "running"):
        hub.publish("state_changed", "a", "1", **{"from": "x", "to": to})
    items = []
    while (item := sub.get_nowait()) is not None:
        items.append(item)
    assert [(i["type"], i["process"]) for i in items] == [
        ("state_changed", "b"), ("process_started", "a"), ("state_changed", "a")]
    last = items[-1]
    assert (last["from"], last["to"], last["coalesced"]) == ("stopped", "running", 6)
    seqs = [i["seq"] for i in items]
    assert seqs == sorted(seqs) and sub.lost_total == 0 and sub.coalesced == 5


def test_coalescing_never_grows_the_queue_past_its_bound():
    feed_hub = __import__("trio_procmgr.events", fromlist=["EventHub"]).EventHub()
    sub = feed_hub.subscribe(maxsize=2)
    for n in range(10_000):
        feed_hub.publish("state_changed", f"p{n % 2}", None, **{"from": "a", "to": "b"})
    assert len(sub._queue) <= 2 * 2 + 16 + 1 and sub.queued_bytes <= sub.max_bytes
