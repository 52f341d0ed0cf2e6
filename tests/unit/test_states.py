"""The state table: every legal move is listed, anything else is refused."""

import pytest

from trio_procmgr.states import (IllegalTransition, Record, State, TRANSITIONS,
                                 apply_transition)


def test_every_state_has_a_row():
    assert set(TRANSITIONS) == set(State)


def test_transition_stamps_reason_and_returns_event():
    rec = Record(name="web")
    ev = apply_transition(rec, State.STARTING, "spawning", 12.5)
    assert rec.state is State.STARTING and rec.reason == "spawning"
    assert rec.state_changed_at == 12.5
    assert ev == {"type": "state_changed", "process": "web", "id": rec.id,
                  "from": "created", "to": "starting", "reason": "spawning"}


def test_illegal_move_is_refused():
    rec = Record(name="web")
    with pytest.raises(IllegalTransition):
        apply_transition(rec, State.RUNNING, "no", 0)


def test_stopped_never_moves_to_backoff():
    assert State.BACKOFF not in TRANSITIONS[State.STOPPED]


def test_record_has_contract_fields():
    fields = set(Record(name="x").to_dict())
    assert {"name", "id", "state", "pid", "runs", "restarts", "exit_code", "exit_signal",
            "created_at", "started_at", "ended_at", "health", "next_restart_at",
            "reason"} <= fields
