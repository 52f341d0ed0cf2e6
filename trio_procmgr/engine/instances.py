"""Instances of templates and replica sets at run time (SPEC §16).

The configuration (``config.templates``) says which templates exist and which instances
it creates; this module does what an operator asks on top of that:

- ``start BASE@INST`` / ``create --from BASE@ INST`` make an instance from its template.
  Such an instance is *runtime-created*: it is persisted in the state dir like any
  ``dd-procmgr create`` process, comes back after a daemon restart, and stays when the
  template file is deleted (only the instances listed in ``instances:`` go with it).
- ``scale BASE N`` changes how many replicas run. The wanted count is kept in
  ``replicas.json`` in the state dir and wins over the file's ``replicas:`` until that
  value is edited (then the file wins again).
- ``start``/``stop``/``restart``/``describe`` of ``BASE`` act on (or summarise) every
  instance.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from trio_procmgr import errors
from trio_procmgr.config import templates as tpl
from trio_procmgr.engine.state_store import atomic_write_json, read_json
from trio_procmgr.spec import ConfigSet, ProcessSpec, SourceRef
from trio_procmgr.states import State

if TYPE_CHECKING:
    from trio_procmgr.engine.manager import ProcessManager

OVERRIDES_FILE = "replicas.json"
_ACTIVE = (State.RUNNING, State.STARTING, State.PAUSED, State.BACKOFF)


def instance_spec(template: tpl.TemplateSpec, instance: str, *, from_config: bool) -> ProcessSpec:
    """The spec of ``BASE@INST``; raises ConfigError when the substituted fields are invalid.

    ``from_config``: the instance belongs to the configuration (source = template file)
    rather than to the operator who asked for it (runtime-created, persisted).
    """
    from trio_procmgr.config.loader import parse_process

    name = tpl.instance_name(template.name, instance)
    # parsed with the template's file as source, so command splitting and relative paths
    # resolve as for the instances the loader built (config/resolve.py)
    spec = parse_process(name, tpl.instance_raw(template, instance), template.source)
    return spec if from_config else replace(spec, source=SourceRef())


def aggregate_state(states: list[str]) -> str:
    """One state word for a set: the common one, else running/starting/failed by priority."""
    if not states:
        return State.CREATED.value
    if len(set(states)) == 1:
        return states[0]
    for word in ("failed", "crashed", "starting", "running", "backoff"):
        if word in states:
            return word
    return states[0]


class Instances:
    """The manager's view of templates: overrides, instantiation, scaling, summaries."""

    def __init__(self, manager: "ProcessManager", *,
                 add_process: Callable[[ProcessSpec], Awaitable[dict[str, Any]]]) -> None:
        """``add_process`` registers a parsed spec as a new process, not started."""
        self.pm = manager
        self._add_process = add_process
        self.path = os.path.join(manager.state_dir, OVERRIDES_FILE) if manager.state_dir else None
        self.overrides: dict[str, dict[str, int]] = dict(read_json(self.path) or {}) if self.path else {}

    # ------------------------------------------------------------ configuration
    def template(self, base: str) -> tpl.TemplateSpec | None:
        return self.pm.config.templates.get(base)

    def with_overrides(self, config: ConfigSet) -> ConfigSet:
        """``config`` with each replica set resized to its persisted ``scale`` (an
        override made for another value of the file's ``replicas:`` is dropped)."""
        processes = dict(config.processes)
        for base, template in config.templates.items():
            wanted = self._wanted(template)
            if wanted is None or wanted == template.replicas:
                continue
            for name in tpl.members_of(base, list(processes)):
                if processes[name].source.file is not None:
                    del processes[name]
            for instance in template.boot_instances(wanted):
                processes[tpl.instance_name(base, instance)] = instance_spec(template, instance, from_config=True)
        return replace(config, processes=MappingProxyType(dict(sorted(processes.items()))))

    def _wanted(self, template: tpl.TemplateSpec) -> int | None:
        saved = self.overrides.get(template.name)
        if not template.replicated or not saved:
            return None
        if saved.get("file_replicas") != template.replicas:
            self.overrides.pop(template.name, None)
            self._save()
            return None
        return saved.get("replicas")

    def _save(self) -> None:
        if self.path is not None:
            atomic_write_json(self.path, self.overrides)

    # ------------------------------------------------------------ lookups
    def members(self, base: str) -> list[str]:
        return tpl.members_of(base, [s.name for s in self.pm.supervisors()])

    def is_set(self, ref: str) -> bool:
        """``ref`` names a template or replica set (and no process of its own)."""
        if self._exists(ref):
            return False
        return self.template(ref) is not None or bool(self.members(ref))

    def can_instantiate(self, ref: str) -> bool:
        parts = tpl.split_instance(ref)
        template = self.template(parts[0]) if parts is not None else None
        return template is not None and not self._exists(ref)  # instantiate explains replicas

    def _exists(self, ref: str) -> bool:
        """A process (not a set) is named, or has the id, ``ref``."""
        try:
            self.pm.registry.resolve(ref)
        except errors.ProcessNotFound:
            return False
        return True

    # ------------------------------------------------------------ operations
    async def instantiate(self, base: str, instance: str, *, start: bool = False) -> dict[str, Any]:
        """Create ``BASE@INST`` from the template (runtime-created, persisted)."""
        template = self.template(base)
        if template is None:
            raise errors.ProcessNotFound(f"no template named '{base}@' (a file {base}@.yaml) "
                                         f"or replicated process '{base}'", process=base)
        if template.replicated:
            raise errors.InvalidArgument(
                f"'{base}' is a replicated process with {len(self.members(base))} instance(s): "
                f"use scale {base} N to change how many run", process=base)
        why = tpl.instance_problem(instance)
        if why:
            raise errors.InvalidArgument(f"{why}: expected {tpl.INSTANCE_EXPECTED}", instance=instance)
        name = tpl.instance_name(base, instance)
        spec = instance_spec(template, instance, from_config=False)
        await self._add_process(spec)
        self.pm.host.publish("instance_created", name, self.pm.supervisor(name).record.id,
                        template=base, instance=instance)
        if start:
            return await self.pm.start(name)
        return self.pm.supervisor(name).record.to_dict()

    async def scale(self, base: str, replicas: int) -> dict[str, Any]:
        """Run ``replicas`` instances of the replica set ``base``: the highest are stopped
        and deleted first; new ones are created, and started when the set is running (or
        auto_start). The count survives a daemon restart."""
        template = self._replicated(base)
        why = tpl.replicas_problem(replicas)
        if why:
            raise errors.InvalidArgument(f"replicas: {why} (expected {tpl.REPLICAS_EXPECTED})",
                                         replicas=replicas)
        before = self.members(base)
        running = template.raw.get("auto_start") is True or any(
            self.pm.supervisor(n).record.state in _ACTIVE for n in before)
        self.overrides[base] = {"replicas": replicas, "file_replicas": template.replicas or 1}
        self._save()
        self.pm.config = self.with_overrides(self.pm.config)
        wanted = {tpl.instance_name(base, i) for i in template.boot_instances(replicas)}
        for name in reversed(before):
            if name not in wanted:
                await self.pm.delete(name, force=True)
        added = [n for n in tpl.members_of(base, wanted) if not self._exists(n)]
        for name in added:
            await self._add_process(self.pm.config.processes[name])
        if running:
            for name in added:
                await self.pm.start(name)
        self.pm.host.publish("process_scaled", base, None, replicas=replicas, previous=len(before))
        return self.summary(base)

    async def update_replicas(self, base: str, changes: dict[str, Any], *,
                              dry_run: bool) -> dict[str, Any]:
        """``update BASE --replicas N``: the same as ``scale``; other fields of a replica
        set are changed in its file (every instance shares them)."""
        others = sorted(set(changes) - {"replicas"})
        if others:
            raise errors.InvalidArgument(
                f"update --replicas takes no other field ({', '.join(others)}): change them in "
                f"the file of '{base}' and reload", process=base, fields=others)
        if dry_run:
            self._replicated(base)
            return {"updated_fields": ["replicas"], "restart_required": [], "restarted": False,
                    "dry_run": True, "record": self.summary(base)}
        summary = await self.scale(base, changes["replicas"])
        return {"updated_fields": ["replicas"], "restart_required": [], "restarted": False,
                "dry_run": False, "record": summary}

    def _replicated(self, base: str) -> tpl.TemplateSpec:
        template = self.template(base)
        if template is None or not template.replicated:
            raise errors.InvalidArgument(
                f"'{base}' is not a replicated process: set replicas: N in its file first",
                process=base)
        return template

    async def act(self, method: str, base: str) -> dict[str, Any]:
        """start/stop/restart every instance of ``base`` (those already there stay)."""
        for name in self.members(base):
            state = self.pm.supervisor(name).record.state
            if method == "start" and state in _ACTIVE:
                continue
            if method == "stop" and state not in _ACTIVE:
                continue
            await getattr(self.pm, method)(name)
        return self.summary(base)

    def summary(self, base: str) -> dict[str, Any]:
        """What ``describe BASE`` shows: replicas wanted, each instance, counts by state."""
        template = self.template(base)
        rows = [{"name": n, "state": self.pm.supervisor(n).record.state.value,
                 "pid": self.pm.supervisor(n).record.pid} for n in self.members(base)]
        states = [str(row["state"]) for row in rows]
        wanted = None
        if template is not None and template.replicated:
            wanted = self._wanted(template) or template.replicas
        return {"name": base, "state": aggregate_state(states), "id": "",
                "template": template is not None, "replicas": wanted,
                "instances": rows, "counts": dict(Counter(states)),
                "reason": f"{len(rows)} instance(s)"}
