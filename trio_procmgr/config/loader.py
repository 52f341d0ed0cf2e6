"""From a configuration directory (or an RPC payload) to frozen specs (SPEC §2).

Layout of a directory:

- ``NAME.yaml`` / ``NAME.yml``: one process, its fields at top level (name = file stem);
- or a *map file*, holding only the top-level maps ``processes:``, ``sockets:``,
  ``groups:`` (name -> fields); mixing map keys and process fields in one file is an error;
- drop-ins ``NAME.yaml.d/*.yaml`` and ``NAME.d/*.yaml`` (``.yml`` too) merged over the
  process NAME, wherever it is defined, in lexical order of their file names: maps merge
  key by key, scalars and lists replace, and ``null`` restores a field's default;
- other files, dotfiles and other directories are ignored.

A single file may stand for a directory (``load_config_path``): it is read as if it were
the only file of one (no drop-ins), whatever its suffix.

Problems never raise here: each becomes a ``ConfigIssue`` (file, line, field, what was
expected), the faulty entry is left out, and the rest loads. A file that cannot be used
(not a regular file, a dangling symlink or a loop, unreadable, larger than
``MAX_FILE_BYTES``, invalid YAML, a duplicate key) is an error naming it, and defines
nothing; a drop-in that cannot be used leaves its process out. No Trio import: the
offline ``dd-procmgr validate`` uses this module. No module-level mutable state: each
call builds its own schemas, so loads may run in worker threads at once.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
import stat
from dataclasses import MISSING, Field, dataclass, fields
from types import MappingProxyType
from typing import Any, Mapping

from marshmallow import Schema, ValidationError

from .. import units
from ..errors import ConfigError
from ..planner import expand_instance_dependencies
from ..spec import (
    ConfigIssue, ConfigSet, GroupSpec, HealthCheckSpec, LogSpec, ProcessSpec, Quantities,
    ResourcesSpec, SocketSpec, SourceRef,
)
from . import templates as tpl
from .crosscheck import crosscheck
from .lint import command_warnings
from .resolve import ResolveError, check_runtime_fields, resolve_file_fields
from .schema import (
    NAME_EXPECTED, NAME_PATTERN, RUNTIME_ONLY_FIELDS, GroupSchema, LogField, LogMapSchema,
    ProcessSchema, SocketSchema, expected_at, field_at,
)
from .yamldoc import MAX_FILE_BYTES, LineMap, YamlDoc, YamlError, merge_over, read_yaml

DEFAULT_CONFIG_DIR = "/etc/pm/processes.d"
CONFIG_DIR_ENV = "DD_PM_CONFIG_DIR"
MAP_KEYS = ("processes", "sockets", "groups")
_KIND_OF_SECTION = {"processes": "process", "sockets": "socket", "groups": "group"}
_YAML_SUFFIXES = (".yaml", ".yml")
_DROPIN_SUFFIXES = (".yaml.d", ".yml.d", ".d")
_NAME = re.compile(NAME_PATTERN)
_MAX_MESSAGE = 400
_MAX_FIELD = 200


def _schemas() -> dict[str, Schema]:
    return {"process": ProcessSchema(), "socket": SocketSchema(), "group": GroupSchema()}


def resolve_config_dir(flag: str | None, environ: Mapping[str, str]) -> str | None:
    """``--config-dir`` (a directory or a file), else ``$DD_PM_CONFIG_DIR``, else
    /etc/pm/processes.d if present. Existence is checked by ``config_path_problem``."""
    if flag:
        return flag
    if environ.get(CONFIG_DIR_ENV):
        return environ[CONFIG_DIR_ENV]
    return DEFAULT_CONFIG_DIR if os.path.isdir(DEFAULT_CONFIG_DIR) else None


@dataclass
class _Entry:
    """One process, socket or group as written, before validation."""

    kind: str
    name: str
    raw: Any
    lines: LineMap
    file: str
    line: int | None
    source: SourceRef | None = None

    def locate(self, path: tuple[Any, ...]) -> tuple[str, int | None]:
        file, line = self.lines.locate(path)
        return (file or self.file, line if file else self.line)


def config_path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a configuration (a sentence), or None when it is a
    directory or a regular file. For the daemon's start-up check of an explicit path."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
        return None
    return f"{path}: neither a directory nor a regular file"


# ---------------------------------------------------------------- public API

def load_config_path(path: str | os.PathLike[str]) -> ConfigSet:
    """Everything a directory (or a single YAML file) defines that is valid, plus every
    problem found in it. A missing or unreadable path is one error and no process."""
    root = os.fspath(path)
    try:
        info = os.stat(root)
        if stat.S_ISREG(info.st_mode):
            return _load(os.path.dirname(root) or ".", [os.path.basename(root)], single=True)
        names = sorted(os.listdir(root))
    except OSError as exc:
        issue = ConfigIssue(file=root, message=f"cannot read the configuration directory or file: "
                                               f"{exc.strerror or exc}",
                            expected="a readable directory, or a YAML file")
        return ConfigSet(issues=(issue,))
    return _load(root, names, single=False)


def load_config_dir(path: str | os.PathLike[str]) -> ConfigSet:
    """``load_config_path``: kept under its old name, which callers use."""
    return load_config_path(path)


def _load(root: str, names: list[str], *, single: bool) -> ConfigSet:
    issues: list[ConfigIssue] = []
    files: list[str] = []
    schemas = _schemas()
    entries = _read_base_files(root, names, issues, files, single=single)
    if not single:
        _apply_dropins(root, names, entries["process"], issues, files)
    templates = _split_templates(root, names, entries["process"], issues, files)
    built = {kind: _build_all(entries[kind], issues, schemas) for kind in ("process", "socket", "group")}
    failed = set(entries["process"]) - set(built["process"])
    def locate(kind: str, name: str, fld: str | None) -> tuple[str, int | None]:
        return entries[kind][name].locate((fld,) if fld else ())

    checked = crosscheck(expand_instance_dependencies(built["process"]), built["socket"],
                         built["group"], failed, locate)
    checked.processes = {name: built["process"][name] for name in checked.processes}
    return ConfigSet(
        processes=MappingProxyType(dict(sorted(checked.processes.items()))),
        sockets=MappingProxyType(dict(sorted(checked.sockets.items()))),
        groups=MappingProxyType(dict(sorted(checked.groups.items()))),
        issues=tuple(sorted(issues + checked.issues, key=lambda i: (i.file, i.line or 0))),
        files=tuple(files),
        templates=MappingProxyType(dict(sorted(templates.items()))),
    )


def validate_dir(path: str | os.PathLike[str]) -> list[ConfigIssue]:
    """Every problem of a configuration directory (empty list: it is valid)."""
    return list(load_config_dir(path).issues)


def parse_process(name: str, raw: Mapping[str, Any], source: SourceRef = SourceRef()) -> ProcessSpec:
    """One process from plain values (RPC ``create``/``update``); raises ``ConfigError``.

    Accepts everything a file accepts plus the runtime-only ``transient``. The error's
    ``details["issues"]`` lists every problem as ``ConfigIssue.to_dict()``.
    """
    entry = _Entry("process", name, raw, LineMap(), str(source) if source.file is None else source.file,
                   source.line, source)
    result = _build(entry, ProcessSchema(), runtime=True)
    if isinstance(result, list):
        first = result[0]
        more = f" (and {len(result) - 1} more)" if len(result) > 1 else ""
        raise ConfigError(f"invalid process '{name}': {_describe(first)}{more}",
                          issues=[issue.to_dict() for issue in result])
    assert isinstance(result, ProcessSpec)  # what ProcessSchema builds
    return result


def spec_to_raw(spec: ProcessSpec) -> dict[str, Any]:
    """The plain (YAML/JSON-ready) fields of a spec; ``parse_process`` reads them back.

    Fields equal to their default are left out; durations are float seconds, sizes int
    bytes, signals names. ``transient`` is included when set. (A command is never split
    when read back: ``parse_process`` without a source file takes it as one word.)
    """
    raw: dict[str, Any] = {"command": spec.command}
    for name, default in _spec_defaults():
        value = getattr(spec, name)
        if name == "success_exit_status":
            if value != default or spec.success_exit_signals:
                raw[name] = sorted(value) + [units.signal_name(s) for s in sorted(spec.success_exit_signals)]
        elif value == default:
            continue
        elif name in ("kill_signal", "reload_signal"):
            raw[name] = units.signal_name(value)
        else:
            raw[name] = _plain(value)
    return raw


_SPEC_DEFAULTS: tuple[tuple[str, Any], ...] | None = None


def _spec_defaults() -> tuple[tuple[str, Any], ...]:
    """``(field name, default)`` of the ProcessSpec fields :func:`spec_to_raw` writes,
    each default made once (only ever compared with, never handed out): a spec's
    fingerprint, journalled at its first spawn, costs one pass over them."""
    global _SPEC_DEFAULTS
    if _SPEC_DEFAULTS is None:
        _SPEC_DEFAULTS = tuple(
            (f.name, _default(f)) for f in fields(ProcessSpec)
            if f.name not in ("name", "source", "command", "success_exit_signals"))
    return _SPEC_DEFAULTS


# ---------------------------------------------------------------- reading files

def _read_base_files(root: str, names: list[str], issues: list[ConfigIssue],
                     files: list[str], *, single: bool) -> dict[str, dict[str, _Entry]]:
    entries: dict[str, dict[str, _Entry]] = {"process": {}, "socket": {}, "group": {}}
    for name in names:
        path = os.path.join(root, name)
        if not single and (name.startswith(".") or not name.endswith(_YAML_SUFFIXES)):
            continue
        files.append(path)
        for entry in _entries_of_file(path, name, issues):
            table = entries[entry.kind]
            if entry.name in table:
                first = table[entry.name]
                issues.append(ConfigIssue(
                    file=entry.file, line=entry.line, field=None,
                    message=f"duplicate {entry.kind} name '{entry.name}': already defined at "
                            f"{first.file}{':' + str(first.line) if first.line else ''}; this one is ignored",
                    expected="each name defined once"))
                continue
            table[entry.name] = entry
    return entries


_FILE_EXPECTED = f"a readable regular UTF-8 YAML file of at most {MAX_FILE_BYTES} bytes"


def _file_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as a configuration file, before opening it (a FIFO
    would block, a directory or a symlink loop cannot be read)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        if os.path.islink(path):
            return f"dangling symlink (to {os.readlink(path)[:200]!r})"
        return f"cannot read file: {exc.strerror or exc}"
    if stat.S_ISDIR(info.st_mode):
        return "a directory, not a file"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size > MAX_FILE_BYTES:
        return f"too large: {info.st_size} bytes (at most {MAX_FILE_BYTES})"
    return None


def _read_text(path: str) -> str:
    """The file's text, never more than the cap (the size may change after the check)."""
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"too large: more than {MAX_FILE_BYTES} bytes")
    return data.decode("utf-8")


