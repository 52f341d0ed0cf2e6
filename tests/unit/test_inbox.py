"""The actor mailbox: order, waking the reader, cancellation of a waiting reader."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_procmgr.engine.inbox import Inbox


async def test_messages_arrive_in_order_and_a_waiting_reader_is_woken():
    inbox = Inbox()
    got: list[int] = []

    async def reader() -> None:
        async for msg in inbox:
            if msg is None:
                return
            got.append(msg)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        for i in range(5):
            inbox.send_nowait(i)  # the reader is parked: the first send wakes it
        await trio.testing.wait_all_tasks_blocked()
        inbox.send_nowait(5)
        inbox.send_nowait(None)
    assert got == [0, 1, 2, 3, 4, 5]
    assert len(inbox) == 0


async def test_a_cancelled_reader_leaves_the_inbox_usable():
    inbox = Inbox()
    with trio.move_on_after(0.05):
        await inbox.__anext__()
    inbox.send_nowait("after")
    with trio.fail_after(5):
        assert await inbox.__anext__() == "after"


async def test_two_readers_at_once_are_refused():
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(inbox.__anext__)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await inbox.__anext__()
        inbox.send_nowait(1)
