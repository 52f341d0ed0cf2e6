"""The RPC schema: compiled table current, hash stable, every contract method declared,
and validation that names the failing field."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
from marshmallow import ValidationError

from dd_procmgr_rpc_schema import loader
from dd_procmgr_rpc_schema.codec import COMPILED_PATH, default_codec
from trio_procmgr import errors

SPEC_10_METHODS = {"create", "start", "stop", "restart", "delete", "list", "describe", "stats",
                   "update", "reload_config", "pause", "resume", "logs", "watch",
                   "validate_config", "version", "shutdown", "daemon_reexec", "get", "ping"}


@pytest.fixture(scope="module")
def doc():
    return loader.load_schema()


def test_compiled_table_is_up_to_date(doc):
    with open(COMPILED_PATH, encoding="utf-8") as fh:
        assert fh.read() == loader.compiled_text(doc), "run: python -m dd_procmgr_rpc_schema.loader"


def test_hash_ignores_docs_but_not_wire_changes(doc):
    base = loader.schema_hash(doc)
    documented = copy.deepcopy(doc)
    documented["structs"]["Empty"]["doc"] = "nothing to see"
    assert loader.schema_hash(documented) == base
    renumbered = copy.deepcopy(doc)
    renumbered["structs"]["NameParams"]["fields"][0]["ordinal"] = 9
    assert loader.schema_hash(renumbered) != base
    assert default_codec().schema_hash == base


def test_every_spec_method_is_declared_on_the_root(doc):
    assert SPEC_10_METHODS <= set(doc["interfaces"]["ProcessManager"]["methods"])
    assert set(doc["interfaces"]["Process"]["methods"]) == {
        "describe", "start", "stop", "restart", "pause", "resume", "update", "stats", "logs", "delete"}


def test_error_codes_match_the_error_classes(doc):
    assert tuple(doc["error_codes"]) == errors.ERROR_CODES


def test_duplicate_ordinals_are_refused(doc):
    broken = copy.deepcopy(doc)
    broken["structs"]["DeleteParams"]["fields"][1]["ordinal"] = 0
    with pytest.raises(loader.SchemaError):
        loader.check_schema(broken)


@pytest.fixture(scope="module")
def schemas():
    return loader.Schemas(default_codec().compiled)


@pytest.mark.parametrize("struct, wire, field", [
    ("LogsParams", {0: 5}, "name"), ("NameParams", {}, "name"),
    ("LogsParams", {0: "web", 2: "stdlog"}, "stream"), ("LogsParams", {0: "web", 1: -3}, "lines"),
    ("LogsParams", {0: "web", 3: "yes"}, "follow"), ("LogsParams", {"name": "web"}, "name"),
])
def test_invalid_params_name_the_field(schemas, struct, wire, field):
    with pytest.raises(ValidationError) as info:
        schemas.struct(struct).load(wire)
    assert loader.validation_summary(info.value.messages)[0] == field


def test_logs_without_a_name_means_every_process(schemas):
    assert schemas.struct("LogsParams").load({3: True})["name"] is None


def test_params_load_by_name_with_defaults_and_ignore_unknown_ordinals(schemas):
    assert schemas.struct("LogsParams").load({0: "web", 99: "future"}) == {
        "name": "web", "lines": None, "stream": None, "follow": False}


def test_nested_list_errors_carry_the_index(schemas):
    with pytest.raises(ValidationError) as info:
        schemas.struct("WatchParams").load({0: ["web", 7]})
    assert loader.validation_summary(info.value.messages)[0] == "processes.1"


def test_unknown_enum_value_becomes_the_fallback_when_received():
    codec = default_codec()
    record = codec.from_wire("ProcessRecord", {0: "web", 2: "hibernating", 11: "radiant"})
    assert record["state"] == "unknown" and record["health"] == "unknown"


def test_open_struct_round_trips_fields_the_schema_does_not_name(schemas):
    codec = default_codec()
    record = {"name": "web", "state": "running", "auto_start": True, "ports": [80]}
    wire = codec.to_wire("ProcessRecord", record)
    assert wire[21] == {"auto_start": True, "ports": [80]}
    assert schemas.struct("ProcessRecord").dump(record) == wire
    back = codec.from_wire("ProcessRecord", wire)
    assert back["auto_start"] is True and back["ports"] == [80] and "extra" not in back


def test_the_planned_encoder_matches_the_validating_schema_on_engine_values(schemas):
    """to_wire encodes through a per-struct plan (the list hot path); engine values —
    enum members, tuples, sets, None, nested structs, unnamed extras — come out exactly
    as the marshmallow schema dumps them."""
    import enum

    class Colour(str, enum.Enum):
        RUNNING = "running"

    codec = default_codec()
    records = [
        {"name": "web", "state": Colour.RUNNING, "args": ("-p", "80"), "pid": None,
         "health": "healthy", "tags": frozenset({"b", "a"}), "ports": (80, 443)},
        {"name": "db", "state": "stopped", "args": [], "exit_code": 3, "extra": {"k": 1}},
    ]
    wire = codec.to_wire("ListResult", {"processes": records})
    assert wire == schemas.struct("ListResult").dump({"processes": records})
    assert wire[0][0][2] == "running" and wire[0][0][21]["tags"] == ["a", "b"]
    assert codec.from_wire("ListResult", wire)["processes"][1]["k"] == 1


def test_blocking_client_imports_neither_trio_nor_marshmallow_nor_yaml():
    code = ("import sys, trio_procmgr.client, trio_procmgr.paths;"
            "print(sorted(m for m in ('trio', 'marshmallow', 'yaml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
