"""What a supervisor's inbox carries: requests and internal events, one class each.

The supervisor is an actor with one inbox (see ``supervisor.py``). Everything that
changes a process — an operator's ``stop``, the child's exit, an elapsed backoff, a
probe that gave up — arrives as one of these frozen values and is handled in order by
a ``match`` on its type. A value names exactly what happened and carries what the
handler needs; there are no op strings and no keyword bags, so a typo is a type error
(or a failed ``match``), not an ``AttributeError`` at run time.

Requests (answered: :meth:`Supervisor.request`) come from the manager, transactions and
groups; events (fire-and-forget: :meth:`Supervisor.post`) come from the process's own
tasks (waiter, timers, health, watchdog, notify).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from trio_procmgr.states import StopCause

if TYPE_CHECKING:
    from trio_procmgr.engine.supervisor import Instance
    from trio_procmgr.spec import ProcessSpec


# ---------------------------------------------------------------- requests (answered)
@dataclass(frozen=True, slots=True)
class Start:
    """Start the process. ``manual``: an operator asked (resets the failure count and
    the start limit); ``automatic``: the engine did (counts as a restart)."""

    manual: bool = True
    automatic: bool = False


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop the process; ``reason`` is the prose shown to users, ``cause`` what
    decides behaviour elsewhere (groups, dependencies)."""

    reason: str = "stopped on request"
    cause: StopCause = StopCause.REQUESTED


@dataclass(frozen=True, slots=True)
class Pause:
    """Freeze the running process (cgroup freezer or SIGSTOP)."""


@dataclass(frozen=True, slots=True)
class Resume:
    """Thaw a paused process."""


@dataclass(frozen=True, slots=True)
class Kill:
    """Send ``sig`` to ``whom`` (``main`` or ``all``) without changing the state."""

    sig: int
    whom: str = "all"


@dataclass(frozen=True, slots=True)
class ReplaceSpec:
    """Take ``spec`` as the process's spec from now on (applies on the next start)."""

    spec: "ProcessSpec"


@dataclass(frozen=True, slots=True)
class LaunchAutomatic:
    """A group restart launches this member as an automatic restart."""


@dataclass(frozen=True, slots=True)
class Adopt:
    """Take over a running main process a previous daemon spawned (already verified)."""

    entry: dict[str, Any]
    pidfd: int
    readers: tuple[int | None, int | None]
    fifos: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Restore:
    """Show again the settled state a previous daemon left (journal ``settle``)."""

    state: str
    reason: str


@dataclass(frozen=True, slots=True)
class DiedUnseen:
    """The main process ended while no daemon watched it (journal entry)."""

    entry: dict[str, Any]


# ---------------------------------------------------------------- events (posted)
@dataclass(frozen=True, slots=True, eq=False)
class Exited:
    """The instance's whole tree is gone and its status is known."""

    inst: "Instance"


@dataclass(frozen=True, slots=True, eq=False)
class StartTimeout:
    """The instance did not become ready within ``timeout_start_sec``."""

    inst: "Instance"


@dataclass(frozen=True, slots=True, eq=False)
class BackoffElapsed:
    """The backoff timer armed with ``scope`` ran out (stale if another was armed)."""

    scope: trio.CancelScope


@dataclass(frozen=True, slots=True, eq=False)
class KillForFailure:
    """A health check or the watchdog gave up on ``inst``: kill it as a failure."""

    inst: "Instance"
    reason: str


@dataclass(frozen=True, slots=True)
class InternalFault:
    """A bug in this process's task tree was contained; fail the process."""

    where: str
    error: str


Request = Start | Stop | Pause | Resume | Kill | ReplaceSpec | LaunchAutomatic | Adopt \
    | Restore | DiedUnseen
Event = Exited | StartTimeout | BackoffElapsed | KillForFailure | InternalFault
Message = Request | Event


@dataclass(eq=False)
class Envelope:
    """One message in the inbox and the slot its answer goes to."""

    message: Message
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: BaseException | None = None


def describe(message: object) -> str:
    """The message's kind in snake case (``ReplaceSpec`` → ``replace_spec``), for logs
    and internal-error texts."""
    name = type(message).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
