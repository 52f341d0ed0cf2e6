"""Marshmallow schemas of the configuration file format (SPEC §2.3, §2.4, §6.3, §7, §8, §9).

Every field is strict: unknown keys are rejected, types are not coerced (a quoted "5" is
not an integer), units are normalised on load (``units.py``). Each field carries
``expected`` (the human phrase used in ``ConfigIssue.expected``) and ``json_schema()``
(its fragment in the exported JSON Schema), so the file format is described in one place.

Loading gives plain dicts for processes, sockets and groups (the loader adds the name and
the source) and spec values for the nested parts (health check, resources, log).
Defaults are not repeated here: a key left out keeps the dataclass default of spec.py.
"""

from __future__ import annotations

import re
import shlex
from types import MappingProxyType
from typing import Any, Callable, Mapping

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validates_schema

from .. import units
from .yamldoc import OversizedNumber
from ..spec import HealthCheckSpec, LogSpec, Quantities, ResourcesSpec
from ..vocabulary import (
    BACKOFF_KINDS, GROUP_STRATEGIES, HEALTH_TYPES, KILL_MODES, LOG_MODES, PROCESS_TYPES,
    RESTART_POLICIES,
)

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}"
NAME_EXPECTED = "a name of letters, digits, '_', '.', '@' or '-' (starting with a letter or digit)"
ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
RUNTIME_ONLY_FIELDS = ("transient",)

# Bounds (docs/configuration.md, "Limits"); durations, sizes and CPU are bounded in units.py.
MAX_STRING = 4096          # paths (PATH_MAX), commands, descriptions, log-line texts
MAX_ITEMS = 1024           # items of any list (args, dependencies, conditions, ...)
MAX_ARG = 32 * 1024        # one argument; one environment value
MAX_ENV_VARS = 1024
MAX_ENV_NAME = 256
MAX_ID = 256               # user, group names

_NAME = re.compile(NAME_PATTERN)
_ENV_NAME = re.compile(ENV_NAME_PATTERN)
_STATUS = re.compile(r"[1-5]\d\d(-[1-5]\d\d)?(,[1-5]\d\d(-[1-5]\d\d)?)*")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]*):(\d{1,5})")


def _short(exc: ValueError) -> str:
    """The message of a units error without its '; expected ...' tail (reported apart)."""
    return str(exc).split("; expected ")[0]


class ConfigField(fields.Field[Any]):
    """Base of every field here: ``convert`` does the work, errors become ValidationError."""

    expected = "a value"
    json: dict[str, Any] = {}

    def __init__(self, *, expected: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if expected is not None:
            self.expected = expected

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, OversizedNumber):
            raise ValidationError(f"out of range: {value}")
        try:
            return self.convert(value)
        except ValueError as exc:
            raise ValidationError(_short(exc)) from exc

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value

    def convert(self, value: Any) -> Any:
        return value

    def json_schema(self) -> dict[str, Any]:
        return {**self.json, "description": f"Expected {self.expected}."}


