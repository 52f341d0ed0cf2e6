"""systemd ``.service`` and ``.socket`` units -> our processes and sockets (SPEC §17).

``SERVICE_MAP`` and ``SOCKET_MAP`` are the mapping tables (docs/migrating.md reproduces
them): directive -> (what it becomes, converter). ``NO_EQUIVALENT`` names the directives we
know and cannot express, with the reason printed to the user; a directive in none of the
tables is reported as unsupported. Nothing is dropped silently.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from .. import units
from .builder import Handler, UnitBuilder
from .result import Conversion, FileConversion, SourceFile, invalid, resolve_links
from .systemd_exec import finish_exec_start
from .systemd_socket import SOCKET_MAP, finish_socket
from .systemd_syntax import (
    INFINITY, Directive, UnitName, UnitSyntaxError, format_duration, format_size, parse_size,
    parse_timespan, parse_unit,
)

BOOT_TARGETS = ("multi-user.target", "default.target", "graphical.target")
LONG_STOP_TIMEOUT = "1h"
"""Stands in for systemd's 'no stop timeout' (0/infinity): ours SIGKILLs at 0."""

TYPES = {"simple": "simple", "exec": "simple", "forking": "forking", "oneshot": "oneshot",
         "notify": "notify", "notify-reload": "notify", "dbus": "simple", "idle": "simple"}
TYPE_NOTES = {
    "notify-reload": "reload by signal is not modelled; readiness works as notify",
    "dbus": "readiness on a D-Bus name is not watched: running once the exec succeeded",
    "idle": "no waiting for other jobs: started like simple",
}
RESTARTS = {"no": "never", "always": "always", "on-success": "on-success",
            "on-failure": "on-failure", "on-abnormal": "on-failure", "on-abort": "on-failure",
            "on-watchdog": "on-failure"}
KILL_MODES = {"control-group": "control-group", "process": "process", "mixed": "mixed"}
DEPENDENCIES = {"Requires": "requires", "Wants": "wants", "BindsTo": "binds_to",
                "PartOf": "part_of", "Conflicts": "conflicts", "After": "after",
                "Before": "before"}
_SANDBOXING = ("sandboxing and namespacing are not provided: the process runs with the "
               "daemon's view of the system")


# ------------------------------------------------------------------ [Service] handlers

def _type(b: UnitBuilder, d: Directive) -> None:
    if d.value not in TYPES:
        b.error(d.line, f"Type={d.value} is not a systemd service type")
        return
    b.set("process_type", TYPES[d.value])
    if d.value in TYPE_NOTES:
        b.approx(d.line, str(d), f"process_type: {TYPES[d.value]} ({TYPE_NOTES[d.value]})")


def _exec_start(b: UnitBuilder, d: Directive) -> None:
    if not d.value:
        b.exec_start.clear()
    else:
        b.exec_start.append(d)


def _user(b: UnitBuilder, d: Directive) -> None:
    b.set(d.key.lower(), b.expand(d, d.value))


def _working_dir(b: UnitBuilder, d: Directive) -> None:
    path = d.value
    if path.startswith("-"):
        path = path[1:]
        b.approx(d.line, str(d), "a missing directory fails the start (the '-' is not kept)")
    if path.startswith("~"):
        b.unmapped(d.line, str(d), "the user's home directory is not looked up; give the path")
        return
    b.set("working_dir", b.expand(d, path))


def _environment(b: UnitBuilder, d: Directive) -> None:
    env = b.fields.setdefault("env", {})
    if not d.value:
        env.clear()
        return
    for word in b.words(d) or []:
        key, sep, value = word.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            b.error(d.line, f"Environment=: {word!r} is not NAME=VALUE")
            continue
        env[key] = value


def _path_list(b: UnitBuilder, d: Directive, field: str, prefixes: str) -> None:
    """A directive that adds one absolute path (after its ``prefixes`` marks) to the list
    ``field``; an empty value resets the list, as in systemd."""
    paths = b.fields.setdefault(field, [])
    if not d.value:
        paths.clear()
        return
    path = b.expand(d, d.value)
    if not path.lstrip(prefixes).startswith("/"):
        b.error(d.line, f"{d.key}={d.value}: the path must be absolute")
        return
    paths.append(path)


