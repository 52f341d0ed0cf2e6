"""``cat`` and ``edit``: a process's configuration as files and layers.

``cat NAME`` prints the effective config (the daemon's ``describe`` spec) as YAML, each
field labelled with where its value comes from: the base file, the drop-in that set it
last, or a runtime change (``update``, ``enable``, or the daemon's override layer) when
the running value differs from what the files say. The files are read here, by the CLI,
so ``cat``/``edit`` need the config directory on this host (as ``systemctl cat`` does).

``edit NAME`` opens ``$EDITOR`` (then ``$VISUAL``, then ``vi``): for a file-defined
process on the override drop-in ``NAME.yaml.d/50-edit.yaml``, validated with the whole
config directory (a copy with the new drop-in in place) before it is written, then
applied with ``reload_config``; for a runtime-created process on its spec as YAML,
validated offline and applied with ``update``. An invalid result is never saved: the
errors are printed and the editor re-opens (on a terminal) or the edit is abandoned.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Callable

from dd_procmgr_cli.invocation import EXIT_OK, EXIT_REFUSED, ExitWith, Invocation, UsageProblem

EDIT_DROPIN = "50-edit.yaml"
RUNTIME = "runtime"


# -- reading the layers ----------------------------------------------------------------

def _yaml_load(path: str) -> Any:
    import yaml
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def dropin_paths(config_dir: str, name: str) -> list[str]:
    """The drop-ins of ``name`` in the order the loader merges them (by file name)."""
    found = []
    for suffix in (".yaml.d", ".yml.d", ".d"):
        folder = os.path.join(config_dir, name + suffix)
        if os.path.isdir(folder):
            found += [(inner, os.path.join(folder, inner)) for inner in os.listdir(folder)
                      if inner.endswith((".yaml", ".yml")) and not inner.startswith(".")]
    return [path for _, path in sorted(found)]


def file_layers(source_file: str, name: str) -> list[tuple[str, dict]]:
    """(label, fields) for the base file then each drop-in, as written in the files."""
    doc = _yaml_load(source_file) or {}
    base = doc.get("processes", {}).get(name, {}) if isinstance(doc.get("processes"), dict) \
        else doc
    layers = [(f"file {source_file}", dict(base or {}))]
    for path in dropin_paths(os.path.dirname(source_file), name):
        fields = _yaml_load(path)
        if isinstance(fields, dict):
            layers.append((f"drop-in {path}", fields))
    return layers


def sources(name: str, effective: dict, layers: list[tuple[str, dict]]) -> dict[str, str]:
    """Field -> where its effective value comes from.

    The files' merged fields are normalised the way the daemon stores them (parsed
    and written back), so ``5s`` in a file equals ``5.0`` in the spec; a field whose
    running value differs from the files (or that the files lack) is ``runtime``.
    """
    from trio_procmgr.config.loader import parse_process, spec_to_raw
    from trio_procmgr.config.yamldoc import LineMap, merge_over
    merged: dict = {}
    for _, fields in layers:
        merged, _ = merge_over(merged, LineMap(), fields, LineMap())
    from trio_procmgr.errors import ConfigError
    from trio_procmgr.spec import SourceRef
    base = layers[0][0] if layers else ""
    # with its file as the source, parse_process splits and resolves like the loader
    source = SourceRef(base.removeprefix("file ")) if base.startswith("file ") else SourceRef()
    try:
        from_files = spec_to_raw(parse_process(name, merged, source))
    except ConfigError:  # the files no longer parse: nothing can be attributed to them
        from_files = {}
    out = {}
    for key, value in effective.items():
        if from_files.get(key) != value:
            out[key] = RUNTIME
            continue
        out[key] = next((label for label, fields in reversed(layers) if key in fields),
                        layers[0][0] if layers else RUNTIME)
    for key in from_files:
        if key not in effective:
            out[key] = f"{RUNTIME} (reset to the default)"
    return out


def render_cat(name: str, effective: dict, origin: dict[str, str]) -> str:
    """YAML with a ``# from ...`` comment before each group of fields of one origin."""
    import yaml
    lines = [f"# {name}: effective configuration"]
    current = None
    for key, value in effective.items():
        label = origin.get(key, RUNTIME)
        if label != current:
            lines.append(f"# from {label}")
            current = label
        lines.append(yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True,
                                    default_flow_style=False).rstrip())
    for key, label in origin.items():
        if key not in effective:
            lines.append(f"# {key}: {label}")
    return "\n".join(lines)


