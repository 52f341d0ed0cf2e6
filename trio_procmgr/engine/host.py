"""What a supervisor may ask of the engine around it: the :class:`SupervisorHost` port.

A supervisor owns one process; everything beyond that process (events, the spawn
journal, the output FIFOs, the features, the orphan reaper, the restart decision of a
group) is the host's. The supervisor sees only this protocol, never the whole
``ProcessManager``: a test can check the supervisor's every host call is declared
here, and a reviewer can read the seam in one screen. ``ProcessManager`` implements it.

The calls fall in a few groups:

- **tell**: ``publish`` an event; ``save_runtime`` (the PID record is dirty).
- **before a run**: ``check_conditions``, ``prepare_exec`` (the exec plan with every
  feature's env and fds), ``open_output`` / ``discard_output`` (log FIFOs).
- **around a run**: ``after_spawn`` (features see the attempt), ``track`` /
  ``untrack`` (the reaper leaves a main PID to us), ``journal_spawn``, ``instance_hooks``
  (features start their tasks in the run's nursery), ``on_log_line``,
  ``instance_ended``.
- **after a run**: ``journal_settle``, ``on_process_down``, ``restart_automatically``
  (a group may own the restart), ``on_spec_replaced``.
- **facts**: ``clock`` (wall time), ``platform`` (the OS ports, ``platform/ports.py``),
  ``reaper`` (child-change wake-ups), ``runtime_root``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    import trio

    from trio_procmgr.engine.clock import Clock
    from trio_procmgr.engine.supervisor import Instance, Supervisor
    from trio_procmgr.spec import ProcessSpec


class SupervisorHost(Protocol):
    clock: "Clock"
    platform: Any
    reaper: Any
    runtime_root: str
    instance_hooks: list[Callable[["Supervisor", "Instance", "trio.Nursery"], None]]

    def publish(self, type: str, process: str | None = None, id: str | None = None,
                **fields: Any) -> None: ...
    def save_runtime(self) -> None: ...
    def check_conditions(self, spec: "ProcessSpec") -> tuple[bool, str]: ...
    def prepare_exec(self, sup: "Supervisor") -> tuple[Any, tuple[int, ...]]: ...
    def open_output(self, sup: "Supervisor") -> tuple[Any, tuple[str, ...]]: ...
    def discard_output(self, fifos: tuple[str, ...]) -> None: ...
    def after_spawn(self, sup: "Supervisor", fds: tuple[int, ...]) -> None: ...
    def track(self, pid: int) -> None: ...
    def untrack(self, pid: int) -> None: ...
    def journal_spawn(self, sup: "Supervisor", inst: "Instance") -> None: ...
    def journal_settle(self, sup: "Supervisor") -> None: ...
    def on_log_line(self, sup: "Supervisor", stream: str, line: str, now: float) -> None: ...
    def instance_ended(self, sup: "Supervisor", inst: "Instance") -> None: ...
    def on_process_down(self, sup: "Supervisor", requested: bool) -> None: ...
    def on_spec_replaced(self, sup: "Supervisor") -> None: ...
    async def restart_automatically(self, sup: "Supervisor") -> None: ...


#: Every member a supervisor may use (a test walks supervisor.py against it).
HOST_MEMBERS: frozenset[str] = frozenset(
    {*SupervisorHost.__annotations__, *(n for n in SupervisorHost.__dict__
                                        if not n.startswith("_"))})