def _read_doc(path: str, issues: list[ConfigIssue]) -> YamlDoc | None:
    """The parsed file, or None after adding its issues (then it defines nothing)."""
    problem = _file_problem(path)
    try:
        text = _read_text(path) if problem is None else ""
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        problem = f"cannot read file: {str(exc)[:200]}"
    if problem is not None:
        issues.append(ConfigIssue(file=path, message=problem, expected=_FILE_EXPECTED))
        return None
    try:
        doc = read_yaml(text, path)
    except YamlError as exc:
        issues.append(ConfigIssue(file=path, line=exc.line, message=str(exc), expected="valid YAML"))
        return None
    for dup_path, line in doc.duplicates:
        issues.append(ConfigIssue(file=path, line=line, field=_dotted(dup_path)[:_MAX_FIELD],
                                  message="duplicate key: the file is not loaded",
                                  expected="each key once per map"))
    return None if doc.duplicates else doc


def _entries_of_file(path: str, filename: str, issues: list[ConfigIssue]) -> list[_Entry]:
    doc = _read_doc(path, issues)
    if doc is None:
        return []
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        issues.append(ConfigIssue(file=path, line=1, message=f"the file holds a {type(data).__name__}",
                                  expected="a map of process fields, or processes:/sockets:/groups: maps"))
        return []
    map_keys = [key for key in data if key in MAP_KEYS]
    if not map_keys:
        stem = filename.rsplit(".", 1)[0] if filename.endswith(_YAML_SUFFIXES) else filename
        return [_Entry("process", stem, data, doc.lines, path, None)]
    others = [key for key in data if key not in MAP_KEYS]
    if others:
        issues.append(ConfigIssue(
            file=path, line=doc.lines.locate((others[0],))[1], field=str(others[0]),
            message=f"a file with {', '.join(map_keys)}: may hold only {', '.join(MAP_KEYS)} maps",
            expected="either one process's fields, or processes:/sockets:/groups: maps"))
        return []
    return _map_entries(path, data, doc.lines, issues)


