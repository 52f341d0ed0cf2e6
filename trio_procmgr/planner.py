"""Sans-IO dependency planner (SPEC §6): transactions, ordering, supervision groups.

Every function here is pure: specs (and, where needed, the set of ``active`` names) in,
a frozen plan out. Nothing reads a clock or touches a process; the engine's Trio shell
runs the plans.

Semantics (systemd's, SPEC §6.1). ``X.requires=Y`` reads "X requires Y":

==========  ==============  =====================  ===============================
directive   pulls Y in      X's start fails if Y   X stops when Y stops
==========  ==============  =====================  ===============================
requires    yes             fails (hard)           on request (incl. propagated)
wants       yes             no (soft)              never
binds_to    yes             fails (hard)           for any reason (crash too)
part_of     no              no                     on request; restarts with Y too
conflicts   starting either side stops the other first (whoever declared it)
after       ordering only: X starts after Y, stops before Y, when both are in one
before      transaction (``X.before=Y`` is ``Y.after=X``)
==========  ==============  =====================  ===============================

Ordering and dependency are independent: ``requires`` without ``after`` starts both at
once. An ordering edge ``A -> B`` ("A starts before B") only binds when both are in the
same transaction; edges naming undefined processes are ignored.

How an executor runs a :class:`StartPlan` (either style works; the plan guarantees
``wait_for`` only names steps of the same plan and is acyclic):

* per node: one task per step in a nursery; a step first awaits the stop of its
  ``conflicts`` (all in ``plan.to_stop``), then waits until every name in ``wait_for``
  has *settled* -- reached "up" (running; notify: READY=1; oneshot: exited; and healthy
  for names in ``wait_healthy``) or failed -- then starts unless
  ``plan.failed_dependants(failed_so_far)`` contains it (fail it with DEPENDENCY_FAILED).
* per layer: run ``plan.layers`` one after another, each layer's steps concurrently in
  a nursery; every ``wait_for`` of a step lies in an earlier layer.

A failure (or a failed conflict stop, CONFLICT_STOP_FAILED) fails exactly the names in
``failed_dependants``: the hard (``requires``/``binds_to``) dependants, transitively.
Soft dependants and plain ordering successors still start once the failure settled.
A hard dependency *without* ordering starts concurrently with its dependant; if it fails
after the dependant came up, the dependant keeps running under ``requires`` and is stopped
under ``binds_to`` (see :func:`on_unexpected_stop`).

A :class:`StopPlan` runs the same way with "stop" for "start": a step waits until every
name in ``wait_for`` has finished its stop attempt. Stop order is the reverse of start
order (a process stops before the ones it was ordered after).
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field, replace
from typing import AbstractSet, Any, Callable, Iterable, Mapping, TypeVar

from . import errors
from .spec import DEPENDENCY_FIELDS, GroupSpec, ProcessSpec

PULL_IN_FIELDS = ("requires", "wants", "binds_to")
HARD_FIELDS = ("requires", "binds_to")
STOP_PROPAGATING_FIELDS = ("requires", "binds_to", "part_of")
DEPENDENCY_TREE_FIELDS = ("requires", "wants", "binds_to", "part_of", "after")


# --- ordering ---------------------------------------------------------------------------

def ordering_edges(specs: Mapping[str, ProcessSpec]) -> dict[str, set[str]]:
    """``first -> {then, ...}``: ``X.after=Y`` gives ``Y -> X``, ``X.before=Y`` ``X -> Y``.

    Edges to names not in ``specs`` are dropped: ordering only binds processes that exist
    (an ``after`` on an undefined process is ignored, as in systemd).
    """
    edges: dict[str, set[str]] = {name: set() for name in specs}
    for name, spec in specs.items():
        for other in spec.after:
            if other in specs:
                edges[other].add(name)
        for other in spec.before:
            if other in specs:
                edges[name].add(other)
    return edges


def find_ordering_cycle(specs: Mapping[str, ProcessSpec]) -> list[str] | None:
    """One ordering cycle as ``[a, b, ..., a]`` (each step: "starts before"), or None.

    Deterministic: nodes and edges are visited in sorted order, so one configuration
    always reports the same cycle. A process ordered after itself gives ``[a, a]``.
    """
    return _find_cycle(ordering_edges(specs))


def _find_cycle(edges: Mapping[str, AbstractSet[str]]) -> list[str] | None:
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(edges, white)
    for root in sorted(edges):
        if colour[root] != white:
            continue
        path = [root]
        stack = [iter(sorted(edges[root]))]
        colour[root] = grey
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                colour[path.pop()] = black
            elif colour[nxt] == grey:
                return path[path.index(nxt):] + [nxt]
            elif colour[nxt] == white:
                colour[nxt] = grey
                path.append(nxt)
                stack.append(iter(sorted(edges[nxt])))
    return None


def _explain_edge(specs: Mapping[str, ProcessSpec], first: str, then: str) -> str:
    if first in specs[then].after:
        return f"'{then}' is after '{first}'"
    return f"'{first}' is before '{then}'"


def ordering_cycle_error(specs: Mapping[str, ProcessSpec], cycle: list[str]) -> errors.ProcMgrError:
    """The CONFIG_ERROR for an ordering cycle, naming every edge and where it comes from."""
    spelled = " -> ".join(cycle)
    why = [_explain_edge(specs, a, b) for a, b in zip(cycle, cycle[1:])]
    return errors.ConfigError(
        f"ordering cycle {spelled} ({'; '.join(why)}); remove one of these after/before "
        "entries",
        cycle=list(cycle), edges=why, culprit=cycle[0],
    )


def _restricted(edges: Mapping[str, set[str]], members: AbstractSet[str]) -> dict[str, set[str]]:
    return {n: edges[n] & members for n in members}


def _predecessors(edges: Mapping[str, set[str]]) -> dict[str, set[str]]:
    preds: dict[str, set[str]] = {n: set() for n in edges}
    for first, thens in edges.items():
        for then in thens:
            preds[then].add(first)
    return preds


def _kahn(edges: Mapping[str, set[str]]) -> list[str] | None:
    """Topological order (ties broken by name), or None when ``edges`` has a cycle."""
    indegree = {n: 0 for n in edges}
    for thens in edges.values():
        for then in thens:
            indegree[then] += 1
    ready = [n for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for then in edges[node]:
            indegree[then] -= 1
            if indegree[then] == 0:
                heapq.heappush(ready, then)
    return order if len(order) == len(edges) else None


def _layers(order: list[str], wait_for: Mapping[str, AbstractSet[str]]) -> tuple[tuple[str, ...], ...]:
    level: dict[str, int] = {}
    for name in order:
        level[name] = 1 + max((level[p] for p in wait_for[name]), default=-1)
    grouped: dict[int, list[str]] = {}
    for name in order:
        grouped.setdefault(level[name], []).append(name)
    return tuple(tuple(sorted(grouped[i])) for i in sorted(grouped))


def _sort_or_raise(specs: Mapping[str, ProcessSpec], edges: Mapping[str, set[str]]) -> list[str]:
    order = _kahn(edges)
    if order is None:
        cycle = _find_cycle(edges)
        assert cycle is not None
        raise ordering_cycle_error(specs, cycle)
    return order


def _require_known(specs: Mapping[str, ProcessSpec], names: Iterable[str]) -> list[str]:
    names = list(dict.fromkeys(names))
    for name in names:
        if name not in specs:
            raise errors.ProcessNotFound(
                f"no process named '{name}' is defined; `dd-procmgr list` shows the "
                "defined names", name=name)
    return names


# --- conflicts --------------------------------------------------------------------------

def conflicting(specs: Mapping[str, ProcessSpec], name: str) -> list[str]:
    """Defined processes that conflict with ``name``, whichever side declared it (sorted)."""
    return sorted(conflict_map(specs).get(name, ()))


def conflict_map(specs: Mapping[str, ProcessSpec]) -> dict[str, set[str]]:
    """name -> every defined process it conflicts with, both directions, in one pass."""
    found: dict[str, set[str]] = {}
    for name, spec in specs.items():
        for other in spec.conflicts:
            if other in specs and other != name:
                found.setdefault(name, set()).add(other)
                found.setdefault(other, set()).add(name)
    return found


class DependencyIndex:
    """Who points at whom, built once in O(edges) for a set of specs (pure, read-only).

    Lets the engine see in O(1) that a process stands alone — nothing to pull in, no
    conflict, no dependant — and skip planning a transaction of one, which matters when
    a thousand single-process starts or stops arrive at once.
    """

    def __init__(self, specs: Mapping[str, ProcessSpec]) -> None:
        self.reverse: dict[str, dict[str, set[str]]] = {}
        for name, spec in specs.items():
            for directive in ("requires", "wants", "binds_to", "part_of", "conflicts"):
                for other in getattr(spec, directive):
                    if other != name:
                        self.reverse.setdefault(other, {}).setdefault(directive, set()).add(name)
        self._specs = specs

    def dependants(self, name: str, directives: Iterable[str]) -> set[str]:
        by_directive = self.reverse.get(name, {})
        return set().union(*(by_directive.get(d, ()) for d in directives))

    def starts_alone(self, name: str) -> bool:
        """Starting ``name`` pulls nothing in and stops nothing."""
        spec = self._specs[name]
        return not (spec.requires or spec.wants or spec.binds_to or spec.conflicts
                    or self.dependants(name, ("conflicts",)))

    def stops_alone(self, name: str) -> bool:
        """Stopping ``name`` on request stops nothing else."""
        return not self.dependants(name, STOP_PROPAGATING_FIELDS)


def single_start_plan(name: str) -> StartPlan:
    """The plan of a transaction of one (see :meth:`DependencyIndex.starts_alone`)."""
    return StartPlan(targets=(name,), order=(name,), steps=(StartStep(name=name, is_target=True),),
                     layers=((name,),))


def single_stop_plan(name: str) -> StopPlan:
    """The plan of stopping one process nothing depends on."""
    return StopPlan(targets=(name,), order=(name,), steps=(StopStep(name=name),),
                    layers=((name,),))


# --- start ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StartStep:
    """One process of a start transaction and what gates it.

    ``wait_for``: ordering predecessors in this transaction; start only after each has
    settled (up or failed). ``wait_healthy``: the subset that must also be healthy
    (this spec has ``wait_healthy`` and they carry a health check). ``hard``/``soft``:
    its requires+binds_to / wants dependencies, all members of this transaction.
    ``conflicts``: processes whose stop must finish before this one starts.
    ``pulled_in_by``: ``(dependant, directive)`` pairs that put it in the transaction.
    """

    name: str
    wait_for: frozenset[str] = frozenset()
    wait_healthy: frozenset[str] = frozenset()
    hard: frozenset[str] = frozenset()
    soft: frozenset[str] = frozenset()
    conflicts: frozenset[str] = frozenset()
    is_target: bool = False
    pulled_in_by: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class StartPlan:
    """A start transaction: which processes start, in what order, gated by what.

    ``order`` is a topological order of the ordering edges (ties by name), ``steps``
    follow it, ``layers`` group it by depth (all ``wait_for`` of a step are in earlier
    layers). ``to_stop`` is every conflicting process outside the transaction, sorted;
    the executor stops the active ones first (with their dependants:
    ``stop_transaction(specs, plan.to_stop, active)``).
    """

    targets: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    steps: tuple[StartStep, ...] = ()
    layers: tuple[tuple[str, ...], ...] = ()
    to_stop: tuple[str, ...] = ()

    def step(self, name: str) -> StartStep:
        return _step_named(self.steps, name)

    def failed_dependants(self, failed: Iterable[str]) -> frozenset[str]:
        """Names whose start fails because the ``failed`` ones did (hard edges, transitively).

        The ``failed`` names themselves are not included.
        """
        failed = set(failed)
        doomed: set[str] = set()
        changed = True
        while changed:
            changed = False
            for step in self.steps:
                if step.name not in doomed and step.name not in failed and (
                        step.hard & (failed | doomed)):
                    doomed.add(step.name)
                    changed = True
        return frozenset(doomed)


_Step = TypeVar("_Step", "StartStep", "StopStep")


def _step_named(steps: Iterable[_Step], name: str) -> _Step:
    for step in steps:
        if step.name == name:
            return step
    raise KeyError(name)


def _pull_in(specs: Mapping[str, ProcessSpec], targets: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Closure over requires/wants/binds_to: name -> [(dependant, directive)]."""
    pulled: dict[str, list[tuple[str, str]]] = {t: [] for t in targets}
    queue = deque(targets)
    while queue:
        name = queue.popleft()
        spec = specs[name]
        for directive in PULL_IN_FIELDS:
            for dep in getattr(spec, directive):
                if dep not in specs:
                    if directive == "wants":
                        continue
                    raise errors.ProcessNotFound(
                        f"'{name}' {directive} '{dep}', which is not defined; define it or "
                        f"remove it from {directive}",
                        name=dep, dependant=name, directive=directive)
                if dep not in pulled:
                    pulled[dep] = []
                    queue.append(dep)
                if dep != name:
                    pulled[dep].append((name, directive))
    return pulled


