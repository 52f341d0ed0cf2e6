"""PM2 ecosystem files (``apps: [...]``) -> our processes (SPEC §17).

``APP_MAP`` is the mapping table (reproduced in docs/migrating.md): key -> (what it
becomes, converter); other keys are reported with the reason from ``NO_EQUIVALENT``.
PM2's behaviour where it differs from our defaults is written out: it restarts on every
exit (``restart: always``) with a fixed delay, and a ``.js`` script runs under ``node``.
JSON is the input format; a ``.config.js`` is read only when it is a plain object literal.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from typing import Any, Callable, Mapping, Sequence

import yaml

from .builder import EntryBuilder
from .result import Conversion, FileConversion, SourceFile, invalid, resolve_links
from .systemd_syntax import format_duration

Handler = Callable[[EntryBuilder, Any, int | None], None]
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
INTERPRETERS = {".js": "node", ".mjs": "node", ".cjs": "node", ".py": "python3", ".sh": "bash",
                ".rb": "ruby", ".pl": "perl", ".php": "php"}
EXP_BACKOFF_CAP = "15s"
"""PM2 caps its exponential restart delay at 15 s."""
OFF_MEANS_OURS = ("watch", "wait_ready", "shutdown_with_message")
"""Keys whose ``false`` is what we do anyway: not reported."""
JS_HINT = ("convert it to JSON first: node -e \"console.log(JSON.stringify(require('./FILE'), null, 2))\""
           " > ecosystem.json")


def _ms(b: EntryBuilder, key: str, value: Any, line: int | None) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        b.error(line, f"{key}: expected milliseconds as a number, got {value!r}")
        return None
    return format_duration(int(value) / 1000)


def _string(b: EntryBuilder, key: str, value: Any, line: int | None) -> str | None:
    if not isinstance(value, str) or not value:
        b.error(line, f"{key}: expected a non-empty string, got {value!r}")
        return None
    return value


def _cwd(b: EntryBuilder, value: Any, line: int | None) -> None:
    if (path := _string(b, "cwd", value, line)) is not None:
        b.set("working_dir", path)


def _env(b: EntryBuilder, value: Any, line: int | None) -> None:
    if not isinstance(value, dict):
        b.error(line, f"env: expected an object of variables, got {value!r}")
        return
    env = {}
    for key, item in value.items():
        if isinstance(item, (dict, list)) or item is None:
            b.error(line, f"env.{key}: expected a string, number or boolean")
            continue
        env[key] = item if isinstance(item, str) else json.dumps(item)
    b.set("env", env)


def _instances(b: EntryBuilder, value: Any, line: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        b.unmapped(line, f"instances={value}", "only a fixed number of instances maps to replicas; "
                                               "'max', 0 and -1 depend on the CPU count")
    elif value > 1:
        b.set("replicas", value)


def _autorestart(b: EntryBuilder, value: Any, line: int | None) -> None:
    if not isinstance(value, bool):
        b.error(line, f"autorestart: expected true or false, got {value!r}")
        return
    b.set("restart", "always" if value else "never")


def _max_memory(b: EntryBuilder, value: Any, line: int | None) -> None:
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)B?\s*", str(value), re.IGNORECASE)
    if match is None:
        b.error(line, f"max_memory_restart: expected a size like 300M, got {value!r}")
        return
    suffix = {"K": "Ki", "M": "Mi", "G": "Gi"}.get(match.group(2).upper(), "")
    b.set_nested(("resources", "limits", "memory"), f"{match.group(1)}{suffix}" if suffix else int(match.group(1)))
    b.approx(line, f"max_memory_restart={value}", "resources.limits.memory: the memory is limited (an OOM kill "
                                                  "then counts as a failure and restarts it) rather than watched")


def _restart_delay(b: EntryBuilder, value: Any, line: int | None) -> None:
    if (delay := _ms(b, "restart_delay", value, line)) is not None:
        b.set("restart_sec", delay)
        b.fields.setdefault("backoff", "fixed")


def _exp_backoff(b: EntryBuilder, value: Any, line: int | None) -> None:
    if (delay := _ms(b, "exp_backoff_restart_delay", value, line)) is not None:
        b.set("backoff", "exponential")
        b.set("restart_sec", delay)
        b.set("restart_max_delay", EXP_BACKOFF_CAP)


def _max_restarts(b: EntryBuilder, value: Any, line: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        b.error(line, f"max_restarts: expected a whole number, got {value!r}")
        return
    b.set("start_limit_burst", value + 1)
    b.approx(line, f"max_restarts={value}", f"start_limit_burst: {value + 1} starts within start_limit_interval "
                                            "(PM2 counts only restarts quicker than min_uptime)")


def _kill_timeout(b: EntryBuilder, value: Any, line: int | None) -> None:
    if (delay := _ms(b, "kill_timeout", value, line)) is not None:
        b.set("timeout_stop_sec", delay)


def _user(field_name: str) -> Handler:
    def convert(b: EntryBuilder, value: Any, line: int | None) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if (text := _string(b, field_name, value, line)) is not None:
            b.set("user" if field_name == "uid" else "group", text)
    return convert


def _log_file(b: EntryBuilder, value: Any, line: int | None) -> None:
    path = _string(b, "out_file", value, line)
    if path is None:
        return
    if not path.startswith("/"):
        b.error(line, f"log file {path!r}: the path must be absolute")
    elif b.fields.get("log", {}).get("file", path) != path:
        b.unmapped(line, f"log file {path}", "one log file per process holds both streams")
    else:
        b.set_nested(("log", "file"), path)


def _stop_exit_codes(b: EntryBuilder, value: Any, line: int | None) -> None:
    codes = value if isinstance(value, list) else [value]
    if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in codes):
        b.error(line, f"stop_exit_codes: expected exit codes 0-255, got {value!r}")
        return
    b.set("success_exit_status", sorted({0, *codes}))
    b.set("restart", "on-failure")


def _handled_elsewhere(b: EntryBuilder, value: Any, line: int | None) -> None:
    """name, script, args, interpreter and interpreter_args form the command together."""


APP_MAP: dict[str, tuple[str, Handler]] = {
    "name": ("the process name (default: the script's base name)", _handled_elsewhere),
    "script": ("command, or the first argument of the interpreter", _handled_elsewhere),
    "args": ("args (a string is split like a shell)", _handled_elsewhere),
    "interpreter": ("command (node for .js, python3 for .py ...; 'none' runs the script)", _handled_elsewhere),
    "interpreter_args": ("args before the script", _handled_elsewhere),
    "node_args": ("args before the script", _handled_elsewhere),
    "cwd": ("working_dir (default: the file's directory)", _cwd),
    "env": ("env", _env),
    "instances": ("replicas", _instances),
    "autorestart": ("restart: always / never (PM2's default true is written out)", _autorestart),
    "max_memory_restart": ("resources.limits.memory", _max_memory),
    "restart_delay": ("restart_sec with backoff: fixed", _restart_delay),
    "exp_backoff_restart_delay": ("backoff: exponential, restart_sec, restart_max_delay 15s", _exp_backoff),
    "max_restarts": ("start_limit_burst (restarts + 1)", _max_restarts),
    "kill_timeout": ("timeout_stop_sec", _kill_timeout),
    "uid": ("user", _user("uid")),
    "gid": ("group", _user("gid")),
    "out_file": ("log.file", _log_file),
    "error_file": ("log.file (when the same file)", _log_file),
    "log_file": ("log.file", _log_file),
    "stop_exit_codes": ("success_exit_status, restart: on-failure", _stop_exit_codes),
}

NO_EQUIVALENT: dict[str, str] = {
    "watch": "files are not watched; restart with `dd-procmgr restart` from your deploy step",
    "ignore_watch": "files are not watched", "watch_delay": "files are not watched",
    "cron_restart": "there is no scheduler; run `dd-procmgr restart NAME` from cron",
    "min_uptime": "consecutive failures reset once a run outlives restart_max_delay",
    "exec_mode": "there is no cluster mode: each replica is its own process and must bind its own port",
    "wait_ready": "process.send('ready') is not read; use process_type: notify or a health_check",
    "listen_timeout": "see wait_ready", "shutdown_with_message": "stops are signals",
    "merge_logs": "every instance has its own log", "log_date_format": "log lines are timestamped by the daemon",
    "combine_logs": "every instance has its own log", "time": "log lines are timestamped by the daemon",
    "source_map_support": "node flags go in interpreter_args", "vizion": "no version metadata is kept",
    "namespace": "use groups: to gather processes", "increment_var": "use DD_PM_INSTANCE, set for each replica",
    "instance_var": "each replica gets DD_PM_INSTANCE",
    "treekill": "the whole cgroup is stopped (kill_mode: control-group)",
    "pid_file": "PM2's own pid file is not written",
}


def no_equivalent_reason(key: str) -> str:
    if key in NO_EQUIVALENT:
        return NO_EQUIVALENT[key]
    if key.startswith("env_"):
        return "PM2's per-environment variables (--env) are not modelled; merge the set you deploy into env"
    return "not supported by dd-procmgr import"


# ------------------------------------------------------------------ reading the file

class EcosystemError(ValueError):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def load_ecosystem(source: SourceFile) -> list[Any]:
    """The ``apps`` list of an ecosystem file; raises ``EcosystemError`` with a line."""
    text = source.text
    if source.path.endswith((".js", ".cjs", ".mjs")):
        text = _object_literal(source)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EcosystemError(f"not valid JSON: {exc.msg}", exc.lineno) from None
    apps = doc.get("apps") if isinstance(doc, dict) else doc
    if not isinstance(apps, list) or not apps:
        raise EcosystemError("expected an object with a non-empty \"apps\" list", 1)
    return apps


def _object_literal(source: SourceFile) -> str:
    """The JSON of a ``module.exports = {...}`` file that is already plain data, else an error."""
    body = re.sub(r"^\s*module\.exports\s*=\s*", "", source.text.strip(), count=1).rstrip(";\n ")
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, (dict, list)):
        name = posixpath.basename(source.path)
        raise EcosystemError("a JavaScript ecosystem file can only be read when it is a plain object; "
                             + JS_HINT.replace("FILE", name), 1)
    return json.dumps(data)


def app_lines(text: str) -> list[dict[str, int]]:
    """Best-effort line of each key of each app (JSON is read as YAML for its marks)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return []
    if isinstance(node, yaml.MappingNode):
        node = next((v for k, v in node.value if k.value == "apps"), None)
    if not isinstance(node, yaml.SequenceNode):
        return []
    return [{k.value: k.start_mark.line + 1 for k, _ in item.value} | {"": item.start_mark.line + 1}
            for item in node.value if isinstance(item, yaml.MappingNode)]


