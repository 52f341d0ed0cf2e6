"""The clone3 port falls back to the pure-Python spawn when the extension cannot spawn."""

from __future__ import annotations

import importlib
import sys
import types


def test_an_extension_built_without_a_trampoline_is_not_used(monkeypatch):
    """On a CPU without the clone3 trampoline the extension imports but has no ``spawn``:
    the port must say so and report itself unavailable, not fail at the first spawn."""
    import trio_procmgr.platform.clone_spawn as port

    import trio_procmgr.platform as package

    bare = types.ModuleType("_clone3spawn")
    monkeypatch.setitem(sys.modules, "trio_procmgr.platform._clone3spawn", bare)
    monkeypatch.setattr(package, "_clone3spawn", bare, raising=False)
    try:
        fresh = importlib.reload(port)
        assert not fresh.available()
        assert "no clone3 trampoline" in fresh.mechanism()
    finally:
        monkeypatch.undo()
        importlib.reload(port)