def _check_no_inner_conflict(specs: Mapping[str, ProcessSpec], members: AbstractSet[str],
                             targets: list[str], conflicts: Mapping[str, set[str]]) -> None:
    for name in sorted(members):
        for other in sorted(conflicts.get(name, ())):
            if other in members:
                pair = sorted((name, other))
                if set(pair) <= set(targets):
                    raise errors.InvalidArgument(
                        f"'{pair[0]}' and '{pair[1]}' conflict; start only one of them",
                        conflict=pair)
                raise errors.ConfigError(
                    f"starting {', '.join(targets)} would start both '{pair[0]}' and "
                    f"'{pair[1]}', which conflict; remove the dependency that pulls one "
                    "of them in or the conflict", conflict=pair, targets=list(targets))


def start_transaction(specs: Mapping[str, ProcessSpec], targets: Iterable[str]) -> StartPlan:
    """Plan starting ``targets`` and everything they pull in (requires/wants/binds_to).

    Raises PROCESS_NOT_FOUND for an undefined target or hard dependency (an undefined
    ``wants`` is ignored), CONFIG_ERROR for an ordering cycle among the members (message
    ``a -> b -> a``; details ``cycle``) or for two members that conflict, and
    INVALID_ARGUMENT when two targets conflict with each other.
    """
    targets = _require_known(specs, targets)
    pulled = _pull_in(specs, targets)
    members = set(pulled)
    conflicts = conflict_map(specs)
    _check_no_inner_conflict(specs, members, targets, conflicts)
    edges = _restricted(ordering_edges(specs), members)
    order = _sort_or_raise(specs, edges)
    preds = _predecessors(edges)
    target_set = frozenset(targets)
    steps = tuple(_start_step(specs, name, preds[name], members, target_set, pulled[name],
                              conflicts.get(name, set()))
                  for name in order)
    to_stop = sorted({c for step in steps for c in step.conflicts})
    return StartPlan(targets=tuple(targets), order=tuple(order), steps=steps,
                     layers=_layers(order, preds), to_stop=tuple(to_stop))


