"""Sans-IO dependency planner (SPEC §6): ordering, transactions, supervision groups.

Pure functions over ``Mapping[str, ProcessSpec]``; no I/O, no clock.
"""

from __future__ import annotations

from typing import Mapping

from .spec import ProcessSpec


def ordering_edges(specs: Mapping[str, ProcessSpec]) -> dict[str, set[str]]:
    """``first -> {then, ...}``: ``X.after=Y`` gives Y->X, ``X.before=Y`` gives X->Y.

    Edges to names not in ``specs`` are dropped: ordering only binds processes that exist
    (systemd semantics: After= on an unknown unit is ignored).
    """
    edges: dict[str, set[str]] = {name: set() for name in specs}
    for name, spec in specs.items():
        for other in spec.after:
            if other in specs and other != name:
                edges[other].add(name)
        for other in spec.before:
            if other in specs and other != name:
                edges[name].add(other)
    return edges


def find_ordering_cycle(specs: Mapping[str, ProcessSpec]) -> list[str] | None:
    """One ordering cycle as ``[a, b, ..., a]`` (each step is "starts before"), or None.

    Deterministic: nodes and edges are visited in sorted order, so the same config always
    reports the same cycle. A self-edge (``after`` naming itself) counts as ``[a, a]``.
    """
    edges: dict[str, set[str]] = {name: set() for name in specs}
    for name, spec in specs.items():
        for other in spec.after:
            if other in specs:
                edges[other].add(name)
        for other in spec.before:
            if other in specs:
                edges[name].add(other)
    return _find_cycle(edges)


def _find_cycle(edges: Mapping[str, set[str]]) -> list[str] | None:
    white, grey, black = 0, 1, 2
    colour = {node: white for node in edges}
    for root in sorted(edges):
        if colour[root] != white:
            continue
        path: list[str] = [root]
        stack = [iter(sorted(edges[root]))]
        colour[root] = grey
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                colour[path.pop()] = black
                continue
            if colour[nxt] == grey:
                return path[path.index(nxt):] + [nxt]
            if colour[nxt] == white:
                colour[nxt] = grey
                path.append(nxt)
                stack.append(iter(sorted(edges[nxt])))
    return None
