"""The event hub: monotonic seq, filters, bounded queues that report losses."""

import trio

from trio_procmgr.events import EventHub


def test_seq_is_monotonic_and_events_carry_the_contract_fields():
    hub = EventHub()
    a = hub.publish("state_changed", "web", "id1", to="running")
    b = hub.publish("process_exited", "web", "id1", exit_code=0)
    assert b["seq"] == a["seq"] + 1
    assert {"seq", "time", "type", "process", "id"} <= set(a)


async def test_subscriber_filters_by_process_and_type():
    hub = EventHub()
    with hub.subscribe(processes={"a"}, types={"process_exited"}) as sub:
        hub.publish("process_exited", "b")
        hub.publish("state_changed", "a")
        hub.publish("process_exited", "a", exit_code=1)
        ev = await sub.get()
        assert ev["process"] == "a" and ev["type"] == "process_exited"
        assert sub.get_nowait() is None


async def test_slow_subscriber_is_told_how_many_it_lost_and_never_blocks_publish():
    hub = EventHub()
    with hub.subscribe(maxsize=3) as slow, hub.subscribe(maxsize=100) as fast:
        for i in range(10):  # not state_changed: those are coalesced, not lost
            hub.publish("process_exited", "p", n=i)
        got = [await slow.get() for _ in range(4)]
        assert got[0]["type"] == "lost" and got[0]["count"] == 7
        assert [g["n"] for g in got[1:]] == [0, 1, 2]
        assert [(await fast.get())["n"] for _ in range(10)] == list(range(10))


async def test_iteration_ends_when_subscription_closes():
    hub = EventHub()
    sub = hub.subscribe()
    seen = []

    async def consume():
        async for ev in sub:
            seen.append(ev["type"])

    async with trio.open_nursery() as n:
        n.start_soon(consume)
        await trio.testing.wait_all_tasks_blocked()
        hub.publish("daemon_started")
        await trio.testing.wait_all_tasks_blocked()
        sub.close()
    assert seen == ["daemon_started"]