# ------------------------------------------------------------------ driver

def convert_files(sources: Sequence[SourceFile], environ: Mapping[str, str] | None = None) -> Conversion:
    return resolve_links(convert_file(source) for source in sources)


def convert_file(source: SourceFile) -> FileConversion:
    out = FileConversion(source.path)
    try:
        apps = load_ecosystem(source)
    except EcosystemError as exc:
        out.findings.append(invalid(source.path, exc.line, str(exc)))
        return out
    lines = app_lines(source.text)
    for index, app in enumerate(apps):
        _app(out, app, lines[index] if index < len(lines) else {}, index)
    return out


def _app(out: FileConversion, app: Any, lines: dict[str, int], index: int) -> None:
    line = lines.get("")
    if not isinstance(app, dict) or not isinstance(app.get("script"), str) or not app["script"]:
        out.findings.append(invalid(out.source, line, f"apps[{index}]: an app needs a \"script\""))
        return
    name = app.get("name") or posixpath.splitext(posixpath.basename(app["script"]))[0]
    b = EntryBuilder(out, "process", str(name))
    if not isinstance(name, str) or not NAME.fullmatch(name):
        b.error(lines.get("name", line), f"apps[{index}]: {name!r} is not a valid process name "
                                         "(letters, digits, '_', '.', '@', '-')")
        return
    _command(b, app, lines)
    for key, value in app.items():
        if key in APP_MAP:
            APP_MAP[key][1](b, value, lines.get(key, line))
        elif value is False and key in OFF_MEANS_OURS:
            continue
        else:
            b.unmapped(lines.get(key, line), f"{key}={json.dumps(value)}", no_equivalent_reason(key))
    _defaults(b, out.source)
    b.commit()


