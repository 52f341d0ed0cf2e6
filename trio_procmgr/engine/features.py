"""Optional engine features, each hooking itself into a ProcessManager.

A feature module exposes ``install(manager)`` and uses the manager's seams
(``exec_env_providers``, ``instance_hooks``, ``log_listeners``, ``down_listeners``,
``spec_listeners``) instead of being special-cased inside the supervisor. The list is
the one place that says which features exist.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def install(manager: Any) -> None:
    for module_name in FEATURES:
        importlib.import_module(module_name).install(manager)
