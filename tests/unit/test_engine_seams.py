"""The engine's seams hold: the manager is a small façade, the supervisor uses only its
host protocol, every feature plugs in through the one Feature protocol without patching
the manager, and nothing outside the manager reaches into it."""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib

import trio_procmgr.engine.supervisor as supervisor_module
from trio_procmgr.engine.engine_host import EngineHost
from trio_procmgr.engine.features import FEATURES, Feature, Hooks, register
from trio_procmgr.engine.host import HOST_MEMBERS
from trio_procmgr.engine.manager import ProcessManager

ENGINE = pathlib.Path(supervisor_module.__file__).parent
MANAGER_NAMES = ("manager", "m", "pm")


def host_calls_of_supervisor() -> set[str]:
    tree = ast.parse(inspect.getsource(supervisor_module))
    used = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "host" and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"):
            used.add(node.attr)
    return used


def public_members(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def test_the_process_manager_is_a_facade_of_at_most_25_public_calls():
    assert len(public_members(ProcessManager)) <= 25, sorted(public_members(ProcessManager))


def test_the_documented_library_calls_stay_on_the_facade():
    documented = {"create", "list", "describe", "start", "stop", "restart", "delete", "pause",
                  "resume", "update", "reload_config", "stats", "logs", "follow_logs",
                  "rotate_logs", "deps", "kill", "reload", "scale", "instantiate", "groups",
                  "shutdown", "daemon_reexec", "supervisor", "supervisors"}
    assert documented - public_members(ProcessManager) == set()
    assert hasattr(ProcessManager, "__aenter__") and hasattr(ProcessManager, "__aexit__")


def test_the_supervisor_host_has_about_eight_members():
    assert len(HOST_MEMBERS) <= 10, sorted(HOST_MEMBERS)


def test_the_supervisor_uses_only_members_of_its_host_protocol():
    used = host_calls_of_supervisor()
    assert used, "the walk found no host calls: the test no longer sees the supervisor"
    assert used - HOST_MEMBERS == set()


def test_the_engine_host_implements_the_host_protocol():
    host = ProcessManager().host
    assert isinstance(host, EngineHost)
    assert {m for m in HOST_MEMBERS if not hasattr(host, m)} == set()


def test_every_feature_module_defines_a_feature_subclass():
    for module_name in FEATURES:
        module = importlib.import_module(module_name)
        kind = getattr(module, "FEATURE", None)
        assert isinstance(kind, type) and issubclass(kind, Feature) and kind is not Feature, \
            module_name
        assert kind.__module__ == module_name


def test_every_feature_is_built_once_per_engine_on_the_feature_protocol():
    host = ProcessManager().host
    assert [type(f).__module__ for f in host.features] == list(FEATURES)


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
                    in MANAGER_NAMES):
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert offenders == []


def test_no_module_outside_the_manager_and_its_host_assigns_attributes_on_the_manager():
    offenders = []
    package = ENGINE.parent
    paths = [*ENGINE.glob("*.py"), package / "daemon" / "handover.py"]
    for path in paths:
        if path.name in ("manager.py", "engine_host.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for target in targets:
                if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                        and target.value.id in MANAGER_NAMES):
                    offenders.append(f"{path.name}:{node.lineno} {target.value.id}.{target.attr}")
    assert offenders == []


def test_no_engine_module_keeps_state_in_a_module_level_table_keyed_by_manager():
    offenders = []
    for path in ENGINE.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                text = ast.unparse(node)
                if "WeakKeyDictionary" in text:
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_no_feature_replaces_a_manager_method():
    pm = ProcessManager()
    patched = [name for name, value in vars(pm).items()
               if callable(value) and hasattr(type(pm), name)]
    assert patched == []


def test_a_feature_registers_only_the_hooks_it_overrides():
    class OnlyDown(Feature):
        def on_down(self, sup, requested):
            pass

    hooks = Hooks()
    register(hooks, OnlyDown())
    assert {name: len(getattr(hooks, name)) for name in vars(hooks)} == {
        name: 1 if name == "on_down" else 0 for name in vars(hooks)}