def _command(b: EntryBuilder, app: dict[str, Any], lines: dict[str, int]) -> None:
    script = app["script"]
    args = _arg_list(b, app.get("args", []), lines.get("args"), "args")
    interpreter = app.get("interpreter") or INTERPRETERS.get(posixpath.splitext(script)[1])
    if interpreter in (None, "none"):
        command, head = script, []
    else:
        extra = app.get("interpreter_args", app.get("node_args", []))
        command = interpreter
        head = _arg_list(b, extra, lines.get("interpreter_args"), "interpreter_args") + [script]
    b.set("command", command)
    if head + args:
        b.set("args", head + args)


def _arg_list(b: EntryBuilder, value: Any, line: int | None, key: str) -> list[str]:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            b.error(line, f"{key}: cannot split {value!r}: {exc}")
            return []
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    b.error(line, f"{key}: expected a string or a list of strings, got {value!r}")
    return []


def _defaults(b: EntryBuilder, source: str) -> None:
    """PM2's behaviour where ours differs: restart on every exit, cwd = the file's directory."""
    b.fields.setdefault("restart", "always")
    b.fields.setdefault("auto_start", True)
    if "working_dir" not in b.fields and "/" in source:
        b.fields["working_dir"] = posixpath.dirname(source)
    head: dict[str, Any] = {key: b.fields[key] for key in ("command", "args") if key in b.fields}
    b.fields = {**head, **{k: v for k, v in b.fields.items() if k not in head}}
