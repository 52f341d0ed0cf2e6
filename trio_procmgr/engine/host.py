"""What a supervisor may ask of the engine around it: the :class:`SupervisorHost` port.

A supervisor owns one process; everything beyond that process (events, the spawn
journal, the output FIFOs, the features, the orphan reaper, the restart decision of a
group) is the host's. The supervisor sees only this protocol, never the
``ProcessManager``: a unit test checks that the supervisor's every host call is
declared here, and a reviewer can read the seam in one screen. ``EngineHost``
(``engine/engine_host.py``) implements it.

One call per moment of a run, in the order they happen:

- ``prepare_run``: the conditions, then the exec plan with every feature's env and fds,
  then the output FIFOs (:class:`PreparedRun`); raises :class:`ConditionUnmet` or
  ``SpawnError``.
- ``spawned``: the run's main process is watched from now on: tracked (the orphan
  reaper leaves it to us) and journalled, after a spawn attempt (features release the
  attempt's fds; a failed one's FIFOs go), an adoption, or a new main PID (MAINPID=, a
  forking hand-over: ``previous`` is no longer watched).
- ``run_started``: the run's nursery exists: features start their tasks in it.
- ``output_line``: a line of the service's output (log files, followers, readiness).
- ``run_ended``: the run's tree is done (untracked, FIFOs removed).
- ``settled``: the process settled after a run or a stop (journal, features, PID file).
- ``restart_automatically``: a backoff elapsed (a group may own the restart).
- ``spec_replaced``: update / reload gave the process a new spec.

Plus ``publish`` (an event) and ``facts`` (clock, platform, reaper, runtime root).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from trio_procmgr.engine.clock import Clock
    from trio_procmgr.engine.spawner import ExecPlan
    from trio_procmgr.engine.supervisor import Instance, Supervisor
    from trio_procmgr.platform.ports import Platform


@dataclass(frozen=True)
class HostFacts:
    """What does not change while the engine runs: read freely, never a call back."""

    clock: "Clock"
    platform: "Platform"
    reaper: Any
    runtime_root: str


class ConditionUnmet(Exception):
    """A start condition (``condition_path_exists``) does not hold: the process is not
    started (state ``condition_failed``); ``why`` says which."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class PreparedRun:
    """Everything a spawn needs that the host prepared: the plan (every feature's env
    and fds in it) and the output FIFOs (``output`` None: plain pipes)."""

    plan: "ExecPlan"
    output: tuple[int, int, int, int] | None = None
    fifos: tuple[str, ...] = ()


class SupervisorHost(Protocol):
    facts: HostFacts

    def publish(self, type: str, process: str | None = None, id: str | None = None,
                **fields: Any) -> Any: ...
    def prepare_run(self, sup: "Supervisor") -> PreparedRun: ...
    def spawned(self, sup: "Supervisor", inst: "Instance | None", run: PreparedRun | None,
                *, previous: int | None = None) -> None: ...
    def run_started(self, sup: "Supervisor", inst: "Instance", nursery: Any) -> None: ...
    def output_line(self, sup: "Supervisor", stream: str, line: str, now: float) -> None: ...
    def run_ended(self, sup: "Supervisor", inst: "Instance") -> None: ...
    def settled(self, sup: "Supervisor", *, requested: bool) -> None: ...
    async def restart_automatically(self, sup: "Supervisor") -> None: ...
    def spec_replaced(self, sup: "Supervisor") -> None: ...


#: Every member a supervisor may use (a test walks supervisor.py against it).
HOST_MEMBERS: frozenset[str] = frozenset(
    {*SupervisorHost.__annotations__, *(n for n in SupervisorHost.__dict__
                                        if not n.startswith("_"))})
