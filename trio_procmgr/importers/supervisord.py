"""supervisord ``[program:x]`` and ``[group:x]`` sections -> our processes and groups.

``PROGRAM_MAP`` is the mapping table (reproduced in docs/migrating.md): option -> (what it
becomes, converter). Options in ``NO_EQUIVALENT`` (and any other) are reported with a
reason. supervisord's own defaults that differ from ours (``autostart=true``,
``autorestart=unexpected``) are written out, so the converted process behaves the same.
The file is read with configparser, interpolation off: ``%(name)s`` expansions are
supervisord's, done here (``expand``), not configparser's.
"""

from __future__ import annotations

import configparser
import re
import shlex
from typing import Any, Callable, Mapping, Sequence

from .. import units
from .builder import EntryBuilder
from .result import Conversion, FileConversion, SourceFile, invalid, resolve_links, unmapped

Handler = Callable[["ProgramBuilder", str, int | None], None]
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
_EXPANSION = re.compile(r"%\(([A-Za-z_]+)\)([-#0 +]*\d*[sd])")
_SIZE_UNITS = {"KB": "Ki", "MB": "Mi", "GB": "Gi"}
DEFAULT_PRIORITY = 999


class ProgramBuilder(EntryBuilder):
    """An ``EntryBuilder`` that knows the values ``%(...)s`` expands to."""

    values: dict[str, object]
    environ: Mapping[str, str]
    option: str
    group_signals: dict[str, bool]

    def expand(self, text: str, line: int | None) -> str:
        """supervisord's expansions; ``%(process_num)`` becomes our instance ``%i``."""
        def one(match: re.Match[str]) -> str:
            key, fmt = match.group(1), "%" + match.group(2)
            if key == "process_num" and self.fields.get("replicas"):
                return "%i"
            if key.startswith("ENV_"):
                return self._env(key[4:], match.group(0), line)
            if key not in self.values:
                self.error(line, f"{self.option}: unknown expansion {match.group(0)}")
                return match.group(0)
            return fmt % self.values[key]
        return _EXPANSION.sub(one, text)

    def _env(self, name: str, text: str, line: int | None) -> str:
        if name not in self.environ:
            self.error(line, f"{self.option}: {text} refers to ${name}, which is not set here")
            return text
        self.approx(line, f"{self.option}={text}", f"expanded with this shell's ${name}")
        return self.environ[name]


# ------------------------------------------------------------------ option handlers

def _command(b: ProgramBuilder, value: str, line: int | None) -> None:
    try:
        words = shlex.split(b.expand(value, line))
    except ValueError as exc:
        b.error(line, f"command: cannot split {value!r}: {exc}")
        return
    if not words:
        b.error(line, "command is empty")
        return
    b.set("command", words[0])
    if words[1:]:
        b.set("args", words[1:])


def _text(field_name: str) -> Handler:
    def convert(b: ProgramBuilder, value: str, line: int | None) -> None:
        b.set(field_name, b.expand(value, line))
    return convert


def _boolean(b: ProgramBuilder, value: str, line: int | None) -> bool | None:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    b.error(line, f"{b.option}={value}: expected true or false")
    return None


def _autostart(b: ProgramBuilder, value: str, line: int | None) -> None:
    flag = _boolean(b, value, line)
    if flag is not None:
        b.set("auto_start", flag)


def _autorestart(b: ProgramBuilder, value: str, line: int | None) -> None:
    policy = {"unexpected": "on-failure"}.get(value.strip().lower())
    if policy is None:
        flag = _boolean(b, value, line)
        if flag is None:
            return
        policy = "always" if flag else "never"
    b.set("restart", policy)


def _exitcodes(b: ProgramBuilder, value: str, line: int | None) -> None:
    codes = [part.strip() for part in value.split(",") if part.strip()]
    if not all(code.isdigit() and int(code) <= 255 for code in codes):
        b.error(line, f"exitcodes={value}: expected exit codes 0-255 separated by commas")
        return
    b.set("success_exit_status", [int(code) for code in codes])


def _number(b: ProgramBuilder, value: str, line: int | None) -> int | None:
    if not value.strip().isdigit():
        b.error(line, f"{b.option}={value}: expected a whole number")
        return None
    return int(value)


def _startretries(b: ProgramBuilder, value: str, line: int | None) -> None:
    retries = _number(b, value, line)
    if retries is not None:
        b.set("start_limit_burst", retries + 1)
        b.approx(line, f"startretries={value}", f"start_limit_burst: {retries + 1} starts within start_limit_interval "
                                                "(counts every start, not only those that fail before startsecs)")


