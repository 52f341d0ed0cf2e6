"""binds_to end to end: a bound process goes down whenever its target does (SPEC §6.1).

Stops *on request* already carry every propagation (requires, binds_to, part_of): the
manager plans them with ``planner.stop_transaction``. What is left is an exit nobody
asked for (crash, failed start, a oneshot finishing, a health or watchdog kill): only
``binds_to`` propagates those, which :class:`BindsTo` does from its ``on_down`` hook.

The stop runs as a task of the engine (``spawn_task``), never inside the hook: the
hook is called by the target's own actor, which must not wait on anything.

Re-binding: when the target went down into ``backoff`` (its restart policy brings it
back), the processes this module stopped (the bound ones and their own requires/part_of
dependants) are started again once the target is up -- but only those still ``stopped``
by this stop (stop cause ``dependency`` and no move since: a user who stopped or
started one of them in the meantime has taken over).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trio_procmgr import errors, planner
from trio_procmgr.engine.features import Feature, FeatureContext
from trio_procmgr.states import State, StopCause

if TYPE_CHECKING:
    from trio_procmgr.engine.supervisor import Supervisor

S = State
_SETTLED = frozenset({S.STOPPED, S.CRASHED, S.CONDITION_FAILED, S.FAILED, S.EXITED})


class BindsTo(Feature):
    """An unexpected stop of a ``binds_to`` target stops what is bound to it."""

    def __init__(self, context: FeatureContext) -> None:
        self.context = context

    def on_down(self, sup: "Supervisor", requested: bool) -> None:
        if requested:
            return
        registry = self.context.registry
        specs = registry.specs
        if sup.name not in specs or not registry.index.dependants(sup.name, ("binds_to",)):
            return
        bound = planner.on_unexpected_stop(specs, sup.name, registry.active_names())
        if bound:
            comes_back = sup.record.state is S.BACKOFF
            self.context.spawn_task(_stop_bound, self.context, sup, bound, comes_back)


def bound_stop_reason(target: str, state: str) -> str:
    return f"stopped because '{target}' went down ({state}) and it binds_to '{target}'"


async def _stop_bound(context: FeatureContext, target: "Supervisor", bound: list[str],
                      comes_back: bool) -> None:
    registry = context.registry
    reason = bound_stop_reason(target.name, target.record.state.value)
    active = registry.active_names()
    try:
        plan = planner.stop_transaction(registry.specs, bound, active)
    except errors.ProcMgrError as exc:  # a process was deleted meanwhile
        context.warn(f"binds_to: cannot stop {', '.join(bound)}: {exc.message}")
        return
    context.publish("binds_to_stop", target.name, target.record.id, stopping=list(plan.order))
    await context.transactions.run_stop_plan(plan, target_reason=reason,
                                             target_cause=StopCause.DEPENDENCY)
    if not comes_back:
        return
    stopped_here = {n: registry.supervisor(n).record.moves for n in plan.order
                    if _stopped_for_dependency(registry.supervisor(n))}
    await target.wait_until(lambda s: s.is_up() or s.record.state in _SETTLED)
    if not target.is_up():
        return
    again = [n for n, moves in stopped_here.items() if n in registry.specs
             and _stopped_for_dependency(registry.supervisor(n))
             and registry.supervisor(n).record.moves == moves]
    if again:
        context.publish("binds_to_restart", target.name, target.record.id, starting=again)
        await context.transactions.run_start_plan(
            planner.start_transaction(registry.specs, again), manual=False)


def _stopped_for_dependency(sup: "Supervisor") -> bool:
    return sup.record.state is S.STOPPED and sup.record.stop_cause is StopCause.DEPENDENCY


FEATURE = BindsTo
