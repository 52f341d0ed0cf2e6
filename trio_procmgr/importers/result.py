"""What a converter hands back: converted entries, findings, and cross-file references.

A ``FileConversion`` is the outcome of one input file. References to other processes
(dependencies, a socket's service, group members) are kept apart as ``Link`` values until
every file of the import is converted, because whether ``After=db.service`` can be kept
depends on whether ``db.service`` is imported too: ``resolve_links`` keeps the ones whose
target exists and turns the others into findings, so the output always validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass(frozen=True)
class SourceFile:
    """One input file as the shell read it (the converters never touch the disk)."""

    path: str
    text: str


@dataclass(frozen=True)
class Finding:
    """Something the user must know about: a directive with no equivalent, or an error.

    ``error`` findings make their file unusable (nothing is written for it); the others
    are printed and the conversion goes on.
    """

    file: str
    line: int | None
    message: str
    error: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


def unmapped(file: str, line: int | None, directive: str, why: str) -> Finding:
    return Finding(file, line, f"{directive} has no equivalent ({why})")


def approximated(file: str, line: int | None, directive: str, how: str) -> Finding:
    return Finding(file, line, f"{directive} converted approximately: {how}")


def invalid(file: str, line: int | None, message: str) -> Finding:
    return Finding(file, line, f"error: {message}", error=True)


@dataclass(frozen=True)
class Link:
    """``owner``'s ``field`` names ``target``; kept only if ``target`` is imported too.

    ``kind`` says which map the owner lives in (process, socket or group); ``required``
    links (a socket's service, a group's members) make the file unusable when missing.
    """

    kind: str
    owner: str
    field: str
    target: str
    file: str
    line: int | None
    directive: str
    required: bool = False


@dataclass
class FileConversion:
    """Everything one input file became."""

    source: str
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    sockets: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """True when the file converted to something and had no error."""
        has_entries = bool(self.processes or self.sockets or self.groups)
        return has_entries and not any(f.error for f in self.findings)

    def entries(self, kind: str) -> dict[str, dict[str, Any]]:
        return {"process": self.processes, "socket": self.sockets, "group": self.groups}[kind]


@dataclass
class Conversion:
    """The whole import: one ``FileConversion`` per input file, links resolved."""

    files: list[FileConversion]

    @property
    def ok(self) -> bool:
        return bool(self.files) and all(f.usable for f in self.files)

    @property
    def findings(self) -> list[Finding]:
        return [finding for f in self.files for finding in f.findings]

    def usable_files(self) -> list[FileConversion]:
        return [f for f in self.files if f.usable]

    def merged(self, kind: str) -> dict[str, dict[str, Any]]:
        """Every entry of one kind from the usable files, in input order."""
        out: dict[str, dict[str, Any]] = {}
        for f in self.usable_files():
            out.update(f.entries(kind))
        return out


def resolve_links(files: Iterable[FileConversion]) -> Conversion:
    """Insert the links whose target is imported; report the others (see module doc)."""
    files = list(files)
    _flag_duplicates(files)
    known = {name for f in files if f.usable for name in f.processes}
    for f in files:
        for link in f.links:
            _apply_link(f, link, link.target in known)
    return Conversion(files)


def _apply_link(f: FileConversion, link: Link, present: bool) -> None:
    owner = f.entries(link.kind).get(link.owner)
    if owner is None:
        return
    if not present:
        why = f"{link.target} is not among the imported files; import it too to keep this reference"
        if link.required:
            f.findings.append(invalid(link.file, link.line, f"{link.directive}: {why}"))
        else:
            f.findings.append(unmapped(link.file, link.line, link.directive, why))
        return
    if link.field in ("service",):
        owner[link.field] = link.target
        return
    targets = owner.setdefault(link.field, [])
    if link.target not in targets:
        targets.append(link.target)


def _flag_duplicates(files: list[FileConversion]) -> None:
    """Two input files defining one name would overwrite each other: an error for the later."""
    seen: dict[tuple[str, str], str] = {}
    for f in files:
        for kind in ("process", "socket", "group"):
            for name in f.entries(kind):
                first = seen.setdefault((kind, name), f.source)
                if first != f.source:
                    f.findings.append(invalid(f.source, None, f"{kind} {name!r} is also defined by {first}"))