def _stopsignal(b: ProgramBuilder, value: str, line: int | None) -> None:
    try:
        b.set("kill_signal", units.signal_name(units.parse_signal(value)))
    except ValueError:
        b.error(line, f"stopsignal={value} is not a signal")


def _stopwaitsecs(b: ProgramBuilder, value: str, line: int | None) -> None:
    seconds = _number(b, value, line)
    if seconds is not None:
        b.set("timeout_stop_sec", f"{seconds}s")


def _group_kill(b: ProgramBuilder, value: str, line: int | None) -> None:
    flag = _boolean(b, value, line)
    if flag is None:
        return
    b.group_signals[b.option] = flag
    stop_group, kill_group = b.group_signals.get("stopasgroup"), b.group_signals.get("killasgroup")
    if stop_group:
        b.set("kill_mode", "process-group")
    elif kill_group:
        b.set("kill_mode", "mixed")
    else:
        b.set("kill_mode", "process")


def _environment(b: ProgramBuilder, value: str, line: int | None) -> None:
    try:
        pairs = parse_environment(b.expand(value, line))
    except ValueError as exc:
        b.error(line, f"environment: {exc}")
        return
    b.set("env", pairs)


def parse_environment(value: str) -> dict[str, str]:
    """``KEY="v, w",K2=v2`` -> dict, read the way supervisord reads it (shlex, ',' apart)."""
    lexer = shlex.shlex(value)
    lexer.wordchars += "/.+-():${}*~!@#^&[]<>?|"
    tokens = list(lexer)
    out: dict[str, str] = {}
    index = 0
    while index < len(tokens):
        key_eq_value = tokens[index:index + 3]
        if len(key_eq_value) != 3 or key_eq_value[1] != "=":
            raise ValueError(f"expected KEY=VALUE pairs separated by commas in {value!r}")
        out[key_eq_value[0]] = key_eq_value[2].strip("'\"")
        if index + 3 < len(tokens) and tokens[index + 3] != ",":
            raise ValueError(f"expected a comma after {key_eq_value[0]}= in {value!r}")
        index += 4
    return out


def _logfile(b: ProgramBuilder, value: str, line: int | None) -> None:
    path = b.expand(value, line)
    if path.upper() == "NONE":
        b.unmapped(line, f"{b.option}={value}", "output is always captured in memory; logs cannot be dropped per stream")
    elif path.upper() == "AUTO" or path == "":
        b.approx(line, f"{b.option}={value}", "the daemon's --log-dir decides where the log file goes")
    elif not path.startswith("/"):
        b.error(line, f"{b.option}={value}: the path must be absolute")
    elif b.option == "stderr_logfile" and b.fields.get("log", {}).get("file") not in (None, path):
        b.unmapped(line, f"{b.option}={value}", "one log file per process holds both streams")
    else:
        b.set_nested(("log", "file"), path)


def _log_max_bytes(b: ProgramBuilder, value: str, line: int | None) -> None:
    match = re.fullmatch(r"\s*(\d+)\s*(KB|MB|GB)?\s*", value, re.IGNORECASE)
    if match is None:
        b.error(line, f"{b.option}={value}: expected a size like 50MB")
        return
    suffix = _SIZE_UNITS.get((match.group(2) or "").upper(), "")
    b.set_nested(("log", "max_bytes"), f"{match.group(1)}{suffix}" if suffix else int(match.group(1)))


def _log_backups(b: ProgramBuilder, value: str, line: int | None) -> None:
    count = _number(b, value, line)
    if count is not None:
        b.set_nested(("log", "backups"), count)


def _redirect_stderr(b: ProgramBuilder, value: str, line: int | None) -> None:
    if _boolean(b, value, line):
        b.approx(line, f"redirect_stderr={value}", "both streams are always captured together; "
                                                    "`dd-procmgr logs --stream` tells them apart")


def _numprocs(b: ProgramBuilder, value: str, line: int | None) -> None:
    count = _number(b, value, line)
    if count is not None and count > 1:
        b.set("replicas", count)


def _handled_elsewhere(b: ProgramBuilder, value: str, line: int | None) -> None:
    """process_name, numprocs_start and priority are read when the program is set up."""


