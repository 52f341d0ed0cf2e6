"""Fault containment (SPEC §15): a bug in one process's task tree stays in that process.

Every task of a process's tree — the instance's waiter, pumps, probes, watchdog, notify
and socket listeners, the backoff timer, and each request the supervisor's actor
handles — runs through :class:`ContainedNursery`, a front for a Trio nursery whose
``start_soon``/``start`` wrap the task in one fault boundary. An exception escaping a
task is not allowed to cancel its siblings and climb to the daemon's root nursery:
it is handed to ``on_fault(where, exc)``, the supervisor's single decision point
(``Supervisor.contain_fault``), which logs the traceback, records it for ``describe``,
publishes ``internal_error`` and makes the process fail (and restart by its policy).

Cancellation (``trio.Cancelled``) and ``KeyboardInterrupt`` are ``BaseException`` and
pass through untouched, so stopping a process still cancels its tree as a unit.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeAlias

import trio

FaultHandler = Callable[[str, BaseException], None]


@dataclass(frozen=True)
class InternalError:
    """What ``describe`` shows as ``last_internal_error`` and ``internal_error`` carries."""

    time: float
    where: str
    error: str
    traceback: str

    @classmethod
    def from_exception(cls, where: str, exc: BaseException, now: float | None = None) -> "InternalError":
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        error = "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in _leaves(exc))
        return cls(time=time.time() if now is None else now, where=where, error=error,
                   traceback=tb)

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "where": self.where, "error": self.error}


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions an exception group wraps (a nursery's), or ``exc`` itself: what
    went wrong, rather than "Exceptions from Trio nursery"."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def task_name(fn: Callable[..., Any]) -> str:
    """A readable name for where a fault happened (``HealthFeature._probe_loop``)."""
    inner = getattr(fn, "func", fn)  # functools.partial
    return getattr(inner, "__qualname__", None) or repr(inner)


#: What a feature gets to start a run's tasks in: the instance's ContainedNursery (or,
#: in a test, a plain Trio nursery); both have ``start_soon``/``start``/``cancel_scope``.
TaskNursery: TypeAlias = "trio.Nursery | ContainedNursery"


class ContainedNursery:
    """A nursery whose tasks cannot take their siblings (or the daemon) down.

    Owns nothing: the wrapped nursery stays owned by whoever opened it; this front only
    decides what an escaping exception becomes.
    """

    def __init__(self, nursery: trio.Nursery, on_fault: FaultHandler) -> None:
        self._nursery = nursery
        self._on_fault = on_fault

    @property
    def cancel_scope(self) -> trio.CancelScope:
        return self._nursery.cancel_scope

    @property
    def child_tasks(self) -> Any:
        return self._nursery.child_tasks

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: Any = None) -> None:
        self._nursery.start_soon(self._guard, fn, args, name=name or task_name(fn))

    async def start(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: Any = None) -> Any:
        async def guarded(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            await self._run(fn, args, task_status=task_status)
        return await self._nursery.start(guarded, name=name or task_name(fn))

    async def _guard(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        # The boundary written out here rather than awaiting _run: a long-lived task
        # (a pump, the exit waiter) then holds one wrapper frame, not two (~0.3 KiB each).
        try:
            await fn(*args)
        except Exception as exc:  # the one containment boundary: handed on, never dropped
            self._on_fault(task_name(fn), exc)

    async def _run(self, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                   **kwargs: Any) -> None:
        try:
            await fn(*args, **kwargs)
        except Exception as exc:  # the one containment boundary: handed on, never dropped
            self._on_fault(task_name(fn), exc)