def _environment_file(b: UnitBuilder, d: Directive) -> None:
    _path_list(b, d, "environment_file", "-")


def _restart(b: UnitBuilder, d: Directive) -> None:
    if d.value not in RESTARTS:
        b.error(d.line, f"Restart={d.value} is not a systemd restart policy")
        return
    b.set("restart", RESTARTS[d.value])
    if RESTARTS[d.value] != d.value and d.value != "no":
        b.approx(d.line, str(d), "restart: on-failure (restarts after any failure, not only that kind)")


def _duration(field_name: str) -> Handler:
    def convert(b: UnitBuilder, d: Directive) -> None:
        seconds = _timespan(b, d)
        if seconds is None:
            return
        if seconds == INFINITY:
            seconds = 0.0
        b.set(field_name, format_duration(seconds))
    return convert


def _timespan(b: UnitBuilder, d: Directive) -> float | None:
    try:
        return parse_timespan(d.value)
    except ValueError as exc:
        b.error(d.line, f"{d.key}=: {exc}")
        return None


def _stop_timeout(b: UnitBuilder, d: Directive) -> None:
    seconds = _timespan(b, d)
    if seconds is None:
        return
    if seconds in (0, INFINITY):
        b.set("timeout_stop_sec", LONG_STOP_TIMEOUT)
        b.approx(d.line, str(d), f"timeout_stop_sec: {LONG_STOP_TIMEOUT} (systemd waits forever; ours needs a bound)")
    else:
        b.set("timeout_stop_sec", format_duration(seconds))


def _timeout_both(b: UnitBuilder, d: Directive) -> None:
    _duration("timeout_start_sec")(b, d)
    _stop_timeout(b, d)


def _start_limit_burst(b: UnitBuilder, d: Directive) -> None:
    if not d.value.isdigit() or int(d.value) < 1:
        b.error(d.line, f"StartLimitBurst={d.value}: expected a positive integer")
        return
    b.set("start_limit_burst", int(d.value))


def _restart_steps(b: UnitBuilder, d: Directive) -> None:
    b.set("backoff", "exponential")
    b.approx(d.line, str(d), "backoff: exponential (doubling delays instead of fixed steps)")


def _kill_mode(b: UnitBuilder, d: Directive) -> None:
    if d.value not in KILL_MODES:
        b.unmapped(d.line, str(d), "every stop signals at least the main process")
        return
    b.set("kill_mode", KILL_MODES[d.value])


def _kill_signal(b: UnitBuilder, d: Directive) -> None:
    try:
        b.set("kill_signal", units.signal_name(units.parse_signal(d.value)))
    except ValueError:
        b.error(d.line, f"KillSignal={d.value} is not a signal")


#: ``ExecReload=`` lines that only signal the main process: ``[-]/bin/kill [-s] -HUP $MAINPID``.
RELOAD_BY_SIGNAL = re.compile(r"-?(?:/usr)?(?:/s?bin/)?kill\s+(?:-s\s+)?-?(\w+)\s+\$\{?MAINPID\}?")
RELOAD_OTHER = ("only `kill -SIGNAL $MAINPID` maps, to reload_signal, which `dd-procmgr reload` "
                "sends; other reload commands are not run")


def _exec_reload(b: UnitBuilder, d: Directive) -> None:
    """``kill -HUP $MAINPID`` is exactly what ``dd-procmgr reload`` does with
    ``reload_signal``, so that common form keeps working after the move."""
    found = RELOAD_BY_SIGNAL.fullmatch(d.value.strip())
    try:
        signal_name = units.signal_name(units.parse_signal(found.group(1))) if found else None
    except ValueError:
        signal_name = None
    if signal_name is None:
        b.unmapped(d.line, str(d), RELOAD_OTHER)
        return
    b.set("reload_signal", signal_name)


def _pidfile(b: UnitBuilder, d: Directive) -> None:
    path = b.expand(d, d.value)
    b.set("pidfile", path if path.startswith("/") else "/run/" + path)