def _start_step(specs: Mapping[str, ProcessSpec], name: str, preds: set[str],
                members: AbstractSet[str], targets: AbstractSet[str],
                pulled_in_by: list[tuple[str, str]], conflicts: AbstractSet[str]) -> StartStep:
    spec = specs[name]
    healthy = {p for p in preds if specs[p].health_check is not None} if spec.wait_healthy else set()
    return StartStep(
        name=name,
        wait_for=frozenset(preds),
        wait_healthy=frozenset(healthy),
        hard=frozenset(d for f in HARD_FIELDS for d in getattr(spec, f) if d in members) - {name},
        soft=frozenset(d for d in spec.wants if d in members) - {name},
        conflicts=frozenset(conflicts),
        is_target=name in targets,
        pulled_in_by=tuple(sorted(set(pulled_in_by))),
    )


def boot_plan(specs: Mapping[str, ProcessSpec]) -> StartPlan:
    """All ``auto_start`` processes as one start transaction (SPEC §6.1)."""
    return start_transaction(specs, sorted(n for n, s in specs.items() if s.auto_start))


# --- stop -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StopStep:
    """One process of a stop transaction.

    ``wait_for``: processes of this transaction that must finish stopping first (they
    were ordered after this one). ``cause``: ``(other, directive)`` when it stops only
    because ``other`` stops and this process ``directive``s it (e.g. ``("db",
    "requires")``), None for a target.
    """

    name: str
    wait_for: frozenset[str] = frozenset()
    cause: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class StopPlan:
    """A stop transaction: ``order`` is a valid stop order, ``layers`` group it by depth."""

    targets: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    steps: tuple[StopStep, ...] = ()
    layers: tuple[tuple[str, ...], ...] = ()

    def step(self, name: str) -> StopStep:
        return _step_named(self.steps, name)


