"""YAML documents that remember where each key was written, parsed within fixed budgets.

PyYAML throws away positions once it builds Python objects, but an error message needs
"file:line". ``read_yaml`` builds the objects *and* a ``LineMap`` from the node marks:
for each key path (``("health_check", "interval")``, list items by index) the file and
1-based line it came from. Merging a drop-in merges the line maps the same way as the
values, so an error in a value set by a drop-in points at the drop-in.

Hostile input is refused before it costs anything (docs/configuration.md, "Limits"):

* a file larger than ``MAX_FILE_BYTES`` is not parsed (the caller checks, see
  ``read_text``);
* the node graph is measured *before* Python objects are built: an alias that refers to
  itself (directly or not) is refused, and so is a document whose nodes, counted through
  every alias as a consumer would see them, exceed ``MAX_NODES`` (a "billion laughs" file
  of seven lines is refused in microseconds, because counting is memoised per node);
* timestamps are not resolved: ``2020-13-45`` and ``2026-12-01`` stay strings (no field
  takes a date, and an impossible date used to raise from deep inside PyYAML);
* a number written with more than ``MAX_NUMBER_CHARS`` characters is kept as an
  ``OversizedNumber``, which every field refuses as out of range with its file, line and
  field (Python refuses to build ints of more than 4300 digits, and a 400-digit duration
  overflows a float).

The loader class and its tables are read-only after import, and every call builds its
own loader: ``read_yaml`` is safe to call from several threads at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[Any, ...]
MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 250_000
MAX_NUMBER_CHARS = 32
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class OversizedNumber:
    """A number too long to be any field's value; kept as text so it costs nothing."""

    text: str

    def __repr__(self) -> str:
        return f"a number of {len(self.text)} characters"

    __str__ = __repr__


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """Safe loading without the timestamp resolver and with bounded numbers."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }


def _bounded(construct: Any) -> Any:
    def build(loader: Any, node: yaml.ScalarNode) -> Any:
        if len(node.value) > MAX_NUMBER_CHARS:
            return OversizedNumber(node.value)
        return construct(loader, node)
    return build


_Loader.add_constructor("tag:yaml.org,2002:int", _bounded(yaml.constructor.SafeConstructor.construct_yaml_int))
_Loader.add_constructor("tag:yaml.org,2002:float", _bounded(yaml.constructor.SafeConstructor.construct_yaml_float))
_Loader.add_constructor(_TIMESTAMP, yaml.constructor.SafeConstructor.construct_yaml_str)

MAX_DEPTH = 64


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

    def subs(self, depth: int) -> dict[Path, "LineMap"]:
        """``sub`` of every prefix of length ``depth`` at once, in one pass (a map file of
        thousands of processes would make one ``sub`` per process quadratic)."""
        out: dict[Path, LineMap] = {}
        for path, where in self.entries.items():
            if len(path) >= depth:
                out.setdefault(path[:depth], LineMap()).entries[path[depth:]] = where
        return out


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
    """Parse one YAML document; raises ``YamlError`` (with the line) when it is not valid
    or exceeds a budget (see the module doc). Never raises anything else for any text."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            measure_nodes(node)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlError(f"invalid YAML: {problem}", mark.line + 1 if mark else None) from exc
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        if isinstance(exc, YamlError):
            raise
        raise YamlError(f"invalid YAML: {type(exc).__name__}: {str(exc)[:200]}", None) from exc
    finally:
        loader.dispose()
    lines = LineMap({(): (file, 1 if node is not None else None)})
    duplicates: list[tuple[Path, int]] = []
    if node is not None:
        _index(node, file, lines, duplicates)
    return YamlDoc(data, lines, duplicates)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def measure_nodes(root: yaml.Node) -> int:
    """The node count of ``root`` seen through every alias; ``YamlError`` past a budget.

    Memoised per node and iterative, so it costs one visit per distinct node whatever
    the aliases multiply, and no nesting can exhaust the Python stack.
    """
    sizes: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool, int]] = [(root, False, 1)]
    while stack:
        node, children_done, depth = stack.pop()
        key = id(node)
        if children_done:
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_NODES:
                raise YamlError(f"the document expands to more than {MAX_NODES} nodes "
                                "(counting every alias); refused", node.start_mark.line + 1)
            continue
        if key in sizes:
            continue
        if key in entered:
            raise YamlError("an alias refers to a node that contains it (recursive alias); refused",
                            node.start_mark.line + 1)
        if depth > MAX_DEPTH:
            raise YamlError(f"nested deeper than {MAX_DEPTH} levels", node.start_mark.line + 1)
        entered.add(key)
        stack.append((node, True, depth))
        stack.extend((child, False, depth + 1) for child in _children(node))
    return sizes[id(root)]


def _index(root: yaml.Node, file: str, lines: LineMap, duplicates: list[tuple[Path, int]]) -> None:
    stack: list[tuple[yaml.Node, Path]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = key_node.value
                child = path + (key,)
                if key in seen:
                    duplicates.append((child, key_node.start_mark.line + 1))
                    continue
                seen.add(key)
                lines.entries[child] = (file, key_node.start_mark.line + 1)
                stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines.entries[path + (index,)] = (file, item.start_mark.line + 1)
                stack.append((item, path + (index,)))


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