def _word_list(field_name: str) -> Handler:
    def convert(b: UnitBuilder, d: Directive) -> None:
        items = b.fields.setdefault(field_name, [])
        if not d.value:
            items.clear()
            return
        for word in b.words(d) or []:
            if word not in items:
                items.append(word)
    return convert


def _capabilities(b: UnitBuilder, d: Directive) -> None:
    if d.value.startswith("~"):
        b.unmapped(d.line, str(d), "an inverted capability set cannot be expressed; list the capabilities")
        return
    _word_list("ambient_capabilities")(b, d)


def _success_status(b: UnitBuilder, d: Directive) -> None:
    statuses = b.fields.setdefault("success_exit_status", [0])
    for word in b.words(d) or []:
        try:
            status = int(word) if word.isdigit() else units.signal_name(units.parse_signal(word))
        except ValueError:
            b.error(d.line, f"SuccessExitStatus=: {word!r} is neither an exit code nor a signal")
            continue
        if status not in statuses:
            statuses.append(status)


def _watchdog(b: UnitBuilder, d: Directive) -> None:
    _duration("watchdog_sec")(b, d)


def _memory(path: tuple[str, ...]) -> Handler:
    def convert(b: UnitBuilder, d: Directive) -> None:
        if d.value.endswith("%"):
            b.unmapped(d.line, str(d), "a share of physical memory cannot be expressed; give a size")
            return
        try:
            size = parse_size(d.value)
        except ValueError as exc:
            b.error(d.line, f"{d.key}=: {exc}")
            return
        if size != INFINITY:
            b.set_nested(("resources",) + path, format_size(int(size)))
    return convert


def _cpu_quota(b: UnitBuilder, d: Directive) -> None:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)%", d.value)
    if not d.value:
        return
    if match is None or float(match.group(1)) <= 0:
        b.error(d.line, f"CPUQuota={d.value}: expected a percentage like 150%")
        return
    b.set_nested(("resources", "limits", "cpu"), f"{round(float(match.group(1)) * 10)}m")


def _cpu_weight(b: UnitBuilder, d: Directive) -> None:
    if not d.value.isdigit() or not 1 <= int(d.value) <= 10000:
        b.unmapped(d.line, str(d), "only a weight of 1-10000 maps to requests.cpu")
        return
    b.set_nested(("resources", "requests", "cpu"), f"{int(d.value) * 10}m")


def _tasks_max(b: UnitBuilder, d: Directive) -> None:
    if d.value == "infinity":
        return
    if not d.value.isdigit() or int(d.value) < 1:
        b.unmapped(d.line, str(d), "only a number of tasks maps to limits.pids")
        return
    b.set_nested(("resources", "limits", "pids"), int(d.value))


SERVICE_MAP: dict[str, tuple[str, Handler]] = {
    "Type": ("process_type: simple/exec → simple, forking, oneshot, notify/notify-reload → notify, dbus/idle → simple (reported)", _type),
    "ExecStart": ("command + args", _exec_start),
    "User": ("user", _user),
    "Group": ("group", _user),
    "WorkingDirectory": ("working_dir (a leading - is dropped and reported; ~ is reported)", _working_dir),
    "Environment": ("env", _environment),
    "EnvironmentFile": ("environment_file (the - prefix is kept: ignore if missing)", _environment_file),
    "Restart": ("restart: no → never, always, on-success, on-failure; on-abnormal/on-abort/on-watchdog → on-failure (reported)", _restart),
    "RestartSec": ("restart_sec", _duration("restart_sec")),
    "RestartSteps": ("backoff: exponential", _restart_steps),
    "RestartMaxDelaySec": ("restart_max_delay", _duration("restart_max_delay")),
    "StartLimitBurst": ("start_limit_burst", _start_limit_burst),
    "StartLimitInterval": ("start_limit_interval", _duration("start_limit_interval")),
    "StartLimitIntervalSec": ("start_limit_interval", _duration("start_limit_interval")),
    "TimeoutStartSec": ("timeout_start_sec", _duration("timeout_start_sec")),
    "TimeoutStopSec": ("timeout_stop_sec (0/infinity → 1h, reported)", _stop_timeout),
    "TimeoutSec": ("timeout_start_sec + timeout_stop_sec", _timeout_both),
    "KillMode": ("kill_mode: control-group, process, mixed (none is reported)", _kill_mode),
    "KillSignal": ("kill_signal", _kill_signal),
    "ExecReload": ("reload_signal, from `kill -SIGNAL $MAINPID` (any other reload command is reported)", _exec_reload),
    "PIDFile": ("pidfile (a relative path is under /run)", _pidfile),
    "RuntimeDirectory": ("runtime_directory", _word_list("runtime_directory")),
    "AmbientCapabilities": ("ambient_capabilities", _capabilities),
    "SuccessExitStatus": ("success_exit_status", _success_status),
    "WatchdogSec": ("watchdog_sec", _watchdog),
    "MemoryMax": ("resources.limits.memory (512M → 512Mi; infinity → no limit; a percentage is reported)", _memory(("limits", "memory"))),
    "MemoryLimit": ("resources.limits.memory", _memory(("limits", "memory"))),
    "MemoryLow": ("resources.requests.memory", _memory(("requests", "memory"))),
    "CPUQuota": ("resources.limits.cpu", _cpu_quota),
    "CPUWeight": ("resources.requests.cpu (weight/100 cores)", _cpu_weight),
    "TasksMax": ("resources.limits.pids", _tasks_max),
}


