"""Command-line flags for process config fields, and their translation to a config mapping.

One table (``FIELD_FLAGS``) names every flag of ``create`` and ``update``, the config
field (SPEC §2.3, nested for ``health_check``, ``resources``, ``log``) it sets and how
its text is read. ``changes_from_options`` turns parsed option values into exactly
the mapping a YAML file would hold, so the daemon validates CLI input with the same
code and messages as files. Values keep the user's units (``"500ms"``, ``"512M"``,
``"500m"``) and plain numbers become numbers, as YAML would load them.

Pure and free of click: the asyncclick layer builds its options from this table.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from trio_procmgr.vocabulary import (BACKOFF_KINDS, HEALTH_TYPES, KILL_MODES, LOG_MODES,
                                     PROCESS_TYPES, RESTART_POLICIES)


@dataclass(frozen=True)
class FieldFlag:
    """One flag. ``kind`` says how text becomes a value:

    text, choice, number (int/float or a unit string), int, bool (``--x/--no-x``),
    list (repeatable; ``split`` also splits on commas), env (repeatable KEY=VALUE),
    exit_status (repeatable code or signal name), argv (one shell-quoted string).
    """

    flags: tuple[str, ...]
    path: tuple[str, ...]
    kind: str
    help: str
    choices: tuple[str, ...] = ()
    split: bool = False
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flags[0].lstrip("-").replace("-", "_")


def _f(flags, path, kind, help, **kw) -> FieldFlag:
    flags = (flags,) if isinstance(flags, str) else tuple(flags)
    path = (path,) if isinstance(path, str) else tuple(path)
    return FieldFlag(flags, path, kind, help, **kw)


FIELD_FLAGS: tuple[FieldFlag, ...] = (
    _f("--description", "description", "text", "Free text shown by describe."),
    _f("--auto-start", "auto_start", "bool",
       "Start with the daemon / on config load (create: also start it now)."),
    _f("--process-type", "process_type", "choice", "How readiness is detected.",
       choices=PROCESS_TYPES),
    _f(("--restart-policy", "--restart"), "restart", "choice",
       "When to restart after an exit.", choices=RESTART_POLICIES),
    _f("--restart-sec", "restart_sec", "number", "Base restart delay (5, 500ms, 1m).",
       metavar="DURATION"),
    _f(("--restart-max-delay", "--restart-max"), "restart_max_delay", "number",
       "Backoff cap.", metavar="DURATION"),
    _f("--backoff", "backoff", "choice", "How the restart delay grows.", choices=BACKOFF_KINDS),
    _f("--start-limit-burst", "start_limit_burst", "int",
       "Starts allowed within --start-limit-interval."),
    _f("--start-limit-interval", "start_limit_interval", "number",
       "Window of the start limit (0 disables it).", metavar="DURATION"),
    _f("--timeout-start-sec", "timeout_start_sec", "number", "Readiness timeout.",
       metavar="DURATION"),
    _f("--timeout-stop-sec", "timeout_stop_sec", "number",
       "Grace between the stop signal and SIGKILL.", metavar="DURATION"),
    _f("--kill-signal", "kill_signal", "text", "First stop signal (SIGTERM, SIGINT, 15).",
       metavar="SIGNAL"),
    _f("--reload-signal", "reload_signal", "text",
       "Signal `dd-procmgr reload` sends to the main process (default SIGHUP).",
       metavar="SIGNAL"),
    _f("--kill-mode", "kill_mode", "choice", "Which processes the stop signal reaches.",
       choices=KILL_MODES),
    _f("--success-exit-status", "success_exit_status", "exit_status",
       "Exit code or signal counted as success (repeatable).", metavar="CODE|SIGNAL"),
    _f("--working-dir", "working_dir", "text", "Working directory.", metavar="DIR"),
    _f("--env", "env", "env", "Environment variable (repeatable).", metavar="KEY=VALUE"),
    _f(("--environment-file", "--env-file"), "environment_file", "list",
       "KEY=VALUE file; a leading '-' ignores a missing file (repeatable).", metavar="PATH"),
    _f("--user", "user", "text", "Run as this user (name or id)."),
    _f("--group", "group", "text", "Run as this group (name or id)."),
    _f("--pidfile", "pidfile", "text", "PID file (forking: where the main PID is read).",
       metavar="PATH"),
    _f("--condition-path-exists", "condition_path_exists", "list",
       "Path that must exist ('!path': must not, '|path': one of the | set) (repeatable).",
       metavar="PATH"),
    _f("--runtime-directory", "runtime_directory", "list",
       "Directory created under the runtime root on start (repeatable).", metavar="NAME"),
    _f(("--ambient-capability", "--ambient-capabilities"), "ambient_capabilities", "list",
       "Ambient capability such as CAP_NET_BIND_SERVICE (repeatable).", split=True,
       metavar="CAP"),
    _f("--requires", "requires", "list", "Hard dependency (repeatable, or a,b).",
       split=True, metavar="NAME"),
    _f("--wants", "wants", "list", "Soft dependency (repeatable, or a,b).", split=True,
       metavar="NAME"),
    _f("--binds-to", "binds_to", "list", "Stop whenever NAME stops (repeatable).",
       split=True, metavar="NAME"),
    _f("--part-of", "part_of", "list", "Stop/restart with NAME (repeatable).", split=True,
       metavar="NAME"),
    _f("--conflicts", "conflicts", "list", "Never run together with NAME (repeatable).",
       split=True, metavar="NAME"),
    _f("--after", "after", "list", "Start after NAME (repeatable).", split=True,
       metavar="NAME"),
    _f("--before", "before", "list", "Start before NAME (repeatable).", split=True,
       metavar="NAME"),
    _f("--wait-healthy", "wait_healthy", "bool",
       "Count 'requires' dependencies as up only once healthy."),
    _f("--health-check-type", ("health_check", "type"), "choice",
       "Probe kind (inferred from the endpoint/address/exec flag when omitted).",
       choices=HEALTH_TYPES),
    _f("--health-check-http-endpoint", ("health_check", "http_endpoint"), "text",
       "URL probed with GET.", metavar="URL"),
    _f("--health-check-expected-status", ("health_check", "expected_status"), "text",
       "Healthy HTTP statuses, e.g. 200-399.", metavar="RANGE"),
    _f("--health-check-tcp-address", ("health_check", "tcp_address"), "text",
       "HOST:PORT that must accept a connection.", metavar="HOST:PORT"),
    _f("--health-check-exec", ("health_check", "exec_command"), "argv",
       "Command whose exit 0 means healthy (shell-quoted, never run by a shell).",
       metavar="COMMAND"),
    _f("--health-check-interval", ("health_check", "interval"), "number",
       "Time between probes.", metavar="DURATION"),
    _f("--health-check-timeout", ("health_check", "timeout"), "number",
       "Probe timeout.", metavar="DURATION"),
    _f("--health-check-retries", ("health_check", "retries"), "int",
       "Consecutive failures before 'unhealthy'."),
    _f("--health-check-start-period", ("health_check", "start_period"), "number",
       "Grace after start during which failures are ignored.", metavar="DURATION"),
    _f("--health-check-restart-after", ("health_check", "restart_after"), "int",
       "Consecutive failures before kill and restart (0: never)."),
    _f("--ready-log-line", "ready_log_line", "text",
       "Regex: a simple process is ready once a line of its output matches.",
       metavar="REGEX"),
    _f("--watchdog-sec", "watchdog_sec", "number",
       "Watchdog interval (0 disables).", metavar="DURATION"),
    _f("--cpu-request", ("resources", "requests", "cpu"), "number",
       "CPU share (500m, 0.5, 2).", metavar="CPU"),
    _f("--cpu-limit", ("resources", "limits", "cpu"), "number",
       "CPU cap in cores (500m, 0.5, 2).", metavar="CPU"),
    _f("--memory-request", ("resources", "requests", "memory"), "number",
       "Memory soft floor (512M, 2G, bytes).", metavar="SIZE"),
    _f("--memory-limit", ("resources", "limits", "memory"), "number",
       "Memory hard limit (512M, 2G, bytes).", metavar="SIZE"),
    _f("--pids-limit", ("resources", "limits", "pids"), "int", "Maximum number of tasks."),
    _f("--log-mode", ("log", "mode"), "choice", "Output capture.", choices=LOG_MODES),
    _f("--log-file", ("log", "file"), "text", "Append output to this file.", metavar="PATH"),
    _f("--log-max-bytes", ("log", "max_bytes"), "number", "Rotate the log file at this size.",
       metavar="SIZE"),
    _f("--log-backups", ("log", "backups"), "int", "Rotated files kept."),
)

FLAGS_BY_DEST: dict[str, FieldFlag] = {flag.dest: flag for flag in FIELD_FLAGS}

_HEALTH_TARGETS = {"http_endpoint": "http", "tcp_address": "tcp", "exec_command": "exec"}


class FlagValueError(ValueError):
    """A flag's text cannot be read (the message names the flag and what was expected)."""


