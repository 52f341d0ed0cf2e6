"""Helpers for tests (import as ``from support import ...``; tests/ is on sys.path)."""

from __future__ import annotations

import os
import sys
from typing import Any

import trio

from trio_procmgr.config.loader import parse_process
from trio_procmgr.spec import ConfigSet

PYTHON = sys.executable
SYSTEM_PYTHON = "/usr/bin/python3"


def specs(**raw: dict[str, Any]) -> ConfigSet:
    """A ConfigSet from ``name=raw_mapping`` keyword arguments."""
    return ConfigSet(processes={name: parse_process(name, r) for name, r in raw.items()})


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(")") + 2] != "Z"


def zombies_of(pid: int) -> list[int]:
    """Zombie children of ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        if rest[0] == "Z" and int(rest[1]) == pid:
            out.append(int(entry))
    return out


async def wait_failed_probes(sup, count: int, timeout: float = 10.0) -> None:
    """Until ``sup``'s health check has failed ``count`` times: proof that it has been
    running, and not healthy, for that many probe intervals."""
    with trio.fail_after(timeout):
        while sum(not r["ok"] for r in sup.extras.get("health_checks", [])) < count:
            await trio.sleep(0.02)