PROGRAM_MAP: dict[str, tuple[str, Handler]] = {
    "command": ("command + args (split like a shell)", _command),
    "directory": ("working_dir", _text("working_dir")),
    "user": ("user", _text("user")),
    "environment": ("env", _environment),
    "autostart": ("auto_start (supervisord's default true is written out)", _autostart),
    "autorestart": ("restart: always / never / on-failure (unexpected, the default)", _autorestart),
    "exitcodes": ("success_exit_status", _exitcodes),
    "startretries": ("start_limit_burst (retries + 1)", _startretries),
    "stopsignal": ("kill_signal", _stopsignal),
    "stopwaitsecs": ("timeout_stop_sec", _stopwaitsecs),
    "stopasgroup": ("kill_mode: process-group", _group_kill),
    "killasgroup": ("kill_mode: mixed (process when both are false)", _group_kill),
    "numprocs": ("replicas", _numprocs),
    "process_name": ("instance names NAME@1..N (%(process_num)s -> %i)", _handled_elsewhere),
    "numprocs_start": ("(see process_name)", _handled_elsewhere),
    "priority": ("after: the programs of the next lower priority", _handled_elsewhere),
    "redirect_stderr": ("(both streams are captured)", _redirect_stderr),
    "stdout_logfile": ("log.file", _logfile),
    "stderr_logfile": ("log.file (when the same file)", _logfile),
    "stdout_logfile_maxbytes": ("log.max_bytes", _log_max_bytes),
    "stdout_logfile_backups": ("log.backups", _log_backups),
}

NO_EQUIVALENT: dict[str, str] = {
    "startsecs": "a simple process is running once spawned; use a health_check with wait_healthy to gate dependants",
    "umask": "the file mode mask is inherited from the daemon",
    "serverurl": "children reach the daemon through its socket (DD_PM_SOCKET)",
    "stderr_logfile_maxbytes": "rotation is set once per process (log.max_bytes)",
    "stderr_logfile_backups": "rotation is set once per process (log.backups)",
    "stdout_capture_maxbytes": "there is no capture mode; use the event stream",
    "stderr_capture_maxbytes": "there is no capture mode; use the event stream",
    "stdout_events_enabled": "log lines are not events", "stderr_events_enabled": "log lines are not events",
    "stdout_syslog": "output is captured, not sent to syslog", "stderr_syslog": "output is captured, not sent to syslog",
}

SECTION_REASONS = {
    "include": "included files are not read; import them too",
    "supervisord": "settings of supervisord itself; see dd-procmgrd's flags",
    "supervisorctl": "settings of supervisorctl; see dd-procmgr's --socket",
    "unix_http_server": "the daemon's socket is set with dd-procmgrd --socket",
    "inet_http_server": "the web listener is set with dd-procmgrd --ws",
    "rpcinterface": "the RPC interface is fixed",
    "eventlistener": "there are no event listener processes; follow `dd-procmgr events` instead",
    "fcgi-program": "FastCGI sockets are not managed; use a socket entry",
}


def convert_files(sources: Sequence[SourceFile], environ: Mapping[str, str] | None = None) -> Conversion:
    """Every file converted; ``environ`` gives ``%(ENV_X)s`` its value."""
    return resolve_links(convert_file(source, environ or {}) for source in sources)


def convert_file(source: SourceFile, environ: Mapping[str, str]) -> FileConversion:
    out = FileConversion(source.path)
    parser = configparser.RawConfigParser(comment_prefixes=("#", ";"), inline_comment_prefixes=(";",),
                                          strict=True, interpolation=None)
    try:
        parser.read_string(source.text, source=source.path)
    except configparser.Error as exc:
        out.findings.append(invalid(source.path, _error_line(exc), _error_text(exc)))
        return out
    lines = line_index(source.text)
    priorities: dict[str, int] = {}
    for section in parser.sections():
        _section(out, parser, section, lines, environ, priorities)
    if not any(s.startswith("program:") for s in parser.sections()):
        out.findings.append(invalid(source.path, None, "no [program:NAME] section: there is nothing to run"))
    order_by_priority(out, priorities)
    return out


def _error_line(exc: configparser.Error) -> int | None:
    line = getattr(exc, "lineno", None)
    errors = getattr(exc, "errors", None)
    return line if line is not None else (errors[0][0] if errors else None)


def _error_text(exc: configparser.Error) -> str:
    text = exc.message.splitlines()[0] if hasattr(exc, "message") else str(exc)
    return text.replace("While reading from ", "").strip()


LineIndex = dict[tuple[str, str | None], int]
"""(section, option) -> line, and (section, None) -> the header's line."""


def line_index(text: str) -> LineIndex:
    """(section, option) -> line, and (section, None) -> the header's line."""
    index: LineIndex = {}
    section = ""
    for number, raw in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[([^\]]+)\]", raw)
        if header:
            section = header.group(1).strip()
            index[(section, None)] = number
            continue
        option = re.match(r"([^\s=:;#][^=:]*?)\s*[=:]", raw)
        if option and section:
            index.setdefault((section, option.group(1).strip().lower()), number)
    return index


