"""Checks across a whole configuration set: names that must exist, ordering cycles.

Pure: specs in, the surviving specs and the issues out. An entry with a problem is
dropped with its issue, so the engine never sees it; dropping one process can make its
dependants' references dangle, so the checks repeat until nothing changes.

Only hard dependencies (``requires``, ``binds_to``, ``part_of``) must name a defined
process; a soft one (``wants``, ``after``, ``before``, ``conflicts``) naming an unknown
process is a warning about the surviving set (lint.py), and the process loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..planner import find_ordering_cycle
from ..spec import DEPENDENCY_FIELDS, ConfigIssue, GroupSpec, ProcessSpec, SocketSpec
from .lint import HARD_DEPENDENCY_FIELDS, unknown_soft_dependencies

# (kind, name, field) -> (file, line): where an entry's field was written.
Locate = Callable[[str, str, str | None], tuple[str, int | None]]


@dataclass
class CheckedSet:
    processes: dict[str, ProcessSpec]
    sockets: dict[str, SocketSpec]
    groups: dict[str, GroupSpec]
    issues: list[ConfigIssue] = field(default_factory=list)


def crosscheck(processes: Mapping[str, ProcessSpec], sockets: Mapping[str, SocketSpec],
               groups: Mapping[str, GroupSpec], failed: set[str], locate: Locate) -> CheckedSet:
    """Keep what is consistent; ``failed`` names processes that did not load at all."""
    result = CheckedSet(dict(processes), {}, {})
    dropped: set[str] = set()
    while _drop_dangling(result, failed, dropped, locate) or _drop_cycle(result, dropped, locate):
        pass
    _check_groups(result, groups, locate)
    _check_sockets(result, sockets, locate)
    _warn_soft(result, failed, dropped, locate)
    return result


def _warn_soft(result: CheckedSet, failed: set[str], dropped: set[str], locate: Locate) -> None:
    for name in sorted(result.processes):
        for fld, other in unknown_soft_dependencies(result.processes[name], result.processes.keys()):
            message = f"process '{name}' {fld} {_why_missing(other, failed, dropped)}: ignored until it is defined"
            file, line = locate("process", name, fld)
            result.issues.append(ConfigIssue(file=file, line=line, field=fld, message=message,
                                             expected="the name of a defined process",
                                             severity="warning"))


def _why_missing(other: str, failed: set[str], dropped: set[str]) -> str:
    if other in failed:
        return f"'{other}', which failed to load (see its own error)"
    if other in dropped:
        return f"'{other}', which was dropped (see its own error)"
    return f"unknown process '{other}'"


def _issue(locate: Locate, kind: str, name: str, fld: str | None, message: str,
           expected: str | None = None) -> ConfigIssue:
    file, line = locate(kind, name, fld)
    return ConfigIssue(file=file, line=line, field=fld, message=message, expected=expected)


def _drop_dangling(result: CheckedSet, failed: set[str], dropped: set[str], locate: Locate) -> bool:
    changed = False
    for name in sorted(result.processes):
        spec = result.processes[name]
        problems = []
        for fld in DEPENDENCY_FIELDS:
            for other in getattr(spec, fld):
                if other == name and fld not in ("after", "before"):
                    problems.append((fld, f"process '{name}' {fld} itself", "another process's name"))
                elif other not in result.processes and fld in HARD_DEPENDENCY_FIELDS:
                    problems.append((fld, f"process '{name}' {fld} {_why_missing(other, failed, dropped)}",
                                     "the name of a defined process"))
        for fld, message, expected in problems:
            result.issues.append(_issue(locate, "process", name, fld, message, expected))
        if problems:
            del result.processes[name]
            dropped.add(name)
            changed = True
    return changed


def _drop_cycle(result: CheckedSet, dropped: set[str], locate: Locate) -> bool:
    cycle = find_ordering_cycle(result.processes)
    if not cycle:
        return False
    spelled = " -> ".join(cycle)
    members = cycle[:-1]
    for index, name in enumerate(members):
        spec = result.processes[name]
        before_me, after_me = members[index - 1], members[(index + 1) % len(members)]
        fld = "after" if before_me in spec.after else "before" if after_me in spec.before else None
        result.issues.append(_issue(
            locate, "process", name, fld,
            f"ordering cycle {spelled} (each arrow: starts before); process '{name}' dropped",
            "after/before edges without a cycle"))
    for name in set(members):
        del result.processes[name]
        dropped.add(name)
    return True


def _check_groups(result: CheckedSet, groups: Mapping[str, GroupSpec], locate: Locate) -> None:
    owner: dict[str, str] = {}
    for name in sorted(groups):
        group = groups[name]
        problems = [f"group '{name}' lists unknown process '{m}'"
                    for m in group.members if m not in result.processes]
        problems += [f"process '{m}' is already a member of group '{owner[m]}'"
                     for m in group.members if m in owner]
        for message in problems:
            result.issues.append(_issue(locate, "group", name, "members", message,
                                        "names of defined processes, each in at most one group"))
        if problems:
            continue
        result.groups[name] = group
        owner.update({m: name for m in group.members})


def _check_sockets(result: CheckedSet, sockets: Mapping[str, SocketSpec], locate: Locate) -> None:
    for name in sorted(sockets):
        sock = sockets[name]
        if sock.accept:
            result.issues.append(_issue(
                locate, "socket", name, "accept",
                f"socket '{name}': accept: true (one service instance per connection) is "
                "not supported", "false (the listening socket is passed to the service)"))
            continue
        if sock.service in result.processes:
            result.sockets[name] = sock
            continue
        fld = "service"
        result.issues.append(_issue(
            locate, "socket", name, fld,
            f"socket '{name}' activates unknown process '{sock.service}'"
            + ("" if sock.service != name else " (service defaults to the socket's own name)"),
            "the name of a defined process"))
