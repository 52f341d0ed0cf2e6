"""The scratch pad a converter fills for one process, socket or group.

It holds the fields converted so far and records findings and links with the file and
line they come from, so every converter reports the same way (``result.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .result import FileConversion, Link, approximated, invalid, unmapped


@dataclass
class EntryBuilder:
    """Fields of one entry (``kind`` process/socket/group) named ``name`` from ``out.source``."""

    out: FileConversion
    kind: str
    name: str
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def file(self) -> str:
        return self.out.source

    def set(self, key: str, value: Any) -> None:
        self.fields[key] = value

    def set_nested(self, path: tuple[str, ...], value: Any) -> None:
        node = self.fields
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = value

    def unmapped(self, line: int | None, directive: str, why: str) -> None:
        self.out.findings.append(unmapped(self.file, line, directive, why))

    def approx(self, line: int | None, directive: str, how: str) -> None:
        self.out.findings.append(approximated(self.file, line, directive, how))

    def error(self, line: int | None, message: str) -> None:
        self.out.findings.append(invalid(self.file, line, message))

    def link(self, field_name: str, target: str, line: int | None, directive: str,
             *, required: bool = False) -> None:
        self.out.links.append(Link(self.kind, self.name, field_name, target, self.file, line,
                                   directive, required))

    def commit(self) -> None:
        """Put the entry into the file's conversion (links find it there later)."""
        self.out.entries(self.kind)[self.name] = self.fields
