"""Optional engine features, each plugging into the engine through one protocol.

A feature is a :class:`Feature`: it overrides only the lifecycle hooks it needs (every
hook has a no-op default) and :func:`register` connects exactly those to the host's
:class:`Hooks`. Nothing patches the manager and no feature keeps state in a module-level
table: a feature's state lives on its own instance, built once per engine from a
:class:`FeatureContext` (the narrow view of the engine a feature may use, never the
``ProcessManager``). A feature that must decide a restart (supervision groups) answers
:meth:`Feature.take_restart` instead of replacing a manager method.

:data:`FEATURES` is the one list that says which features exist, in hook order; each
module names its class ``FEATURE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Protocol

if TYPE_CHECKING:
    from trio_procmgr.engine.containment import TaskNursery
    import trio

    from trio_procmgr.engine.host import HostFacts
    from trio_procmgr.engine.registry import Registry
    from trio_procmgr.engine.spawner import ExecPlan
    from trio_procmgr.engine.supervisor import Instance, Supervisor
    from trio_procmgr.engine.transactions import Transactions
    from trio_procmgr.platform.ports import CgroupTree
    from trio_procmgr.spec import ConfigSet

FEATURES: tuple[str, ...] = (
    "trio_procmgr.engine.logcapture",
    "trio_procmgr.engine.health",
    "trio_procmgr.engine.dependencies",
    "trio_procmgr.engine.groups",
    "trio_procmgr.engine.resources",  # its prlimit wrapper goes inside the exec shim
    "trio_procmgr.engine.notify",
    "trio_procmgr.engine.watchdog",
    "trio_procmgr.engine.forking",
    "trio_procmgr.engine.sockets",
    "trio_procmgr.engine.exec_shim",  # after the features that ask for the shim
)


class FeatureContext(Protocol):
    """What a feature may use of the engine (``EngineHost`` implements it)."""

    facts: "HostFacts"
    registry: "Registry"
    transactions: "Transactions"
    instance: str
    log_dir: str | None
    base_env: Mapping[str, str]

    @property
    def config(self) -> "ConfigSet": ...
    @property
    def cgroups(self) -> "CgroupTree | None": ...
    def publish(self, type: str, process: str | None = None, id: str | None = None,
                **fields: Any) -> Any: ...
    def warn(self, text: str) -> None: ...
    def spawn_task(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> bool: ...
    def track(self, pid: int) -> None: ...
    def untrack(self, pid: int) -> None: ...
    async def start(self, ref: str) -> dict[str, Any]: ...
    def inherited_socket(self, service: str, socket_name: str) -> int | None: ...


class Feature:
    """Lifecycle hooks of one engine feature; each default does nothing.

    Hooks run in the calling process's actor (all but ``on_event``) and must not block
    it: long work goes to ``context.spawn_task``. An exception from a hook is a fault of
    that process (``Supervisor.contain_fault``), never of the engine.
    """

    def on_added(self, sup: "Supervisor") -> None:
        """A supervisor (and its nursery) exists, before anything starts it."""

    def prepare_exec(self, sup: "Supervisor", plan: "ExecPlan") -> None:
        """Before a spawn: add env, fds or a wrapper to ``plan`` (SpawnError refuses it)."""

    def on_spawned(self, sup: "Supervisor", inst: "Instance | None") -> None:
        """A spawn attempt is over (``inst`` None: it failed): release per-spawn fds."""

    def on_instance(self, sup: "Supervisor", inst: "Instance", nursery: "TaskNursery") -> None:
        """A run began (spawned or adopted): start the tasks that belong to it in ``nursery``."""

    def on_log_line(self, sup: "Supervisor", stream: str, line: str, now: float) -> None:
        """A line of the process's output (already in its ring)."""

    def on_down(self, sup: "Supervisor", requested: bool) -> None:
        """The process went down (``requested``: a stop was asked for)."""

    def on_spec_replaced(self, sup: "Supervisor") -> None:
        """The process's spec was replaced (update, reload)."""

    def on_event(self, event: dict[str, Any]) -> None:
        """Any published event (called by the event hub)."""

    async def take_restart(self, sup: "Supervisor") -> bool:
        """The process's backoff elapsed: True when this feature owns the restart."""
        return False


@dataclass
class Hooks:
    """The overridden hooks of every registered feature, per hook, in feature order."""

    on_added: list[Callable[["Supervisor"], None]] = field(default_factory=list)
    prepare_exec: list[Callable[["Supervisor", "ExecPlan"], None]] = field(default_factory=list)
    on_spawned: list[Callable[["Supervisor", "Instance | None"], None]] = field(default_factory=list)
    on_instance: list[Callable[["Supervisor", "Instance", "trio.Nursery"], None]] = \
        field(default_factory=list)
    on_log_line: list[Callable[["Supervisor", str, str, float], None]] = field(default_factory=list)
    on_down: list[Callable[["Supervisor", bool], None]] = field(default_factory=list)
    on_spec_replaced: list[Callable[["Supervisor"], None]] = field(default_factory=list)
    on_event: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)
    take_restart: list[Callable[["Supervisor"], Awaitable[bool]]] = field(default_factory=list)


HOOK_NAMES: tuple[str, ...] = tuple(Hooks.__dataclass_fields__)


def register(hooks: Hooks, feature: Feature) -> None:
    """Connect the hooks ``feature`` overrides (a default no-op costs no call)."""
    kind = type(feature)
    for name in HOOK_NAMES:
        if getattr(kind, name) is not getattr(Feature, name):
            getattr(hooks, name).append(getattr(feature, name))