def _dependants_index(specs: Mapping[str, ProcessSpec],
                      directives: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """name -> its direct dependants ``(other, directive)`` along ``directives`` (others
    sorted), for every name in one pass.

    Why: scanning every spec for each name reached made stopping N processes O(N²)
    (at N=5000 a `stop --all` spent most of its time here, issue 15)."""
    directives = tuple(directives)
    index: dict[str, list[tuple[str, str]]] = {}
    for other in sorted(specs):
        spec = specs[other]
        for directive in directives:
            for name in dict.fromkeys(getattr(spec, directive)):
                if name != other:
                    index.setdefault(name, []).append((other, directive))
    return index


def _propagate(specs: Mapping[str, ProcessSpec], seeds: list[str],
               directives: tuple[str, ...]) -> dict[str, tuple[str, str] | None]:
    """Reverse closure of ``seeds`` along ``directives``: name -> first cause (BFS)."""
    cause: dict[str, tuple[str, str] | None] = {s: None for s in seeds}
    index = _dependants_index(specs, directives)
    queue = deque(seeds)
    while queue:
        name = queue.popleft()
        for other, directive in index.get(name, ()):
            if other not in cause:
                cause[other] = (name, directive)
                queue.append(other)
    return cause


def _stop_plan(specs: Mapping[str, ProcessSpec], targets: list[str],
               cause: Mapping[str, tuple[str, str] | None], active: AbstractSet[str]) -> StopPlan:
    members = {n for n in cause if n in active}
    start_edges = _restricted(ordering_edges(specs), members)
    stop_edges: dict[str, set[str]] = {n: set() for n in members}
    for first, thens in start_edges.items():
        for then in thens:
            stop_edges[then].add(first)
    _sort_or_raise(specs, start_edges)
    order = _kahn(stop_edges)
    assert order is not None, "the reverse of an acyclic graph is acyclic"
    preds = _predecessors(stop_edges)
    steps = tuple(StopStep(name=n, wait_for=frozenset(preds[n]), cause=cause[n]) for n in order)
    return StopPlan(targets=tuple(t for t in targets if t in active), order=tuple(order),
                    steps=steps, layers=_layers(order, preds))


def stop_transaction(specs: Mapping[str, ProcessSpec], targets: Iterable[str],
                     active: AbstractSet[str]) -> StopPlan:
    """Plan stopping ``targets`` on request, with whatever must stop with them.

    Stop propagates to the dependants through ``requires``, ``binds_to`` and ``part_of``,
    transitively. It propagates through inactive processes too (stopping a failed ``db``
    still stops a running ``api`` that requires it), but only names in ``active`` are in
    the plan. Raises PROCESS_NOT_FOUND for an undefined target, CONFIG_ERROR for an
    ordering cycle among the members.
    """
    targets = _require_known(specs, targets)
    cause = _propagate(specs, targets, STOP_PROPAGATING_FIELDS)
    return _stop_plan(specs, targets, cause, active)


def shutdown_plan(specs: Mapping[str, ProcessSpec], active: AbstractSet[str]) -> StopPlan:
    """Stop every active process in reverse ordering (daemon shutdown, SPEC §6.1).

    Active names that are no longer defined are left out: the engine stops them without
    ordering.
    """
    known = sorted(n for n in active if n in specs)
    return _stop_plan(specs, known, dict.fromkeys(known), active)


def on_unexpected_stop(specs: Mapping[str, ProcessSpec], name: str,
                       active: AbstractSet[str]) -> list[str]:
    """Active processes to stop because ``name`` stopped or failed for any reason.

    Only ``binds_to`` propagates an exit that nobody requested; it chains (``c`` bound
    to ``b`` bound to ``name``). The result is sorted. The engine then stops these *on
    request*, i.e. ``stop_transaction(specs, result, active)``, which orders them and adds
    their own requires/part_of dependants.
    """
    _require_known(specs, [name])
    cause = _propagate(specs, [name], ("binds_to",))
    return sorted(n for n in cause if n != name and n in active)


def restart_propagation(specs: Mapping[str, ProcessSpec], name: str) -> list[str]:
    """Processes that restart when ``name`` restarts: its ``part_of`` dependants,
    transitively, in start order (stop them in reverse). ``name`` itself is excluded."""
    _require_known(specs, [name])
    members = set(_propagate(specs, [name], ("part_of",)))
    order = _sort_or_raise(specs, _restricted(ordering_edges(specs), members))
    return [n for n in order if n != name]


# --- dependency trees (`dd-procmgr deps NAME`) --------------------------------------------

@dataclass(frozen=True, slots=True)
class DepNode:
    """One node of a dependency tree.

    ``directives``: how it relates to its parent (``("requires", "after")``: the dependant
    of the pair requires and is ordered after the other); empty at the root.
    ``repeated``: already expanded elsewhere in this tree (diamond or cycle), so its
    children are not repeated. ``missing``: named but not defined.
    """

    name: str
    directives: tuple[str, ...] = ()
    children: tuple[DepNode, ...] = ()
    repeated: bool = False
    missing: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "directives": list(self.directives),
                "repeated": self.repeated, "missing": self.missing,
                "children": [c.to_dict() for c in self.children]}


