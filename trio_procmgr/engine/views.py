"""What the engine shows: the rows of ``list``, ``describe``, ``deps``, ``groups``, stats.

Read-only: every view is computed from the registry, the host's warnings and the
features' state at the moment it is asked for; nothing here changes a process. The
façade (``ProcessManager``) answers the documented calls from here, and the RPC server
reaches the rarer ones (``summary``, ``stats_many``) as ``manager.views``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trio_procmgr import planner

if TYPE_CHECKING:
    from trio_procmgr.engine.engine_host import EngineHost
    from trio_procmgr.engine.instances import Instances
    from trio_procmgr.engine.overrides import OverrideLayer
    from trio_procmgr.engine.registry import Registry
    from trio_procmgr.engine.supervisor import Supervisor
    from trio_procmgr.spec import ProcessSpec


class Views:
    """The read-only answers about processes of one engine."""

    def __init__(self, registry: "Registry", host: "EngineHost", overrides: "OverrideLayer",
                 instances: "Instances") -> None:
        self.registry = registry
        self.host = host
        self.overrides = overrides
        self.instances = instances

    def row(self, sup: "Supervisor") -> dict[str, Any]:
        """One process as ``list`` shows it."""
        d = sup.record.to_dict()
        spec = sup.spec
        d.update(command=spec.command, args=list(spec.args), description=spec.description,
                 process_type=spec.process_type, restart=spec.restart,
                 auto_start=spec.auto_start)
        return d

    def summary(self, ref: str) -> dict[str, Any]:
        """The record ``list`` shows plus the raw ``spec``: what mutating RPCs answer, so
        ``--json`` of start/stop/... carries the same fields as ``describe``."""
        from trio_procmgr.config.loader import spec_to_raw

        sup = self.registry.supervisor(ref)
        d = self.row(sup)
        d["spec"] = spec_to_raw(sup.spec)
        return d

    def describe(self, ref: str) -> dict[str, Any]:
        if self.instances.is_set(ref):
            return self.instances.summary(ref)
        sup = self.registry.supervisor(ref)
        platform = self.host.facts.platform
        d = self.summary(sup.name)
        d["kill_mode_effective"] = sup.effective_kill_mode()
        d["cgroup"] = getattr(sup.cgroup, "v2_path", None)
        d["spawn_mechanism"] = sup.instance.child.placement if sup.instance is not None else None
        d["platform"] = platform.name
        d["mechanisms"] = platform.mechanisms(cgroups_in_use=sup.cgroup is not None)
        d["limits"] = sup.enforcement
        d["start_limit"] = {"burst": sup.spec.start_limit_burst,
                            "interval": sup.spec.start_limit_interval,
                            "recent_starts": sup.limiter.recent}
        d["consecutive_failures"] = sup.failures
        d["warnings"] = list(self.host.warnings) + self._spec_warnings(sup.spec)
        d["dependencies"] = self._dependency_states(sup)
        from_config = self._from_config(sup.name)
        d["overrides"] = self.overrides.get(sup.name) if from_config else {}
        d["sources"] = self._sources(sup)
        d["source"] = {"file": sup.spec.source.file, "line": sup.spec.source.line}
        d.update(sup.extras)
        return d

    def _from_config(self, name: str) -> bool:
        return name in self.host.config.processes

    def _sources(self, sup: "Supervisor") -> list[str]:
        """Where the definition comes from: its file (or the RPC), then the override layer."""
        src = sup.spec.source
        from_config = self._from_config(sup.name)
        first = src.file if src.file else ("config" if from_config else "runtime")
        layer = [self.overrides.path or "overrides (in memory)"] \
            if from_config and self.overrides.get(sup.name) else []
        return [first, *layer]

    def _spec_warnings(self, spec: "ProcessSpec") -> list[str]:
        """The config warnings of the live definition (what ``validate`` says of it)."""
        from trio_procmgr.config.lint import spec_warnings

        return [f"{fld}: {message}"
                for fld, message in spec_warnings(spec, self.registry.specs.keys())]

    def _dependency_states(self, sup: "Supervisor") -> list[dict[str, Any]]:
        """Each declared relation of ``sup`` with the other side's current state
        (conflicts declared by the other side included)."""
        state_of = self.registry.state_of
        rows = []
        for directive in ("requires", "wants", "binds_to", "part_of", "after", "before"):
            for other in getattr(sup.spec, directive):
                rows.append({"name": other, "directive": directive, "state": state_of(other)})
        for other in planner.conflicting(self.registry.specs, sup.name):
            rows.append({"name": other, "directive": "conflicts", "state": state_of(other)})
        return rows

    def deps(self, ref: str | None = None) -> dict[str, Any]:
        """Dependency trees of one process (both directions), or of every process."""
        if ref is None:
            return {"processes": [self.deps(n) for n in sorted(self.registry)]}
        name = self.registry.resolve(ref)
        specs = self.registry.specs
        state_of = self.registry.state_of

        def with_state(node: dict[str, Any]) -> dict[str, Any]:
            node["state"] = state_of(node["name"])
            for child in node["children"]:
                with_state(child)
            return node

        return {"name": name, "state": state_of(name),
                "dependencies": with_state(planner.dependencies(specs, name).to_dict()),
                "dependants": with_state(planner.dependants(specs, name).to_dict()),
                "conflicts": [{"name": o, "state": state_of(o)}
                              for o in planner.conflicting(specs, name)]}

    def groups(self) -> list[dict[str, Any]]:
        """Every supervision group with its runtime view and its members' states."""
        from trio_procmgr.engine.groups import SupervisionGroups

        view = self.host.feature(SupervisionGroups)
        config = self.host.config
        out = []
        for name in sorted(config.groups):
            status = dict(view.status(name) or {"name": name})
            status["member_states"] = {m: self.registry.state_of(m)
                                       for m in config.groups[name].members}
            out.append(status)
        return out

    def stats(self, ref: str) -> dict[str, Any]:
        from trio_procmgr.engine.stats import collect_stats

        return dict(collect_stats(self.registry.supervisor(ref)))

    def stats_many(self, refs: list[str] | None = None) -> list[dict[str, Any]]:
        """Stats of the named processes (None: every process), each naming its process;
        one that vanished meanwhile is skipped rather than failing the batch."""
        from trio_procmgr.engine.stats import collect_stats

        names = [self.registry.resolve(r) for r in refs] if refs else list(self.registry)
        out = []
        for name in names:
            sup = self.registry.get(name)
            if sup is None:
                continue
            item = dict(collect_stats(sup))
            item.setdefault("name", name)
            item.setdefault("state", sup.record.state.value)
            out.append(item)
        return out
