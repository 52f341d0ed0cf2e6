"""Optional engine features, each plugging into a ProcessManager through one protocol.

A feature is a :class:`Feature`: it overrides only the lifecycle hooks it needs (every
hook has a no-op default) and :func:`register` connects exactly those to the manager's
seams. Nothing patches the manager: a feature that must decide a restart (supervision
groups) answers :meth:`Feature.take_restart` instead of replacing a manager method.

Older feature modules still expose ``install(manager)`` and append to the manager's
seam lists (``exec_env_providers``, ``instance_hooks``, ``log_listeners``,
``down_listeners``, ``spec_listeners``, ...) themselves; :data:`FEATURES` is the one
list that says which features exist, in order.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import trio

    from trio_procmgr.engine.manager import ProcessManager
    from trio_procmgr.engine.supervisor import Instance, Supervisor

FEATURES: tuple[str, ...] = (
    "trio_procmgr.engine.logcapture",
    "trio_procmgr.engine.health",
    "trio_procmgr.engine.dependencies",
    "trio_procmgr.engine.groups",
    "trio_procmgr.engine.notify",
    "trio_procmgr.engine.watchdog",
    "trio_procmgr.engine.forking",
    "trio_procmgr.engine.sockets",
    "trio_procmgr.engine.exec_shim",  # after the features that ask for the shim
    "trio_procmgr.engine.resources",
)


class Feature:
    """Lifecycle hooks of one engine feature; each default does nothing.

    Hooks run in the calling process's actor (``on_instance``, ``on_down``,
    ``on_spec_replaced``, ``take_restart``) and must not block it: long work goes to
    ``manager.spawn_task``.
    """

    def on_instance(self, sup: "Supervisor", inst: "Instance", nursery: "trio.Nursery") -> None:
        """A run began: start the tasks that belong to it in ``nursery``."""

    def on_down(self, sup: "Supervisor", requested: bool) -> None:
        """The process went down (``requested``: a stop was asked for)."""

    def on_spec_replaced(self, sup: "Supervisor") -> None:
        """The process's spec was replaced (update, reload)."""

    async def take_restart(self, sup: "Supervisor") -> bool:
        """The process's backoff elapsed: True when this feature owns the restart."""
        return False


def register(manager: "ProcessManager", feature: Feature) -> None:
    """Connect the hooks ``feature`` overrides to the manager's seams."""
    kind = type(feature)
    if kind.on_instance is not Feature.on_instance:
        manager.instance_hooks.append(feature.on_instance)
    if kind.on_down is not Feature.on_down:
        manager.down_listeners.append(feature.on_down)
    if kind.on_spec_replaced is not Feature.on_spec_replaced:
        manager.spec_listeners.append(feature.on_spec_replaced)
    if kind.take_restart is not Feature.take_restart:
        manager.restart_takers.append(feature.take_restart)


def install(manager: Any) -> None:
    for module_name in FEATURES:
        importlib.import_module(module_name).install(manager)