def _map_entries(path: str, data: dict[str, Any], lines: LineMap, issues: list[ConfigIssue]) -> list[_Entry]:
    out = []
    subs = lines.subs(2)
    for section in MAP_KEYS:
        table = data.get(section)
        if table is None:
            continue
        kind = _KIND_OF_SECTION[section]
        if not isinstance(table, dict):
            issues.append(ConfigIssue(file=path, line=lines.locate((section,))[1], field=section,
                                      message=f"got {type(table).__name__}", expected=f"a map of {kind} names to fields"))
            continue
        for name, raw in table.items():
            line = lines.locate((section, name))[1]
            out.append(_Entry(kind, name, raw, subs.get((section, name), LineMap()), path, line))
    return out


def _dropin_target(name: str) -> str | None:
    for suffix in _DROPIN_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _apply_dropins(root: str, names: list[str], processes: dict[str, _Entry],
                   issues: list[ConfigIssue], files: list[str]) -> None:
    dropins: dict[str, list[tuple[str, str]]] = {}
    broken: set[str] = set()
    for name in names:
        target = _dropin_target(name)
        folder = os.path.join(root, name)
        if target is None or name.startswith(".") or not os.path.isdir(folder):
            continue
        if target not in processes and _is_instance_target(target, processes):
            continue  # a per-instance drop-in: read by _split_templates
        if target not in processes:
            issues.append(ConfigIssue(file=folder, message=f"drop-in directory for unknown process '{target}'",
                                      expected="a process defined in this directory"))
            continue
        try:
            inner_names = os.listdir(folder)
        except OSError as exc:
            issues.append(ConfigIssue(file=folder, message=f"cannot read the drop-in directory: {exc.strerror}",
                                      expected="a readable directory"))
            broken.add(target)
            continue
        for inner in inner_names:
            if inner.endswith(_YAML_SUFFIXES) and not inner.startswith("."):
                dropins.setdefault(target, []).append((inner, os.path.join(folder, inner)))
    for target, items in sorted(dropins.items()):
        if not all(_merge_dropin(processes[target], path, issues, files) for _, path in sorted(items)):
            broken.add(target)
    for target in sorted(broken):
        entry = processes.pop(target)
        issues.append(ConfigIssue(file=entry.file, line=entry.line, message=f"process '{target}' is not "
                                  "loaded: one of its drop-ins cannot be used (see its own error)",
                                  expected="valid drop-ins"))


