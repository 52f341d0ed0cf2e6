"""The health counter and status sets, without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_procmgr.health_state import (KEEP_RESULTS, HealthCounter, ProbeResult, StatusSet,
                                       parse_host_port, push_result)
from trio_procmgr.spec import HealthCheckSpec


def check(**kw):
    return HealthCheckSpec(type="exec", exec_command=("true",), **kw)


@pytest.mark.parametrize("text,inside,outside", [
    ("200-399", [200, 301, 399], [199, 400, 503]),
    ("200,204", [200, 204], [201, 203, 205]),
    ("200", [200], [201]),
    ("200-204, 418", [202, 418], [205, 417]),
])
def test_status_set_accepts_codes_and_ranges(text, inside, outside):
    codes = StatusSet(text)
    assert all(c in codes for c in inside)
    assert not any(c in codes for c in outside)


@pytest.mark.parametrize("text", ["", "2xx", "399-200", "200-", "20"])
def test_status_set_rejects_malformed_text(text):
    with pytest.raises(ValueError):
        StatusSet(text)


def test_retries_consecutive_failures_make_it_unhealthy_and_one_success_heals():
    c = HealthCounter(check(retries=3), started_at=0.0)
    assert [c.observe(False, t).health for t in (1, 2, 3)] == ["starting", "starting", "unhealthy"]
    v = c.observe(True, 4)
    assert v.health == "healthy" and v.changed and v.consecutive_failures == 0


def test_failures_inside_start_period_are_not_counted_until_the_first_success():
    c = HealthCounter(check(retries=1, start_period=10), started_at=0.0)
    assert not c.observe(False, 5).counted
    assert c.health == "starting"
    assert c.observe(True, 6).health == "healthy"
    assert c.observe(False, 7).health == "unhealthy"  # grace ended with the success
    c2 = HealthCounter(check(retries=1, start_period=10), started_at=0.0)
    assert c2.observe(False, 11).health == "unhealthy"


def test_restart_after_asks_for_a_kill_once():
    c = HealthCounter(check(retries=1, restart_after=2), started_at=0.0)
    kills = [c.observe(False, t).kill for t in range(1, 6)]
    assert kills == [False, True, False, False, False]


def test_restart_after_zero_never_kills():
    c = HealthCounter(check(retries=1, restart_after=0), started_at=0.0)
    assert not any(c.observe(False, t).kill for t in range(1, 50))


@given(st.lists(st.booleans(), max_size=60), st.integers(1, 5), st.integers(0, 5))
def test_counter_matches_a_trailing_failure_run(outcomes, retries, restart_after):
    c = HealthCounter(check(retries=retries, restart_after=restart_after), started_at=0.0)
    kills = 0
    for i, ok in enumerate(outcomes):
        v = c.observe(ok, float(i))
        kills += v.kill
    run = 0
    for ok in reversed(outcomes):
        if ok:
            break
        run += 1
    assert c.failures == run
    if not outcomes:
        assert c.health == "starting"
    elif run >= retries:
        assert c.health == "unhealthy"
    elif run == 0:
        assert c.health == "healthy"
    assert kills <= 1
    longest, cur = 0, 0
    for ok in outcomes:
        cur = 0 if ok else cur + 1
        longest = max(longest, cur)
    assert kills == (1 if restart_after and longest >= restart_after else 0)


def test_only_the_last_results_are_kept():
    results: list = []
    for i in range(12):
        results = push_result(results, ProbeResult(time=i, ok=True, latency=0.1, detail=""))
    assert len(results) == KEEP_RESULTS and results[-1]["time"] == 11


def test_host_port_parsing():
    assert parse_host_port("127.0.0.1:80") == ("127.0.0.1", 80)
    assert parse_host_port("[::1]:6379") == ("::1", 6379)
    with pytest.raises(ValueError):
        parse_host_port("localhost")