def _section(out: FileConversion, parser: configparser.RawConfigParser, section: str,
             lines: LineIndex, environ: Mapping[str, str], priorities: dict[str, int]) -> None:
    kind, _, name = section.partition(":")
    line = lines.get((section, None))
    if kind == "program":
        _program(out, name, dict(parser.items(section)), section, lines, environ, priorities)
    elif kind == "group":
        _group(out, name, dict(parser.items(section)), section, lines)
    else:
        why = SECTION_REASONS.get(kind, "the section is not known to the importer")
        out.findings.append(unmapped(out.source, line, f"[{section}]", why))


def _program(out: FileConversion, name: str, options: dict[str, str], section: str, lines: LineIndex,
             environ: Mapping[str, str], priorities: dict[str, int]) -> None:
    b = ProgramBuilder(out, "process", name)
    header = lines.get((section, None))
    if not NAME.fullmatch(name):
        b.error(header, f"[{section}]: {name!r} is not a valid process name (letters, digits, '_', '.', '@', '-')")
        return
    here = out.source.rsplit("/", 1)[0] if "/" in out.source else "."
    b.values = {"program_name": name, "group_name": name, "here": here, "numprocs": 1,
                "process_num": int(options.get("numprocs_start", "0") or 0)}
    b.environ, b.group_signals = environ, {}
    if "numprocs" in options:
        b.option = "numprocs"
        _numprocs(b, options["numprocs"], lines.get((section, "numprocs")))
    for option, value in options.items():
        b.option = option
        line = lines.get((section, option))
        if option == "numprocs":
            continue
        if option in PROGRAM_MAP:
            PROGRAM_MAP[option][1](b, value, line)
        else:
            b.unmapped(line, f"{option}={value}", NO_EQUIVALENT.get(option, "not supported by dd-procmgr import"))
    _instance_names(b, options, section, lines)
    _priority(b, options, section, lines, priorities)
    _finish_program(b, header, section)


def _instance_names(b: ProgramBuilder, options: dict[str, str], section: str, lines: LineIndex) -> None:
    name_line = lines.get((section, "process_name"))
    if b.fields.get("replicas"):
        b.approx(name_line or lines.get((section, "numprocs")), f"numprocs={b.fields['replicas']}",
                 f"replicas: {b.fields['replicas']}, instances named {b.name}@1..{b.fields['replicas']} "
                 "(%(process_num)s counts from 1 and is %i)")
    elif "process_name" in options and b.expand(options["process_name"], name_line) != b.name:
        b.unmapped(name_line, f"process_name={options['process_name']}", f"the process is named {b.name!r}")


def _priority(b: ProgramBuilder, options: dict[str, str], section: str, lines: LineIndex,
              priorities: dict[str, int]) -> None:
    value = options.get("priority", str(DEFAULT_PRIORITY))
    if not value.strip().lstrip("-").isdigit():
        b.error(lines.get((section, "priority")), f"priority={value}: expected a number")
        return
    priorities[b.name] = int(value)


def _finish_program(b: ProgramBuilder, header: int | None, section: str) -> None:
    if "command" not in b.fields:
        b.error(header, f"[{section}] has no command=")
    b.fields.setdefault("auto_start", True)
    b.fields.setdefault("restart", "on-failure")
    head: dict[str, Any] = {key: b.fields[key] for key in ("command", "args") if key in b.fields}
    b.fields = {**head, **{k: v for k, v in b.fields.items() if k not in head}}
    b.commit()


def _group(out: FileConversion, name: str, options: dict[str, str], section: str, lines: LineIndex) -> None:
    b = EntryBuilder(out, "group", name)
    header = lines.get((section, None))
    programs = [p.strip() for p in options.get("programs", "").split(",") if p.strip()]
    if not NAME.fullmatch(name) or not programs:
        b.error(header, f"[{section}]: a group needs a valid name and programs=a,b")
        return
    for option, value in options.items():
        if option != "programs":
            b.unmapped(lines.get((section, option)), f"{option}={value}",
                       "a group orders its members by its members list and the members' own after:")
    b.set("members", [])
    b.commit()
    for program in programs:
        b.link("members", program, lines.get((section, "programs")), f"programs={program}", required=True)


def order_by_priority(out: FileConversion, priorities: dict[str, int]) -> None:
    """Each program starts after the programs of the next lower priority (lower first)."""
    levels = sorted(set(priorities.values()))
    for name, priority in priorities.items():
        rank = levels.index(priority)
        if rank == 0 or name not in out.processes:
            continue
        earlier = sorted(n for n, p in priorities.items() if p == levels[rank - 1])
        after = out.processes[name].setdefault("after", [])
        after.extend(n for n in earlier if n not in after)
