"""Who is supervised: supervisors by name and by id, their specs, and what is active.

The registry is what the façade, transactions, dependencies and groups read to find a
process's supervisor; they never reach into the manager's private state. The manager
adds and removes entries (create, delete, reload); everything else only looks things
up. A supervisor's own record is mutated only by that supervisor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from trio_procmgr import errors, planner
from trio_procmgr.states import State

if TYPE_CHECKING:
    from trio_procmgr.engine.supervisor import Supervisor
    from trio_procmgr.spec import ProcessSpec


class Registry:
    """Supervisors by process name (``by_name``) and the name of each record id (``by_id``)."""

    def __init__(self) -> None:
        self.by_name: dict[str, "Supervisor"] = {}
        self.by_id: dict[str, str] = {}
        self._specs: dict[str, "ProcessSpec"] | None = None
        self._index: planner.DependencyIndex | None = None

    # ------------------------------------------------------------------ changes
    def add(self, sup: "Supervisor") -> None:
        self.by_name[sup.name] = sup
        self.by_id[sup.record.id] = sup.name
        self.graph_changed()

    def remove(self, name: str) -> "Supervisor":
        sup = self.by_name.pop(name)
        self.graph_changed()
        self.by_id.pop(sup.record.id, None)
        return sup

    def rename_id(self, name: str, new_id: str) -> None:
        """``name``'s record takes ``new_id`` (an adopted run keeps its journalled id)."""
        sup = self.by_name[name]
        self.by_id.pop(sup.record.id, None)
        sup.record.id = new_id
        self.by_id[new_id] = name

    def graph_changed(self) -> None:
        """A process was added, deleted or got a new spec: :attr:`specs` and :attr:`index`
        are computed again on next use."""
        self._specs = None
        self._index = None

    # ------------------------------------------------------------------ lookups
    def resolve(self, ref: str) -> str:
        """The process name of ``ref`` (a name or a record id); PROCESS_NOT_FOUND else."""
        if ref in self.by_name:
            return ref
        name = self.by_id.get(ref)
        if name is None:
            raise errors.ProcessNotFound(f"no process named or with id '{ref}'", process=ref)
        return name

    def supervisor(self, ref: str) -> "Supervisor":
        return self.by_name[self.resolve(ref)]

    @property
    def specs(self) -> dict[str, "ProcessSpec"]:
        """Every spec by name, instance dependencies expanded (cached until the graph changes)."""
        if self._specs is None:
            self._specs = dict(planner.expand_instance_dependencies(
                {name: sup.spec for name, sup in self.by_name.items()}))
        return self._specs

    @property
    def index(self) -> planner.DependencyIndex:
        """Who depends on whom (cached like :attr:`specs`)."""
        if self._index is None:
            self._index = planner.DependencyIndex(self.specs)
        return self._index

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

    def state_of(self, name: str) -> str | None:
        """The state word of ``name``, None when no such process exists."""
        sup = self.by_name.get(name)
        return sup.record.state.value if sup is not None else None
