"""The scratch pad a converter fills for one process, socket or group.

It holds the fields converted so far and records findings and links with the file and
line they come from, so every converter reports the same way (``result.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .result import FileConversion, Link, approximated, invalid, unmapped
from .systemd_syntax import Directive, UnitName, UnitSyntaxError, expand_specifiers, split_words


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


class UnitBuilder(EntryBuilder):
    """An ``EntryBuilder`` that also knows the unit's name (for specifiers)."""

    unit: UnitName
    exec_start: list[Directive]
    service: str

    def words(self, d: Directive, text: str | None = None) -> list[str] | None:
        """The directive's words with specifiers expanded; None (and an error) if malformed."""
        try:
            words = split_words(d.value if text is None else text)
        except UnitSyntaxError as exc:
            self.error(d.line, f"{d.key}=: {exc}")
            return None
        return [self.expand(d, w) for w in words]

    def expand(self, d: Directive, text: str) -> str:
        value, unknown = expand_specifiers(text, self.unit)
        for spec in unknown:
            self.unmapped(d.line, f"{d}", f"specifier {spec} is not known here; it is kept as written")
        return value


Handler = Callable[[UnitBuilder, Directive], None]
"""Converts one systemd directive into the unit's fields."""
