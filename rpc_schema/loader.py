"""Load schema.yaml, check it, hash it, compile it, and build marshmallow schemas from it.

* :func:`load_schema` reads and checks the YAML (ordinals unique, types known).
* :func:`schema_hash` is sha256 over a canonical JSON form (sorted keys, no ``doc`` keys),
  so two parties with the same wire contract compute the same hash whatever their YAML
  formatting.
* :func:`compile_schema` produces the table checked in as ``compiled.json`` (regenerate
  with ``python -m dd_procmgr_rpc_schema.loader``); ``codec.py`` reads it without yaml or
  marshmallow.
* :class:`Schemas` builds, lazily and once per struct, marshmallow schemas whose ``load``
  takes a wire map (ordinal keys) and returns a by-name dict, validating types, ranges and
  required fields; ``dump`` goes the other way. Errors name fields by name.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from dd_procmgr_rpc_schema.codec import COMPILED_PATH, plain

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.yaml")
PRIMITIVES = ("bool", "int", "uint", "float", "str", "bin", "any", "timestamp", "duration")


class SchemaError(ValueError):
    """schema.yaml is inconsistent (a bug in the schema, caught by tests and at load)."""


def load_schema(path: str = SCHEMA_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        doc: dict[str, Any] = yaml.safe_load(fh)
    check_schema(doc)
    return doc


def parse_type(text: str, enums: Mapping[str, Any], structs: Mapping[str, Any],
               interfaces: Mapping[str, Any]) -> Any:
    """``list<map<str,Event>>`` -> ``{"list": {"map": {"struct": "Event"}}}``."""
    text = text.replace(" ", "")
    if text in PRIMITIVES:
        return text
    match = re.fullmatch(r"(list|cap)<(.+)>", text) or re.fullmatch(r"(map)<str,(.+)>", text)
    if match:
        kind, inner = match.groups()
        if kind == "cap":
            if inner not in interfaces:
                raise SchemaError(f"cap<{inner}>: no such interface")
            return {"cap": inner}
        return {kind: parse_type(inner, enums, structs, interfaces)}
    if text in enums:
        return {"enum": text}
    if text in structs:
        return {"struct": text}
    raise SchemaError(f"unknown type {text!r}")


def check_schema(doc: dict[str, Any]) -> None:
    """Raise SchemaError unless ordinals are unique and every type and struct resolves."""
    enums, structs, interfaces = doc["enums"], doc["structs"], doc["interfaces"]
    for sname, struct in structs.items():
        seen_ord: set[int] = set()
        seen_name: set[str] = set()
        for field in struct["fields"]:
            if field["ordinal"] in seen_ord or field["name"] in seen_name:
                raise SchemaError(f"{sname}: duplicate field {field['name']} @{field['ordinal']}")
            seen_ord.add(field["ordinal"])
            seen_name.add(field["name"])
            parse_type(field["type"], enums, structs, interfaces)
        if struct.get("extra") and struct["extra"] not in seen_name:
            raise SchemaError(f"{sname}: extra field {struct['extra']} is not declared")
    iface_ords: set[int] = set()
    for iname, iface in interfaces.items():
        if iface["ordinal"] in iface_ords:
            raise SchemaError(f"interface {iname}: duplicate ordinal")
        iface_ords.add(iface["ordinal"])
        method_ords: set[int] = set()
        for mname, method in iface["methods"].items():
            if method["ordinal"] in method_ords:
                raise SchemaError(f"{iname}.{mname}: duplicate ordinal {method['ordinal']}")
            method_ords.add(method["ordinal"])
            for key in ("params", "results", "stream"):
                if key in method and method[key] not in structs:
                    raise SchemaError(f"{iname}.{mname}: {key} {method[key]} is not a struct")


def canonical_form(doc: Any) -> Any:
    """The document without ``doc`` keys; what the hash covers."""
    if isinstance(doc, Mapping):
        return {str(k): canonical_form(v) for k, v in doc.items() if k != "doc"}
    if isinstance(doc, list):
        return [canonical_form(v) for v in doc]
    return doc


def schema_hash(doc: dict[str, Any]) -> str:
    text = json.dumps(canonical_form(doc), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def compile_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """The ordinal/name table that ``codec.Codec`` reads (JSON-serialisable)."""
    enums, structs, interfaces = doc["enums"], doc["structs"], doc["interfaces"]
    out_structs: dict[str, dict[str, Any]] = {}
    for sname, struct in structs.items():
        fields: list[dict[str, Any]] = []
        for field in struct["fields"]:
            entry: dict[str, Any] = {"name": field["name"], "ordinal": field["ordinal"],
                     "type": parse_type(field["type"], enums, structs, interfaces)}
            for key in ("default", "required", "nullable", "deprecated", "optional"):
                if key in field:
                    entry[key] = field[key]
            fields.append(entry)
        out_structs[sname] = {"fields": fields, "extra": struct.get("extra")}
    out_ifaces: dict[str, dict[str, Any]] = {}
    for iname, iface in interfaces.items():
        methods: dict[str, dict[str, Any]] = {}
        for mname, method in iface["methods"].items():
            methods[mname] = {k: method[k] for k in
                              ("ordinal", "params", "results", "stream", "stream_when", "mutates")
                              if k in method}
        out_ifaces[iname] = {"ordinal": iface["ordinal"], "methods": methods}
    return {
        "generated_from": "schema.yaml (python -m dd_procmgr_rpc_schema.loader)",
        "protocol_version": doc["protocol_version"],
        "max_frame_default": doc["max_frame_default"],
        "schema_hash": schema_hash(doc),
        "error_codes": list(doc["error_codes"]),
        "enums": {n: {"values": e["values"], "fallback": e.get("fallback")} for n, e in enums.items()},
        "structs": out_structs,
        "interfaces": out_ifaces,
    }


def compiled_text(doc: dict[str, Any]) -> str:
    return json.dumps(compile_schema(doc), indent=1, sort_keys=True) + "\n"


def write_compiled(path: str = COMPILED_PATH) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(compiled_text(load_schema()))


# -- marshmallow -------------------------------------------------------------------------

def _build_field_classes() -> dict[str, Any]:
    from marshmallow import ValidationError, fields

    class Checked(fields.Field[Any]):
        """A field that accepts exactly one wire type (msgpack has no coercions)."""

        accepts: tuple[type, ...] = ()
        expected = ""

        def _deserialize(self, value: Any, attr: str | None,
                         data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
            if isinstance(value, bool) and bool not in self.accepts:
                raise ValidationError(f"expected {self.expected}, got bool")
            if not isinstance(value, self.accepts):
                raise ValidationError(f"expected {self.expected}, got {type(value).__name__}")
            return self.check(value)

        def check(self, value: Any) -> Any:
            return value

        def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
            return plain(value)

    class Bool(Checked):
        accepts, expected = (bool,), "a bool"

    class Int(Checked):
        accepts, expected = (int,), "an integer"

    class UInt(Checked):
        accepts, expected = (int,), "a non-negative integer"

        def check(self, value: Any) -> Any:
            if value < 0:
                raise ValidationError("must be >= 0")
            return value

    class Float(Checked):
        accepts, expected = (int, float), "a number"

        def check(self, value: Any) -> Any:
            return float(value)

    class Str(Checked):
        accepts, expected = (str,), "a string"

    class Bin(Checked):
        accepts, expected = (bytes,), "bytes"

    class AnyValue(fields.Raw):
        def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
            return plain(value)

    class Enum(Checked):
        accepts, expected = (str,), "a string"

        def __init__(self, values: list[str], fallback: str | None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.values, self.fallback = values, fallback

        def check(self, value: Any) -> Any:
            if value in self.values:
                return value
            if self.fallback is None:
                raise ValidationError(f"must be one of {', '.join(self.values)}")
            return self.fallback

    class Cap(Checked):
        accepts, expected = (Mapping,), "a capability {'$cap': id}"

        def check(self, value: Any) -> Any:
            if set(value) != {"$cap"} or not isinstance(value["$cap"], int):
                raise ValidationError("expected a capability {'$cap': id}")
            return dict(value)

        def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
            return value if isinstance(value, Mapping) else {"$cap": int(value)}

    class ListOf(Checked):
        accepts, expected = (list,), "a list"

        def __init__(self, inner: fields.Field[Any], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.inner = inner

        def check(self, value: Any) -> Any:
            out: list[Any] = []
            errors: dict[int, Any] = {}
            for i, item in enumerate(value):
                try:
                    out.append(self.inner.deserialize(item))
                except ValidationError as exc:
                    errors[i] = exc.messages
            if errors:
                raise ValidationError(errors)
            return out

        def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
            return None if value is None else [self.inner._serialize(v, attr, obj) for v in value]

    class MapOf(Checked):
        accepts, expected = (Mapping,), "a map with string keys"

        def __init__(self, inner: fields.Field[Any], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.inner = inner

        def check(self, value: Any) -> Any:
            out: dict[str, Any] = {}
            errors: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    errors[str(key)] = ["keys must be strings"]
                    continue
                try:
                    out[key] = self.inner.deserialize(item)
                except ValidationError as exc:
                    errors[key] = exc.messages
            if errors:
                raise ValidationError(errors)
            return out

        def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
            if value is None:
                return None
            return {str(k): self.inner._serialize(v, attr, obj) for k, v in value.items()}

    return dict(Bool=Bool, Int=Int, UInt=UInt, Float=Float, Str=Str, Bin=Bin, Any=AnyValue,
                Enum=Enum, Cap=Cap, ListOf=ListOf, MapOf=MapOf, fields=fields,
                ValidationError=ValidationError)


class Schemas:
    """Marshmallow schemas for every struct of one compiled schema, built on first use."""

    def __init__(self, compiled: dict[str, Any]) -> None:
        self.compiled = compiled
        self._cache: dict[str, Any] = {}
        self._f: dict[str, Any] = {}

    def struct(self, name: str) -> Any:
        """An instance whose ``load(wire_map)`` returns a by-name dict (or raises
        marshmallow.ValidationError keyed by field name) and ``dump(by_name)`` a wire map."""
        if name not in self._cache:
            self._cache[name] = self._build(name)
        return self._cache[name]

    def _field(self, typ: Any, *, required: bool = False, nullable: bool = False,
               default: Any = None, has_default: bool = False) -> Any:
        f = self._f
        kwargs: dict[str, Any] = {"required": required, "allow_none": nullable}
        if has_default and not required:
            kwargs["load_default"] = (lambda d=default: copy.deepcopy(d)) if isinstance(
                default, (list, dict)) else default
        if isinstance(typ, str):
            cls = {"bool": f["Bool"], "int": f["Int"], "uint": f["UInt"], "float": f["Float"],
                   "timestamp": f["Float"], "duration": f["Float"], "str": f["Str"],
                   "bin": f["Bin"], "any": f["Any"]}[typ]
            return cls(**kwargs)
        if "list" in typ:
            return f["ListOf"](self._field(typ["list"]), **kwargs)
        if "map" in typ:
            return f["MapOf"](self._field(typ["map"], nullable=True), **kwargs)
        if "enum" in typ:
            spec = self.compiled["enums"][typ["enum"]]
            return f["Enum"](spec["values"], spec.get("fallback"), **kwargs)
        if "cap" in typ:
            return f["Cap"](**kwargs)
        return f["fields"].Nested(lambda n=typ["struct"]: self.struct(n), **kwargs)

    def _build(self, name: str) -> Any:
        if not self._f:
            self._f = _build_field_classes()
        from marshmallow import EXCLUDE, Schema, post_dump, pre_dump, pre_load

        ValidationError = self._f["ValidationError"]
        spec = self.compiled["structs"][name]
        ordinal_to_name = {fd["ordinal"]: fd["name"] for fd in spec["fields"]}
        name_to_ordinal = {v: k for k, v in ordinal_to_name.items()}
        extra_name = spec.get("extra")
        attrs: dict[str, Any] = {
            fd["name"]: self._field(fd["type"], required=bool(fd.get("required")),
                                    nullable=bool(fd.get("nullable")),
                                    default=fd.get("default"), has_default="default" in fd)
            for fd in spec["fields"]
        }

        class Meta:
            unknown = EXCLUDE

        def from_ordinals(self_: Any, data: Any, **kwargs: Any) -> dict[str, Any]:
            if not isinstance(data, Mapping):
                raise ValidationError(f"expected a map of field ordinals, got {type(data).__name__}")
            out: dict[str, Any] = {}
            for key, value in data.items():
                if not isinstance(key, int) or isinstance(key, bool):
                    raise ValidationError({str(key): ["struct keys must be integer ordinals"]})
                if key in ordinal_to_name:
                    out[ordinal_to_name[key]] = value
            return out

        def gather_extra(self_: Any, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            if extra_name is None:
                return data
            extra = dict(data.get(extra_name) or {})
            extra.update({k: v for k, v in data.items() if k not in name_to_ordinal})
            return {**{k: v for k, v in data.items() if k in name_to_ordinal}, extra_name: extra}

        def to_ordinals(self_: Any, data: dict[str, Any], **kwargs: Any) -> dict[int, Any]:
            return {name_to_ordinal[k]: v for k, v in data.items()}

        attrs.update(Meta=Meta, _from_ordinals=pre_load(from_ordinals),
                     _gather_extra=pre_dump(gather_extra), _to_ordinals=post_dump(to_ordinals))
        return type(f"{name}Schema", (Schema,), attrs)()


def validation_summary(messages: Any, prefix: str = "") -> tuple[str, str]:
    """The first failing field path (by name) and its message, from marshmallow messages."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix and key != "_schema" else (prefix or str(key))
            if key == "_schema":
                path = prefix or "<params>"
            return validation_summary(value, path)
    if isinstance(messages, list) and messages:
        first = messages[0]
        if isinstance(first, (Mapping, list)):
            return validation_summary(first, prefix)
        return prefix or "<params>", str(first)
    return prefix or "<params>", str(messages)


def main(argv: list[str] | None = None) -> int:
    """Regenerate compiled.json (or, with --check, fail if it is stale)."""
    argv = sys.argv[1:] if argv is None else argv
    text = compiled_text(load_schema())
    if "--check" in argv:
        with open(COMPILED_PATH, encoding="utf-8") as fh:
            if fh.read() != text:
                print("compiled.json is stale: run python -m dd_procmgr_rpc_schema.loader",
                      file=sys.stderr)
                return 1
        return 0
    with open(COMPILED_PATH, "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
