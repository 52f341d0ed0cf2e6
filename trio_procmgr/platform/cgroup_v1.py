"""What cgroup v1 files say and what we write into them (SPEC §8), without touching them.

Used on hybrid hosts where memory, cpu, cpuacct, pids or freezer are mounted only as v1
hierarchies. Pure translation, like ``cgroup_v2.py``.
"""

from __future__ import annotations

from trio_procmgr.platform.cgroup_v2 import CPU_PERIOD_US, cpu_quota_us

V1_UNLIMITED = 0x7FFF_FFFF_FFFF_F000
"""Values at or above this (``PAGE_COUNTER_MAX`` rounded to a page) mean "no limit"."""


def cpu_shares(cores: float) -> int:
    """``requests.cpu`` as ``cpu.shares``: 1024 per core, within the kernel's 2..262144."""
    return max(2, min(262_144, round(cores * 1024)))


def cfs_quota(cores: float | None) -> str:
    """``cpu.cfs_quota_us`` for a core limit (per :data:`CPU_PERIOD_US`); ``-1`` clears it."""
    return "-1" if cores is None else str(cpu_quota_us(cores))


def cfs_period() -> str:
    return str(CPU_PERIOD_US)


def bytes_or_unlimited(value: int | None) -> str:
    """``memory.limit_in_bytes`` / ``soft_limit_in_bytes`` text; ``-1`` clears the limit."""
    return "-1" if value is None else str(value)


def parse_memory_limit(text: str) -> int | None:
    """``memory.limit_in_bytes``: the kernel's huge sentinel means no limit."""
    value = int(text.strip())
    return None if value >= V1_UNLIMITED else value


def parse_oom_control(text: str) -> int:
    """The ``oom_kill`` counter of ``memory.oom_control`` (0 on kernels without it)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "oom_kill":
            return int(parts[1])
    return 0


def ns_to_seconds(text: str) -> float:
    """``cpuacct.usage_user`` / ``usage_sys`` are nanoseconds."""
    return int(text.strip()) / 1e9