def _merge_dropin(entry: _Entry, path: str, issues: list[ConfigIssue], files: list[str]) -> bool:
    """Merge one drop-in file over ``entry``; False (with an issue) when it cannot be used."""
    files.append(path)
    doc = _read_doc(path, issues)
    if doc is None:
        return False
    if doc.data is None:
        return True
    if not isinstance(doc.data, dict) or not isinstance(entry.raw, dict):
        issues.append(ConfigIssue(file=path, line=1, message="a drop-in must hold a map of process fields",
                                  expected="a map of process fields"))
        return False
    entry.raw, entry.lines = merge_over(entry.raw, entry.lines, doc.data, doc.lines)
    return True


# ---------------------------------------------------------------- templates (SPEC §16)

def _is_instance_target(target: str, processes: Mapping[str, _Entry]) -> bool:
    parts = tpl.split_instance(target)
    if parts is None:
        return False
    entry = processes.get(parts[0] + "@") or processes.get(parts[0])
    return entry is not None and (entry.name.endswith("@") or
                                  (isinstance(entry.raw, dict) and "replicas" in entry.raw))


def _split_templates(root: str, names: list[str], processes: dict[str, _Entry],
                     issues: list[ConfigIssue], files: list[str]) -> dict[str, tpl.TemplateSpec]:
    """Take templates (``NAME@``) and replica sets (``replicas:``) out of ``processes`` and
    put their boot instances in instead, as ordinary entries validated like any process."""
    found: dict[str, tpl.TemplateSpec] = {}
    for name in sorted(processes):
        entry = processes[name]
        base = tpl.template_base(name)
        if not isinstance(entry.raw, dict) or (base is None and not set(tpl.TEMPLATE_KEYS) & set(entry.raw)):
            continue
        raw, instances, replicas, problems = tpl.split_template_fields(entry.raw, is_template=base is not None)
        for fld, message, expected in problems:
            issues.append(_issue(entry, (fld,), message, expected, fld))
        if problems:
            del processes[name]
            continue
        if base is None and replicas == 1:
            entry.raw = raw
            continue
        del processes[name]
        template = _checked_template(entry, base or name, raw, instances, replicas,
                                     _instance_dropins(root, names, base or name, issues, files), issues)
        if template is not None:
            found[template.name] = template
            _add_instances(template, entry, processes, issues)
    return found


