"""What a supervision group does when a member fails (SPEC §6.3), decided without I/O.

The engine's ``groups.py`` is the Trio shell: it calls :func:`decide_member_failure`
from the failed member's actor, with the group's state, its restart budget and ``now``
(a monotonic time), and then carries the decision out (stop members, publish events,
start a round). Everything that is a *choice* lives here and is property-tested.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from trio_procmgr.planner import RestartIntensity, group_restart_set
from trio_procmgr.spec import GroupSpec


class GroupState(str, enum.Enum):
    """A supervision group's own state (``describe`` shows it under ``group.state``)."""

    RUNNING = "running"        # members run under their own policies
    RESTARTING = "restarting"  # a one_for_all / rest_for_one round is under way
    CRASHED = "crashed"        # escalated: members stopped until one is started again

    def __str__(self) -> str:
        return self.value


class GroupAction(enum.Enum):
    IGNORE = "ignore"                # crashed already: nothing moves until a start re-arms it
    ESCALATE = "escalate"            # over budget: stop every member, group crashed
    RESTART_ALONE = "restart_alone"  # one_for_one: the member's own backoff restarts it
    JOIN_ROUND = "join_round"        # a round is under way: widen it
    START_ROUND = "start_round"      # stop the affected members, restart them in order


@dataclass(frozen=True)
class GroupDecision:
    action: GroupAction
    state: GroupState
    #: The members this failure affects, in member order (empty for IGNORE / ESCALATE).
    affected: tuple[str, ...] = ()


def decide_member_failure(group: GroupSpec, state: GroupState, intensity: RestartIntensity,
                          failed: str, round_active: bool, now: float) -> GroupDecision:
    """The group's answer to ``failed`` going to ``backoff`` at ``now``.

    Counts one restart against the budget (``intensity`` is updated) unless the group
    has crashed already; returns what to do and the group's next state.
    """
    if state is GroupState.CRASHED:
        return GroupDecision(GroupAction.IGNORE, state)
    if intensity.record(now):
        return GroupDecision(GroupAction.ESCALATE, GroupState.CRASHED)
    _, affected = group_restart_set(group, failed)
    if group.strategy == "one_for_one":
        return GroupDecision(GroupAction.RESTART_ALONE, state, tuple(affected))
    if round_active:
        return GroupDecision(GroupAction.JOIN_ROUND, state, tuple(affected))
    return GroupDecision(GroupAction.START_ROUND, GroupState.RESTARTING, tuple(affected))


def widen_round(group: GroupSpec, current: list[str], more: tuple[str, ...]) -> list[str]:
    """The members of a round after another failure joined it, in member order."""
    return [m for m in group.members if m in current or m in more]
