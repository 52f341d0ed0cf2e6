"""Templates and replicas (SPEC §16), as pure data: no files, no processes.

A *template* is written once and stamped out as *instances* named ``BASE@INST``:

- a file ``BASE@.yaml`` (or a ``BASE@`` entry of a ``processes:`` map) is a template; its
  ``instances: [a, b]`` are created at boot, others on ``start BASE@c`` / ``create --from``;
- a process with ``replicas: N`` (N > 1) is a template whose instances are ``1`` … ``N``;
  ``replicas: 1`` is today's plain process ``BASE``.

In an instance, ``%i`` becomes the instance, ``%n`` the full name and ``%%`` a single
``%`` — in the fields listed in :data:`SUBSTITUTED_FIELDS` only, so that a ``%`` in a
description or a restart policy never changes meaning. Every instance also gets
``DD_PM_INSTANCE`` in its environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ..spec import EMPTY_MAP, SourceRef

TEMPLATE_KEYS = ("instances", "replicas")
SUBSTITUTED_FIELDS = ("command", "args", "env", "working_dir", "pidfile", "runtime_directory",
                      "health_check", "log", "environment_file", "condition_path_exists")
INSTANCE_ENV = "DD_PM_INSTANCE"
INSTANCE_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
INSTANCE_EXPECTED = "an instance name of letters, digits, '_', '.' or '-' (no '@', at most 64)"
MAX_REPLICAS = 1000
_INSTANCE = re.compile(INSTANCE_PATTERN)
_SPECIFIER = re.compile(r"%([%in])")


@dataclass(frozen=True)
class TemplateSpec:
    """One template: the fields as written (minus ``instances``/``replicas``) and which
    instances exist because the configuration says so."""

    name: str
    raw: Mapping[str, Any]
    instances: tuple[str, ...] = ()
    replicas: int | None = None
    dropins: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: EMPTY_MAP)
    source: SourceRef = field(default=SourceRef(), compare=False)

    @property
    def replicated(self) -> bool:
        return self.replicas is not None

    def boot_instances(self, replicas: int | None = None) -> tuple[str, ...]:
        """Instance names the configuration creates (``replicas`` overrides the file's N)."""
        if not self.replicated:
            return self.instances
        return tuple(str(i) for i in range(1, (replicas or self.replicas or 1) + 1))


def instance_name(base: str, instance: str) -> str:
    return f"{base}@{instance}"


def template_base(name: str) -> str | None:
    """``worker@`` -> ``worker``: the name of a template entry, else None."""
    if name.endswith("@") and name.count("@") == 1 and len(name) > 1:
        return name[:-1]
    return None


def split_instance(name: str) -> tuple[str, str] | None:
    """``worker@a`` -> ``("worker", "a")``; None for a name that is no instance name."""
    base, at, instance = name.partition("@")
    if not at or not base or not _INSTANCE.fullmatch(instance):
        return None
    return base, instance


def instance_problem(instance: Any) -> str | None:
    """Why ``instance`` cannot name an instance (None: it can)."""
    if not isinstance(instance, str) or not _INSTANCE.fullmatch(instance):
        return f"invalid instance name {instance!r}"
    return None


def replicas_problem(value: Any) -> str | None:
    """Why ``value`` is not a replica count (None: it is one)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"got {type(value).__name__} {value!r}"
    if not 1 <= value <= MAX_REPLICAS:
        return f"{value} is out of range"
    return None


REPLICAS_EXPECTED = f"an integer from 1 to {MAX_REPLICAS}"


def substitute(text: str, name: str, instance: str) -> str:
    """``%i`` -> instance, ``%n`` -> full name, ``%%`` -> ``%``; other ``%`` stay."""
    return _SPECIFIER.sub(lambda m: {"i": instance, "n": name, "%": "%"}[m.group(1)], text)


def _deep(value: Any, name: str, instance: str) -> Any:
    if isinstance(value, str):
        return substitute(value, name, instance)
    if isinstance(value, list):
        return [_deep(item, name, instance) for item in value]
    if isinstance(value, dict):
        return {key: _deep(item, name, instance) for key, item in value.items()}
    return value


def substitute_fields(raw: Mapping[str, Any], name: str, instance: str) -> dict[str, Any]:
    """A copy of ``raw`` with the specifiers replaced in :data:`SUBSTITUTED_FIELDS`
    (in ``env``, only the values)."""
    out = dict(raw)
    for key in SUBSTITUTED_FIELDS:
        if key not in out:
            continue
        if key == "env" and isinstance(out[key], dict):
            out[key] = {k: _deep(v, name, instance) for k, v in out[key].items()}
        else:
            out[key] = _deep(out[key], name, instance)
    return out


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Drop-in semantics: maps merge key by key, everything else replaces."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def instance_raw(template: TemplateSpec, instance: str) -> dict[str, Any]:
    """The fields of ``BASE@INST``: the instance's drop-ins over the template, then the
    specifiers substituted, then ``DD_PM_INSTANCE`` added (unless the file sets it)."""
    name = instance_name(template.name, instance)
    raw = _merge(template.raw, template.dropins.get(instance, {}))
    raw = substitute_fields(raw, name, instance)
    env = raw.get("env")
    if env is None or isinstance(env, dict):
        raw["env"] = {INSTANCE_ENV: instance, **(env or {})}
    return raw


def split_template_fields(raw: Mapping[str, Any], *, is_template: bool
                          ) -> tuple[dict[str, Any], tuple[str, ...], int | None, list[tuple[str, str, str]]]:
    """Separate ``instances``/``replicas`` from the process fields.

    Returns (process fields, instances, replicas, problems as (field, message, expected)).
    ``replicas`` is None for a file template.
    """
    fields_ = {k: v for k, v in raw.items() if k not in TEMPLATE_KEYS}
    problems: list[tuple[str, str, str]] = []
    instances: tuple[str, ...] = ()
    replicas: int | None = None
    if "instances" in raw:
        if not is_template:
            problems.append(("instances", "'instances' belongs in a template (a file NAME@.yaml)",
                             "no 'instances' outside a template; use replicas: N here"))
        elif not isinstance(raw["instances"], list):
            problems.append(("instances", f"got {type(raw['instances']).__name__}", "a list of instance names"))
        else:
            instances, problems = _instances_of(raw["instances"], problems)
    if "replicas" in raw:
        why = replicas_problem(raw["replicas"])
        if is_template:
            problems.append(("replicas", "'replicas' does not apply to a template",
                             "instances: [..] in a template, replicas: N on a plain process"))
        elif why:
            problems.append(("replicas", why, REPLICAS_EXPECTED))
        else:
            replicas = raw["replicas"]
    return fields_, instances, replicas, problems


def _instances_of(items: list[Any], problems: list[tuple[str, str, str]]
                  ) -> tuple[tuple[str, ...], list[tuple[str, str, str]]]:
    seen: list[str] = []
    for item in items:
        why = instance_problem(item)
        if why:
            problems.append(("instances", why, INSTANCE_EXPECTED))
        elif item in seen:
            problems.append(("instances", f"instance '{item}' is listed twice", "each instance once"))
        else:
            seen.append(item)
    return tuple(seen), problems


def make_template(name: str, raw: Mapping[str, Any], *, instances: tuple[str, ...] = (),
                  replicas: int | None = None, dropins: Mapping[str, Mapping[str, Any]] | None = None,
                  source: SourceRef = SourceRef()) -> TemplateSpec:
    return TemplateSpec(name=name, raw=MappingProxyType(dict(raw)), instances=instances,
                        replicas=replicas, dropins=MappingProxyType(dict(dropins or {})),
                        source=source)


def members_of(base: str, names: Any) -> list[str]:
    """The instances of ``base`` among ``names``, replicas in numeric order."""
    found = [n for n in names if (split_instance(n) or ("", ""))[0] == base]
    return sorted(found, key=lambda n: _order_key(n.partition("@")[2]))


def _order_key(instance: str) -> tuple[int, int, str]:
    return (0, int(instance), "") if instance.isdigit() else (1, 0, instance)
