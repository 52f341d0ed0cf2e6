"""Names <-> ordinals for structs, from the precompiled table (compiled.json).

This is the import-light half of the schema: only ``json`` and ``os``. The blocking client
and the CLI use it so they never pay for yaml or marshmallow; ``loader.py`` generates the
table and builds the validating marshmallow schemas the server uses.

Translation here is lenient (the receiver rules of RPC.md §3): unknown ordinals are
ignored, absent fields take their defaults, unknown enum values become the enum's fallback,
and the ``extra`` map of an open struct is merged back into the result.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping

TYPE_CHECKING = False  # typing costs ~3 ms of every CLI run; annotations only
if TYPE_CHECKING:
    from typing import Any

COMPILED_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compiled.json")


class MethodInfo:
    """One method of one interface, as the wire and Python both need it."""

    __slots__ = ("interface", "interface_ordinal", "name", "ordinal", "params", "results",
                 "stream", "stream_when", "mutates")

    def __init__(self, interface: str, interface_ordinal: int, name: str,
                 raw: dict[str, Any]) -> None:
        self.interface = interface
        self.interface_ordinal = interface_ordinal
        self.name = name
        self.ordinal: int = raw["ordinal"]
        self.params: str = raw["params"]
        self.results: str = raw["results"]
        self.stream: str | None = raw.get("stream")
        self.stream_when: str | None = raw.get("stream_when")
        self.mutates: bool = bool(raw.get("mutates", False))

    def streams(self, params: Mapping[str, Any]) -> bool:
        """Whether a call with these (by-name) params answers with STREAM items."""
        if self.stream is None:
            return False
        return self.stream_when is None or bool(params.get(self.stream_when))

    def __repr__(self) -> str:
        return f"<MethodInfo {self.interface}.{self.name} @{self.interface_ordinal}/{self.ordinal}>"


_PLAIN_TYPES = frozenset({str, int, float, bool, bytes, type(None)})


def plain(value: Any) -> Any:
    """A msgpack-ready copy of an engine value (tuples, sets, enums, mapping proxies)."""
    if type(value) in _PLAIN_TYPES:  # exact types: a str-valued Enum member is not one
        return value
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, (str, bytes, bool, int, float)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {(k if isinstance(k, (str, int)) else str(k)): plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((plain(v) for v in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return plain(to_dict())
    return str(value)


def _plain_list(value: Any) -> list[Any]:
    """A list of scalars as msgpack takes it (a copy; items made plain only if needed)."""
    out = list(value)
    for item in out:
        if item.__class__ not in _PLAIN_TYPES:
            return [plain(x) for x in out]
    return out


class Codec:
    """The compiled schema, with struct translation both ways."""

    def __init__(self, compiled: dict[str, Any]) -> None:
        self.compiled = compiled
        self.protocol_version: int = compiled["protocol_version"]
        self.schema_hash: str = compiled["schema_hash"]
        self.max_frame_default: int = compiled["max_frame_default"]
        self.error_codes: tuple[str, ...] = tuple(compiled["error_codes"])
        self.enums: dict[str, dict[str, Any]] = compiled["enums"]
        self.structs: dict[str, dict[str, Any]] = compiled["structs"]
        self.interfaces: dict[str, dict[str, Any]] = compiled["interfaces"]
        self._by_name: dict[tuple[str, str], MethodInfo] = {}
        self._by_ordinal: dict[tuple[int, int], MethodInfo] = {}
        self.interface_names: dict[int, str] = {}
        self._decoding: dict[str, Any] = {}
        self._encoding: dict[str, Any] = {}
        for iname, iface in self.interfaces.items():
            self.interface_names[iface["ordinal"]] = iname
            for mname, raw in iface["methods"].items():
                info = MethodInfo(iname, iface["ordinal"], mname, raw)
                self._by_name[(iname, mname)] = info
                self._by_ordinal[(iface["ordinal"], info.ordinal)] = info

    def method(self, interface: str, name: str) -> MethodInfo:
        """Raises KeyError for a method the schema does not declare."""
        return self._by_name[(interface, name)]

    def method_by_ordinal(self, interface_ordinal: int, ordinal: int) -> MethodInfo | None:
        return self._by_ordinal.get((interface_ordinal, ordinal))

    # -- Python (names) -> wire (ordinals) ------------------------------------------------
    def to_wire(self, struct: str, value: Mapping[str, Any]) -> dict[int, Any]:
        """Encode a by-name mapping; names the schema lacks go to the open struct's extra map
        (or are dropped for a closed struct)."""
        plan = self._encoding.get(struct)
        if plan is None:
            plan = self._encoding[struct] = self._encoding_plan(self.structs[struct])
        fields, extra_name, extra_ordinal = plan
        out: dict[int, Any] = {}
        extra: dict[str, Any] = {}
        for key, item in value.items():
            field = fields.get(key)
            if field is None:
                if extra_name is not None and isinstance(key, str):
                    extra[key] = item if item.__class__ in _PLAIN_TYPES else plain(item)
                continue
            ordinal, encode = field
            if encode is None:  # a scalar field: most of a record
                out[ordinal] = item if item.__class__ in _PLAIN_TYPES else plain(item)
            elif encode is _EXTRA:
                extra.update(plain(item or {}))
            else:
                out[ordinal] = None if item is None else encode(item)
        if extra:
            out[extra_ordinal] = extra
        return out

    def _encoding_plan(self, spec: dict[str, Any]) -> tuple[dict[str, tuple[int, Any]], str | None, int]:
        """Per field name ``(ordinal, encoder)``: None for a plain scalar, ``_EXTRA`` for
        the open struct's extra map, else a function of the (non-None) value. Built once
        per struct, so encoding a list of 1000 records does no type dispatch per field."""
        extra_name = spec.get("extra")
        fields: dict[str, tuple[int, Any]] = {}
        for name, field in spec["by_name"].items():
            typ = field["type"]
            if name == extra_name:
                encode: Any = _EXTRA
            elif typ.__class__ is str:
                encode = None
            else:
                encode = self._encoder(typ)
            fields[name] = (field["ordinal"], encode)
        extra_ordinal = spec["by_name"][extra_name]["ordinal"] if extra_name is not None else -1
        return fields, extra_name, extra_ordinal

    def _encoder(self, typ: Any) -> Any:
        """A function encoding one non-None value of schema type ``typ``."""
        if "struct" in typ:
            name = typ["struct"]
            return lambda v: self.to_wire(name, v)
        if "enum" in typ:
            return lambda v: v if v.__class__ is str else str(plain(v))
        if "list" in typ and typ["list"].__class__ is str:
            return _plain_list
        return lambda v: self.value_to_wire(typ, v)

    def value_to_wire(self, typ: Any, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(typ, str):
            return plain(value)
        if "struct" in typ:
            return self.to_wire(typ["struct"], value)
        if "list" in typ:
            return [self.value_to_wire(typ["list"], v) for v in value]
        if "map" in typ:
            return {str(k): self.value_to_wire(typ["map"], v) for k, v in value.items()}
        if "enum" in typ:
            return str(plain(value))
        if "cap" in typ:
            return value if isinstance(value, Mapping) else {"$cap": int(value)}
        raise ValueError(f"unknown schema type {typ!r}")

    # -- wire (ordinals) -> Python (names) ------------------------------------------------
    def from_wire(self, struct: str, wire: Any) -> dict[str, Any]:
        """Decode leniently; raises ValueError only when the value is not a map at all."""
        if not isinstance(wire, Mapping):
            raise ValueError(f"{struct}: expected a map, got {type(wire).__name__}")
        plan = self._decoding.get(struct)
        if plan is None:
            plan = self._decoding[struct] = _decoding_plan(self.structs[struct])
        fields, extra_name = plan
        out: dict[str, Any] = {}
        for name, ordinal, typ, default in fields:
            if ordinal in wire:
                value = wire[ordinal]
                out[name] = value if typ is None else self.value_from_wire(typ, value)
            elif default is not _REQUIRED:
                out[name] = _fresh(default)
        if extra_name is not None:
            extra = out.pop(extra_name, None) or {}
            if isinstance(extra, Mapping):
                for key, item in extra.items():
                    out.setdefault(key, item)
        return out

    def value_from_wire(self, typ: Any, value: Any) -> Any:
        if value is None or isinstance(typ, str):
            return value
        if "struct" in typ:
            return self.from_wire(typ["struct"], value)
        if "list" in typ:
            if not isinstance(value, list):
                return value
            item_type = typ["list"]
            if item_type.__class__ is str:
                return list(value)
            return [self.value_from_wire(item_type, v) for v in value]
        if "map" in typ:
            return ({k: self.value_from_wire(typ["map"], v) for k, v in value.items()}
                    if isinstance(value, Mapping) else value)
        if "enum" in typ:
            enum_spec = self.enums[typ["enum"]]
            if value in enum_spec["values"] or enum_spec.get("fallback") is None:
                return value
            return enum_spec["fallback"]
        return value


_REQUIRED = object()
_EXTRA = object()  # the encoding plan's marker for an open struct's extra-map field


def _decoding_plan(spec: dict[str, Any]) -> tuple[tuple[tuple[str, int, Any, Any], ...], str | None]:
    """Per field ``(name, ordinal, type or None for a plain scalar, default or _REQUIRED)``
    (``_REQUIRED`` also for an ``optional`` field: absent stays absent):
    decoding a record then costs one tuple unpack per field (lists of 1000 records)."""
    fields = tuple(
        (f["name"], f["ordinal"], None if f["type"].__class__ is str else f["type"],
         _REQUIRED if f.get("required") or f.get("optional") else f.get("default"))
        for f in spec["fields"])
    return fields, spec.get("extra")


def _fresh(default: Any) -> Any:
    """A default the caller may mutate: containers are copied, scalars shared."""
    if isinstance(default, dict):
        return {k: _fresh(v) for k, v in default.items()}
    if isinstance(default, list):
        return [_fresh(v) for v in default]
    return default


_DEFAULT: Codec | None = None


def load_compiled(path: str = COMPILED_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        raw: dict[str, Any] = json.load(fh)
    for spec in raw["structs"].values():
        spec["by_name"] = {f["name"]: f for f in spec["fields"]}
    return raw


def default_codec() -> Codec:
    """The codec of the schema shipped with this package (loaded once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Codec(load_compiled())
    return _DEFAULT
