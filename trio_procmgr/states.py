"""Process states, their legal transitions (one table) and the runtime record.

Nothing outside :func:`apply_transition` assigns ``Record.state``; the engine's
supervisor calls it and publishes the event it returns. Reading the table below is
reading every legal move of a managed process.
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

TRANSITIONS: dict[State, frozenset[State]] = {
    S.CREATED: frozenset({S.STARTING, S.FAILED, S.CONDITION_FAILED, S.STOPPED}),
    S.STARTING: frozenset({S.RUNNING, S.EXITED, S.FAILED, S.STOPPING, S.STOPPED}),
    S.RUNNING: frozenset({S.STOPPING, S.EXITED, S.FAILED, S.PAUSED, S.STOPPED}),
    S.PAUSED: frozenset({S.RUNNING, S.STOPPING, S.EXITED, S.FAILED, S.STOPPED}),
    S.STOPPING: frozenset({S.STOPPED, S.FAILED, S.EXITED}),
    S.STOPPED: frozenset({S.STARTING, S.FAILED, S.CONDITION_FAILED}),
    S.EXITED: frozenset({S.STARTING, S.BACKOFF, S.CRASHED, S.FAILED, S.CONDITION_FAILED,
                         S.STOPPED}),
    S.FAILED: frozenset({S.STARTING, S.BACKOFF, S.CRASHED, S.CONDITION_FAILED, S.STOPPED}),
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED, S.FAILED, S.CONDITION_FAILED}),
    S.CRASHED: frozenset({S.STARTING, S.STOPPED, S.FAILED, S.CONDITION_FAILED}),
    S.CONDITION_FAILED: frozenset({S.STARTING, S.STOPPED, S.FAILED, S.CONDITION_FAILED}),
}


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

    Mutated only by the process's own supervisor (through :func:`apply_transition`
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
    #: Why the engine last stopped it; None when it went down on its own.
    stop_cause: StopCause | None = None

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


def apply_transition(record: Record, new: State, reason: str, now: float) -> dict[str, Any]:
    """Move ``record`` to ``new``, stamp it, and return the ``state_changed`` event body.

    Raises :class:`IllegalTransition` for a move the table forbids.
    """
    old = record.state
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"{record.name}: {old.value} -> {new.value} is not allowed")
    record.state = new
    record.reason = reason
    record.state_changed_at = now
    if new is not S.BACKOFF:
        record.next_restart_at = None
    return {"type": "state_changed", "process": record.name, "id": record.id,
            "from": old.value, "to": new.value, "reason": reason}
