"""YAML documents that remember where each key was written.

PyYAML throws away positions once it builds Python objects, but an error message needs
"file:line". ``read_yaml`` builds the objects *and* a ``LineMap`` from the node marks:
for each key path (``("health_check", "interval")``, list items by index) the file and
1-based line it came from. Merging a drop-in merges the line maps the same way as the
values, so an error in a value set by a drop-in points at the drop-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[Any, ...]
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class LineMap:
    """Key path -> (file, line). Lookups fall back to the nearest enclosing path."""

    entries: dict[Path, tuple[str, int | None]] = field(default_factory=dict)

    def locate(self, path: Path) -> tuple[str | None, int | None]:
        for cut in range(len(path), -1, -1):
            found = self.entries.get(tuple(path[:cut]))
            if found is not None:
                return found
        return None, None

    def sub(self, prefix: Path) -> "LineMap":
        """The map of one subtree, with paths relative to ``prefix``."""
        size = len(prefix)
        return LineMap({p[size:]: where for p, where in self.entries.items() if p[:size] == prefix})


@dataclass
class YamlDoc:
    data: Any
    lines: LineMap
    duplicates: list[tuple[Path, int]]  # (path of the repeated key, its line)


class YamlError(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def read_yaml(text: str, file: str) -> YamlDoc:
    """Parse one YAML document; raises ``YamlError`` (with the line) when it is not valid."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlError(f"invalid YAML: {problem}", mark.line + 1 if mark else None) from exc
    finally:
        loader.dispose()
    lines = LineMap({(): (file, 1 if node is not None else None)})
    duplicates: list[tuple[Path, int]] = []
    if node is not None:
        _index(node, (), file, lines, duplicates)
    return YamlDoc(data, lines, duplicates)


def _index(node: yaml.Node, path: Path, file: str, lines: LineMap,
           duplicates: list[tuple[Path, int]]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value
            child = path + (key,)
            if key in seen:
                duplicates.append((child, key_node.start_mark.line + 1))
            seen.add(key)
            lines.entries[child] = (file, key_node.start_mark.line + 1)
            _index(value_node, child, file, lines, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.entries[path + (index,)] = (file, item.start_mark.line + 1)
            _index(item, path + (index,), file, lines, duplicates)


def merge_over(base: Any, base_lines: LineMap, over: Any, over_lines: LineMap) -> tuple[Any, LineMap]:
    """Drop-in merge: maps merge key by key (recursively); scalars and lists replace.

    Positions follow the values: a key replaced by ``over`` takes ``over``'s line, and
    whatever lay below a replaced value in ``base`` is forgotten.
    """
    merged_lines = LineMap(dict(base_lines.entries))
    merged = _merge(base, over, (), merged_lines, over_lines)
    return merged, merged_lines


def _merge(base: Any, over: Any, path: Path, lines: LineMap, over_lines: LineMap) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            child = path + (key,)
            out[key] = _merge(base.get(key), value, child, lines, over_lines) if key in base else value
            if key not in base or not (isinstance(base[key], dict) and isinstance(value, dict)):
                _replace_subtree(child, lines, over_lines)
        return out
    return over


def _replace_subtree(path: Path, lines: LineMap, over_lines: LineMap) -> None:
    size = len(path)
    for known in [p for p in lines.entries if p[:size] == path]:
        del lines.entries[known]
    for known, where in over_lines.entries.items():
        if known[:size] == path:
            lines.entries[known] = where