def number_or_text(text: str) -> int | float | str:
    """``5`` -> 5, ``0.5`` -> 0.5, ``500ms`` -> ``"500ms"``: what YAML would have loaded."""
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        value = float(stripped)
    except ValueError:
        return stripped
    if value != value or value in (float("inf"), float("-inf")):
        return stripped
    return value


def parse_env(items: list[str], flag: str = "--env") -> dict[str, str]:
    """``KEY=VALUE`` items to a mapping; later items win; the value may contain ``=``."""
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FlagValueError(f"{flag} {item!r}: expected KEY=VALUE")
        env[key] = value
    return env


def parse_exit_status(item: str) -> int | str:
    """``0`` -> 0, ``sigterm``/``TERM`` -> ``"SIGTERM"``."""
    text = item.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    upper = text.upper()
    return upper if upper.startswith("SIG") else "SIG" + upper


def _convert(flag: FieldFlag, raw: Any) -> Any:
    kind = flag.kind
    if kind in ("text", "choice", "bool", "int"):
        return raw
    if kind == "number":
        return number_or_text(str(raw))
    if kind == "list":
        items = list(raw)
        if flag.split:
            items = [part.strip() for item in items for part in item.split(",") if part.strip()]
        return items
    if kind == "env":
        return parse_env(list(raw), flag.flags[0])
    if kind == "exit_status":
        return [parse_exit_status(item) for item in raw]
    if kind == "argv":
        try:
            argv = shlex.split(raw)
        except ValueError as exc:
            raise FlagValueError(f"{flag.flags[0]} {raw!r}: {exc}") from None
        if not argv:
            raise FlagValueError(f"{flag.flags[0]}: expected a command, got nothing")
        return argv
    raise AssertionError(f"unknown flag kind {kind}")


