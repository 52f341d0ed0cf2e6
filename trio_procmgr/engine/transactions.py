"""Running dependency plans: start and stop transactions over the supervisors (SPEC §6).

The planner (``trio_procmgr/planner.py``) decides *what* starts or stops and in which
order; this module carries a plan out with a Trio task per step, so independent branches
run concurrently while ordered ones wait for their predecessors to settle.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Iterable, Mapping, Protocol

import trio

from trio_procmgr import errors, planner
from trio_procmgr.engine import messages as msg
from trio_procmgr.engine.registry import Registry
from trio_procmgr.engine.supervisor import Supervisor
from trio_procmgr.states import State, StopCause

log = logging.getLogger("trio_procmgr.transactions")

S = State


class Reporter(Protocol):
    """Where a transaction tells what it did (the engine host)."""

    def publish(self, type: str, process: str | None = None, id: str | None = None,
                **fields: Any) -> Any: ...
    def warn(self, text: str) -> None: ...


class Transactions:
    """The transaction executor of one engine: reads the registry, reports to the host."""

    def __init__(self, registry: Registry, reporter: Reporter) -> None:
        self.registry = registry
        self.reporter = reporter

    async def boot(self, extra: Iterable[str] = (), skip: Iterable[str] = ()) -> None:
        """Start every ``auto_start`` process as one transaction (SPEC §6.1).

        A configuration whose auto_start processes conflict with each other cannot boot
        as one transaction; the later name of each such pair is left out with a warning
        instead of failing the whole boot.
        """
        names = sorted(({n for n, s in self.registry.specs.items() if s.auto_start} - set(skip))
                       | set(extra))
        while names:
            try:
                plan = planner.start_transaction(self.registry.specs, names)
            except (errors.ConfigError, errors.InvalidArgument) as exc:
                pair = exc.details.get("conflict")
                if not pair:
                    self.reporter.warn(f"boot: {exc.message}; no process was started")
                    return
                self.reporter.warn(f"boot: {exc.message}; not starting '{pair[1]}'")
                names = [n for n in names if n != pair[1]]
                continue
            await self.run_start_plan(plan, manual=False)
            return

    async def run_start_plan(self, plan: planner.StartPlan, *, manual: bool) -> dict[str, Any]:
        """Run a start transaction; returns name -> record dict or the ProcMgrError.

        Conflicting processes are stopped first (one stop transaction, with their
        dependants). Each step then waits for its ordering predecessors to settle (and,
        under ``wait_healthy``, to be healthy), and starts unless a hard dependency failed
        (DEPENDENCY_FAILED naming the culprit and its reason) or one of its conflicts
        could not be stopped (CONFLICT_STOP_FAILED). Independent branches run concurrently.
        """
        conflict_errors = await self.stop_conflicts(plan.to_stop) if plan.to_stop else {}
        failed: dict[str, str] = {}
        results: dict[str, Any] = {}

        async def run_step(step: planner.StartStep) -> None:
            error = self._blocked(step, failed, conflict_errors)
            if error is None:
                error = await self._wait_healthy_deps(step, failed)
            if error is not None:
                failed[step.name] = error.details.get("reason", error.message)
                results[step.name] = error
                sup = self.registry[step.name]
                self.reporter.publish("dependency_failed", step.name, sup.record.id,
                               code=error.code, message=error.message,
                               **{k: v for k, v in error.details.items() if k != "process"})
                return
            sup = self.registry[step.name]
            try:
                results[step.name] = await self._start_one(sup, step, manual=manual)
            except errors.ProcMgrError as exc:
                failed[step.name] = _failure_reason(sup, exc)
                results[step.name] = exc

        await _run_in_order(plan.steps, run_step, self._fault_recorder(results))
        return results

    def _blocked(self, step: planner.StartStep, failed: Mapping[str, str],
                 conflict_errors: Mapping[str, errors.ProcMgrError]) -> errors.ProcMgrError | None:
        for other in sorted(step.conflicts):
            if other in conflict_errors:
                exc = conflict_errors[other]
                return errors.ConflictStopFailed(
                    f"cannot start '{step.name}': conflicting process '{other}' could not be "
                    f"stopped: {exc.message}", process=step.name, conflict=other,
                    reason=exc.message)
        culprit = next((d for d in sorted(step.hard) if d in failed), None)
        if culprit is None:
            return None
        directive = "binds_to" if culprit in self.registry[step.name].spec.binds_to else "requires"
        return errors.DependencyFailed(
            f"cannot start '{step.name}': dependency '{culprit}' ({directive}) failed: "
            f"{failed[culprit]}", process=step.name, dependency=culprit,
            directive=directive, reason=f"dependency '{culprit}' failed: {failed[culprit]}")

    async def _wait_healthy_deps(self, step: planner.StartStep,
                                 failed: Mapping[str, str]) -> errors.ProcMgrError | None:
        """Under ``wait_healthy``: wait until each health-checked predecessor is healthy.

        A hard dependency that goes down or unhealthy instead fails the step; a soft one
        (wants, or ordering only) does not hold the start back once it settled.
        """
        for dep in sorted(step.wait_healthy):
            if dep in failed:
                continue
            dsup = self.registry[dep]
            hc = dsup.spec.health_check
            assert hc is not None  # wait_healthy lists only health-checked predecessors
            budget = max(dsup.spec.timeout_start_sec, hc.start_period + hc.interval * (hc.retries + 1)
                         + hc.timeout)

            def healthy_or_not(s: Supervisor) -> bool:
                return (s.record.health in ("healthy", "unhealthy") or not s.is_active()
                        or s.record.state is S.STOPPING)

            await dsup.wait_until(healthy_or_not, timeout=budget)
            if dsup.is_up(require_healthy=True) or dep not in step.hard:
                continue
            why = (f"not healthy (health {dsup.record.health}, state "
                   f"{dsup.record.state.value})")
            return errors.DependencyFailed(
                f"cannot start '{step.name}': dependency '{dep}' is {why} and "
                f"'{step.name}' has wait_healthy", process=step.name, dependency=dep,
                reason=f"dependency '{dep}' is {why}")
        return None

    async def _start_one(self, sup: Supervisor, step: planner.StartStep, *,
                         manual: bool) -> dict[str, Any]:
        """Start one step's process, or just wait for it when it is already on its way up.

        A pulled-in dependency that is already up (running, or a oneshot that exited
        successfully) is left alone: starting ``api`` does not re-run ``migrate``.
        """
        if sup.record.state is S.STOPPING:
            await sup.wait_until(lambda s: s.record.state is not S.STOPPING,
                                 timeout=sup.spec.timeout_stop_sec + 15)
        explicit = step.is_target and manual
        if not explicit and (sup.is_up() or sup.is_active()):
            return await self._wait_settled(sup, step)
        await sup.request(msg.Start(manual=manual or step.is_target, automatic=False))
        return await self._wait_settled(sup, step)

    async def _wait_settled(self, sup: Supervisor, step: planner.StartStep | None) -> dict[str, Any]:
        """Wait until ``sup`` is up (running, ready, oneshot exited) or down."""
        def settled(s: Supervisor) -> bool:
            return s.is_up() or not s.is_active()

        timeout = sup.spec.timeout_start_sec + sup.spec.timeout_stop_sec + 5
        await sup.wait_until(settled, timeout=timeout)
        if not sup.is_up():
            rec = sup.record
            if step is not None and step.is_target:
                raise _start_error(sup)
            raise errors.DependencyFailed(
                f"process '{sup.name}' did not come up: {rec.state.value} ({rec.reason})",
                process=sup.name, state=rec.state.value,
                reason=f"{rec.state.value} ({rec.reason})")
        return sup.record.to_dict()

    async def stop_conflicts(self, names: Iterable[str]) -> dict[str, errors.ProcMgrError]:
        """Stop the active conflicting ``names`` (one transaction, with their dependants).

        Returns the ones that could not be stopped, each with why. A conflict waiting in
        backoff is stopped too, so it cannot come back while the other side runs.
        """
        active = self.active_names()
        targets = [n for n in names if n in active]
        if not targets:
            return {}
        results = await self.run_stop_plan(planner.stop_transaction(self.registry.specs, targets, active),
                                            conflict=True)
        problems: dict[str, errors.ProcMgrError] = {}
        for name in targets:
            outcome = results.get(name)
            sup = self.registry[name]
            if isinstance(outcome, errors.ProcMgrError):
                problems[name] = outcome
            elif sup.is_active() or sup.record.state is S.BACKOFF:
                problems[name] = errors.ConflictStopFailed(
                    f"conflicting process '{name}' is still {sup.record.state.value}",
                    process=name)
        return problems

    def active_names(self) -> set[str]:
        return self.registry.active_names()

    async def run_stop_plan(self, plan: planner.StopPlan, *, restarting: bool = False,
                             conflict: bool = False,
                             target_reason: str | None = None,
                             target_cause: StopCause = StopCause.REQUESTED) -> dict[str, Any]:
        """Stop in the plan's order (reverse start order), independent branches concurrently.

        Returns name -> record dict or the ProcMgrError of that stop; a failed stop does
        not hold back the rest.
        """
        results: dict[str, Any] = {}

        async def run_step(step: planner.StopStep) -> None:
            sup = self.registry.get(step.name)
            if sup is None:
                return
            try:
                reason = target_reason if target_reason and step.cause is None else \
                    _stop_reason(step, restarting=restarting, conflict=conflict)
                cause = _stop_cause(step, restarting=restarting, conflict=conflict,
                                    target_cause=target_cause)
                results[step.name] = await sup.request(msg.Stop(reason, cause))
            except errors.NotRunning:
                results[step.name] = sup.record.to_dict()
            except errors.ProcMgrError as exc:
                results[step.name] = exc

        await _run_in_order(plan.steps, run_step, self._fault_recorder(results))
        return results

    async def stop_all(self) -> None:
        active = self.active_names()
        if active:
            await self.run_stop_plan(planner.shutdown_plan(self.registry.specs, active),
                                     target_cause=StopCause.SHUTDOWN)

    def _fault_recorder(self, results: dict[str, Any]) -> Callable[[Any, Exception], None]:
        """What a step that failed unexpectedly becomes: that process's INTERNAL result,
        recorded on it like any other fault of its tree; the other steps go on."""
        def record(step: Any, exc: Exception) -> None:
            sup = self.registry.get(step.name)
            where = "transaction step"
            if sup is not None:
                sup.record_fault(where, exc)
            else:
                log.error("transaction step for %s failed", step.name, exc_info=exc)
            results[step.name] = errors.Internal(
                f"{where} of '{step.name}' failed: {exc!r}", process=step.name)
        return record


async def _run_in_order(steps: Iterable[Any], act: Callable[[Any], Awaitable[None]],
                        on_fault: Callable[[Any, Exception], None]) -> None:
    """Run ``act(step)`` for every step, each once all of its ``wait_for`` steps are done
    (whatever their outcome); independent steps run concurrently. A step that raises
    something unforeseen is handed to ``on_fault`` and counts as done: it cannot cancel
    the other steps or escape to the caller (the boot, a reload, an RPC)."""
    steps = list(steps)
    done = {step.name: trio.Event() for step in steps}

    async def run(step: Any) -> None:
        try:
            for dep in step.wait_for:
                await done[dep].wait()
            await act(step)
        except Exception as exc:  # contained: recorded on the step's process
            on_fault(step, exc)
        finally:
            done[step.name].set()

    async with trio.open_nursery() as nursery:
        for step in steps:
            nursery.start_soon(run, step)


def _failure_reason(sup: Supervisor, exc: errors.ProcMgrError) -> str:
    """Why ``sup`` failed to come up, in words, for its dependants' DEPENDENCY_FAILED."""
    reason = exc.details.get("reason")
    if isinstance(reason, str) and reason:
        state = exc.details.get("state")
        return f"{state} ({reason})" if state and not reason.startswith(state) else reason
    return exc.message


def _stop_reason(step: planner.StopStep, *, restarting: bool, conflict: bool) -> str:
    verb = "restarting" if restarting else "stopped"
    if step.cause is None:
        if conflict:
            return "stopped: a conflicting process is starting"
        return f"{verb} on request"
    other, directive = step.cause
    return f"{verb} because '{other}' {'restarts' if restarting else 'stopped'} " \
           f"('{step.name}' {directive} '{other}')"


def _stop_cause(step: planner.StopStep, *, restarting: bool, conflict: bool,
                target_cause: StopCause) -> StopCause:
    """What decides behaviour about this stop later (see :class:`StopCause`)."""
    if restarting:
        return StopCause.RESTART
    if step.cause is not None:
        return StopCause.DEPENDENCY
    return StopCause.CONFLICT if conflict else target_cause


def _start_error(sup: Supervisor) -> errors.ProcMgrError:
    rec = sup.record
    if rec.state is S.CONDITION_FAILED:
        return errors.ConditionFailed(f"process '{sup.name}' not started: {rec.reason}",
                                      process=sup.name)
    return errors.SpawnFailed(
        f"process '{sup.name}' failed to start: {rec.state.value} ({rec.reason})",
        process=sup.name, state=rec.state.value, reason=rec.reason)