# ------------------------------------------------------------------ [Unit] and [Install]

def _description(b: UnitBuilder, d: Directive) -> None:
    b.set("description", b.expand(d, d.value))


def _dependency(b: UnitBuilder, d: Directive) -> None:
    field_name = DEPENDENCIES[d.key]
    for word in b.words(d) or []:
        other = UnitName.parse(word)
        if other.suffix != "service":
            why = _non_service_reason(other.suffix)
            b.unmapped(d.line, f"{d.key}={word}", why)
            continue
        b.link(field_name, other.process_name, d.line, f"{d.key}={word}")


def _non_service_reason(suffix: str) -> str:
    return {
        "target": "targets are not modelled: the daemon starts once the host is up",
        "socket": "our sockets listen as soon as their process is configured",
        "mount": "mounts are not managed; use condition_path_exists to wait for a path",
        "slice": "use a group's resources to bound several processes together",
    }.get(suffix, f".{suffix} units are not managed")


def _condition(b: UnitBuilder, d: Directive) -> None:
    _path_list(b, d, "condition_path_exists", "|!")


def _wanted_by(b: UnitBuilder, d: Directive) -> None:
    for word in b.words(d) or []:
        if word in BOOT_TARGETS:
            b.set("auto_start", True)
        else:
            b.unmapped(d.line, f"{d.key}={word}", "only the boot targets map to auto_start: true")


UNIT_MAP: dict[str, tuple[str, Handler]] = {
    "Description": ("description", _description),
    "ConditionPathExists": ("condition_path_exists", _condition),
    "StartLimitBurst": ("start_limit_burst", _start_limit_burst),
    "StartLimitIntervalSec": ("start_limit_interval", _duration("start_limit_interval")),
    **{key: (field_name, _dependency) for key, field_name in DEPENDENCIES.items()},
}
INSTALL_MAP: dict[str, tuple[str, Handler]] = {
    "WantedBy": ("auto_start: true (multi-user, default or graphical target)", _wanted_by),
    "RequiredBy": ("auto_start: true (multi-user, default or graphical target)", _wanted_by),
}

