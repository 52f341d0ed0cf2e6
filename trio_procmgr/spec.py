"""Immutable specifications: what the configuration says a process, socket or group is.

A spec is a frozen value. The config loader builds them, `update` replaces one whole
(``dataclasses.replace``), and the engine never mutates them. Runtime state lives in
``states.Record`` instead.

Units are already normalised here: durations in float seconds, sizes in bytes, CPU in
cores (``500m`` -> 0.5), signals as ints.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping

from trio_procmgr.vocabulary import (BACKOFF_KINDS, GROUP_STRATEGIES, HEALTH_TYPES,  # noqa: F401
                                     KILL_MODES, LOG_MODES, PROCESS_TYPES, RESTART_POLICIES)

DEPENDENCY_FIELDS = ("requires", "wants", "binds_to", "part_of", "conflicts", "after", "before")

EMPTY_MAP: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a spec came from, for error messages (file and line, when known)."""

    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.file is None:
            return "<runtime>"
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class HealthCheckSpec:
    type: str
    http_endpoint: str | None = None
    expected_status: str = "200-399"
    tcp_address: str | None = None
    exec_command: tuple[str, ...] = ()
    interval: float = 30.0
    timeout: float = 5.0
    start_period: float = 0.0
    retries: int = 3
    restart_after: int = 0


@dataclass(frozen=True, slots=True)
class Quantities:
    """CPU in cores, memory in bytes, pids as a count; None = not set."""

    cpu: float | None = None
    memory: int | None = None
    pids: int | None = None

    def is_empty(self) -> bool:
        return self.cpu is None and self.memory is None and self.pids is None


@dataclass(frozen=True, slots=True)
class ResourcesSpec:
    requests: Quantities = Quantities()
    limits: Quantities = Quantities()


@dataclass(frozen=True, slots=True)
class LogSpec:
    """Capture of a child's stdout/stderr (SPEC §9).

    ``mode``: ``capture`` (pipes drained into the ring and optional file), ``inherit``
    (the daemon's own stdout/stderr) or ``null`` (/dev/null).
    """

    mode: str = "capture"
    file: str | None = None
    max_bytes: int = 10 * 1024 * 1024
    backups: int = 3
    ring_lines: int = 1000
    ring_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str
    command: str
    args: tuple[str, ...] = ()
    description: str = ""
    auto_start: bool = False
    process_type: str = "simple"
    restart: str = "never"
    restart_sec: float = 1.0
    restart_max_delay: float = 60.0
    backoff: str = "exponential"
    start_limit_burst: int = 5
    start_limit_interval: float = 300.0
    timeout_start_sec: float = 90.0
    timeout_stop_sec: float = 90.0
    kill_signal: int = int(signal.SIGTERM)
    reload_signal: int = int(signal.SIGHUP)
    kill_mode: str = "control-group"
    success_exit_status: frozenset[int] = frozenset({0})
    success_exit_signals: frozenset[int] = frozenset()
    working_dir: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    environment_file: tuple[str, ...] = ()
    user: str | None = None
    group: str | None = None
    pidfile: str | None = None
    condition_path_exists: tuple[str, ...] = ()
    runtime_directory: tuple[str, ...] = ()
    ambient_capabilities: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    wants: tuple[str, ...] = ()
    binds_to: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    before: tuple[str, ...] = ()
    part_of: tuple[str, ...] = ()
    wait_healthy: bool = False
    health_check: HealthCheckSpec | None = None
    ready_log_line: str | None = None
    watchdog_sec: float = 0.0
    resources: ResourcesSpec | None = None
    log: LogSpec = LogSpec()
    transient: bool = False
    source: SourceRef = field(default=SourceRef(), compare=False)


# Fields `update` applies to a running process without restarting it (SPEC §2.3 "hot").
HOT_FIELDS: frozenset[str] = frozenset({
    "description", "auto_start", "restart", "restart_sec", "restart_max_delay", "backoff",
    "start_limit_burst", "start_limit_interval", "timeout_start_sec", "timeout_stop_sec",
    "success_exit_status", "success_exit_signals", "condition_path_exists", "health_check",
    "watchdog_sec", "resources", "log", "wait_healthy", "ready_log_line", "transient",
    "reload_signal",
})

PROCESS_FIELD_NAMES: tuple[str, ...] = tuple(
    f.name for f in fields(ProcessSpec) if f.name not in ("name", "source")
)


def changed_fields(old: ProcessSpec, new: ProcessSpec) -> list[str]:
    """Names of the fields whose values differ between two specs of one process."""
    return [name for name in PROCESS_FIELD_NAMES if getattr(old, name) != getattr(new, name)]


def restart_required(changed: list[str]) -> list[str]:
    """The subset of ``changed`` that only takes effect after a restart."""
    return [name for name in changed if name not in HOT_FIELDS]


@dataclass(frozen=True, slots=True)
class SocketSpec:
    name: str
    service: str
    listen_stream: str | None = None
    listen_datagram: str | None = None
    accept: bool = False
    socket_mode: int = 0o660
    socket_user: str | None = None
    socket_group: str | None = None
    backlog: int = 128
    fd_name: str | None = None
    fd_env: str | None = None
    source: SourceRef = field(default=SourceRef(), compare=False)


@dataclass(frozen=True, slots=True)
class GroupSpec:
    name: str
    members: tuple[str, ...] = ()
    strategy: str = "one_for_one"
    max_restarts: int = 3
    max_seconds: float = 5.0
    resources: ResourcesSpec | None = None
    source: SourceRef = field(default=SourceRef(), compare=False)


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem found while loading configuration (never raised: collected).

    ``severity``: ``"error"`` (the entry it names is left out, and a reload refuses the
    whole set) or ``"warning"`` (loaded as written, but probably not what was meant).
    """

    file: str
    message: str
    line: int | None = None
    field: str | None = None
    expected: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        what = f" field '{self.field}':" if self.field else ""
        exp = f" (expected {self.expected})" if self.expected else ""
        tag = " warning:" if self.severity == "warning" else ""
        return f"{where}:{tag}{what} {self.message}{exp}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field,
                "message": self.message, "expected": self.expected, "severity": self.severity}


@dataclass(frozen=True, slots=True)
class ConfigSet:
    """Everything one configuration directory defines, plus what was wrong in it."""

    processes: Mapping[str, ProcessSpec] = field(default_factory=lambda: EMPTY_MAP)
    sockets: Mapping[str, SocketSpec] = field(default_factory=lambda: EMPTY_MAP)
    groups: Mapping[str, GroupSpec] = field(default_factory=lambda: EMPTY_MAP)
    issues: tuple[ConfigIssue, ...] = ()
    files: tuple[str, ...] = ()
    #: Templates and replica sets by base name (config.templates.TemplateSpec, SPEC §16).
    templates: Mapping[str, Any] = field(default_factory=lambda: EMPTY_MAP)

    @property
    def errors(self) -> tuple[ConfigIssue, ...]:
        """Issues that left something out; a reload applies only when there are none."""
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[ConfigIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors
