"""Shell completion of process names: ask the daemon, quickly, and never fail loudly.

Completion runs on every Tab press, so it uses a short timeout and returns nothing when
the daemon is slow, down or refuses: a missing suggestion is better than a hang or a
traceback in the user's shell.
"""

from __future__ import annotations

import os
from typing import Any

COMPLETION_TIMEOUT = 0.5


def process_names(socket: str | None, timeout: float = COMPLETION_TIMEOUT) -> list[str]:
    """Names (and nothing else) of the daemon's processes; [] on any failure."""
    try:
        from trio_procmgr.client import BlockingClient
        with BlockingClient(socket, timeout=timeout) as client:
            records = client.call("list")["processes"]
        return [r["name"] for r in records if r.get("name")]
    except Exception:
        return []


def complete_process_names(ctx: Any, _param: Any, incomplete: str) -> list[str]:
    """asyncclick ``shell_complete`` callback for NAME arguments."""
    root = ctx.find_root() if ctx is not None else None
    socket = (root.params.get("socket_path") if root is not None else None) \
        or os.environ.get("DD_PM_SOCKET")
    return [name for name in process_names(socket) if name.startswith(incomplete)]


def group_names(socket: str | None, timeout: float = COMPLETION_TIMEOUT) -> list[str]:
    """Names of the daemon's supervision groups; [] on any failure (an older daemon)."""
    try:
        from trio_procmgr.client import BlockingClient
        with BlockingClient(socket, timeout=timeout) as client:
            return [g["name"] for g in client.call("groups")["groups"] if g.get("name")]
    except Exception:
        return []


def _socket(ctx: Any) -> str | None:
    root = ctx.find_root() if ctx is not None else None
    return (root.params.get("socket_path") if root is not None else None) \
        or os.environ.get("DD_PM_SOCKET")


def complete_targets(ctx: Any, _param: Any, incomplete: str) -> list[str]:
    """start/stop/restart/describe take process names and supervision group names."""
    socket = _socket(ctx)
    names = process_names(socket) + group_names(socket)
    return sorted({name for name in names if name.startswith(incomplete)})


def complete_states(_ctx: Any, _param: Any, incomplete: str) -> list[str]:
    """``--state running,fa<Tab>``: completes the last comma-separated item."""
    from dd_procmgr_cli.selection import STATES
    head, _, last = incomplete.rpartition(",")
    prefix = head + "," if head else ""
    return [prefix + state for state in STATES if state.startswith(last)]


def complete_signals(_ctx: Any, _param: Any, incomplete: str) -> list[str]:
    import signal
    names = sorted(s.name for s in signal.Signals if not s.name.startswith("SIG_"))
    return [name for name in names if name.startswith(incomplete.upper())]


#: Shells whose completion script ``dd-procmgr completion SHELL`` prints.
SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_DD_PROCMGR_COMPLETE"


def completion_source(shell: str, prog: str = "dd-procmgr") -> str:
    """The script that makes ``shell`` complete ``prog`` (commands, options, names).

    The script calls ``prog`` back with ``_DD_PROCMGR_COMPLETE`` set on each Tab press;
    the package installs it in each shell's standard directory, so no ``eval`` is needed.
    """
    from asyncclick.shell_completion import get_completion_class

    from dd_procmgr_cli.app import app

    cls = get_completion_class(shell)
    if cls is None:
        raise ValueError(f"no completion for shell {shell!r} (one of: {', '.join(SHELLS)})")
    return cls(app, {}, prog, COMPLETE_VAR).source()
