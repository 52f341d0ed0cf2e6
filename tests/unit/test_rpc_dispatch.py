"""The RPC server's dispatch: every schema method has a handler, every engine call a
handler makes exists on the real engine, and nothing is left answering UNIMPLEMENTED."""

from __future__ import annotations

import inspect

import pytest

from dd_procmgr_rpc_schema import loader
from trio_procmgr import errors
from trio_procmgr.engine.manager import ProcessManager
from trio_procmgr.rpc.engine_api import ENGINE_CALLS, bind_engine, engine_call
from trio_procmgr.rpc.server import HANDLERS


def schema_methods() -> set[str]:
    doc = loader.load_schema()
    return {name for iface in doc["interfaces"].values() for name in iface["methods"]}


def test_every_schema_method_has_a_handler_and_no_handler_is_stale():
    methods = schema_methods()
    assert methods - HANDLERS.keys() == set(), "schema methods without a handler"
    assert HANDLERS.keys() - methods == set(), "handlers for methods not in the schema"


def test_daemon_reexec_is_dispatched_to_the_engine():
    assert "daemon_reexec" in HANDLERS and "daemon_reexec" in ENGINE_CALLS


@pytest.mark.parametrize("name", ENGINE_CALLS)
def test_the_real_engine_implements_every_call_the_server_makes(name):
    assert name in bind_engine(ProcessManager()), f"ProcessManager lacks {name}"


def test_every_engine_call_named_in_a_handler_is_declared():
    source = inspect.getsource(inspect.getmodule(HANDLERS["create"]))
    import re
    named = set(re.findall(r'self\.engine\("([a-z_]+)"\)', source))
    assert named <= set(ENGINE_CALLS)


def test_an_engine_lacking_a_call_answers_unimplemented_naming_it():
    class Partial:
        def list(self):
            return []

    table = bind_engine(Partial())
    assert engine_call(table, "list")() == []
    with pytest.raises(errors.Unimplemented, match="scale"):
        engine_call(table, "scale")
