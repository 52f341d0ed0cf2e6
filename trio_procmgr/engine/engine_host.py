"""The engine side of every supervisor: :class:`EngineHost` implements ``SupervisorHost``.

The manager (the façade users and the RPC server call) builds one host and hands it to
each supervisor; the host owns what lies between a process and the rest of the engine:
the event hub's publishing, the spawn journal's lines for each run, the output FIFOs,
the orphan reaper's tracked set, the running-PID record, and the features, which it
builds from :data:`~trio_procmgr.engine.features.FEATURES` and calls through their
:class:`~trio_procmgr.engine.features.Hooks`. Features see the host only as a
:class:`~trio_procmgr.engine.features.FeatureContext`.

It never starts or stops a process by itself: the few tasks it runs (the PID-record
writer, features' background work through :meth:`spawn_task`) live in the manager's
nursery, handed over with :meth:`attach`.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, TypeVar

import trio

from trio_procmgr.conditions import evaluate_conditions
from trio_procmgr.engine import output_fifo, runtime_files
from trio_procmgr.engine.features import FEATURES, Feature, Hooks, register
from trio_procmgr.engine.host import ConditionUnmet, HostFacts, PreparedRun
from trio_procmgr.engine.spawner import SpawnError, build_exec_plan
from trio_procmgr.engine.transactions import Transactions
from trio_procmgr.envfile import load_environment_files

if TYPE_CHECKING:
    from trio_procmgr.engine.registry import Registry
    from trio_procmgr.engine.spawn_journal import SpawnJournal
    from trio_procmgr.engine.state_store import StateStore
    from trio_procmgr.engine.supervisor import Instance, Supervisor
    from trio_procmgr.events import EventHub
    from trio_procmgr.platform.ports import CgroupTree
    from trio_procmgr.spec import ConfigSet, ProcessSpec

log = logging.getLogger("trio_procmgr.manager")
F = TypeVar("F", bound=Feature)


class EngineHost:
    """Implements ``SupervisorHost`` for every supervisor and ``FeatureContext`` for
    every feature of one engine."""

    def __init__(self, *, facts: HostFacts, registry: "Registry", hub: "EventHub",
                 store: "StateStore | None", journal: "SpawnJournal | None",
                 output_dir: str | None, base_env: Mapping[str, str], instance: str,
                 log_dir: str | None, config: Callable[[], "ConfigSet"],
                 start: Callable[[str], Awaitable[dict[str, Any]]],
                 inherited_socket: Callable[[str, str], int | None],
                 fingerprint: Callable[["ProcessSpec"], str]) -> None:
        self.facts = facts
        self.registry = registry
        self.hub = hub
        self.store = store
        self.journal = journal
        self.output_dir = output_dir
        self.base_env = base_env
        self.instance = instance
        self.log_dir = log_dir
        self.warnings: list[str] = []
        #: The cgroup tree once the manager opened it (None: no cgroups, or not yet).
        self.cgroup_tree: "CgroupTree | None" = None
        #: Set before leaving for a re-exec: no settle lines (the next image adopts).
        self.handing_over = False
        self._config = config
        self._start = start
        self._inherited_socket = inherited_socket
        self._fingerprint = fingerprint
        #: name -> (spec, its fingerprint): journalled with every spawn, computed once per
        #: definition (specs are immutable; a new definition is a new object).
        self._fingerprints: dict[str, tuple[Any, str]] = {}
        self._nursery: trio.Nursery | None = None
        self._runtime_dirty = trio.Event()
        self.transactions = Transactions(registry, self)
        self.hooks = Hooks()
        self.features: list[Feature] = []
        for module_name in FEATURES:
            self.add_feature(importlib.import_module(module_name).FEATURE(self))

    # ------------------------------------------------------------------ wiring
    def add_feature(self, feature: Feature) -> None:
        """Register ``feature``'s hooks after those of the features already there."""
        self.features.append(feature)
        before = len(self.hooks.on_event)
        register(self.hooks, feature)
        self.hub.listeners.extend(self.hooks.on_event[before:])

    def feature(self, kind: type[F]) -> F:
        """The registered feature of class ``kind`` (LookupError when there is none)."""
        for feature in self.features:
            if isinstance(feature, kind):
                return feature
        raise LookupError(f"no feature {kind.__name__}")

    def attach(self, nursery: trio.Nursery) -> None:
        """The manager's nursery: where :meth:`spawn_task` and the PID writer run."""
        self._nursery = nursery
        if self.store is not None:
            nursery.start_soon(self._runtime_writer)

    # ------------------------------------------------------------------ FeatureContext
    @property
    def config(self) -> "ConfigSet":
        return self._config()

    @property
    def cgroups(self) -> "CgroupTree | None":
        return self.cgroup_tree

    def publish(self, type: str, process: str | None = None, id: str | None = None,
                **fields: Any) -> dict[str, Any]:
        if process and "@" in process:
            fields.setdefault("instance", process.partition("@")[2])
        return self.hub.publish(type, process, id, **fields)

    def warn(self, text: str) -> None:
        log.warning(text)
        self.warnings.append(text)

    def spawn_task(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> bool:
        """Run ``fn(*args)`` as a task of the manager's nursery (features acting outside
        a process's actor); False when the manager is not running (nothing started)."""
        if self._nursery is None:
            return False
        self._nursery.start_soon(fn, *args)
        return True

    def track(self, pid: int) -> None:
        """The orphan reaper leaves ``pid``'s exit to whoever waits for it."""
        self.facts.reaper.tracked.add(pid)

    def untrack(self, pid: int) -> None:
        self.facts.reaper.tracked.discard(pid)

    async def start(self, ref: str) -> dict[str, Any]:
        """Start ``ref`` as ``dd-procmgr start`` would (dependencies included)."""
        return await self._start(ref)

    def inherited_socket(self, service: str, socket_name: str) -> int | None:
        return self._inherited_socket(service, socket_name)

    # ------------------------------------------------------------------ SupervisorHost
    def prepare_run(self, sup: "Supervisor") -> PreparedRun:
        """Conditions, then the exec plan (env files, runtime dirs, every feature's env,
        fds and wrappers), then the output FIFOs of the next run."""
        spec = sup.spec
        if spec.condition_path_exists:
            ok, why = evaluate_conditions(spec.condition_path_exists, os.path.exists)
            if not ok:
                raise ConditionUnmet(why)
        try:
            file_env = load_environment_files(spec.environment_file)
        except (OSError, ValueError) as exc:
            raise SpawnError(f"environment_file: {exc}") from None
        try:
            extra = runtime_files.create_runtime_dirs(spec, self.facts.runtime_root)
        except LookupError as exc:  # the identity, looked up to chown the directories
            field = "user" if str(exc).startswith("unknown user") else "group"
            raise SpawnError(f"{field}: {exc}") from None
        except OSError as exc:
            raise SpawnError(f"runtime_directory: {exc}") from None
        plan = build_exec_plan(spec, base_env=self.base_env, file_env=file_env,
                               extra_env=dict(extra), pass_fds=())
        for hook in self.hooks.prepare_exec:
            hook(sup, plan)
        output, fifos = self._open_output(sup, run=sup.record.runs + 1)
        return PreparedRun(plan, output, fifos)

    def _open_output(self, sup: "Supervisor", run: int
                     ) -> tuple[tuple[int, int, int, int] | None, tuple[str, ...]]:
        """Output FIFOs for run ``run`` of ``sup`` (capture mode with a state dir), or
        (None, ()) for plain pipes. See ``engine.output_fifo``."""
        if self.output_dir is None or sup.spec.log.mode != "capture":
            return None, ()
        try:
            (cout, cerr), (rout, rerr), paths = output_fifo.create(
                self.output_dir, f"{sup.record.id}.{run}")
        except OSError as exc:  # full/read-only state dir, EMFILE: plain pipes this run
            sup.extras["output_fifo_error"] = output_fifo.fallback_note(exc)
            log.warning("%s: cannot create output FIFOs in %s (%s); this run's output uses "
                        "plain pipes and will not survive a daemon crash",
                        sup.name, self.output_dir, exc.strerror or exc)
            return None, ()
        sup.extras.pop("output_fifo_error", None)
        return (cout, cerr, rout, rerr), paths

    def spawned(self, sup: "Supervisor", inst: "Instance | None", run: PreparedRun | None,
                *, previous: int | None = None) -> None:
        """``inst``'s main process is watched from now on: tracked and journalled before
        anyone is told it runs (no crash runs it twice), and the PID record is rewritten.
        After a spawn attempt (``run``) features release its fds, and a failed one
        (``inst`` None) loses its FIFOs."""
        if run is not None:
            if inst is None:
                output_fifo.remove(run.fifos)
            for hook in self.hooks.on_spawned:
                hook(sup, inst)
        if inst is None:
            return
        if previous is not None:
            self.untrack(previous)
        self.track(inst.main_pid)
        self._journal_spawn(sup, inst)
        self.save_runtime()

    def _journal_spawn(self, sup: "Supervisor", inst: "Instance") -> None:
        if self.journal is None:
            return
        from trio_procmgr.engine.sockets import SocketActivation

        pid = inst.main_pid
        start_time = inst.child.start_time if pid == inst.child.pid else None
        if start_time is None:
            start_time = self.facts.platform.process.start_time(pid)
        self.journal.record_spawn({
            "name": sup.name, "id": sup.record.id, "pid": pid,
            "start_time": start_time, "pgid": inst.pgid,
            "runs": sup.record.runs, "restarts": sup.record.restarts,
            "started_at": sup.record.started_at, "fifos": list(inst.child.extra.get("fifos") or ()),
            "cgroup": getattr(sup.cgroup, "rel", None), "fingerprint": self.fingerprint_of(sup.spec),
            "sockets": self.feature(SocketActivation).spawn_fds(sup.name),
            "notify_socket": inst.child.extra.get("notify_socket")})

    def fingerprint_of(self, spec: Any) -> str:
        """The spec's config fingerprint (journalled with each spawn), once per definition."""
        cached = self._fingerprints.get(spec.name)
        if cached is not None and cached[0] is spec:
            return cached[1]
        digest: str = self._fingerprint(spec)
        self._fingerprints[spec.name] = (spec, digest)
        return digest

    def run_started(self, sup: "Supervisor", inst: "Instance", nursery: Any) -> None:
        for hook in self.hooks.on_instance:
            hook(sup, inst, nursery)

    def output_line(self, sup: "Supervisor", stream: str, line: str, now: float) -> None:
        for hook in self.hooks.on_log_line:
            hook(sup, stream, line, now)

    def run_ended(self, sup: "Supervisor", inst: "Instance") -> None:
        """A run is over (its main process reaped): the reaper may collect that PID again,
        and its output FIFOs go (the journal entry ends with the settle line)."""
        self.untrack(inst.main_pid)
        output_fifo.remove(tuple(inst.child.extra.get("fifos") or ()))

    def settled(self, sup: "Supervisor", *, requested: bool) -> None:
        """Where the process settled is journalled (so the next daemon neither boots a
        failed ``restart: never`` again nor forgets its counters), features see it go
        down, and the running-PID record is rewritten."""
        self._journal_settle(sup)
        for hook in self.hooks.on_down:
            hook(sup, requested)
        self.save_runtime()

    def _journal_settle(self, sup: "Supervisor") -> None:
        if self.journal is None or self.handing_over:
            return
        r = sup.record
        self.journal.record_settle(sup.name, state=r.state.value, reason=r.reason, runs=r.runs,
                                   restarts=r.restarts, exit_code=r.exit_code,
                                   exit_signal=r.exit_signal, ended_at=r.ended_at, id=r.id)

    async def restart_automatically(self, sup: "Supervisor") -> None:
        """Runs inside ``sup``'s actor when its backoff elapsed: a feature that owns the
        restart (a supervision group's round) takes it, else the process relaunches."""
        for take in self.hooks.take_restart:
            if await take(sup):
                return
        await sup.relaunch()

    def spec_replaced(self, sup: "Supervisor") -> None:
        self.registry.graph_changed()
        for hook in self.hooks.on_spec_replaced:
            hook(sup)

    # ------------------------------------------------------------------ manager side
    def added(self, sup: "Supervisor") -> None:
        """``sup`` was registered and its actor runs: features see it."""
        for hook in self.hooks.on_added:
            hook(sup)

    def save_runtime(self) -> None:
        """Mark the running-PID record dirty; a writer task coalesces the writes."""
        self._runtime_dirty.set()

    async def _runtime_writer(self) -> None:
        assert self.store is not None
        while True:
            await self._runtime_dirty.wait()
            await trio.sleep(0.2)  # coalesce a burst of starts into one write
            self._runtime_dirty = trio.Event()
            pids = {s.name: s.record.pid for s in self.registry.supervisors() if s.record.pid}
            # Encoded here (C encoder, no GIL contention); only the write and its fsync,
            # which can take milliseconds, go to a thread (restart latency).
            payload = self.store.runtime_payload(pids)
            if payload is not None:
                await trio.to_thread.run_sync(self.store.write, self.store.runtime_path, payload)

    def flush_logs(self) -> None:
        """Write every buffered log file line now (before a re-exec)."""
        from trio_procmgr.engine.logcapture import LogCapture

        capture = self.feature(LogCapture)
        for sup in self.registry.supervisors():
            capture.flush(sup)