def _checked_template(entry: _Entry, base: str, raw: dict[str, Any], instances: tuple[str, ...],
                      replicas: int | None, dropins: dict[str, Any],
                      issues: list[ConfigIssue]) -> tpl.TemplateSpec | None:
    """The template, if a sample instance of it is a valid process (errors reported once)."""
    template = tpl.make_template(base, raw, instances=instances, replicas=replicas, dropins=dropins,
                                 source=SourceRef(entry.file, entry.line))
    sample = _Entry("process", tpl.instance_name(base, "1"), tpl.instance_raw(template, "1"),
                    entry.lines, entry.file, entry.line)
    result = _build(sample, ProcessSchema(), runtime=False)
    if isinstance(result, list):
        issues.extend(result)
        return None
    return template


def _add_instances(template: tpl.TemplateSpec, entry: _Entry, processes: dict[str, _Entry],
                   issues: list[ConfigIssue]) -> None:
    for instance in template.boot_instances():
        full = tpl.instance_name(template.name, instance)
        if full in processes:
            issues.append(_issue(entry, (), f"instance '{full}' of template '{template.name}' is also "
                                 "defined as a process; the template's instance is ignored", "each name once"))
            continue
        processes[full] = _Entry("process", full, tpl.instance_raw(template, instance), entry.lines,
                                 entry.file, entry.line)


def _instance_dropins(root: str, names: list[str], base: str, issues: list[ConfigIssue],
                      files: list[str]) -> dict[str, Any]:
    """``BASE@INST.yaml.d/*.yaml`` merged per instance, in lexical order."""
    out: dict[str, Any] = {}
    for name in names:
        target = _dropin_target(name)
        parts = tpl.split_instance(target) if target else None
        folder = os.path.join(root, name)
        if parts is None or parts[0] != base or not os.path.isdir(folder):
            continue
        merged: dict[str, Any] = out.get(parts[1], {})
        for inner in sorted(os.listdir(folder)):
            path = os.path.join(folder, inner)
            if not inner.endswith(_YAML_SUFFIXES) or inner.startswith(".") or not os.path.isfile(path):
                continue
            files.append(path)
            doc = _read_doc(path, issues)
            if doc is None or doc.data is None:
                continue
            if not isinstance(doc.data, dict):
                issues.append(ConfigIssue(file=path, line=1, message="a drop-in must hold a map of process fields",
                                          expected="a map of process fields"))
                continue
            merged, _ = merge_over(merged, LineMap(), doc.data, LineMap())
        out[parts[1]] = merged
    return out


# ---------------------------------------------------------------- validation

def _build_all(entries: dict[str, _Entry], issues: list[ConfigIssue],
               schemas: dict[str, Schema]) -> dict[str, Any]:
    built = {}
    for name, entry in entries.items():
        result = _build(entry, schemas[entry.kind], runtime=False)
        if isinstance(result, list):
            issues.extend(result)
            continue
        built[name] = result
        if entry.kind == "process":
            issues.extend(_issue(entry, (fld,), message, None, fld, severity="warning")
                          for fld, message in command_warnings(result))
    return built


def _build(entry: _Entry, schema: Schema, *, runtime: bool) -> Any:
    """A spec, or the list of issues that prevent it."""
    issues: list[ConfigIssue] = []
    if not isinstance(entry.name, str) or not _NAME.fullmatch(entry.name):
        issues.append(_issue(entry, (), f"invalid {entry.kind} name {entry.name!r}", NAME_EXPECTED, "name"))
    if not isinstance(entry.raw, dict):
        got = "nothing" if entry.raw is None else type(entry.raw).__name__
        issues.append(_issue(entry, (), f"got {got} for {entry.kind} '{entry.name}'", f"a map of {entry.kind} fields"))
        return issues
    raw = _drop_nulls(entry.raw)
    if not runtime:
        for key in RUNTIME_ONLY_FIELDS:
            if key in raw:
                issues.append(_issue(entry, (key,), f"'{key}' is set at run time (create --{key}), not in files",
                                     "no such key in a configuration file", key))
                del raw[key]
    try:
        values = schema.load(raw)
        if entry.kind == "process":
            values = _resolve(entry, values, args_given="args" in raw, runtime=runtime)
    except ValidationError as exc:
        issues.extend(_issues_from_messages(exc.messages, schema, entry))
        return issues
    except ResolveError as exc:
        issues.append(_issue(entry, (exc.field,), str(exc), exc.expected, exc.field))
        return issues
    if issues:
        return issues
    return _make_spec(entry, values)


