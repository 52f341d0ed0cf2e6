"""Supervision groups (SPEC §6.3): one place that turns a member's failure into a group action.

How a member's own ``restart`` policy and its group interact (the contract):

* The member's policy decides **whether** and **when**: an exit that its policy would
  not restart (``never``, ``on-failure`` after a success, start limit hit -> ``crashed``)
  is not a group event; nothing else in the group moves.
* The group decides **what** restarts: when the member would restart (it went to
  ``backoff``), the group counts one restart against ``max_restarts``/``max_seconds``
  and applies its strategy:

  - one_for_one: nothing more; the member's own backoff elapses and it restarts alone.
  - one_for_all / rest_for_one: the other affected members (all of them / the ones
    after the failed one) are stopped at once, in reverse member order; when the
    failed member's own backoff delay has elapsed, every affected member is started in
    member order, each once the previous one is up (or down).

* Past the budget (more than ``max_restarts`` restarts within ``max_seconds``) the group
  escalates: every member is stopped in reverse member order (the failed one's pending
  restart is cancelled), the group is ``crashed`` and event ``group_escalated`` is
  published. Members show ``stopped`` with the escalation as reason. Any start of a
  member (a manual start, or a transaction pulling it in) re-arms the group.

Stops on request (``dd-procmgr stop``) are never group events. Stops and starts done by
the group go to the members directly: they do not propagate to processes outside the
group (a ``requires`` dependant of a member keeps running through a group restart).

Runtime state per group is in every member's ``describe`` under ``group``.

Group ``resources`` (a parent cgroup bounding all members, like a systemd slice) are not
applied here: the resources feature finds a member's group with
:meth:`SupervisionGroups.group_of` and places the member's cgroup under the group's slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from trio_procmgr import errors, planner
from trio_procmgr.engine.features import Feature, FeatureContext
from trio_procmgr.group_rounds import (GroupAction, GroupState, decide_member_failure,
                                       widen_round)
from trio_procmgr.engine import messages as msg
from trio_procmgr.spec import GroupSpec
from trio_procmgr.states import State, StopCause

if TYPE_CHECKING:
    from trio_procmgr.engine.containment import TaskNursery
    from trio_procmgr.engine.supervisor import Instance, Supervisor

S = State


@dataclass(eq=False)
class _Round:
    """One group restart in progress: who failed, who restarts, whose backoff elapsed."""

    failed: list[str]
    affected: list[str]
    elapsed: set[str] = field(default_factory=set)
    #: member -> its record's move count right after our stop (None: not stopped by us)
    stopped_by_us: dict[str, int | None] = field(default_factory=dict)


@dataclass(eq=False)
class _GroupRuntime:
    spec: GroupSpec
    intensity: planner.RestartIntensity
    state: GroupState = GroupState.RUNNING
    round: _Round | None = None
    restarts: int = 0


class SupervisionGroups(Feature):
    """The runtime of every supervision group (``dd-procmgr groups`` shows :meth:`status`)."""

    def __init__(self, context: FeatureContext) -> None:
        self.context = context
        self.registry = context.registry
        self._runtime: dict[str, _GroupRuntime] = {}

    # ------------------------------------------------------------------ lookup
    def group_of(self, name: str) -> GroupSpec | None:
        """The group ``name`` is a member of (config groups; at most one), or None."""
        for group in self.context.config.groups.values():
            if name in group.members:
                return group
        return None

    def _rt(self, group: GroupSpec) -> _GroupRuntime:
        rt = self._runtime.get(group.name)
        if rt is None or rt.spec != group:  # new, or changed by a reload
            rt = _GroupRuntime(group, planner.RestartIntensity.for_group(group))
            self._runtime[group.name] = rt
        return rt

    def status(self, name: str) -> dict[str, Any] | None:
        """Runtime view of group ``name`` (what describe shows under ``group``)."""
        group = self.context.config.groups.get(name)
        if group is None:
            return None
        rt = self._rt(group)
        return {"name": group.name, "strategy": group.strategy, "state": rt.state.value,
                "members": list(group.members), "max_restarts": group.max_restarts,
                "max_seconds": group.max_seconds, "restarts": rt.restarts,
                "restarts_in_window": rt.intensity.restarts_in_window(trio.current_time())}

    def _show(self, rt: _GroupRuntime) -> None:
        view = self.status(rt.spec.name)
        for member in rt.spec.members:
            sup = self.registry.get(member)
            if sup is not None:
                sup.extras["group"] = view

    # ------------------------------------------------------------------ seams
    def on_instance(self, sup: "Supervisor", inst: "Instance", nursery: "TaskNursery") -> None:
        group = self.group_of(sup.name)
        if group is None:
            return
        rt = self._rt(group)
        if rt.state is GroupState.CRASHED:
            rt.state = GroupState.RUNNING
            rt.intensity.reset()
            self.context.publish("group_rearmed", sup.name, sup.record.id, group=group.name)
        self._show(rt)

    def on_down(self, sup: "Supervisor", requested: bool) -> None:
        """Called by the member's own actor: decide here, act in an engine task."""
        group = self.group_of(sup.name)
        if requested or group is None or sup.record.state is not S.BACKOFF:
            return
        rt = self._rt(group)
        decision = decide_member_failure(group, rt.state, rt.intensity, sup.name,
                                         rt.round is not None, trio.current_time())
        if decision.action is GroupAction.IGNORE:
            return
        rt.restarts += 1
        rt.state = decision.state
        context = self.context
        if decision.action is GroupAction.ESCALATE:
            rt.round = None
            context.publish("group_escalated", sup.name, sup.record.id, group=group.name,
                            max_restarts=group.max_restarts, max_seconds=group.max_seconds)
            self._show(rt)
            context.spawn_task(self._escalate, rt, sup.name)
            return
        affected = list(decision.affected)
        context.publish("group_restart", sup.name, sup.record.id, group=group.name,
                        strategy=group.strategy, affected=affected)
        if decision.action is GroupAction.RESTART_ALONE:
            self._show(rt)
        elif decision.action is GroupAction.JOIN_ROUND and rt.round is not None:
            rt.round.failed.append(sup.name)  # another member failed during a round
            rt.round.affected = widen_round(group, rt.round.affected, decision.affected)
        else:
            rt.round = _Round(failed=[sup.name], affected=affected)
            self._show(rt)
            context.spawn_task(self._run_round, rt, rt.round)

    async def take_restart(self, sup: "Supervisor") -> bool:
        """Runs in ``sup``'s actor when its own backoff elapsed: a crashed group keeps
        it down, a round restarts it with the others; otherwise it restarts alone."""
        group = self.group_of(sup.name)
        if group is None:
            return False
        rt = self._rt(group)
        if rt.state is GroupState.CRASHED:
            return True
        if rt.round is not None and sup.name in rt.round.failed:
            rt.round.elapsed.add(sup.name)
            sup.notify_changed()
            return True
        return False

    # ------------------------------------------------------------------ actions
    def _reason(self, rt: _GroupRuntime, round: _Round) -> str:
        return (f"group '{rt.spec.name}' ({rt.spec.strategy}) restarts it because "
                f"'{round.failed[0]}' failed")

    async def _run_round(self, rt: _GroupRuntime, round: _Round) -> None:
        reason = self._reason(rt, round)
        while True:  # the set can grow while we stop (another member failed)
            todo = [m for m in reversed(round.affected) if m not in round.stopped_by_us
                    and self.registry.is_active(m)]
            if not todo:
                break
            for member in todo:
                stopped = await self._stop(member, reason)
                msup = self.registry.get(member)
                round.stopped_by_us[member] = msup.record.moves if stopped and msup else None
        for member in list(round.failed):
            msup = self.registry.get(member)
            if msup is not None:
                def elapsed_or_moved(s: "Supervisor", m: str = member) -> bool:
                    return m in round.elapsed or s.record.state is not S.BACKOFF

                await msup.wait_until(elapsed_or_moved)
        if rt.round is round:
            rt.round = None
        if rt.state is GroupState.CRASHED:
            return
        rt.state = GroupState.RUNNING
        for member in list(round.affected):
            msup = self.registry.get(member)
            if msup is None or rt.state is GroupState.CRASHED:
                continue
            try:
                if msup.record.state is S.BACKOFF:
                    await msup.request(msg.LaunchAutomatic())
                elif _still_stopped_by(msup, StopCause.GROUP, round.stopped_by_us.get(member)):
                    await msup.request(msg.Start(manual=False, automatic=True))
                else:
                    continue
            except errors.ProcMgrError as exc:
                self.context.warn(f"group '{rt.spec.name}': cannot restart '{member}': {exc.message}")
                continue
            await msup.wait_until(lambda s: s.is_up() or not s.is_active(),
                                  timeout=msup.spec.timeout_start_sec or math.inf)
        self._show(rt)

    async def _escalate(self, rt: _GroupRuntime, failed: str) -> None:
        group = rt.spec
        reason = (f"group '{group.name}' escalated: more than {group.max_restarts} restarts "
                  f"within {group.max_seconds:g}s ('{failed}' failed)")
        for member in reversed(group.members):
            msup = self.registry.get(member)
            if msup is not None and (msup.is_active() or msup.record.state is S.BACKOFF):
                await self._stop(member, reason)
        self._show(rt)

    async def _stop(self, member: str, reason: str) -> bool:
        """Stop ``member`` for the group; False when it was not stopped."""
        try:
            await self.registry[member].request(msg.Stop(reason, StopCause.GROUP))
            return True
        except errors.NotRunning:
            return False
        except errors.ProcMgrError as exc:
            self.context.warn(f"cannot stop group member '{member}': {exc.message}")
            return False


def _still_stopped_by(sup: "Supervisor", cause: StopCause, moves: int | None) -> bool:
    """True while ``sup`` is still in the very stop we made (nobody started or stopped
    it since): same cause, and its record has not moved after that stop."""
    rec = sup.record
    return (moves is not None and rec.state is S.STOPPED and rec.stop_cause is cause
            and rec.moves == moves)


FEATURE = SupervisionGroups
