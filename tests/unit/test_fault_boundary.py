"""The fault boundary every task of a process's tree runs through."""

from __future__ import annotations

import trio

from trio_procmgr.engine.containment import ContainedNursery, InternalError


async def test_a_raising_task_is_handed_to_on_fault_and_its_siblings_go_on():
    faults = []
    sibling_done = trio.Event()

    async def bug():
        raise KeyError("boom")

    async def sibling():
        await trio.sleep(0.01)
        sibling_done.set()

    async with trio.open_nursery() as raw:
        nursery = ContainedNursery(raw, lambda where, exc: faults.append((where, exc)))
        nursery.start_soon(bug)
        nursery.start_soon(sibling)
    assert sibling_done.is_set()
    [(where, exc)] = faults
    assert where.endswith("bug") and isinstance(exc, KeyError)


async def test_cancellation_passes_through_untouched():
    faults = []
    async with trio.open_nursery() as raw:
        nursery = ContainedNursery(raw, lambda where, exc: faults.append(exc))
        nursery.start_soon(trio.sleep_forever)
        await trio.sleep(0)
        nursery.cancel_scope.cancel()
    assert faults == []


async def test_start_reports_started_and_contains_a_later_fault():
    faults = []

    async def service(task_status=trio.TASK_STATUS_IGNORED):
        task_status.started("ready")
        raise RuntimeError("after start")

    async with trio.open_nursery() as raw:
        nursery = ContainedNursery(raw, lambda where, exc: faults.append(exc))
        assert await nursery.start(service) == "ready"
    assert [str(e) for e in faults] == ["after start"]


def test_internal_error_keeps_where_what_and_the_traceback():
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        fault = InternalError.from_exception("probe", exc, now=5.0)
    assert fault.to_dict() == {"time": 5.0, "where": "probe", "error": "ValueError: bad value"}
    assert "Traceback" in fault.traceback and "bad value" in fault.traceback


def test_a_nursery_group_is_described_by_what_it_wraps():
    group = ExceptionGroup("Exceptions from Trio nursery", [RuntimeError("waiter bug")])
    assert InternalError.from_exception("w", group).error == "RuntimeError: waiter bug"