def do_cat(inv: Invocation, name: str) -> int:
    record = inv.call("describe", name=name)
    effective = dict(record.get("spec") or {})
    source_file = (record.get("source") or {}).get("file")
    if source_file and os.path.isfile(source_file):
        layers = file_layers(source_file, record["name"])
        origin = sources(record["name"], effective, layers)
    else:
        if source_file:
            inv.warn(f"warning: {source_file} is not readable here; values are not attributed")
        origin = {key: f"{RUNTIME} (created with dd-procmgr create)" if not source_file
                  else f"file {source_file}" for key in effective}
    if inv.json:
        inv.emit_json({"name": record["name"], "config": effective, "sources": origin,
                       "file": source_file})
    else:
        inv.echo(render_cat(record["name"], effective, origin))
    return EXIT_OK


# -- editing -----------------------------------------------------------------------------

def editor_argv(environ) -> list[str]:
    return shlex.split(environ.get("EDITOR") or environ.get("VISUAL") or "vi")


def run_editor(inv: Invocation, path: str) -> None:
    argv = editor_argv(inv.environ) + [path]
    try:
        done = subprocess.run(argv, check=False)
    except OSError as exc:
        raise UsageProblem(f"edit: cannot run the editor {argv[0]!r}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        inv.warn(f"edit: the editor exited with status {done.returncode}; nothing was changed")
        raise ExitWith(EXIT_REFUSED)


def _again(inv: Invocation, problems: list[str]) -> bool:
    """Print why the result was refused; on a terminal offer to re-open the editor."""
    inv.warn("edit: the result is not valid and was not saved:")
    for line in problems:
        inv.warn(f"  {line}")
    if not sys.stdin.isatty():
        return False
    inv.err.write("Re-open the editor? [Y/n] ")
    inv.err.flush()
    return sys.stdin.readline().strip().lower() in ("", "y", "yes")


def _dir_issues(directory: str) -> list[str]:
    from dd_procmgr_cli.views import issue_line
    from trio_procmgr.config.loader import validate_dir
    return [issue_line(i.to_dict() if hasattr(i, "to_dict") else i) for i in validate_dir(directory)]


def check_dropin(config_dir: str, name: str, text: str) -> list[str]:
    """Problems the config directory would have with ``text`` as the edit drop-in that
    it does not have today (a copy of the directory is validated; nothing is written)."""
    before = set(_dir_issues(config_dir))
    with tempfile.TemporaryDirectory(prefix="dd-procmgr-edit-") as scratch:
        copy = os.path.join(scratch, "conf")
        shutil.copytree(config_dir, copy, symlinks=True)
        folder = os.path.join(copy, f"{name}.yaml.d")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, EDIT_DROPIN), "w", encoding="utf-8") as fh:
            fh.write(text)
        after = [line.replace(copy, config_dir) for line in _dir_issues(copy)]
    return [line for line in after if line not in before]


def _dropin_template(name: str, current: str | None, base: str) -> str:
    if current is not None:
        return current
    return (f"# Override drop-in for '{name}': fields here are merged over {base}\n"
            "# (maps key by key; scalars and lists replace). Save an empty file to abort.\n")


