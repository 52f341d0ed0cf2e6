"""Warnings: definitions that load and run, but are probably not what was meant.

Pure: a spec (and the names defined next to it) in, ``(field, message)`` pairs out. The
loader turns them into ``ConfigIssue``s of severity ``"warning"`` and ``describe`` shows
them for the live definition, so ``validate`` and ``describe`` say the same thing.

Soft dependencies (``wants``, ``after``, ``before``, ``conflicts``) on a process that is
not defined are tolerated, as systemd does: the planner ignores them until the process
appears. Hard ones (``requires``, ``binds_to``, ``part_of``) are errors (crosscheck.py).
"""

from __future__ import annotations

from typing import AbstractSet

from ..spec import ProcessSpec

SOFT_DEPENDENCY_FIELDS = ("wants", "after", "before", "conflicts")
HARD_DEPENDENCY_FIELDS = ("requires", "binds_to", "part_of")


def unknown_soft_dependencies(spec: ProcessSpec, known: AbstractSet[str]) -> list[tuple[str, str]]:
    """``(field, name)`` of each soft dependency on a process not in ``known``."""
    return [(fld, other) for fld in SOFT_DEPENDENCY_FIELDS for other in getattr(spec, fld)
            if other not in known and other != spec.name]


def soft_dependency_warnings(spec: ProcessSpec, known: AbstractSet[str]) -> list[tuple[str, str]]:
    return [(fld, f"process '{spec.name}' {fld} unknown process '{other}' (ignored until it is defined)")
            for fld, other in unknown_soft_dependencies(spec, known)]


def command_warnings(spec: ProcessSpec) -> list[tuple[str, str]]:
    if not any(ch.isspace() for ch in spec.command):
        return []
    return [("command", f"command {spec.command[:200]!r} contains whitespace but is run as one "
                        "file name, not split (args is given); put the arguments in args, or "
                        "leave args out to split command like a shell")]


def spec_warnings(spec: ProcessSpec, known: AbstractSet[str]) -> list[tuple[str, str]]:
    """Every warning about ``spec`` among the processes named ``known``."""
    return command_warnings(spec) + soft_dependency_warnings(spec, known)