def _resolve(entry: _Entry, values: dict[str, Any], *, args_given: bool, runtime: bool) -> dict[str, Any]:
    """Split the command and anchor relative paths at the defining file (resolve.py).

    A definition with a file behind it resolves the same whether it comes from the
    directory or over RPC with that file as its source (a template's instance started
    at run time, an update of a file-defined process), so both give the same spec."""
    if runtime and (entry.source is None or entry.source.file is None):
        check_runtime_fields(values)
        return values
    return resolve_file_fields(values, args_given=args_given, file=entry.file)


def _make_spec(entry: _Entry, values: dict[str, Any]) -> Any:
    source = entry.source or SourceRef(entry.file, entry.line)
    if entry.kind == "process":
        return ProcessSpec(name=entry.name, source=source, **values)
    if entry.kind == "socket":
        values.setdefault("service", entry.name)
        values.setdefault("fd_name", entry.name)
        return SocketSpec(name=entry.name, source=source, **values)
    return GroupSpec(name=entry.name, source=source, **values)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_nulls(item) for key, item in value.items() if item is not None}
    return value


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def _issue(entry: _Entry, path: tuple[Any, ...], message: str, expected: str | None,
           fld: str | None = None, severity: str = "error") -> ConfigIssue:
    """An issue located at ``path``; message and field are cut short, so an enormous key or
    value never makes an enormous answer."""
    file, line = entry.locate(path)
    fld = fld if fld is not None else (_dotted(path) or None)
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + f"... ({len(message)} characters)"
    return ConfigIssue(file=file, line=line, field=fld[:_MAX_FIELD] if fld else None,
                       message=message, expected=expected, severity=severity)


def _issues_from_messages(messages: Any, schema: Schema, entry: _Entry,
                          path: tuple[Any, ...] = ()) -> list[ConfigIssue]:
    """Flatten marshmallow's nested error dict into one issue per message."""
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            child = path if key == "_schema" else path + (key,)
            out.extend(_issues_from_messages(value, schema, entry, child))
        return out
    if isinstance(messages, list):
        return [issue for msg in messages for issue in _issues_from_messages(msg, schema, entry, path)]
    return [_issue_for(str(messages), schema, entry, path)]


def _issue_for(message: str, schema: Schema, entry: _Entry, path: tuple[Any, ...]) -> ConfigIssue:
    if message == "Unknown field.":
        known = _known_keys(schema, path[:-1])
        close = difflib.get_close_matches(str(path[-1]), known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return _issue(entry, path, f"unknown key '{path[-1]}'{hint}", "one of: " + ", ".join(known))
    expected = expected_at(schema, path)
    if message == "Missing data for required field.":
        message = "missing required field"
    elif message == "Invalid input type.":
        message = "wrong type"
        expected = "a map"
    return _issue(entry, path, message, expected)


def _known_keys(schema: Schema, path: tuple[Any, ...]) -> list[str]:
    if not path:
        return [k for k in schema.fields if k not in RUNTIME_ONLY_FIELDS]
    found = field_at(schema, path)
    nested = getattr(found, "schema", None)
    if isinstance(found, LogField):
        nested = LogMapSchema()
    return list(nested.fields) if isinstance(nested, Schema) else []


def _describe(issue: ConfigIssue) -> str:
    what = f"{issue.field}: " if issue.field else ""
    exp = f" (expected {issue.expected})" if issue.expected else ""
    return f"{what}{issue.message}{exp}"


# ---------------------------------------------------------------- spec -> plain values

def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    factory = f.default_factory
    assert factory is not MISSING, f"{f.name} has neither a default nor a default_factory"
    return factory()


def _plain(value: Any) -> Any:
    if isinstance(value, HealthCheckSpec):
        return _plain_dataclass(value, keep=("type",))
    if isinstance(value, ResourcesSpec):
        return {key: _plain_dataclass(getattr(value, key)) for key in ("requests", "limits")
                if not getattr(value, key).is_empty()}
    if isinstance(value, LogSpec):
        tail = _plain_dataclass(value)
        return value.mode if set(tail) <= {"mode"} else tail
    if isinstance(value, Quantities):
        return _plain_dataclass(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _plain_dataclass(value: Any, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    out = {}
    for f in fields(value):
        item = getattr(value, f.name)
        if f.name in keep or item != _default(f):
            out[f.name] = _plain(item)
    return out