def _given(flag: FieldFlag, raw: Any) -> bool:
    if raw is None:
        return False
    if flag.kind in ("list", "env", "exit_status"):
        return len(raw) > 0
    return True


def changes_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """The config mapping the given flags describe (flags left unset are absent).

    ``options`` maps a flag's ``dest`` to its parsed value (None / empty when not
    given); keys that are not field flags are ignored. Raises FlagValueError.
    """
    result: dict[str, Any] = {}
    for dest, raw in options.items():
        flag = FLAGS_BY_DEST.get(dest)
        if flag is None or not _given(flag, raw):
            continue
        node = result
        for key in flag.path[:-1]:
            node = node.setdefault(key, {})
        node[flag.path[-1]] = _convert(flag, raw)
    _infer_health_type(result)
    return result


def _infer_health_type(result: dict[str, Any]) -> None:
    check = result.get("health_check")
    if not check or "type" in check:
        return
    kinds = {kind for key, kind in _HEALTH_TARGETS.items() if key in check}
    if len(kinds) == 1:
        check["type"] = kinds.pop()


def create_spec(command: str, args: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """The config mapping of a new process: command, args and every flag given."""
    spec: dict[str, Any] = {"command": command}
    if args:
        spec["args"] = list(args)
    spec.update(changes_from_options(options))
    return spec


def resolve_relative_paths(spec: dict[str, Any], cwd: str) -> dict[str, Any]:
    """``command``, ``working_dir`` and ``environment_file`` made absolute against the
    caller's ``cwd`` (the daemon runs elsewhere): ``./spawn_workers.sh`` or ``bin/x``
    become paths; a bare name (``sleep``) stays a PATH lookup. A leading ``-`` on an
    environment file (ignore if missing) is kept. Returns a new mapping."""
    import os.path

    out = dict(spec)
    command = out.get("command")
    if isinstance(command, str) and "/" in command and not os.path.isabs(command):
        out["command"] = os.path.normpath(os.path.join(cwd, command))
    working_dir = out.get("working_dir")
    if isinstance(working_dir, str) and working_dir and not os.path.isabs(working_dir):
        out["working_dir"] = os.path.normpath(os.path.join(cwd, working_dir))
    files = out.get("environment_file")
    if isinstance(files, list):
        resolved = []
        for item in files:
            optional = isinstance(item, str) and item.startswith("-")
            path = item[1:] if optional else item
            if isinstance(path, str) and path and not os.path.isabs(path):
                path = os.path.normpath(os.path.join(cwd, path))
            resolved.append(("-" if optional else "") + path if isinstance(path, str) else item)
        out["environment_file"] = resolved
    return out


def command_changes(command: str | None, args: str | None) -> dict[str, Any]:
    """``update --command X --args '...'``: the new command and/or its argument list
    (``--args`` is one shell-quoted string; ``--args ''`` clears them)."""
    changes: dict[str, Any] = {}
    if command is not None:
        if not command.strip():
            raise FlagValueError("--command: expected an executable name or path, got nothing")
        changes["command"] = command
    if args is not None:
        try:
            changes["args"] = shlex.split(args)
        except ValueError as exc:
            raise FlagValueError(f"--args {args!r}: {exc}") from None
    return changes
