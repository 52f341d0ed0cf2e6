"""JSON Schema (draft 2020-12) of the configuration files, for editors (``dd-procmgr schema``).

Generated from the marshmallow schemas in ``schema.py``, so it cannot drift from what the
loader accepts in structure and types. The loader stays the authority on the finer
points a JSON Schema cannot express (duration arithmetic, cross-file names, cycles).
"""

from __future__ import annotations

from typing import Any

from .schema import GroupSchema, ProcessSchema, RUNTIME_ONLY_FIELDS, SocketSchema, schema_json, NAME_PATTERN

SCHEMA_ID = "https://trio-procmgr.invalid/schema/config.json"


def _process_fields() -> dict[str, Any]:
    body = schema_json(ProcessSchema())
    for key in RUNTIME_ONLY_FIELDS:
        body["properties"].pop(key, None)
    body["properties"].update(_template_fields())
    return body


def _template_fields() -> dict[str, Any]:
    """``replicas`` (a plain process) and ``instances`` (a template NAME@.yaml), SPEC §16."""
    from .templates import INSTANCE_PATTERN, MAX_REPLICAS

    return {
        "replicas": {"type": "integer", "minimum": 1, "maximum": MAX_REPLICAS,
                     "description": "Run NAME@1..NAME@N instead of NAME (default 1)."},
        "instances": {"type": "array", "uniqueItems": True,
                      "items": {"type": "string", "pattern": f"^(?:{INSTANCE_PATTERN})$"},
                      "description": "In a template NAME@.yaml: instances created at boot."},
    }


def _named_map(ref: str) -> dict[str, Any]:
    return {"type": "object", "propertyNames": {"pattern": f"^(?:{NAME_PATTERN})$"},
            "additionalProperties": {"$ref": ref}}


def export_json_schema() -> dict[str, Any]:
    """A process file (``NAME.yaml``) or a map file (``processes:``/``sockets:``/``groups:``).

    ``$defs.dropin`` describes a drop-in (any subset of process fields).
    """
    process = _process_fields()
    dropin = {key: value for key, value in process.items() if key != "required"}
    map_file = {
        "type": "object",
        "properties": {
            "processes": _named_map("#/$defs/process"),
            "sockets": _named_map("#/$defs/socket"),
            "groups": _named_map("#/$defs/group"),
        },
        "additionalProperties": False,
        "minProperties": 1,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "trio-procmgr configuration file",
        "description": "One process's fields (NAME.yaml), or processes:/sockets:/groups: maps.",
        "oneOf": [{"$ref": "#/$defs/process"}, {"$ref": "#/$defs/mapFile"}],
        "$defs": {
            "process": process,
            "dropin": dropin,
            "socket": schema_json(SocketSchema()),
            "group": schema_json(GroupSchema()),
            "mapFile": map_file,
        },
    }
