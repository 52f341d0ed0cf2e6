"""What cgroup v2 files say and what we write into them (SPEC §8), without touching them.

Pure translation: a :class:`~trio_procmgr.spec.Quantities` value becomes the text of a
v2 interface file, and the text of a v2 stat file becomes numbers. The file system
shell lives in ``cgroups.py``; keeping the arithmetic here lets it be tested exhaustively.
"""

from __future__ import annotations

CPU_PERIOD_US = 100_000
"""Scheduler period for ``cpu.max`` and ``cpu.cfs_period_us`` (the kernel default)."""

MIN_QUOTA_US = 1_000
"""The kernel refuses quotas below 1 ms per period."""


def cpu_weight(cores: float) -> int:
    """``requests.cpu`` as ``cpu.weight``: 100 per core, clamped to the kernel's 1..10000."""
    return max(1, min(10_000, round(cores * 100)))


def cpu_quota_us(cores: float) -> int:
    """``limits.cpu`` as microseconds of CPU per :data:`CPU_PERIOD_US` (at least 1 ms)."""
    return max(MIN_QUOTA_US, round(cores * CPU_PERIOD_US))


def cpu_max(cores: float | None) -> str:
    """The ``cpu.max`` line for a core limit; ``None`` clears it (``max``)."""
    quota = "max" if cores is None else str(cpu_quota_us(cores))
    return f"{quota} {CPU_PERIOD_US}"


def bytes_or_max(value: int | None) -> str:
    """``memory.max`` / ``pids.max`` text: a number, or ``max`` for no limit."""
    return "max" if value is None else str(value)


def parse_keyed(text: str) -> dict[str, int]:
    """Parse a flat-keyed file (``memory.events``, ``cpu.stat``, ``cgroup.events``)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_limit(text: str) -> int | None:
    """Parse ``memory.max`` / ``pids.max``: ``max`` means no limit (``None``)."""
    text = text.strip()
    return None if text in ("", "max") else int(text)


def parse_pids(text: str) -> list[int]:
    """Parse ``cgroup.procs`` (one pid a line; v1 ``tasks`` has the same shape)."""
    return [int(line) for line in text.split() if line.isdigit()]