def _forward_relations(specs: Mapping[str, ProcessSpec], name: str) -> dict[str, list[str]]:
    rel: dict[str, list[str]] = {}
    spec = specs[name]
    for directive in DEPENDENCY_TREE_FIELDS:
        for other in getattr(spec, directive):
            rel.setdefault(other, []).append(directive)
    for other, other_spec in specs.items():
        if name in other_spec.before:
            rel.setdefault(other, []).append("after")
    return rel


def _reverse_relations(specs: Mapping[str, ProcessSpec], name: str) -> dict[str, list[str]]:
    rel: dict[str, list[str]] = {}
    for other, other_spec in specs.items():
        for directive in DEPENDENCY_TREE_FIELDS:
            if name in getattr(other_spec, directive):
                rel.setdefault(other, []).append(directive)
    for other in specs[name].before:
        if other in specs:
            rel.setdefault(other, []).append("after")
    return rel


def _tree(specs: Mapping[str, ProcessSpec], root: str,
          relations: Callable[[Mapping[str, ProcessSpec], str], dict[str, list[str]]]) -> DepNode:
    expanded: set[str] = set()

    def build(name: str, directives: tuple[str, ...]) -> DepNode:
        if name not in specs:
            return DepNode(name, directives, missing=True)
        if name in expanded:
            return DepNode(name, directives, repeated=True)
        expanded.add(name)
        rel = relations(specs, name)
        children = tuple(build(other, tuple(dict.fromkeys(rel[other])))
                         for other in sorted(rel) if other != name)
        return DepNode(name, directives, children)

    return build(root, ())


