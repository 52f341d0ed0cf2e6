"""Fallback limits for what no cgroup controller enforces (SPEC §8).

An rlimit is a weaker promise than a cgroup: ``RLIMIT_AS`` bounds each process's address
space (not the service's resident memory), and ``RLIMIT_NPROC`` counts every process of
the child's *user* and is ignored for root. Both still stop a runaway child, which is why
they are applied when nothing better exists, with a warning saying so.
"""

from __future__ import annotations

import resource

from trio_procmgr.spec import ResourcesSpec


def fallback_rlimits(
    resources: ResourcesSpec | None, *, memory_enforced: bool, pids_enforced: bool
) -> list[tuple[int, int, int]]:
    """``(resource, soft, hard)`` triples for the limits cgroups do not cover."""
    if resources is None:
        return []
    out: list[tuple[int, int, int]] = []
    memory = resources.limits.memory
    if memory is not None and not memory_enforced:
        out.append((resource.RLIMIT_AS, memory, memory))
    pids = resources.limits.pids
    if pids is not None and not pids_enforced:
        out.append((resource.RLIMIT_NPROC, pids, pids))
    return out


def raise_nofile_limit() -> tuple[int, int]:
    """Lift the daemon's own RLIMIT_NOFILE soft limit to its hard limit; (soft, hard) after.

    Why: every client connection, child pipe and pidfd costs a descriptor, and the usual
    soft default of 1024 is reached by a few hundred services plus a burst of clients;
    at EMFILE nothing can be spawned or accepted. Children inherit the raised soft limit
    (as under systemd's LimitNOFILE=) unless their spec sets one. Never fails: a refused
    change leaves the limit as it was.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft, hard
