"""The state table: every legal move is listed with its trigger, anything else is refused."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_procmgr.states import (ACTIVE_STATES, DOWN_STATES, SETTLE_TRIGGERS, TABLE,
                                 TRANSITIONS, IllegalTransition, Record, State, StopCause,
                                 Trigger, apply_trigger, next_state)


def test_every_state_has_a_row():
    assert set(TABLE) == set(State) and set(TRANSITIONS) == set(State)


def test_trigger_stamps_reason_and_returns_event():
    rec = Record(name="web")
    ev = apply_trigger(rec, Trigger.SPAWN, "spawning", 12.5)
    assert rec.state is State.STARTING and rec.reason == "spawning"
    assert rec.state_changed_at == 12.5 and rec.moves == 1
    assert ev == {"type": "state_changed", "process": "web", "id": rec.id,
                  "from": "created", "to": "starting", "reason": "spawning"}


def test_illegal_move_is_refused_naming_process_state_and_trigger():
    rec = Record(name="web")
    with pytest.raises(IllegalTransition, match="web.*'ready'.*'created'"):
        apply_trigger(rec, Trigger.READY, "no", 0)
    assert rec.state is State.CREATED and rec.moves == 0


def test_stopped_never_moves_to_backoff():
    assert State.BACKOFF not in TRANSITIONS[State.STOPPED]


def test_a_full_life_follows_the_table():
    rec = Record(name="web")
    for trigger, expected in [(Trigger.SPAWN, State.STARTING), (Trigger.READY, State.RUNNING),
                              (Trigger.PAUSE, State.PAUSED), (Trigger.RESUME, State.RUNNING),
                              (Trigger.EXIT_FAILURE, State.FAILED),
                              (Trigger.RETRY_LATER, State.BACKOFF),
                              (Trigger.SPAWN, State.STARTING), (Trigger.STOP, State.STOPPING),
                              (Trigger.STOP_DONE, State.STOPPED)]:
        apply_trigger(rec, trigger, str(trigger), 1.0)
        assert rec.state is expected


def test_a_new_run_forgets_why_it_was_stopped():
    rec = Record(name="web", state=State.STOPPED, stop_cause=StopCause.GROUP)
    apply_trigger(rec, Trigger.SPAWN, "spawning", 1.0)
    assert rec.stop_cause is None


def test_settle_triggers_lead_to_the_state_they_name():
    for state, trigger in SETTLE_TRIGGERS.items():
        source = State.RUNNING if state in (State.EXITED, State.FAILED) else State.FAILED
        assert next_state(source, trigger) is state


@given(st.lists(st.sampled_from(list(Trigger)), max_size=40))
def test_any_sequence_of_triggers_only_makes_table_moves(triggers):
    rec = Record(name="p")
    for trigger in triggers:
        before = rec.state
        try:
            event = apply_trigger(rec, trigger, "", 0.0)
        except IllegalTransition:
            assert trigger not in TABLE[before] and rec.state is before
            continue
        assert rec.state is TABLE[before][trigger] and event["from"] == before.value
        assert rec.state in DOWN_STATES | ACTIVE_STATES


def test_record_has_contract_fields():
    fields = set(Record(name="x").to_dict())
    assert {"name", "id", "state", "pid", "runs", "restarts", "exit_code", "exit_signal",
            "created_at", "started_at", "ended_at", "health", "next_restart_at",
            "reason"} <= fields
