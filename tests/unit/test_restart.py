"""The restart decision, backoff and start-limit window (SPEC §3.2), without processes."""

import signal

from hypothesis import given, strategies as st

from trio_procmgr.config.loader import parse_process
from trio_procmgr.restart import (StartLimiter, backoff_delay, decide, is_success,
                                  should_restart, stable_run)
from trio_procmgr.states import State


def spec(**raw):
    return parse_process("p", {"command": "true", **raw})


def test_policy_table():
    assert not should_restart("never", True) and not should_restart("never", False)
    assert should_restart("always", True) and should_restart("always", False)
    assert should_restart("on-failure", False) and not should_restart("on-failure", True)
    assert should_restart("on-success", True) and not should_restart("on-success", False)


def test_success_status_includes_listed_codes_and_signals():
    s = spec(success_exit_status=[0, 3, "SIGHUP"])
    assert is_success(s, 3, None)
    assert is_success(s, None, int(signal.SIGHUP))
    assert not is_success(s, 1, None)
    assert not is_success(s, None, int(signal.SIGKILL))


def test_exponential_backoff_doubles_then_caps():
    delays = [backoff_delay("exponential", 1, 60, n) for n in range(1, 9)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]


def test_linear_and_fixed_backoff():
    assert [backoff_delay("linear", 2, 7, n) for n in (1, 2, 3, 4)] == [2, 4, 6, 7]
    assert [backoff_delay("fixed", 2, 60, n) for n in (1, 5, 50)] == [2, 2, 2]


@given(st.sampled_from(["exponential", "linear", "fixed"]), st.floats(0.01, 100),
       st.floats(0.01, 1000), st.integers(1, 10_000))
def test_backoff_never_exceeds_cap_and_never_shrinks(kind, base, cap, n):
    d = backoff_delay(kind, base, cap, n)
    assert 0 < d <= cap
    assert backoff_delay(kind, base, cap, n + 1) >= d


def test_start_limiter_window_slides():
    lim = StartLimiter(burst=3, interval=10)
    for t in (0, 1, 2):
        assert not lim.would_exceed(t)
        lim.record(t)
    assert lim.would_exceed(5)
    assert not lim.would_exceed(10.5)  # the start at t=0 left the window


def test_start_limit_disabled_with_zero_interval():
    lim = StartLimiter(burst=1, interval=0)
    for t in range(100):
        assert not lim.would_exceed(t)
        lim.record(t)


def test_decide_on_failure_schedules_backoff_then_crashes_at_limit():
    s = spec(restart="on-failure", restart_sec=1, start_limit_burst=2, start_limit_interval=60)
    lim = StartLimiter(2, 60)
    lim.record(0)
    d = decide(s, succeeded=False, failure_reason="exited with status 1",
               consecutive_failures=1, limiter=lim, now=1)
    assert d.state is State.BACKOFF and d.restart and d.delay == 1
    lim.record(2)
    d = decide(s, succeeded=False, failure_reason="x", consecutive_failures=2, limiter=lim, now=3)
    assert d.state is State.CRASHED and d.start_limit_hit and not d.restart


def test_decide_never_keeps_terminal_state():
    s = spec(restart="never")
    d = decide(s, succeeded=True, failure_reason="exited with status 0",
               consecutive_failures=1, limiter=StartLimiter(5, 300), now=0)
    assert d.state is State.EXITED and not d.restart
    d = decide(s, succeeded=False, failure_reason="x", consecutive_failures=1,
               limiter=StartLimiter(5, 300), now=0)
    assert d.state is State.FAILED


def test_on_success_does_not_restart_failures():
    s = spec(restart="on-success")
    d = decide(s, succeeded=False, failure_reason="x", consecutive_failures=1,
               limiter=StartLimiter(5, 300), now=0)
    assert d.state is State.FAILED and not d.restart


def test_stable_run_resets_after_max_delay_or_health():
    s = spec(restart_max_delay=60)
    assert not stable_run(s, 59, False)
    assert stable_run(s, 61, False)
    assert stable_run(s, 1, True)


def test_a_limiter_that_is_off_keeps_no_start_times():
    limiter = StartLimiter(burst=5, interval=0)
    for i in range(1000):
        limiter.record(float(i))
    assert limiter.recent == 0 and not limiter.would_exceed(1000.0)


def test_the_window_forgets_starts_older_than_the_interval():
    limiter = StartLimiter(burst=3, interval=10)
    for t in (0.0, 1.0, 2.0):
        limiter.record(t)
    assert limiter.would_exceed(5.0)
    assert not limiter.would_exceed(10.5)  # the start at 0 has left the window
    assert limiter.recent == 2
