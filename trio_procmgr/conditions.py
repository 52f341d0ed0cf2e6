"""``condition_path_exists`` with systemd's ConditionPathExists= semantics.

Each entry is a path with optional prefixes:

- ``/path``   — must exist; every such plain entry must hold (AND);
- ``!/path``  — must not exist (also AND);
- ``|/path`` and ``|!/path`` — "triggering" entries: when there are any, at least one of
  them must hold (OR), in addition to all the plain ones.

No entries means the start goes ahead. The evaluator is pure: the caller passes
``exists`` (``os.path.exists`` in production, a set's ``__contains__`` in tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass(frozen=True, slots=True)
class PathCondition:
    path: str
    negate: bool = False
    trigger: bool = False

    @classmethod
    def parse(cls, entry: str) -> "PathCondition":
        """Split the ``|`` and ``!`` prefixes (in that order, as systemd writes them)."""
        trigger = entry.startswith("|")
        rest = entry[1:] if trigger else entry
        negate = rest.startswith("!")
        return cls(path=rest[1:] if negate else rest, negate=negate, trigger=trigger)

    def holds(self, exists: Callable[[str], bool]) -> bool:
        return exists(self.path) != self.negate

    def __str__(self) -> str:
        return ("|" if self.trigger else "") + ("!" if self.negate else "") + self.path

    def failure(self) -> str:
        return f"{self.path} exists" if self.negate else f"{self.path} does not exist"


def evaluate_conditions(conds: Iterable[str], exists: Callable[[str], bool]) -> tuple[bool, str]:
    """``(ok, reason)``: whether a start may go ahead, and why not in words.

    The reason names the first failing plain condition, or every ``|`` entry when none of
    them held. Empty entries are ignored.
    """
    parsed = [PathCondition.parse(entry) for entry in conds if entry]
    for cond in parsed:
        if not cond.trigger and not cond.holds(exists):
            return False, f"condition_path_exists={cond} failed: {cond.failure()}"
    triggers = [cond for cond in parsed if cond.trigger]
    if triggers and not any(cond.holds(exists) for cond in triggers):
        listed = ", ".join(str(cond) for cond in triggers)
        details = "; ".join(cond.failure() for cond in triggers)
        return False, f"none of condition_path_exists={listed} holds: {details}"
    if not parsed:
        return True, "no conditions"
    return True, f"all {len(parsed)} path conditions hold"