class Str(ConfigField):
    expected = "a non-empty string"
    json = {"type": "string", "minLength": 1}

    def __init__(self, *, pattern: str | None = None, check: Callable[[str], None] | None = None,
                 max_length: int = MAX_STRING, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pattern = re.compile(pattern) if pattern else None
        self.check = check
        self.max_length = max_length

    def _check_length(self, value: str) -> None:
        if len(value) > self.max_length:
            raise ValueError(f"too long: {len(value)} characters (at most {self.max_length})")

    def convert(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"got {type(value).__name__} {value!r}, not a string")
        if not value:
            raise ValueError("must not be empty")
        self._check_length(value)
        if "\0" in value:
            raise ValueError("must not contain a NUL character")
        if self.pattern and not self.pattern.fullmatch(value):
            raise ValueError(f"invalid value {value!r}")
        if self.check:
            self.check(value)
        return value

    def json_schema(self) -> dict[str, Any]:
        out = {**super().json_schema(), "maxLength": self.max_length}
        if self.pattern:
            out["pattern"] = f"^(?:{self.pattern.pattern})$"
        return out


class Text(Str):
    """Free text: may be empty."""

    expected = "a string"
    json = {"type": "string"}

    def convert(self, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"got {type(value).__name__} {value!r}, not a string")
        self._check_length(value)
        return value


class Bool(ConfigField):
    expected = "true or false"
    json = {"type": "boolean"}

    def convert(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"got {value!r}, not a boolean")
        return value


class Int(ConfigField):
    def __init__(self, *, minimum: int = 0, maximum: int | None = None, **kwargs: Any) -> None:
        self.minimum, self.maximum = minimum, maximum
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        kwargs.setdefault("expected", f"an integer {bound}")
        super().__init__(**kwargs)

    def convert(self, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"got {value!r}, not an integer")
        if value < self.minimum or (self.maximum is not None and value > self.maximum):
            shown = value if len(str(value)) <= 40 else f"a number of {len(str(value))} digits"
            raise ValueError(f"{shown} is out of range")
        return value

    def json_schema(self) -> dict[str, Any]:
        out = {"type": "integer", "minimum": self.minimum, "description": f"Expected {self.expected}."}
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


class Duration(ConfigField):
    expected = units.DURATION_EXPECTED
    json = {"type": ["number", "string"], "minimum": 0,
            "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*(us|ms|s|min|m|h|d|w)?"
                       r"(\s*(\d+(\.\d*)?|\.\d+)\s*(us|ms|s|min|m|h|d|w))*\s*$"}

    def __init__(self, *, positive: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.positive = positive
        if positive:
            self.expected = "a duration > 0: " + units.DURATION_EXPECTED.removeprefix("a duration: ")

    def convert(self, value: Any) -> float:
        seconds = units.parse_duration(value)
        if self.positive and seconds <= 0:
            raise ValueError(f"{value!r} must be greater than zero")
        return seconds


class Size(ConfigField):
    expected = units.SIZE_EXPECTED
    json = {"type": ["integer", "string"], "minimum": 0,
            "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*(k|[KMGTPE]i?)?\s*$"}

    def __init__(self, *, maximum: int = units.MAX_SIZE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.maximum = maximum
        if maximum != units.MAX_SIZE:
            self.expected = f"{units.SIZE_EXPECTED}, at most {maximum} bytes"

    def convert(self, value: Any) -> int:
        return units.parse_size(value, self.maximum)


class Cpu(ConfigField):
    expected = units.CPU_EXPECTED
    json = {"type": ["number", "string"], "exclusiveMinimum": 0,
            "pattern": r"^\s*(\d+(\.\d*)?|\.\d+)\s*m?\s*$"}

    def convert(self, value: Any) -> float:
        return units.parse_cpu(value)


class Signal(ConfigField):
    expected = units.SIGNAL_EXPECTED
    json = {"type": ["string", "integer"]}

    def convert(self, value: Any) -> int:
        return units.parse_signal(value)


class Choice(ConfigField):
    def __init__(self, choices: tuple[str, ...], **kwargs: Any) -> None:
        self.choices = choices
        kwargs.setdefault("expected", "one of " + ", ".join(choices))
        super().__init__(**kwargs)

    def convert(self, value: Any) -> str:
        if value not in self.choices or not isinstance(value, str):
            raise ValueError(f"invalid value {value!r}")
        return value

    def json_schema(self) -> dict[str, Any]:
        return {"enum": list(self.choices), "description": f"Expected {self.expected}."}


class UserOrGroup(ConfigField):
    """A user or group given by name or numeric id; kept as a string either way."""

    expected = "a user/group name or a numeric id"
    json = {"type": ["string", "integer"], "minimum": 0}

    def convert(self, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32 - 1:
            return str(value)
        if isinstance(value, str) and re.fullmatch(r"[^\s:/\0]{1,%d}" % MAX_ID, value):
            return value
        raise ValueError(f"invalid value {value!r}")


class StrList(ConfigField):
    """A list of items (a single item is accepted for a one-element list) -> tuple."""

    json = {}

    def __init__(self, item: ConfigField, *, unique: bool = False, nonempty: bool = False,
                 max_items: int = MAX_ITEMS, **kwargs: Any) -> None:
        self.item, self.unique, self.nonempty, self.max_items = item, unique, nonempty, max_items
        kwargs.setdefault("expected", f"{item.expected}, or a list of them")
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[Any, ...]:
        items = value if isinstance(value, list) else [value]
        if isinstance(value, (dict, tuple, set)):
            raise ValidationError(f"got {type(value).__name__}, not a list")
        if len(items) > self.max_items:
            raise ValidationError(f"too many items: {len(items)} (at most {self.max_items})")
        errors: dict[int, list[str]] = {}
        out = []
        for index, entry in enumerate(items):
            try:
                out.append(self.item.convert(entry))
            except ValueError as exc:
                errors[index] = [_short(exc)]
        if errors:
            raise ValidationError(errors if isinstance(value, list) else errors[0])
        if self.unique and len(set(out)) != len(out):
            dup = sorted({x for x in out if out.count(x) > 1})
            raise ValidationError(f"duplicate entries {dup}")
        if self.nonempty and not out:
            raise ValidationError("must not be empty")
        return tuple(out)

    def json_schema(self) -> dict[str, Any]:
        item = self.item.json_schema()
        array: dict[str, Any] = {"type": "array", "items": item, "maxItems": self.max_items}
        if self.nonempty:
            array["minItems"] = 1
        return {"anyOf": [array, item], "description": f"Expected {self.expected}."}


class ArgList(StrList):
    """Arguments or a probe command: a list of strings, or one string split like a shell."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("expected", "a list of strings (or one string, split like a shell would)")
        super().__init__(Text(max_length=MAX_ARG), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[Any, ...]:
        if isinstance(value, str):
            try:
                value = shlex.split(Text(max_length=MAX_ARG).convert(value))
            except ValueError as exc:
                raise ValidationError(f"cannot split {value!r}: {exc}") from exc
        if not isinstance(value, list):
            raise ValidationError(f"got {type(value).__name__} {value!r}, not a list")
        return super()._deserialize(value, attr, data, **kwargs)


class EnvMap(ConfigField):
    """Environment variables: string values; numbers and booleans are written out as text."""

    expected = "a map of variable names to strings"
    json = {"type": "object", "propertyNames": {"pattern": f"^{ENV_NAME_PATTERN}$"},
            "additionalProperties": {"type": ["string", "number", "boolean"]}}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Mapping[str, str]:
        if not isinstance(value, dict):
            raise ValidationError(f"got {type(value).__name__}, not a map")
        if len(value) > MAX_ENV_VARS:
            raise ValidationError(f"too many variables: {len(value)} (at most {MAX_ENV_VARS})")
        errors: dict[str, list[str]] = {}
        out: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str) or len(key) > MAX_ENV_NAME or not _ENV_NAME.fullmatch(key):
                errors[str(key)[:MAX_ENV_NAME]] = [f"invalid variable name {str(key)[:60]!r} "
                                                   f"(letters, digits, '_', at most {MAX_ENV_NAME})"]
            elif isinstance(item, (str, int, float)) and len(str(item)) > MAX_ARG:
                errors[key] = [f"value too long: {len(str(item))} characters (at most {MAX_ARG})"]
            elif isinstance(item, bool):
                out[key] = "true" if item else "false"
            elif isinstance(item, (str, int, float)) and "\0" not in str(item):
                out[key] = str(item)
            else:
                errors[key] = [f"value {item!r} is not a string"]
        if errors:
            raise ValidationError(errors)
        return MappingProxyType(out)


class ExitStatusList(ConfigField):
    """Exit codes (0-255) and signal names -> ``(codes, signals)`` frozensets."""

    expected = "a list of exit codes (0-255) and signal names like 'SIGTERM'"
    json = {"anyOf": [
        {"type": "array", "items": {"type": ["integer", "string"]}},
        {"type": ["integer", "string"]},
    ]}

    def convert(self, value: Any) -> tuple[frozenset[int], frozenset[int]]:
        codes: set[int] = set()
        signals: set[int] = set()
        for entry in value if isinstance(value, list) else [value]:
            if isinstance(entry, str) and entry.strip().isdigit() and len(entry.strip()) <= 3:
                entry = int(entry)
            if isinstance(entry, int) and not isinstance(entry, bool):
                if not 0 <= entry <= 255:
                    raise ValueError(f"exit code {entry} is out of range 0-255")
                codes.add(entry)
            else:
                signals.add(units.parse_signal(entry))
        return frozenset(codes), frozenset(signals)


class OctalMode(ConfigField):
    """A file mode: an integer (YAML reads 0660 as octal) or an octal string "0660"."""

    expected = "a file mode such as 0660 (octal)"
    json = {"type": ["integer", "string"]}

    def convert(self, value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{1,4}", value):
            value = int(value.replace("o", ""), 8)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
            return value
        raise ValueError(f"invalid mode {value!r}")


def _check_absolute(value: str) -> None:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path")


def _check_condition(value: str) -> None:
    _check_absolute(value.removeprefix("|").removeprefix("!"))


def _check_runtime_dir(value: str) -> None:
    parts = value.split("/")
    if value.startswith("/"):
        raise ValueError(f"{value!r} is absolute; give a name relative to the runtime root")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{value!r} may not contain '..', '.' or empty components")


def _check_listen(value: str) -> None:
    if value.startswith("/"):
        return
    match = _HOST_PORT.fullmatch(value)
    if match is None or int(match.group(2)) > 65535:
        raise ValueError(f"invalid address {value!r}")


def _check_http(value: str) -> None:
    if not re.match(r"https?://[^/\s]+", value):
        raise ValueError(f"invalid URL {value!r}")


class Capability(Str):
    expected = "a capability name like CAP_NET_BIND_SERVICE"

    def convert(self, value: Any) -> str:
        name = super().convert(value).upper()
        name = name if name.startswith("CAP_") else "CAP_" + name
        if not re.fullmatch(r"CAP_[A-Z_]+", name):
            raise ValueError(f"invalid capability {value!r}")
        return name


class ExpectedStatus(ConfigField):
    expected = "HTTP status codes or ranges, like 200, '200-399' or '200,204'"
    json = {"type": ["string", "integer"]}

    def convert(self, value: Any) -> str:
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(text, str) or not _STATUS.fullmatch(text.replace(" ", "")):
            raise ValueError(f"invalid status set {value!r}")
        return text.replace(" ", "")


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE


class HealthCheckSchema(StrictSchema):
    type = Choice(HEALTH_TYPES, required=True)
    http_endpoint = Str(check=_check_http, expected="an http:// or https:// URL")
    expected_status = ExpectedStatus()
    tcp_address = Str(check=_check_listen, expected="HOST:PORT")
    exec_command = ArgList(nonempty=True)
    interval = Duration(positive=True)
    timeout = Duration(positive=True)
    start_period = Duration()
    retries = Int(minimum=1, maximum=1000)
    restart_after = Int(minimum=0, maximum=1000)

    @validates_schema
    def _probe_target(self, data: dict[str, Any], **kwargs: Any) -> None:
        needed = {"http": "http_endpoint", "tcp": "tcp_address", "exec": "exec_command"}
        key = needed.get(data.get("type", ""))
        if key and key not in data:
            raise ValidationError(f"required for a {data['type']} health check", field_name=key)

    @post_load
    def _build(self, data: dict[str, Any], **kwargs: Any) -> HealthCheckSpec:
        return HealthCheckSpec(**data)


class QuantitiesSchema(StrictSchema):
    cpu = Cpu()
    memory = Size()
    pids = Int(minimum=1, maximum=4194304)

    @post_load
    def _build(self, data: dict[str, Any], **kwargs: Any) -> Quantities:
        return Quantities(**data)


class RequestsSchema(QuantitiesSchema):
    """Requests have no pids (a pid count is only a limit)."""

    class Meta(StrictSchema.Meta):
        exclude = ("pids",)


class ResourcesSchema(StrictSchema):
    requests = fields.Nested(RequestsSchema)
    limits = fields.Nested(QuantitiesSchema)

    @validates_schema
    def _requests_within_limits(self, data: dict[str, Any], **kwargs: Any) -> None:
        req, lim = data.get("requests", Quantities()), data.get("limits", Quantities())
        for key in ("cpu", "memory"):
            low, high = getattr(req, key), getattr(lim, key)
            if low is not None and high is not None and low > high:
                raise ValidationError(f"request {low} exceeds the limit {high}", field_name="requests")

    @post_load
    def _build(self, data: dict[str, Any], **kwargs: Any) -> ResourcesSpec:
        return ResourcesSpec(**data)


class LogMapSchema(StrictSchema):
    mode = Choice(LOG_MODES)
    file = Str(check=_check_absolute, expected="an absolute file path")
    max_bytes = Size(maximum=2**40)
    backups = Int(minimum=0, maximum=1000)
    ring_lines = Int(minimum=0, maximum=1_000_000)
    ring_bytes = Size(maximum=256 * 2**20)

    @post_load
    def _build(self, data: dict[str, Any], **kwargs: Any) -> LogSpec:
        return LogSpec(**data)


class LogField(ConfigField):
    """``log: capture`` (a mode) or ``log: {mode: ..., file: ..., ...}``."""

    expected = "a mode (" + ", ".join(LOG_MODES) + ") or a map of log settings"
    schema = LogMapSchema

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> LogSpec:
        if isinstance(value, str):
            if value not in LOG_MODES:
                raise ValidationError(f"invalid log mode {value!r}")
            return LogSpec(mode=value)
        if not isinstance(value, dict):
            raise ValidationError(f"got {type(value).__name__} {value!r}")
        spec: LogSpec = LogMapSchema().load(value)  # its post_load builds the LogSpec
        return spec

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"enum": list(LOG_MODES)}, schema_json(LogMapSchema())],
                "description": f"Expected {self.expected}."}


def _deps() -> StrList:
    return StrList(Str(pattern=NAME_PATTERN, expected="a process name"), unique=True,
                   expected="a list of process names (or a single name)")


class ProcessSchema(StrictSchema):
    """One process's fields (SPEC §2.3); ``transient`` is accepted only at run time."""

    command = Str(required=True, expected="an executable name or path, or a command line "
                                          "split like a shell would when args is absent")
    args = ArgList()
    description = Text()
    auto_start = Bool()
    process_type = Choice(PROCESS_TYPES)
    restart = Choice(RESTART_POLICIES)
    restart_sec = Duration()
    restart_max_delay = Duration()
    backoff = Choice(BACKOFF_KINDS)
    start_limit_burst = Int(minimum=1, maximum=10000)
    start_limit_interval = Duration()
    timeout_start_sec = Duration()
    timeout_stop_sec = Duration()
    kill_signal = Signal()
    reload_signal = Signal()
    kill_mode = Choice(KILL_MODES)
    success_exit_status = ExitStatusList()
    working_dir = Str(expected="a directory path")
    env = EnvMap()
    environment_file = StrList(Str(expected="a file path, optionally prefixed with '-' (relative: to "
                                            "working_dir, else to the defining file's directory)"))
    user = UserOrGroup()
    group = UserOrGroup()
    pidfile = Str(check=_check_absolute, expected="an absolute file path")
    condition_path_exists = StrList(Str(check=_check_condition, expected="an absolute path, optionally prefixed with '|' and/or '!'"))
    runtime_directory = StrList(Str(check=_check_runtime_dir, expected="a relative directory name without '..'"), unique=True)
    ambient_capabilities = StrList(Capability(max_length=64), unique=True)
    requires = _deps()
    wants = _deps()
    binds_to = _deps()
    part_of = _deps()
    conflicts = _deps()
    after = _deps()
    before = _deps()
    wait_healthy = Bool()
    health_check = fields.Nested(HealthCheckSchema)
    ready_log_line = Str(expected="a non-empty string (text of the log line that means ready)")
    watchdog_sec = Duration()
    resources = fields.Nested(ResourcesSchema)
    log = LogField()
    transient = Bool()

    @post_load
    def _split_exit_status(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "success_exit_status" in data:
            data["success_exit_status"], data["success_exit_signals"] = data["success_exit_status"]
        return data


class SocketSchema(StrictSchema):
    listen_stream = Str(check=_check_listen, expected="HOST:PORT, [::]:PORT or an absolute Unix socket path")
    listen_datagram = Str(check=_check_listen, expected="HOST:PORT, [::]:PORT or an absolute Unix socket path")
    service = Str(pattern=NAME_PATTERN, expected="a process name")
    accept = Bool()
    socket_mode = OctalMode()
    socket_user = UserOrGroup()
    socket_group = UserOrGroup()
    backlog = Int(minimum=1, maximum=65535)
    fd_name = Str(pattern=r"[^:\s]{1,255}", expected="a name without ':' or spaces, at most 255 characters")
    fd_env = Str(pattern=ENV_NAME_PATTERN, expected="an environment variable name")

    @validates_schema
    def _has_listener(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "listen_stream" not in data and "listen_datagram" not in data:
            raise ValidationError("a socket needs listen_stream or listen_datagram", field_name="listen_stream")


class GroupSchema(StrictSchema):
    members = StrList(Str(pattern=NAME_PATTERN, expected="a process name"), unique=True, nonempty=True,
                      required=True, expected="a non-empty list of process names")
    strategy = Choice(GROUP_STRATEGIES)
    max_restarts = Int(minimum=0, maximum=10000)
    max_seconds = Duration(positive=True)
    resources = fields.Nested(ResourcesSchema)


def field_at(schema: Schema, path: tuple[str | int, ...]) -> fields.Field[Any] | None:
    """The field a (dotted) error path points to, for its ``expected`` phrase."""
    current: Any = schema
    found: fields.Field[Any] | None = None
    for step in path:
        if isinstance(step, int) or (isinstance(step, str) and step.isdigit()):
            if isinstance(found, StrList):
                found = found.item
            continue
        if isinstance(found, LogField):
            current = LogMapSchema()
        elif isinstance(found, fields.Nested):
            current = found.schema
        elif found is not None:
            return found
        if not isinstance(current, Schema) or step not in current.fields:
            return None
        found = current.fields[step]
    return found


def expected_at(schema: Schema, path: tuple[str | int, ...]) -> str | None:
    found = field_at(schema, path)
    return getattr(found, "expected", None)


def schema_json(schema: Schema) -> dict[str, Any]:
    """The JSON Schema object of a marshmallow schema built from these fields."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, field in schema.fields.items():
        if isinstance(field, fields.Nested):
            props[name] = schema_json(field.schema)
        elif isinstance(field, ConfigField):
            props[name] = field.json_schema()
        else:  # pragma: no cover - every field here is one of ours
            props[name] = {}
        if field.required:
            required.append(name)
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out
