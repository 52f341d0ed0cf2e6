"""One managed process: its spec, its record, its supervision nursery.

A :class:`Supervisor` is an actor. Its ``run`` task owns the process's nursery; every
request (start, stop, pause, update ...) and every internal event (the child exited, a
backoff elapsed, a readiness timeout) arrives in one inbox and is handled in order, so
the record is only ever mutated by this task. Each running instance of the child has
its own cancel scope inside that nursery holding the pidfd waiter, the output pumps and
(added by later features) probes, watchdog and readiness listeners; stopping cancels it
as a unit once the stop sequence has finished.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import trio

from trio_procmgr import errors, units
from trio_procmgr.engine import messages as msg
from trio_procmgr.engine import runtime_files
from trio_procmgr.engine.containment import ContainedNursery, InternalError
from trio_procmgr.engine.host import ConditionUnmet
from trio_procmgr.engine.inbox import Inbox
from trio_procmgr.engine.resources import apply_running, oom_failure
from trio_procmgr.engine.spawner import Child, SpawnError, spawn
from trio_procmgr.logs import LogRing
from trio_procmgr.output_pump import start_pumps
from trio_procmgr.platform.posix import ExitStatus
from trio_procmgr.restart import StartLimiter, decide, describe_exit, is_success, stable_run
from trio_procmgr.spec import ProcessSpec
from trio_procmgr.states import (ACTIVE_STATES, SETTLE_TRIGGERS, Record, State, StopCause,
                                 Trigger, apply_trigger)

if TYPE_CHECKING:
    from trio_procmgr.engine.host import SupervisorHost
    from trio_procmgr.platform.ports import ServiceCgroup

log = logging.getLogger("trio_procmgr.supervisor")
S = State


@dataclass(eq=False, slots=True, weakref_slot=True)
class Instance:
    """One run of the child, from spawn to reaped exit (slotted: one per running process)."""

    child: Child
    started_mono: float
    pgid: int
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    exited: trio.Event = field(default_factory=trio.Event)
    status: ExitStatus | None = None
    stop_requested: bool = False
    failure_reason: str | None = None
    ready: bool = False
    healthy_seen: bool = False
    main_pid: int = 0
    paused: bool = False
    nursery: ContainedNursery | None = None
    pending: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    output_done: trio.Event = field(default_factory=trio.Event)
    # The main process can change (notify MAINPID=, forking): its pidfd when it is not
    # the spawned child, the waiter's scope (cancelled to re-target the waiter), and the
    # forking hand-over called when the spawned parent exits before readiness.
    main_pidfd: int | None = None
    watch_scope: trio.CancelScope | None = None
    handover: Callable[[ExitStatus], Awaitable[int | None]] | None = None
    tree_done: bool = False  # the instance's task tree has ended (its waiter included)
    #: Features' state of this run: the notify start deadline, the watchdog timer.
    start_deadline: trio.CancelScope | None = None
    watchdog: Any = None

    def __post_init__(self) -> None:
        self.main_pid = self.child.pid

    def close_main_pidfd(self) -> None:
        if self.main_pidfd is not None:
            os.close(self.main_pidfd)
            self.main_pidfd = None


class Supervisor:
    def __init__(self, host: "SupervisorHost", spec: ProcessSpec,
                 record: Record | None = None) -> None:
        #: The host (engine/host.py): the only engine surface this supervisor uses.
        self.host = host
        #: Wall-clock stamps (records, start-limit window); waits use Trio's clock.
        self.clock = host.facts.clock
        #: The platform's process port: exit waits, signals, the process tree.
        self.os = host.facts.platform.process
        self.spec = spec
        self.record = record or Record(name=spec.name, created_at=self.clock.now())
        self.limiter = StartLimiter(spec.start_limit_burst, spec.start_limit_interval)
        self.failures = 0
        self.instance: Instance | None = None
        self.ring = LogRing(spec.log.ring_lines, spec.log.ring_bytes)
        self.cgroup: ServiceCgroup | None = None
        self.enforcement: dict[str, Any] = {}
        self.run_baseline: Any = None  # resources.RunBaseline, taken before each spawn
        self.extras: dict[str, Any] = {}
        self._send = self._recv = Inbox()  # one object: a Trio channel costs ~2 KiB
        self._changed = trio.lowlevel.ParkingLot()
        self._backoff_scope: trio.CancelScope | None = None
        self.nursery: ContainedNursery | None = None
        self.closed = trio.Event()
        self.internal_errors = 0

    # ------------------------------------------------------------------ plumbing
    @property
    def name(self) -> str:
        return self.spec.name

    async def run(self, *, task_status: "trio.TaskStatus[None]" = trio.TASK_STATUS_IGNORED) -> None:
        """The actor: owns the process nursery until the process is deleted."""
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = ContainedNursery(nursery, self.contain_fault)
                task_status.started()
                async for envelope in self._recv:
                    if envelope is None:
                        break
                    await self._dispatch(envelope)
                    # An idle actor must not keep its last answer (a record dict and an
                    # Event, ~0.7 KiB per process) until its next message.
                    envelope = None
                nursery.cancel_scope.cancel()
        finally:
            self.closed.set()

    async def request(self, message: msg.Request) -> Any:
        """Ask the actor to handle ``message`` and wait for its answer (errors re-raised
        here). Cancellation: the caller stops waiting; the actor still handles it."""
        if self.closed.is_set():
            raise errors.ProcessNotFound(f"process '{self.name}' was deleted", process=self.name)
        envelope = msg.Envelope(message)
        self._send.send_nowait(envelope)
        await envelope.done.wait()
        if envelope.error is not None:
            raise envelope.error
        return envelope.result

    def post(self, event: msg.Event) -> None:
        """Queue an internal event for the actor (no answer); dropped once deleted."""
        if not self.closed.is_set():
            self._send.send_nowait(msg.Envelope(event))

    def close(self) -> None:
        self._send.send_nowait(None)

    async def _dispatch(self, envelope: msg.Envelope) -> None:
        message = envelope.message
        try:
            envelope.result = await self._handle(message)
        except errors.ProcMgrError as exc:
            envelope.error = exc
        except Exception as exc:  # a bug must not kill the actor: contained, answered INTERNAL
            what = msg.describe(message)
            envelope.error = errors.Internal(f"{what} of '{self.name}' failed: {exc!r}")
            if isinstance(message, msg.InternalFault):  # handling a fault failed: no loop
                self.record_fault(f"request {what}", exc)
            else:
                self.contain_fault(f"request {what}", exc)
        finally:
            envelope.done.set()

    async def _handle(self, message: msg.Message) -> Any:
        """The one place a message meets its handler: a ``match`` on its type."""
        match message:
            case msg.Start(manual=manual, automatic=automatic):
                return await self._on_start(manual=manual, automatic=automatic)
            case msg.Stop(reason=reason, cause=cause):
                return await self._on_stop(reason, cause)
            case msg.Pause():
                return await self._on_pause()
            case msg.Resume():
                return await self._on_resume()
            case msg.Kill(sig=sig, whom=whom):
                return await self._on_kill(sig, whom)
            case msg.ReplaceSpec(spec=spec):
                return await self._on_replace_spec(spec)
            case msg.LaunchAutomatic():
                return await self._on_launch_automatic()
            case msg.Adopt(entry=entry, pidfd=pidfd, readers=readers, fifos=fifos):
                return await self._on_adopt(entry, pidfd, readers, fifos)
            case msg.Restore(state=state, reason=reason):
                return await self._on_restore(state, reason)
            case msg.DiedUnseen(entry=entry):
                return await self._on_died_unseen(entry)
            case msg.Exited(inst=inst):
                return await self._on_exited(inst)
            case msg.StartTimeout(inst=inst):
                return await self._on_start_timeout(inst)
            case msg.BackoffElapsed(scope=scope):
                return await self._on_backoff_elapsed(scope)
            case msg.KillForFailure(inst=inst, reason=reason):
                return await self._on_kill_for_failure(inst, reason)
            case msg.InternalFault(where=where, error=error):
                return await self._on_internal_fault(where, error)
        raise TypeError(f"supervisor inbox: unknown message {message!r}")

    # ------------------------------------------------------------------ fault containment
    def record_fault(self, where: str, exc: BaseException) -> InternalError:
        """Log the traceback, keep it for ``describe`` and publish ``internal_error``."""
        fault = InternalError.from_exception(where, exc)
        self.internal_errors += 1
        log.error("process %s: internal error in %s: %s\n%s", self.name, where, fault.error,
                  fault.traceback.rstrip(), extra={"service": self.name})
        self.extras["last_internal_error"] = fault.to_dict()
        self.extras["internal_errors"] = self.internal_errors
        self.host.publish("internal_error", self.name, self.record.id, where=where,
                             error=fault.error)
        return fault

    def contain_fault(self, where: str, exc: BaseException) -> None:
        """The one place a bug in this process's task tree is decided (SPEC §15).

        Called by :class:`ContainedNursery` for any task of the tree and by the actor for
        a request that failed unexpectedly. The fault is recorded, then the actor makes
        the process fail: its instance is killed and the failure goes through the
        restart policy like any other, so the daemon and every other process go on.
        """
        fault = self.record_fault(where, exc)
        self.post(msg.InternalFault(where, fault.error))

    async def _on_internal_fault(self, where: str, error: str) -> None:
        reason = f"internal error in {where}: {error}"
        inst = self.instance
        if inst is not None and not inst.exited.is_set() and not inst.stop_requested:
            if inst.failure_reason is None:
                inst.failure_reason = reason
            if not inst.tree_done:
                await self._kill_instance(inst, for_failure=True)  # the waiter reports the exit
                return
            await self._settle_orphaned_instance(inst)
        elif inst is None and self.record.state in (S.STARTING, S.RUNNING, S.PAUSED, S.STOPPING):
            self._exit_without_child(reason, automatic=True)  # no child left: settle the record

    async def _settle_orphaned_instance(self, inst: Instance) -> None:
        """The instance's waiter died with the fault: kill the service, reap it, and
        report the exit ourselves (nobody else will)."""
        self._kill_all(inst)
        inst.status = ExitStatus(None, None)  # unless it is reaped below
        with trio.move_on_after(10.0):
            try:
                rc = await trio.to_thread.run_sync(_reap_blocking, inst.child.pid,
                                                   abandon_on_cancel=True)
                inst.status = ExitStatus.from_returncode(rc)
            except ChildProcessError:  # already reaped elsewhere: its status is unknown
                pass
        inst.exited.set()
        await self._on_exited(inst)

    def _transition(self, trigger: Trigger, reason: str) -> None:
        """Apply ``trigger`` to the record (the table in ``states.py``), publish the move."""
        event = apply_trigger(self.record, trigger, reason, self.clock.now())
        self.host.publish(**event)
        log.info("process %s: %s -> %s (%s)", self.name, event["from"], event["to"], reason,
                 extra={"service": self.name, "state": event["to"]})
        self._changed.unpark_all()

    async def wait_until(self, predicate: Callable[["Supervisor"], bool],
                         timeout: float | None = None) -> bool:
        """Wait until ``predicate(self)`` holds after some transition; False on timeout."""
        with trio.move_on_after(math.inf if timeout is None else timeout):
            while not predicate(self):
                await self._changed.park()
            return True
        return False

    def notify_changed(self) -> None:
        self._changed.unpark_all()

    # ------------------------------------------------------------------ start
    async def _on_start(self, manual: bool = True, automatic: bool = False) -> dict[str, Any]:
        st = self.record.state
        if st in (S.RUNNING, S.STARTING, S.PAUSED):
            raise errors.AlreadyRunning(f"process '{self.name}' is already {st.value}",
                                        process=self.name, state=st.value)
        if st is S.STOPPING:
            raise errors.InvalidState(f"process '{self.name}' is stopping; retry when stopped",
                                      process=self.name, state=st.value)
        self._cancel_backoff()
        if manual:
            if st is S.CRASHED:
                self.limiter.reset()
            self.failures = 0
        await self._launch(automatic=automatic)
        return self.record.to_dict()

    async def _launch(self, *, automatic: bool) -> None:
        spec = self.spec
        now = self.clock.now()
        try:
            run = self.host.prepare_run(self)
        except ConditionUnmet as unmet:
            why = unmet.why
            self._transition(Trigger.CONDITION_UNMET, why)
            self.host.publish("condition_failed", self.name, self.record.id, reason=why)
            if not automatic:
                raise errors.ConditionFailed(f"process '{self.name}' not started: {why}",
                                             process=self.name, condition=why)
            return
        except SpawnError as exc:
            self._start_failed(exc.reason, automatic, now)
            return
        except Exception as exc:  # unforeseen (EMFILE in a feature hook ...): fail, not stick
            fault = self.record_fault("preparing the spawn", exc)
            self._start_failed(f"internal error: {fault.error}", automatic, now)
            return
        self.limiter.record(now)
        self.record.runs += 1
        if automatic:
            self.record.restarts += 1
        self.record.started_at = now
        self.record.ended_at = None
        self.record.exit_code = self.record.exit_signal = None
        self.record.status_text = ""
        self._transition(Trigger.SPAWN, "spawning")
        try:
            child = spawn(run.plan, log_mode=spec.log.mode, cgroup=self.cgroup,
                          output=run.output, process=self.os)
        except (SpawnError, OSError) as exc:
            self.host.spawned(self, None, run)
            reason = exc.reason if isinstance(exc, SpawnError) else f"cannot create the output FIFOs: {exc}"
            self._exit_without_child(reason, automatic)
            return
        except Exception as exc:  # unforeseen: the process fails and retries by policy
            self.host.spawned(self, None, run)
            fault = self.record_fault("spawn", exc)
            self._exit_without_child(f"internal error: {fault.error}", automatic)
            return
        child.extra["fifos"] = run.fifos
        child.extra["notify_socket"] = run.plan.env.get("NOTIFY_SOCKET")
        if run.fifos:
            child.extra["readers"] = dict(zip(run.fifos, (child.stdout_fd, child.stderr_fd)))
        inst = Instance(child=child, started_mono=trio.current_time(), pgid=child.pid)
        self.instance = inst
        self.record.pid = child.pid
        self.host.spawned(self, inst, run)  # tracked and journalled before anyone is told
        self.host.publish("process_started", self.name, self.record.id, pid=child.pid,
                             run=self.record.runs)
        runtime_files.write_pidfile(spec, child.pid)
        assert self.nursery is not None
        self.nursery.start_soon(self._run_instance, inst)
        if spec.process_type == "simple" and not spec.ready_log_line:
            inst.ready = True
            self._transition(Trigger.READY, "started")
        elif spec.process_type in ("oneshot", "simple"):
            self.arm_start_timeout(inst)  # simple + ready_log_line: the health feature marks it ready
        # notify / forking readiness is driven by their instance hooks.

    def _start_failed(self, reason: str, automatic: bool, now: float) -> None:
        """Preparation failed before any spawn (env file, unknown user, no binary)."""
        self.limiter.record(now)
        self.record.runs += 1
        if automatic:
            self.record.restarts += 1
        self.record.started_at = now
        self._transition(Trigger.SPAWN, "spawning")
        self._exit_without_child(reason, automatic)

    def _exit_without_child(self, reason: str, automatic: bool) -> None:
        self.record.ended_at = self.clock.now()
        self.record.pid = None
        self.host.publish("process_exited", self.name, self.record.id, exit_code=None,
                             exit_signal=None, reason=reason)
        self._after_failure(succeeded=False, reason=f"spawn failed: {reason}", ran_for=0.0)
        if not automatic:
            raise errors.SpawnFailed(f"cannot start '{self.name}': {reason}",
                                     process=self.name, reason=reason)

    def arm_start_timeout(self, inst: Instance) -> None:
        """Fail the run unless it is ready within ``timeout_start_sec`` (readiness
        features call this when the run is theirs to make ready)."""
        timeout = self.spec.timeout_start_sec

        async def expire() -> None:
            await trio.sleep(timeout)
            self.post(msg.StartTimeout(inst))

        if timeout > 0:
            inst_nursery_start(inst, expire)

    async def _on_start_timeout(self, inst: Instance) -> None:
        if inst is not self.instance or inst.ready or inst.exited.is_set():
            return
        inst.failure_reason = f"start timeout: not ready within {self.spec.timeout_start_sec:g}s"
        await self._kill_instance(inst, for_failure=True)

    def mark_ready(self, inst: Instance, reason: str = "ready") -> None:
        """Called by readiness protocols (notify READY=1, forking parent exit)."""
        if inst is not self.instance or inst.ready:
            return
        inst.ready = True
        if self.record.state is S.STARTING:
            self._transition(Trigger.READY, reason)

    async def _run_instance(self, inst: Instance) -> None:
        """The instance's task tree: waiter, pumps, hooks; cancelled as a unit on stop."""
        try:
            with inst.scope:
                async with trio.open_nursery() as raw:
                    inst.nursery = nursery = ContainedNursery(raw, self.contain_fault)
                    self._start_output_pumps(inst, nursery)
                    self.host.run_started(self, inst, nursery)
                    for fn in inst.pending:
                        nursery.start_soon(fn)
                    inst.pending.clear()
                    await self._wait_exit(inst)
                    self.post(msg.Exited(inst))
                    # Pumps run on until the pipes close (every writer gone); a stop
                    # cancels this scope once the whole service is down.
        finally:
            inst.tree_done = True

    def _start_output_pumps(self, inst: Instance, nursery: ContainedNursery) -> None:
        """A lean pump task per pipe in the instance nursery (output_pump: memory)."""
        fds = [(fd, stream) for fd, stream in ((inst.child.stdout_fd, "stdout"),
                                                (inst.child.stderr_fd, "stderr"))
               if fd is not None]
        inst.child.stdout_fd = inst.child.stderr_fd = None
        start_pumps(nursery, fds, self._log_line, inst.output_done)

    async def _drain_output(self, inst: Instance, timeout: float = 1.0) -> None:
        """Give the pumps a moment to read what the dead service still had in its pipes."""
        with trio.move_on_after(timeout):
            await inst.output_done.wait()

    async def _wait_exit(self, inst: Instance) -> None:
        """Wait for the main process; follow it when it is replaced (MAINPID=, forking)."""
        try:
            while True:
                pid = inst.main_pid
                status = await self._wait_main(inst, pid)
                if status is None or inst.main_pid != pid:
                    continue  # re-targeted while waiting
                if inst.handover is not None and not inst.ready and not inst.stop_requested:
                    new_pid = await inst.handover(status)
                    if new_pid is not None and inst.main_pid == new_pid != pid:
                        continue
                break
        finally:
            inst.child.close_pidfd()
            inst.close_main_pidfd()
        inst.status = status
        inst.exited.set()

    async def _wait_main(self, inst: Instance, pid: int) -> ExitStatus | None:
        """The exit of ``pid``; None when the main process was replaced meanwhile."""
        child = inst.child
        with trio.CancelScope() as inst.watch_scope:
            if pid == child.pid:
                if child.extra.get("adopted"):  # spawned by a predecessor: maybe not our child
                    return await self._wait_adopted(inst, child)
                if child.pidfd is not None:
                    await self.os.wait_watched(child.pidfd)
                    rc = child.returncode()
                else:
                    assert child.popen is not None  # a cloned child always has a pidfd
                    rc = await self.host.facts.reaper.wait_child(child.popen)
                return ExitStatus.from_returncode(rc)
            return await self._reap_or_unknown(
                inst, inst.main_pidfd,
                f"main process {pid} exited; its status is unknown (not a child of the daemon)")
        return None

    async def _wait_adopted(self, inst: Instance, child: Child) -> ExitStatus:
        """An adopted main process ended: its status if we are its parent (re-exec),
        else unknown (its parent died with the previous daemon; init reaped it)."""
        assert child.pidfd is not None
        return await self._reap_or_unknown(
            inst, child.pidfd, f"adopted process {child.pid} exited; its status is unknown "
            "(its parent was the previous daemon)")

    async def _reap_or_unknown(self, inst: Instance, handle: int | None, unknown: str) -> ExitStatus:
        """Wait for the watched process behind ``handle`` to end; its status when we are
        its parent, else an unknown status with ``unknown`` as the failure reason."""
        if handle is not None:
            await self.os.wait_watched(handle)
            status = self.os.reap_watched(handle)
            if status is not None:
                return status
        if inst.failure_reason is None:
            inst.failure_reason = unknown
        return ExitStatus(None, None)

    async def _on_adopt(self, entry: dict[str, Any], pidfd: int, readers: tuple[int | None, int | None],
                        fifos: tuple[str, ...]) -> dict[str, Any]:
        """Take over a running main process a previous daemon (or image) spawned.

        The caller verified it (cgroup, pidfd, start time). Counters and ``started_at``
        come from the journal entry; the process is running again without a new run.
        """
        child = Child(popen=None, pid=entry["pid"], pidfd=pidfd, stdout_fd=readers[0],
                      stderr_fd=readers[1], extra={"fifos": fifos, "readers": {
                          p: fd for p, fd in zip(fifos, readers) if fd is not None},
                          "notify_socket": entry.get("notify_socket"), "adopted": True},
                      placement="adopted from a previous daemon")
        started_at = entry.get("started_at") or self.clock.now()
        inst = Instance(child=child, pgid=entry.get("pgid") or entry["pid"],
                        started_mono=trio.current_time() - max(0.0, self.clock.now() - started_at))
        self.record.runs = int(entry.get("runs") or self.record.runs)
        self.record.restarts = int(entry.get("restarts") or 0)
        self.instance = inst
        self.record.pid = child.pid
        self._transition(Trigger.ADOPT, "adopting")
        self.record.started_at = started_at
        self.record.ended_at = None
        self.host.spawned(self, inst, None)
        assert self.nursery is not None
        self.nursery.start_soon(self._run_instance, inst)
        if self.spec.process_type != "oneshot":
            inst.ready = True
            self._transition(Trigger.READY, entry.get("adopt_reason") or "adopted")
        self.host.publish("process_adopted", self.name, self.record.id, pid=child.pid,
                             run=self.record.runs)
        return self.record.to_dict()

    _RESTORE_PATHS = {
        "failed": (Trigger.EXIT_FAILURE,),
        "crashed": (Trigger.EXIT_FAILURE, Trigger.GIVE_UP),
        "stopped": (Trigger.SETTLE_STOPPED,),
        "exited": (Trigger.SPAWN, Trigger.EXIT_SUCCESS),
        "condition_failed": (Trigger.CONDITION_UNMET,),
        "backoff": (Trigger.EXIT_FAILURE, Trigger.RETRY_LATER)}

    async def _on_restore(self, state: str, reason: str) -> None:
        """Settle a process that is not running where the previous daemon (or image) left
        it (journal ``settle`` entry), through legal transitions of the table; one that
        was waiting for a restart gets it now (an automatic restart, counted)."""
        if self.record.state is not S.CREATED or self.instance is not None:
            return
        for step in self._RESTORE_PATHS.get(state, ()):
            self._transition(step, f"restored after a daemon restart: {reason}".rstrip(": "))
        settled_in: S = self.record.state  # re-read: the moves above changed it
        if settled_in is S.BACKOFF:
            self._schedule_restart(0.0)

    async def _on_died_unseen(self, entry: dict[str, Any]) -> None:
        """The main process ended while no daemon watched it (journal entry, process
        gone): a failure with unknown status; the restart policy decides, as for any exit."""
        if self.record.state is not S.CREATED or self.instance is not None:
            return
        self.record.runs = int(entry.get("runs") or self.record.runs)
        self.record.restarts = int(entry.get("restarts") or 0)
        self.record.started_at = entry.get("started_at")
        self.record.ended_at = self.clock.now()
        self.record.pid = None
        self.host.publish("process_exited", self.name, self.record.id, exit_code=None,
                             exit_signal=None, reason="exited while no daemon was running")
        ran_for = max(0.0, self.clock.now() - (entry.get("started_at") or self.clock.now()))
        self._after_failure(succeeded=False, ran_for=ran_for,
                            reason="exited while no daemon was running (status unknown)")

    def set_main_pid(self, inst: Instance, pid: int) -> bool:
        """Make ``pid`` the watched main process of ``inst`` (MAINPID=, forking hand-over).

        The caller checked that ``pid`` belongs to the service. The previous main
        process is no longer waited for (the orphan reaper collects it if it is our
        child). Returns False when ``pid`` is already gone.
        """
        if inst is not self.instance or inst.exited.is_set() or pid == inst.main_pid:
            return pid == inst.main_pid
        pidfd = self.os.watch(pid)
        if pidfd is None:
            return False
        old = inst.main_pid
        inst.close_main_pidfd()
        if old == inst.child.pid:
            inst.child.close_pidfd()
        inst.main_pidfd = pidfd
        inst.main_pid = pid
        try:
            inst.pgid = os.getpgid(pid)
        except ProcessLookupError:
            pass
        self.record.pid = pid
        self.host.spawned(self, inst, None, previous=old)
        self.host.publish("main_pid_changed", self.name, self.record.id, pid=pid, previous=old)
        if inst.watch_scope is not None:
            inst.watch_scope.cancel()
        self.notify_changed()
        return True

    def _log_line(self, stream: str, line: str, now: float) -> None:
        self.ring.append(stream, line, now)
        self.host.output_line(self, stream, line, now)

    # ------------------------------------------------------------------ exits
    async def _on_exited(self, inst: Instance) -> None:
        if inst is not self.instance or inst.stop_requested:
            return
        status = inst.status
        assert status is not None
        await self._terminate_rest(inst)
        await self._drain_output(inst)
        self._clear_instance(inst)
        self.record.exit_code, self.record.exit_signal = status.code, status.signal
        if inst.failure_reason is None:
            inst.failure_reason = oom_failure(self, inst, status)
        succeeded = inst.failure_reason is None and is_success(self.spec, status.code, status.signal)
        reason = inst.failure_reason or describe_exit(status.code, status.signal)
        if self.spec.process_type == "oneshot" and not inst.ready and succeeded:
            inst.ready = True
        self.host.publish("process_exited", self.name, self.record.id,
                             exit_code=status.code, exit_signal=status.signal, reason=reason)
        ran_for = trio.current_time() - inst.started_mono
        self._after_failure(succeeded=succeeded, reason=reason, ran_for=ran_for,
                            healthy=inst.healthy_seen)

    def _after_failure(self, *, succeeded: bool, reason: str, ran_for: float,
                       healthy: bool = False) -> None:
        """SPEC §3.2 steps 2–5: settle to exited/failed, then backoff or crashed."""
        if stable_run(self.spec, ran_for, healthy):
            self.failures = 0
        self.failures += 1
        self._transition(Trigger.EXIT_SUCCESS if succeeded else Trigger.EXIT_FAILURE, reason)
        decision = decide(self.spec, succeeded=succeeded, failure_reason=reason,
                          consecutive_failures=self.failures, limiter=self.limiter,
                          now=self.clock.now())
        if decision.start_limit_hit:
            self.host.publish("start_limit_hit", self.name, self.record.id,
                                 burst=self.spec.start_limit_burst,
                                 interval=self.spec.start_limit_interval)
        if decision.state in (S.EXITED, S.FAILED):
            self.host.settled(self, requested=False)
            return
        if decision.restart:
            self.record.next_restart_at = self.clock.now() + decision.delay
            self._transition(Trigger.RETRY_LATER, decision.reason)
            self.host.publish("restart_scheduled", self.name, self.record.id,
                                 delay=decision.delay, at=self.record.next_restart_at)
            self._schedule_restart(decision.delay)
        else:
            self._transition(SETTLE_TRIGGERS[decision.state], decision.reason)
        self.host.settled(self, requested=False)

    def _schedule_restart(self, delay: float) -> None:
        scope = trio.CancelScope()
        self._backoff_scope = scope
        if delay <= 0:  # no timer task: the message queues behind what is already queued
            self.post(msg.BackoffElapsed(scope))
            return

        async def timer() -> None:
            with scope:
                await trio.sleep(delay)
                self.post(msg.BackoffElapsed(scope))

        assert self.nursery is not None
        self.nursery.start_soon(timer)

    def _cancel_backoff(self) -> None:
        if self._backoff_scope is not None:
            self._backoff_scope.cancel()
            self._backoff_scope = None

    async def _on_backoff_elapsed(self, scope: trio.CancelScope) -> None:
        if scope is not self._backoff_scope or self.record.state is not S.BACKOFF:
            return
        self._backoff_scope = None
        await self.host.restart_automatically(self)

    async def relaunch(self) -> None:
        """Start the next run as an automatic restart. Only from inside this actor
        (the host's restart decision, run when the backoff elapsed)."""
        await self._launch(automatic=True)

    async def _on_launch_automatic(self) -> None:
        if self.record.state is S.BACKOFF:
            await self._launch(automatic=True)

    def _clear_instance(self, inst: Instance) -> None:
        self.host.run_ended(self, inst)
        if self.instance is inst:
            self.instance = None
        self.record.pid = None
        self.record.ended_at = self.clock.now()
        runtime_files.remove_pidfile(self.spec)
        inst.scope.cancel()

    # ------------------------------------------------------------------ stop
    async def _on_stop(self, reason: str, cause: StopCause) -> dict[str, Any]:
        st = self.record.state
        if st is S.BACKOFF or (self.instance is None and st in (S.EXITED, S.FAILED, S.CRASHED,
                                                                S.CONDITION_FAILED)):
            self._cancel_backoff()
            self.record.stop_cause = cause
            self._transition(Trigger.SETTLE_STOPPED, reason)
            self.host.settled(self, requested=True)
            return self.record.to_dict()
        inst = self.instance
        if inst is None:
            raise errors.NotRunning(f"process '{self.name}' is not running (state {st.value})",
                                    process=self.name, state=st.value)
        inst.stop_requested = True
        self.record.stop_cause = cause
        self._transition(Trigger.STOP, reason)
        await self._stop_sequence(inst)
        status = inst.status
        await self._drain_output(inst)
        self._clear_instance(inst)
        if status is not None:
            self.record.exit_code, self.record.exit_signal = status.code, status.signal
            self.host.publish("process_exited", self.name, self.record.id,
                                 exit_code=status.code, exit_signal=status.signal,
                                 reason=reason)
        runtime_files.remove_runtime_dirs(self.spec, self.host.facts.runtime_root)
        self._transition(Trigger.STOP_DONE, reason)
        self.host.settled(self, requested=True)
        return self.record.to_dict()

    def effective_kill_mode(self) -> str:
        mode = self.spec.kill_mode
        if self.cgroup is None and mode == "control-group":
            return "process-group"
        return mode

    def _send_stop_signal(self, inst: Instance, sig: int) -> None:
        mode = self.effective_kill_mode()
        if mode == "control-group" and self.cgroup is not None:
            self.cgroup.signal(sig)
        elif mode == "process-group":
            self.os.signal_group(inst.pgid, sig)
        else:  # process, mixed: the main process only
            self.os.signal_pid(inst.main_pid, sig)
        if inst.paused:
            self._thaw(inst)

    def _service_alive(self, inst: Instance) -> bool:
        mode = self.effective_kill_mode()
        if mode == "process":
            return not inst.exited.is_set()
        if self.cgroup is not None and mode in ("control-group", "mixed"):
            return not self.cgroup.is_empty()
        if inst.child.extra.get("adopted"):  # its zombies may wait for init, not for us
            return not inst.exited.is_set() or self.os.group_alive(inst.pgid, ignore_zombies=True)
        return not inst.exited.is_set() or self.os.group_alive(inst.pgid)

    async def _wait_service_gone(self, inst: Instance, timeout: float) -> bool:
        with trio.move_on_after(timeout):
            await inst.exited.wait()
            while self._service_alive(inst):
                await self._wait_change(inst)
            return True
        return False

    async def _wait_change(self, inst: Instance) -> None:
        """Until some child changed (SIGCHLD). A crash-adopted service's processes are not
        our children (no SIGCHLD when they die): poll those every 50 ms instead."""
        if not inst.child.extra.get("adopted"):
            await self.host.facts.reaper.wait_change()
            return
        with trio.move_on_after(0.05):
            await self.host.facts.reaper.wait_change()

    async def _stop_sequence(self, inst: Instance) -> None:
        """kill_signal -> wait timeout_stop_sec -> SIGKILL; leaves no process behind."""
        escapees = self._escapees(inst)
        await self._signal_and_wait(inst)
        if escapees:
            await self._kill_escapees(escapees)

    def _escapees(self, inst: Instance) -> dict[int, int]:
        """Without a cgroup: descendants of the main process outside its process group
        (a ``setsid`` daemonizer), pid -> start time, which a group kill would miss."""
        if self.cgroup is not None or self.effective_kill_mode() != "process-group":
            return {}
        return self.os.escapees(inst.main_pid, inst.pgid)

    async def _kill_escapees(self, escapees: dict[int, int]) -> None:
        """SIGKILL those still alive after the stop, wait for them, and report them."""
        alive = [p for p, t in escapees.items() if self.os.start_time(p) == t]
        if not alive:
            return
        for pid in alive:
            self.os.signal_pid(pid, signal.SIGKILL)
        with trio.move_on_after(10.0):
            while any(self.os.running_as(p, escapees[p]) for p in alive):
                await trio.sleep(0.01)
        note = (f"killed {len(alive)} process(es) that had left the service's process group "
                f"and survived the stop: {alive}")
        self.extras["stop_survivors"] = {"pids": alive, "at": self.clock.now(), "note": note}
        log.warning("process %s: %s", self.name, note, extra={"service": self.name})
        self.host.publish("stop_survivors_killed", self.name, self.record.id, pids=alive)

    async def _signal_and_wait(self, inst: Instance) -> None:
        self._send_stop_signal(inst, self.spec.kill_signal)
        if self.spec.kill_mode == "mixed":
            with trio.move_on_after(self.spec.timeout_stop_sec):
                await inst.exited.wait()
            self._kill_all(inst)
        elif not await self._wait_service_gone(inst, self.spec.timeout_stop_sec):
            self._kill_all(inst)
        if not await self._wait_service_gone(inst, 10.0):
            raise errors.TerminateFailed(
                f"process '{self.name}' survived SIGKILL for 10s", process=self.name)

    def _kill_all(self, inst: Instance) -> None:
        mode = self.effective_kill_mode()
        if self.cgroup is not None and mode in ("control-group", "mixed"):
            self.cgroup.kill()
        elif mode in ("process-group", "mixed", "control-group"):
            self.os.signal_group(inst.pgid, signal.SIGKILL)
        else:
            self.os.signal_pid(inst.main_pid, signal.SIGKILL)
        self._thaw(inst)

    async def _terminate_rest(self, inst: Instance) -> None:
        """After the main process died on its own, end what it left in its cgroup/group."""
        if self.effective_kill_mode() == "process" or not self._service_alive(inst):
            return
        self._send_stop_signal(inst, self.spec.kill_signal)
        if not await self._wait_service_gone(inst, min(self.spec.timeout_stop_sec, 5.0)):
            self._kill_all(inst)
            await self._wait_service_gone(inst, 10.0)

    async def _kill_instance(self, inst: Instance, *, for_failure: bool) -> None:
        """Kill a misbehaving instance (timeout, watchdog, health); its exit is a failure."""
        sig: int
        if for_failure and self.spec.watchdog_sec and inst.failure_reason == "watchdog":
            sig = signal.SIGABRT
        else:
            sig = self.spec.kill_signal
        self._send_stop_signal(inst, sig)
        if not await self._wait_service_gone(inst, self.spec.timeout_stop_sec):
            self._kill_all(inst)

    async def _on_kill_for_failure(self, inst: Instance, reason: str) -> None:
        if inst is not self.instance or inst.exited.is_set():
            return
        inst.failure_reason = reason
        await self._kill_instance(inst, for_failure=True)

    # ------------------------------------------------------------------ pause
    async def _on_pause(self) -> dict[str, Any]:
        inst = self.instance
        if inst is None or self.record.state is not S.RUNNING:
            raise errors.InvalidState(
                f"process '{self.name}' can only be paused while running "
                f"(state {self.record.state.value})", process=self.name)
        if self.cgroup is not None:
            mech = self.cgroup.freeze()
        else:
            self.os.signal_group(inst.pgid, signal.SIGSTOP)
            mech = "SIGSTOP to the process group"
        inst.paused = True
        self._transition(Trigger.PAUSE, f"paused ({mech})")
        return self.record.to_dict()

    def _thaw(self, inst: Instance) -> None:
        if not inst.paused:
            return
        if self.cgroup is not None:
            self.cgroup.thaw()
        else:
            self.os.signal_group(inst.pgid, signal.SIGCONT)
        inst.paused = False

    async def _on_resume(self) -> dict[str, Any]:
        inst = self.instance
        if inst is None or self.record.state is not S.PAUSED:
            raise errors.InvalidState(
                f"process '{self.name}' is not paused (state {self.record.state.value})",
                process=self.name)
        self._thaw(inst)
        self._transition(Trigger.RESUME, "resumed")
        return self.record.to_dict()

    # ------------------------------------------------------------------ signals
    async def _on_kill(self, sig: int, whom: str = "all") -> dict[str, Any]:
        """Send ``sig`` without stopping: ``main`` reaches the main PID only, ``all``
        every process of the service (its cgroup, else its process group), like
        ``systemctl kill``. The actor owns the instance, so the PID cannot be stale."""
        inst = self.instance
        if inst is None or inst.exited.is_set():
            raise errors.NotRunning(
                f"process '{self.name}' is not running (state {self.record.state.value}); "
                "nothing to signal", process=self.name, state=self.record.state.value)
        if whom == "main":
            self.os.signal_pid(inst.main_pid, sig)
        elif self.cgroup is not None and self.effective_kill_mode() != "process-group":
            self.cgroup.signal(sig)
        else:
            self.os.signal_group(inst.pgid, sig)
        self.host.publish("process_signalled", self.name, self.record.id,
                             signal=units.signal_name(sig), whom=whom)
        return self.record.to_dict()

    # ------------------------------------------------------------------ update / delete
    async def _on_replace_spec(self, spec: ProcessSpec) -> None:
        self.spec = spec
        self.limiter.configure(spec.start_limit_burst, spec.start_limit_interval)
        self.ring.max_lines, self.ring.max_bytes = spec.log.ring_lines, spec.log.ring_bytes
        if self.instance is not None:
            apply_running(self)
        self.host.spec_replaced(self)

    def is_active(self) -> bool:
        return self.record.state in ACTIVE_STATES

    def is_up(self, require_healthy: bool = False) -> bool:
        """Up for dependants: running, or a oneshot that exited successfully.

        With ``require_healthy`` (the dependant's ``wait_healthy``) a process with a
        health check only counts once it is healthy.
        """
        st = self.record.state
        if self.spec.process_type == "oneshot":
            return st is S.EXITED
        if st is not S.RUNNING:
            return False
        if self.spec.health_check is not None and require_healthy:
            return self.record.health == "healthy"
        return True


def _reap_blocking(pid: int) -> int:
    """Wait for our child ``pid`` (in a worker thread); its status as a Popen returncode."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def inst_nursery_start(inst: Instance, fn: Callable[[], Awaitable[None]]) -> None:
    """Start ``fn`` inside the instance's own nursery (or as soon as it exists)."""
    if inst.nursery is not None:
        inst.nursery.start_soon(fn)
    else:
        inst.pending.append(fn)
