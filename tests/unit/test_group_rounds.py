"""A group's answer to a member failure: budget, strategy and rounds, without I/O."""

from hypothesis import given
from hypothesis import strategies as st

from trio_procmgr.group_rounds import (GroupAction, GroupState, decide_member_failure,
                                       widen_round)
from trio_procmgr.planner import RestartIntensity
from trio_procmgr.spec import GroupSpec

MEMBERS = ("db", "app", "web")


def group(strategy: str, max_restarts: int = 3, max_seconds: float = 5.0) -> GroupSpec:
    return GroupSpec("g", MEMBERS, strategy, max_restarts, max_seconds)


def test_one_for_one_restarts_only_the_failed_member():
    g = group("one_for_one")
    d = decide_member_failure(g, GroupState.RUNNING, RestartIntensity.for_group(g), "app",
                              False, now=0.0)
    assert d.action is GroupAction.RESTART_ALONE and d.affected == ("app",)
    assert d.state is GroupState.RUNNING


def test_rest_for_one_starts_a_round_with_the_failed_member_and_those_after_it():
    g = group("rest_for_one")
    d = decide_member_failure(g, GroupState.RUNNING, RestartIntensity.for_group(g), "app",
                              False, now=0.0)
    assert d.action is GroupAction.START_ROUND and d.affected == ("app", "web")
    assert d.state is GroupState.RESTARTING


def test_a_failure_during_a_round_joins_it_in_member_order():
    g = group("rest_for_one")
    d = decide_member_failure(g, GroupState.RESTARTING, RestartIntensity.for_group(g), "db",
                              True, now=0.0)
    assert d.action is GroupAction.JOIN_ROUND
    assert widen_round(g, ["app", "web"], d.affected) == ["db", "app", "web"]


def test_a_crashed_group_ignores_failures_and_spends_no_budget():
    g = group("one_for_all", max_restarts=1)
    intensity = RestartIntensity.for_group(g)
    d = decide_member_failure(g, GroupState.CRASHED, intensity, "db", False, now=0.0)
    assert d.action is GroupAction.IGNORE and intensity.restarts_in_window(0.0) == 0


@given(max_restarts=st.integers(0, 5), max_seconds=st.floats(0.5, 100.0),
       gaps=st.lists(st.floats(0.0, 50.0), min_size=1, max_size=20),
       strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]))
def test_escalates_exactly_when_the_window_holds_more_than_max_restarts(
        max_restarts, max_seconds, gaps, strategy):
    g = group(strategy, max_restarts, max_seconds)
    intensity = RestartIntensity.for_group(g)
    state, now, times = GroupState.RUNNING, 0.0, []
    for gap in gaps:
        now += gap
        d = decide_member_failure(g, state, intensity, "db", False, now)
        if state is GroupState.CRASHED:
            assert d.action is GroupAction.IGNORE
            continue
        times = [t for t in times if now - t < max_seconds] + [now]
        over = len(times) > max_restarts
        assert (d.action is GroupAction.ESCALATE) == over
        assert set(d.affected) <= set(MEMBERS)
        state = d.state
        if d.action is not GroupAction.ESCALATE:
            state = GroupState.RUNNING  # the round finished before the next failure
