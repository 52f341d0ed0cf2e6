"""Process states, their legal transitions (one table) and the runtime record.

Nothing outside :func:`apply_trigger` assigns ``Record.state``; the engine's
supervisor calls it and publishes the event it returns. Reading :data:`TABLE` is
reading every legal move of a managed process and what causes it (in the style of
h11's ``_state.py``: state -> trigger -> next state).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Any


class State(str, enum.Enum):
    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    EXITED = "exited"
    FAILED = "failed"
    BACKOFF = "backoff"
    CRASHED = "crashed"
    PAUSED = "paused"
    CONDITION_FAILED = "condition_failed"

    def __str__(self) -> str:
        return self.value


S = State
#: States in which no child of the process is alive.
DOWN_STATES = frozenset({S.CREATED, S.STOPPED, S.EXITED, S.FAILED, S.BACKOFF, S.CRASHED,
                         S.CONDITION_FAILED})
#: States in which a child is alive (or being made alive / stopped).
ACTIVE_STATES = frozenset({S.STARTING, S.RUNNING, S.STOPPING, S.PAUSED})

class Trigger(enum.Enum):
    """What moves a process from one state to the next (the columns of :data:`TABLE`)."""

    SPAWN = "spawn"                      # a start (manual or automatic) begins a run
    ADOPT = "adopt"                      # a running child of a previous daemon is taken over
    READY = "ready"                      # the run became ready (started, READY=1, fork done)
    PAUSE = "pause"                      # frozen on request
    RESUME = "resume"                    # thawed on request
    STOP = "stop"                        # a stop sequence begins
    STOP_DONE = "stop_done"              # the stop sequence ended: nothing of it is left
    SETTLE_STOPPED = "settle_stopped"    # a process already down is marked stopped
    EXIT_SUCCESS = "exit_success"        # the run ended and it counts as a success
    EXIT_FAILURE = "exit_failure"        # the run ended (or never began) as a failure
    RETRY_LATER = "retry_later"          # the restart policy schedules a restart
    GIVE_UP = "give_up"                  # the restart policy gives up (start limit)
    CONDITION_UNMET = "condition_unmet"  # a start condition does not hold

    def __str__(self) -> str:
        return self.value


T = Trigger
_DOWN = (S.CREATED, S.STOPPED, S.EXITED, S.FAILED, S.BACKOFF, S.CRASHED, S.CONDITION_FAILED)
_RUN = (S.STARTING, S.RUNNING, S.PAUSED)


def _rows() -> dict[State, dict[Trigger, State]]:
    rows: dict[State, dict[Trigger, State]] = {state: {} for state in State}
    for state in _DOWN:  # any start of a process that is down
        rows[state][T.SPAWN] = S.STARTING
        rows[state][T.CONDITION_UNMET] = S.CONDITION_FAILED
    for state in (S.CREATED, S.EXITED, S.FAILED, S.BACKOFF, S.CRASHED, S.CONDITION_FAILED):
        rows[state][T.SETTLE_STOPPED] = S.STOPPED
    for state in (*_RUN, S.STOPPING):  # the child ended (or the spawn failed)
        rows[state][T.EXIT_SUCCESS] = S.EXITED
        rows[state][T.EXIT_FAILURE] = S.FAILED
    for state in _RUN:
        rows[state][T.STOP] = S.STOPPING
    for state in (S.EXITED, S.FAILED):  # the restart policy decides
        rows[state][T.RETRY_LATER] = S.BACKOFF
        rows[state][T.GIVE_UP] = S.CRASHED
    rows[S.CREATED][T.ADOPT] = S.STARTING
    rows[S.CREATED][T.EXIT_FAILURE] = S.FAILED  # it ended while no daemon watched
    rows[S.STARTING][T.READY] = S.RUNNING
    rows[S.RUNNING][T.PAUSE] = S.PAUSED
    rows[S.PAUSED][T.RESUME] = S.RUNNING
    rows[S.STOPPING][T.STOP_DONE] = S.STOPPED
    return rows


#: state -> trigger -> next state: every legal move of a managed process, and what
#: causes it. A (state, trigger) pair that is not here is a bug (:class:`IllegalTransition`).
TABLE: dict[State, dict[Trigger, State]] = _rows()

#: state -> the states reachable in one move (derived from :data:`TABLE`).
TRANSITIONS: dict[State, frozenset[State]] = {
    state: frozenset(row.values()) for state, row in TABLE.items()}

#: The trigger that settles a run into the state the restart policy decided.
SETTLE_TRIGGERS: dict[State, Trigger] = {
    S.EXITED: T.EXIT_SUCCESS, S.FAILED: T.EXIT_FAILURE, S.BACKOFF: T.RETRY_LATER,
    S.CRASHED: T.GIVE_UP}


class StopCause(str, enum.Enum):
    """Why the engine stopped a process: what other parts decide on (a group's round,
    a bound dependant), where ``Record.reason`` is only the prose shown to users."""

    REQUESTED = "requested"    # an operator (or library caller) asked
    DEPENDENCY = "dependency"  # a process it requires/binds to went down
    CONFLICT = "conflict"      # a conflicting process is being started
    SHUTDOWN = "shutdown"      # the daemon is stopping
    DELETED = "deleted"        # the process is being removed
    RESTART = "restart"        # stopped to be started again (restart, reload)
    GROUP = "group"            # its group restarted or escalated

    def __str__(self) -> str:
        return self.value


class IllegalTransition(RuntimeError):
    """A bug: the engine tried a move the table does not allow."""


@dataclass(slots=True)
class Record:
    """Runtime facts about one managed process (SPEC §3.1 field names).

    Mutated only by the process's own supervisor (through :func:`apply_trigger`
    for ``state``).
    """

    name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: State = S.CREATED
    pid: int | None = None
    runs: int = 0
    restarts: int = 0
    exit_code: int | None = None
    exit_signal: int | None = None
    created_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    health: str = "none"
    next_restart_at: float | None = None
    reason: str = ""
    status_text: str = ""
    state_changed_at: float | None = None
    #: Why the engine last stopped it; None once it starts again.
    stop_cause: StopCause | None = None
    #: How many moves the record has made: identifies one stop ("still the stop we made").
    moves: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "id": self.id, "state": self.state.value, "pid": self.pid,
            "runs": self.runs, "restarts": self.restarts, "exit_code": self.exit_code,
            "exit_signal": self.exit_signal, "created_at": self.created_at,
            "started_at": self.started_at, "ended_at": self.ended_at,
            "health": self.health, "next_restart_at": self.next_restart_at,
            "reason": self.reason, "status_text": self.status_text,
        }


def can_transition(old: State, new: State) -> bool:
    return new in TRANSITIONS[old]


def next_state(state: State, trigger: Trigger) -> State:
    """The state ``trigger`` moves ``state`` to; :class:`IllegalTransition` naming both
    when the table has no such move."""
    try:
        return TABLE[state][trigger]
    except KeyError:
        raise IllegalTransition(
            f"trigger {trigger.value!r} is not allowed in state {state.value!r}") from None


def apply_trigger(record: Record, trigger: Trigger, reason: str, now: float) -> dict[str, Any]:
    """Move ``record`` by ``trigger``, stamp it, and return the ``state_changed`` event body.

    The one function that assigns ``Record.state``. Raises :class:`IllegalTransition`
    (naming process, state and trigger) for a move the table does not have.
    """
    old = record.state
    try:
        new = next_state(old, trigger)
    except IllegalTransition as exc:
        raise IllegalTransition(f"{record.name}: {exc}") from None
    record.state = new
    record.reason = reason
    record.state_changed_at = now
    record.moves += 1
    if new is not S.BACKOFF:
        record.next_restart_at = None
    if trigger in (T.SPAWN, T.ADOPT):
        record.stop_cause = None
    return {"type": "state_changed", "process": record.name, "id": record.id,
            "from": old.value, "to": new.value, "reason": reason}
