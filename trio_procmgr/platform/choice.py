"""Which adapter runs: ``linux``, ``portable`` or ``auto`` (the one place that decides)."""

from __future__ import annotations

from trio_procmgr.platform.ports import Platform

NAMES = ("linux", "portable", "auto")


def choose_platform(name: str = "auto") -> Platform:
    """The adapter called ``name``; ``auto`` is linux when pidfd and a cgroup v2
    hierarchy work here, else portable. Raises ValueError naming a wrong ``name``."""
    from trio_procmgr.platform.linux import linux_platform, linux_works

    if name == "linux":
        return linux_platform()
    if name == "portable" or (name == "auto" and not linux_works()[0]):
        # Imported only when chosen: it pulls psutil (~10 ms of the daemon's boot).
        from trio_procmgr.platform.portable import portable_platform

        return portable_platform()
    if name == "auto":
        return linux_platform()
    raise ValueError(f"unknown platform '{name}' (expected one of: {', '.join(NAMES)})")