def dependencies(specs: Mapping[str, ProcessSpec], name: str) -> DepNode:
    """What ``name`` depends on, transitively: requires/wants/binds_to/part_of/after
    (``X.before=name`` shows as ``name`` after X). Conflicts: see :func:`conflicting`."""
    _require_known(specs, [name])
    return _tree(specs, name, _forward_relations)


def dependants(specs: Mapping[str, ProcessSpec], name: str) -> DepNode:
    """What depends on ``name``, transitively; a child's ``directives`` say how the child
    relates to its parent (``api`` under ``db`` with ``("requires",)``: api requires db)."""
    _require_known(specs, [name])
    return _tree(specs, name, _reverse_relations)


# --- supervision groups (SPEC §6.3) --------------------------------------------------------

def group_restart_set(group: GroupSpec, failed: str) -> tuple[list[str], list[str]]:
    """``(to_stop_in_order, to_start_in_order)`` after member ``failed`` exited.

    one_for_one: only ``failed``; one_for_all: every member, stopped in reverse member
    order and started in member order; rest_for_one: ``failed`` and the members after
    it, likewise. ``failed`` is in both lists (stopping it is a no-op when already down).
    """
    if failed not in group.members:
        raise errors.ProcessNotFound(
            f"'{failed}' is not a member of group '{group.name}'", name=failed,
            group=group.name)
    if group.strategy == "one_for_one":
        affected = [failed]
    elif group.strategy == "one_for_all":
        affected = list(group.members)
    elif group.strategy == "rest_for_one":
        affected = list(group.members[group.members.index(failed):])
    else:
        raise errors.ConfigError(
            f"group '{group.name}' has unknown strategy '{group.strategy}'; use "
            "one_for_one, one_for_all or rest_for_one", group=group.name, field="strategy")
    return affected[::-1], affected


