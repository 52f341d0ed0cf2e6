"""Who is supervised: supervisors by name and by id, and what is active.

The registry is what transactions, dependencies and groups read to find a process's
supervisor; they never reach into the manager's private state. The manager adds and
removes entries (create, delete, reload); everything else only looks things up. A
supervisor's own record is mutated only by that supervisor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from trio_procmgr.states import State

if TYPE_CHECKING:
    from trio_procmgr.engine.supervisor import Supervisor


class Registry:
    """Supervisors by process name (``by_name``) and the name of each record id (``by_id``)."""

    def __init__(self) -> None:
        self.by_name: dict[str, "Supervisor"] = {}
        self.by_id: dict[str, str] = {}

    def get(self, name: str) -> "Supervisor | None":
        return self.by_name.get(name)

    def __getitem__(self, name: str) -> "Supervisor":
        return self.by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)

    def items(self) -> Iterator[tuple[str, "Supervisor"]]:
        return iter(list(self.by_name.items()))

    def supervisors(self) -> list["Supervisor"]:
        return list(self.by_name.values())

    def active_names(self) -> set[str]:
        """Processes with a child (or one coming back from backoff): what a stop plan,
        a conflict check or a dependency decision must consider running."""
        return {name for name, sup in self.by_name.items()
                if sup.is_active() or sup.record.state is State.BACKOFF}

    def is_active(self, name: str) -> bool:
        sup = self.by_name.get(name)
        return sup is not None and sup.is_active()
