"""Where a file-defined process's command and paths point (SPEC §2, docs/configuration.md).

Pure: a loaded field map and the defining file in, the same map with ``command`` split
and relative paths made absolute out. Nothing here touches the file system, so the
result does not depend on the daemon's current directory or on what exists yet.

* ``command`` without ``args`` is split like systemd's ``ExecStart=``: shell-style words
  and quoting (``shlex``), no shell (no ``$VAR``, globs, pipes or redirections). With
  ``args`` present, ``command`` is one word, used as written.
* A relative ``working_dir`` is relative to the directory of the file that defines the
  process (for a drop-in: the base file's directory).
* A relative ``command`` with a slash (``./worker``, ``bin/x``) and a relative
  ``environment_file`` are relative to ``working_dir`` when set, else to that directory.
  A bare name (``sleep``) stays a ``PATH`` lookup at spawn time.
* ``pidfile`` and ``log.file`` must be absolute (the service writes the pidfile from its
  own current directory, so a path relative to the configuration would mislead).
"""

from __future__ import annotations

import os
import shlex
from typing import Any


class ResolveError(ValueError):
    """A field that cannot be split or resolved; ``field`` names it."""

    def __init__(self, field: str, message: str, expected: str) -> None:
        super().__init__(message)
        self.field, self.expected = field, expected


def split_command(command: str) -> tuple[str, tuple[str, ...]]:
    """``"/opt/agent run -v"`` -> ``("/opt/agent", ("run", "-v"))``, like ``ExecStart=``."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ResolveError("command", f"cannot split {command[:200]!r}: {exc}",
                           "a command line with balanced quotes") from None
    if not words or not words[0]:
        raise ResolveError("command", "the command line names no program",
                           "an executable name or path first") from None
    return words[0], tuple(words[1:])


def _absolute(path: str, base: str) -> str:
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def resolve_file_fields(values: dict[str, Any], *, args_given: bool, file: str) -> dict[str, Any]:
    """The fields of a process defined in ``file``, split and resolved (see module doc)."""
    out = dict(values)
    if not args_given:
        out["command"], out["args"] = split_command(out["command"])
    folder = os.path.dirname(os.path.abspath(file))
    if out.get("working_dir"):
        out["working_dir"] = _absolute(out["working_dir"], folder)
    base = out.get("working_dir") or folder
    if "/" in out["command"]:
        out["command"] = _absolute(out["command"], base)
    if out.get("environment_file"):
        out["environment_file"] = tuple(
            ("-" if item.startswith("-") else "") + _absolute(item.removeprefix("-"), base)
            for item in out["environment_file"])
    return out


def check_runtime_fields(values: dict[str, Any]) -> None:
    """A definition sent over RPC has no file to be relative to: paths must be absolute
    (the CLI resolves them against the caller's directory before sending)."""
    for item in values.get("environment_file", ()):
        if not os.path.isabs(item.removeprefix("-")):
            raise ResolveError("environment_file", f"{item[:200]!r} is not an absolute path",
                               "an absolute path, optionally prefixed with '-'")