def _edit_until_valid(inv: Invocation, filename: str, original: str,
                      check: Callable[[str], tuple[list[str], Any]]) -> tuple[str, Any] | None:
    """Open ``$EDITOR`` on ``original`` (as ``filename`` in a scratch dir) until ``check``
    finds no problem: ``(text, what check made of it)``; None when left unchanged. An
    invalid result is never returned: the editor opens again, or the edit is refused."""
    with tempfile.TemporaryDirectory(prefix="dd-procmgr-edit-") as scratch:
        work = os.path.join(scratch, filename)
        with open(work, "w", encoding="utf-8") as fh:
            fh.write(original)
        while True:
            run_editor(inv, work)
            text = open(work, encoding="utf-8").read()
            if text == original:
                return None
            problems, value = check(text)
            if not problems:
                return text, value
            if not _again(inv, problems):
                raise ExitWith(EXIT_REFUSED)


def edit_file_defined(inv: Invocation, name: str, source_file: str) -> int:
    config_dir = os.path.dirname(source_file)
    target = os.path.join(config_dir, f"{name}.yaml.d", EDIT_DROPIN)
    current = open(target, encoding="utf-8").read() if os.path.exists(target) else None
    original = _dropin_template(name, current, source_file)
    edited = _edit_until_valid(inv, f"{name}.{EDIT_DROPIN}", original,
                               lambda text: (check_dropin(config_dir, name, text), None))
    if edited is None:
        inv.echo(f"{name}: no changes")
        return EXIT_OK
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w", encoding="utf-8") as fh:
        fh.write(edited[0])
    result = inv.call("reload_config")
    from dd_procmgr_cli.views import reload_errors, render_reload
    if inv.json:
        inv.emit_json({"file": target, "reload": result})
    else:
        inv.echo(f"saved {target}")
        inv.echo(render_reload(result))
    return EXIT_REFUSED if reload_errors(result) else EXIT_OK


def runtime_changes(name: str, old: dict, new: Any) -> dict:
    """What to send to ``update`` for an edited runtime spec; raises ValueError when
    the edit cannot be expressed as an update (not a map, a field removed)."""
    from trio_procmgr.config.loader import parse_process
    if not isinstance(new, dict):
        raise ValueError("the file must hold a map of process fields")
    parse_process(name, new)  # raises ConfigError naming the field
    removed = sorted(set(old) - set(new))
    if removed:
        raise ValueError(f"removing fields ({', '.join(removed)}) is not supported; "
                         "set them to their default value instead")
    return {key: value for key, value in new.items() if old.get(key) != value}


def edit_runtime(inv: Invocation, name: str, spec: dict) -> int:
    import yaml

    from trio_procmgr.errors import ConfigError
    original = (f"# Runtime process '{name}': edit its fields; saved with dd-procmgr update.\n"
                + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))

    def check(text: str) -> tuple[list[str], Any]:
        try:
            return [], runtime_changes(name, spec, yaml.safe_load(text))
        except (ValueError, yaml.YAMLError, ConfigError) as exc:
            return [str(getattr(exc, "message", exc))], None

    edited = _edit_until_valid(inv, f"{name}.yaml", original, check)
    changes = edited[1] if edited is not None else None
    if not changes:
        inv.echo(f"{name}: no changes")
        return EXIT_OK
    result = inv.call("update", name=name, changes=changes)
    if inv.json:
        inv.emit_json(result)
    else:
        from dd_procmgr_cli.views import render_update
        inv.echo(render_update(result))
    return EXIT_OK


def do_edit(inv: Invocation, name: str) -> int:
    record = inv.call("describe", name=name)
    source_file = (record.get("source") or {}).get("file")
    if source_file:
        if not os.path.isfile(source_file):
            raise UsageProblem(f"edit: {record['name']} is defined in {source_file}, which is "
                               "not on this host (run edit where the daemon's config is)")
        return edit_file_defined(inv, record["name"], source_file)
    return edit_runtime(inv, record["name"], dict(record.get("spec") or {}))