@dataclass(slots=True)
class RestartIntensity:
    """Restart budget of a supervision group: at most ``max_restarts`` within
    ``max_seconds`` (a restart at ``t`` counts while ``now - t < max_seconds``).

    Sans-IO: the caller passes ``now`` (a monotonic clock). When :meth:`record` returns
    True the group escalates (all members stop, the group is ``crashed``); :meth:`reset`
    on a manual start.
    """

    max_restarts: int
    max_seconds: float
    _times: deque[float] = field(default_factory=deque, init=False, repr=False)

    @classmethod
    def for_group(cls, group: GroupSpec) -> RestartIntensity:
        return cls(group.max_restarts, group.max_seconds)

    def _expire(self, now: float) -> None:
        while self._times and now - self._times[0] >= self.max_seconds:
            self._times.popleft()

    def record(self, now: float) -> bool:
        """Count one restart at ``now``; True when that exceeds the budget."""
        self._expire(now)
        self._times.append(now)
        return len(self._times) > self.max_restarts

    def restarts_in_window(self, now: float) -> int:
        self._expire(now)
        return len(self._times)

    def reset(self) -> None:
        self._times.clear()


# ---------------------------------------------------------------- instances (SPEC §16)

def instance_groups(specs: Mapping[str, ProcessSpec]) -> dict[str, list[str]]:
    """``BASE -> [BASE@a, BASE@b, ...]`` for every base that is not itself a process."""
    groups: dict[str, list[str]] = {}
    for name in specs:
        base, at, rest = name.partition("@")
        if at and base and rest and base not in specs:
            groups.setdefault(base, []).append(name)
    return groups


def expand_instance_dependencies(specs: Mapping[str, ProcessSpec]) -> Mapping[str, ProcessSpec]:
    """Specs where a relation to ``BASE`` (a replica set or template, not a process) names
    every instance ``BASE@...`` instead: "requires queue-workers" waits for all of them and
    stops with all of them, however many there are right now.

    Returns ``specs`` itself when nothing refers to an instance group.
    """
    groups = instance_groups(specs)
    if not groups:
        return specs
    out: dict[str, ProcessSpec] = {}
    for name, spec in specs.items():
        changes: dict[str, Any] = {}  # dependency field -> its tuple of names
        for fld in DEPENDENCY_FIELDS:
            names = getattr(spec, fld)
            if any(other in groups for other in names):
                changes[fld] = tuple(dict.fromkeys(
                    member for other in names for member in groups.get(other, [other])
                    if member != name))
        out[name] = replace(spec, **changes) if changes else spec
    return out