NO_EQUIVALENT: dict[str, str] = {
    "ExecStartPre": "no commands run before the start; fold it into a wrapper or a oneshot process ordered before this one",
    "ExecStartPost": "no commands run after the start; use a oneshot process ordered after this one",
    "ExecCondition": "use condition_path_exists, or a oneshot process this one requires",
    "ExecStop": "the stop sequence is kill_signal, then SIGKILL after timeout_stop_sec",
    "ExecStopPost": "no commands run after the stop",
    "RemainAfterExit": "a oneshot process is 'exited' after it ran; dependants treat that as up",
    "GuessMainPID": "the main PID of a forking service is read from pidfile or its cgroup",
    "RuntimeDirectoryMode": "runtime directories are created 0755",
    "RuntimeDirectoryPreserve": "runtime directories are removed on stop",
    "StateDirectory": "state directories are not created; create them at install time",
    "CacheDirectory": "cache directories are not created; create them at install time",
    "LogsDirectory": "log directories are not created; create them at install time",
    "ConfigurationDirectory": "configuration directories are not created",
    "UMask": "the file mode mask is inherited from the daemon",
    "Nice": "scheduling priority is not set; wrap the command with nice",
    "IOSchedulingClass": "I/O scheduling is not set; wrap the command with ionice",
    "IOSchedulingPriority": "I/O scheduling is not set; wrap the command with ionice",
    "OOMScoreAdjust": "the OOM score is not adjusted",
    "DynamicUser": "users are not allocated on the fly; create a system user and set user",
    "SupplementaryGroups": "the user's own supplementary groups are set, no others",
    "SendSIGKILL": "a stop always ends with SIGKILL after timeout_stop_sec",
    "SendSIGHUP": "no SIGHUP follows the stop signal",
    "FinalKillSignal": "the final kill is SIGKILL",
    "RestartKillSignal": "a restart stops with kill_signal",
    "RestartPreventExitStatus": "every failure status restarts under restart: on-failure",
    "RestartForceExitStatus": "list those statuses in success_exit_status with restart: on-success, or restart: always",
    "StartLimitAction": "hitting the start limit marks the process crashed; the host is not acted on",
    "FailureAction": "the host is not acted on", "SuccessAction": "the host is not acted on",
    "NotifyAccess": "notify messages are accepted from every process of the service",
    "StandardOutput": "output is captured (see log)", "StandardError": "output is captured (see log)",
    "StandardInput": "stdin is /dev/null", "SyslogIdentifier": "output is captured, not sent to syslog",
    "TTYPath": "no terminal is attached", "PAMName": "no PAM session is opened",
    "KeyringMode": "no kernel keyring is set up", "Slice": "use a group's resources for a shared bound",
    "Delegate": "the process's cgroup is not delegated to it",
    "MemoryHigh": "there is no throttling threshold; limits.memory is a hard limit",
    "MemorySwapMax": "swap is not limited", "IOWeight": "I/O is not weighted",
    "CPUAffinity": "CPU affinity is not set; wrap the command with taskset",
    "Documentation": "documentation links are not kept; put them in the description if wanted",
    "Alias": "a process has one name", "Also": "install-time units are not modelled",
    "DefaultInstance": "a template's instances are listed in its instances: field",
    "OnFailure": "no unit is triggered on failure; watch the event stream",
    "OnSuccess": "no unit is triggered on success; watch the event stream",
    "Requisite": "requires pulls the other process in; there is no 'must already run' check",
    "DefaultDependencies": "there are no implicit dependencies",
    "JoinsNamespaceOf": _SANDBOXING, "PrivateTmp": _SANDBOXING, "PrivateDevices": _SANDBOXING,
    "PrivateNetwork": _SANDBOXING, "PrivateUsers": _SANDBOXING, "ProtectHome": _SANDBOXING,
    "ProtectSystem": _SANDBOXING, "ReadWritePaths": _SANDBOXING, "ReadOnlyPaths": _SANDBOXING,
    "ReadWriteDirectories": _SANDBOXING, "ReadOnlyDirectories": _SANDBOXING,
    "InaccessiblePaths": _SANDBOXING, "ExecPaths": _SANDBOXING, "NoExecPaths": _SANDBOXING,
    "CapabilityBoundingSet": _SANDBOXING, "NoNewPrivileges": _SANDBOXING,
    "LockPersonality": _SANDBOXING, "MemoryDenyWriteExecute": _SANDBOXING,
    "RemoveIPC": _SANDBOXING, "SystemCallFilter": _SANDBOXING,
    "SystemCallArchitectures": _SANDBOXING, "SystemCallErrorNumber": _SANDBOXING,
    "RootDirectory": _SANDBOXING, "RootImage": _SANDBOXING, "BindPaths": _SANDBOXING,
    "BindReadOnlyPaths": _SANDBOXING, "TemporaryFileSystem": _SANDBOXING,
}
_PREFIX_REASONS = (
    ("Protect", _SANDBOXING), ("Restrict", _SANDBOXING), ("Private", _SANDBOXING),
    ("Limit", "rlimits other than those resources sets are not applied; wrap the command with prlimit"),
    ("Condition", "only ConditionPathExists has an equivalent (condition_path_exists)"),
    ("Assert", "assertions are not checked; condition_path_exists skips instead of failing"),
    ("IP", "network filtering is not provided"), ("Socket", "use a .socket unit with ListenStream"),
)


