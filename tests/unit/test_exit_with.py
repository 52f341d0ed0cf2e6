"""``--exit-with``: when a process has ended for good, and the status the daemon exits with."""

from __future__ import annotations

import pytest

from trio_procmgr.daemon.exit_with import ended_for_good, exit_status_of
from trio_procmgr.states import Record, State


def record(state: State, code: int | None = None, sig: int | None = None) -> Record:
    r = Record(name="main")
    r.state, r.exit_code, r.exit_signal = state, code, sig
    return r


@pytest.mark.parametrize("state", [State.EXITED, State.FAILED, State.CRASHED, State.CONDITION_FAILED])
def test_settled_states_are_an_end(state):
    assert ended_for_good(record(state))


@pytest.mark.parametrize("state", [State.CREATED, State.STARTING, State.RUNNING, State.PAUSED,
                                   State.STOPPING, State.BACKOFF, State.STOPPED])
def test_a_pending_restart_or_an_operators_stop_is_not_an_end(state):
    assert not ended_for_good(record(state))


def test_status_is_the_exit_code_or_128_plus_the_signal():
    assert exit_status_of(record(State.FAILED, code=7)) == 7
    assert exit_status_of(record(State.EXITED, code=0)) == 0
    assert exit_status_of(record(State.FAILED, sig=9)) == 137
    assert exit_status_of(record(State.FAILED)) == 1  # spawn failure: no status at all
