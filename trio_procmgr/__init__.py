"""trio-procmgr: a process supervisor with systemd semantics, on Trio.

Library use, no daemon needed::

    from trio_procmgr import ProcessManager, load_config_dir

    async with ProcessManager(load_config_dir("examples")) as pm:
        await pm.start("web")

Imports are lazy so that light consumers (the CLI) do not pay for Trio.
"""

TYPE_CHECKING = False  # the CLI imports this package: no typing import at run time
if TYPE_CHECKING:
    from trio_procmgr.config.loader import load_config_dir
    from trio_procmgr.engine.manager import ProcessManager

__version__ = "0.1.0"

__all__ = ["ProcessManager", "load_config_dir", "__version__"]


def __getattr__(name: str) -> object:
    if name == "ProcessManager":
        from trio_procmgr.engine.manager import ProcessManager
        return ProcessManager
    if name == "load_config_dir":
        from trio_procmgr.config.loader import load_config_dir
        return load_config_dir
    raise AttributeError(name)