def no_equivalent_reason(key: str) -> str:
    """Why ``key`` is not converted (known directive, or generically unsupported)."""
    if key in NO_EQUIVALENT:
        return NO_EQUIVALENT[key]
    for prefix, why in _PREFIX_REASONS:
        if key.startswith(prefix):
            return why
    return "not supported by dd-procmgr import"


# ------------------------------------------------------------------ driver

def convert_units(sources: Sequence[SourceFile], environ: Mapping[str, str] | None = None) -> Conversion:
    """Every unit converted; dependencies kept where the other unit is imported too.

    ``environ`` is unused: unit files never refer to the importing shell's environment.
    """
    return resolve_links(convert_unit(source) for source in sources)


def convert_unit(source: SourceFile) -> FileConversion:
    """One ``.service`` (a process) or ``.socket`` (a socket entry) file."""
    out = FileConversion(source.path)
    unit = UnitName.parse(source.path.rsplit("/", 1)[-1])
    if unit.suffix not in ("service", "socket"):
        out.findings.append(invalid(source.path, None, f"a .{unit.suffix} unit cannot be imported: "
                                                       "only .service and .socket units have an equivalent"))
        return out
    try:
        directives = parse_unit(source.text)
    except UnitSyntaxError as exc:
        out.findings.append(invalid(source.path, exc.line, str(exc)))
        return out
    builder = _builder(out, unit)
    _apply(builder, directives, _tables(unit.suffix))
    (_finish_service if unit.suffix == "service" else finish_socket)(builder)
    if not any(f.error for f in out.findings):
        builder.commit()
    return out


def _builder(out: FileConversion, unit: UnitName) -> UnitBuilder:
    builder = UnitBuilder(out, "process" if unit.suffix == "service" else "socket", unit.process_name)
    builder.unit, builder.exec_start, builder.service = unit, [], unit.process_name
    return builder


def _tables(suffix: str) -> dict[str, dict[str, tuple[str, Handler]]]:
    if suffix == "service":
        return {"Unit": UNIT_MAP, "Service": SERVICE_MAP, "Install": INSTALL_MAP}
    return {"Socket": SOCKET_MAP}


def _apply(b: UnitBuilder, directives: list[Directive], tables: dict[str, dict[str, tuple[str, Handler]]]) -> None:
    for d in directives:
        table = tables.get(d.section)
        if table is not None and d.key in table:
            table[d.key][1](b, d)
        elif table is None and d.section in ("Unit", "Install") and b.kind == "socket":
            b.unmapped(d.line, str(d), "a socket entry holds only its listening settings")
        elif table is None and d.section not in ("Unit", "Service", "Install", "Socket"):
            b.unmapped(d.line, str(d), f"the [{d.section}] section is not known to the importer")
        else:
            b.unmapped(d.line, str(d), no_equivalent_reason(d.key))


def _finish_service(b: UnitBuilder) -> None:
    finish_exec_start(b)
    if b.fields.get("restart", "never") != "never" and "backoff" not in b.fields:
        b.fields["backoff"] = "fixed"
        b.fields.setdefault("restart_sec", "100ms")
    if b.fields.get("success_exit_status") == [0]:
        del b.fields["success_exit_status"]
    for key in ("env", "environment_file", "runtime_directory", "ambient_capabilities",
                "condition_path_exists"):
        if key in b.fields and not b.fields[key]:
            del b.fields[key]
    b.fields = _command_first(b.fields)


def _command_first(fields: dict[str, Any]) -> dict[str, Any]:
    head: dict[str, Any] = {key: fields[key] for key in ("command", "args") if key in fields}
    return {**head, **{k: v for k, v in fields.items() if k not in head}}
