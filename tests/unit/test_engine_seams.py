"""The engine's seams hold: the supervisor uses only its host protocol, features plug
in without patching the manager, and nothing outside the manager reaches into it."""

from __future__ import annotations

import ast
import inspect
import pathlib

import trio_procmgr.engine.supervisor as supervisor_module
from trio_procmgr.engine.features import Feature
from trio_procmgr.engine.host import HOST_MEMBERS
from trio_procmgr.engine.manager import ProcessManager

ENGINE = pathlib.Path(supervisor_module.__file__).parent


def host_calls_of_supervisor() -> set[str]:
    tree = ast.parse(inspect.getsource(supervisor_module))
    used = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "manager" and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"):
            used.add(node.attr)
    return used


def test_the_supervisor_uses_only_members_of_its_host_protocol():
    used = host_calls_of_supervisor()
    assert used, "the walk found no host calls: the test no longer sees the supervisor"
    assert used - HOST_MEMBERS == set()


def test_the_process_manager_implements_the_host_protocol():
    pm = ProcessManager()
    assert {m for m in HOST_MEMBERS if not hasattr(pm, m)} == set()


def test_no_engine_module_reaches_into_the_managers_private_state():
    offenders = []
    for path in ENGINE.glob("*.py"):
        if path.name == "manager.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and isinstance(node.value, (ast.Name, ast.Attribute))
                    and getattr(node.value, "id", getattr(node.value, "attr", None))
                    in ("manager", "m")):
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert offenders == []


def test_no_feature_replaces_a_manager_method():
    pm = ProcessManager()
    patched = [name for name, value in vars(pm).items()
               if callable(value) and hasattr(type(pm), name)]
    assert patched == []


def test_a_feature_registers_only_the_hooks_it_overrides():
    from trio_procmgr.engine.features import register

    class OnlyDown(Feature):
        def on_down(self, sup, requested):
            pass

    pm = ProcessManager()
    before = (len(pm.instance_hooks), len(pm.down_listeners), len(pm.restart_takers))
    register(pm, OnlyDown())
    after = (len(pm.instance_hooks), len(pm.down_listeners), len(pm.restart_takers))
    assert after == (before[0], before[1] + 1, before[2])
