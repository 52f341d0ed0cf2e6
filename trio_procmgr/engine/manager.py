"""The process manager: a registry of supervisors and the transactions that drive them.

Usable as a library in any Trio program and the same object the daemon serves::

    async with ProcessManager(load_config_dir("examples")) as pm:
        await pm.start("web")

Entering it makes this process a child subreaper, adopts whatever a crashed predecessor
(or the image before a re-exec) with the same state dir left running (``engine.adoption``,
from the spawn journal), starts the orphan reaper and boots every ``auto_start`` process,
and every process that was running at the last clean shutdown, as one transaction.
Leaving it stops every process in reverse dependency order (unless handing over to a
re-exec'd image, which leaves them all running).

The manager is a façade: the library verbs and views users and the RPC server call.
Behind it, the :class:`~trio_procmgr.engine.registry.Registry` finds supervisors,
:class:`~trio_procmgr.engine.transactions.Transactions` runs dependency plans,
:class:`~trio_procmgr.engine.engine_host.EngineHost` is what every supervisor and
feature talks to, :class:`~trio_procmgr.engine.views.Views` answers the rarer views and
:class:`ShutdownSequence` is the daemon's ordered way out.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import logging
import os
import time
from typing import Any, Callable, Mapping

import trio

from trio_procmgr import errors, planner
from trio_procmgr.engine import output_fifo, resources, runtime_files
from trio_procmgr.engine import messages as msg
from trio_procmgr.engine.clock import Clock
from trio_procmgr.engine.engine_host import EngineHost
from trio_procmgr.engine.host import HostFacts
from trio_procmgr.engine.logcapture import LogCapture
from trio_procmgr.engine.overrides import OverrideLayer
from trio_procmgr.engine.registry import Registry
from trio_procmgr.engine.spawner import base_environment
from trio_procmgr.engine.spawn_journal import SpawnJournal
from trio_procmgr.engine.state_store import StateStore
from trio_procmgr.engine.supervisor import Supervisor
from trio_procmgr.engine.transactions import Transactions
from trio_procmgr.engine.views import Views
from trio_procmgr.events import EventHub
from trio_procmgr.platform.choice import choose_platform
from trio_procmgr.platform.ports import CgroupTree, Platform
from trio_procmgr.spec import ConfigSet, ProcessSpec, changed_fields, restart_required
from trio_procmgr.states import Record, State, StopCause

log = logging.getLogger("trio_procmgr.manager")
S = State


def fingerprint(spec: ProcessSpec) -> str:
    """A digest of a process's definition: did its config change while we were away?"""
    import hashlib
    import json

    from trio_procmgr.config.loader import spec_to_raw

    raw = json.dumps(spec_to_raw(spec), sort_keys=True, default=str)
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


class ShutdownSequence:
    """How the owner of a manager (the daemon) ends it: a shutdown request (RPC
    ``shutdown``, SIGTERM) and the one ordered stop of every process."""

    def __init__(self, hub: EventHub, transactions: Transactions,
                 record_was_running: Callable[[], None]) -> None:
        self._hub = hub
        self._transactions = transactions
        self._record_was_running = record_was_running
        self._requested = trio.Event()
        self._done = False
        #: The boot in progress, if any: a shutdown requested meanwhile cancels it (the
        #: processes it already started are stopped by :meth:`run` like any other).
        self.boot_scope: trio.CancelScope | None = None

    def request(self) -> None:
        self._requested.set()
        if self.boot_scope is not None:
            self.boot_scope.cancel()

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    async def wait_requested(self) -> None:
        await self._requested.wait()

    async def run(self) -> None:
        """Publish ``daemon_stopping``, stop every process in reverse dependency order,
        publish ``daemon_stopped``, then end every event and log stream — in that order,
        so a watcher sees all of it before its stream ends. Runs once: the daemon calls
        it while its listeners still serve, and leaving the manager calls it again.
        """
        if self._done:
            return
        self._done = True
        self._record_was_running()  # before the stop: what runs now runs after the next boot
        self._hub.publish("daemon_stopping", None, None)
        try:
            await self._transactions.stop_all()
        finally:
            self._hub.publish("daemon_stopped", None, None)
            self._hub.close_all()


class ProcessManager:
    def __init__(self, config: ConfigSet | None = None, *, state_dir: str | None = None,
                 log_dir: str | None = None, instance: str = "dd-procmgrd",
                 use_cgroups: bool = True, runtime_root: str | None = None,
                 daemon_env: Mapping[str, str] | None = None,
                 config_dir: str | None = None, handover: dict[str, Any] | None = None,
                 platform: Platform | None = None, clock: Clock | None = None) -> None:
        self.config = config or ConfigSet()
        self.config_dir = config_dir
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.instance = instance
        self.use_cgroups = use_cgroups
        self.runtime_root = runtime_root or runtime_files.default_runtime_root()
        self.base_env = base_environment(daemon_env if daemon_env is not None else os.environ)
        self.hub = EventHub()
        #: The OS adapter (``platform/ports.py``); the engine touches the OS only through it.
        self.platform = platform if platform is not None else choose_platform("auto")
        #: Wall time for records (:mod:`trio_procmgr.engine.clock`): the platform's clock
        #: unless a test passes one (``TrioWallClock`` follows Trio's MockClock).
        self.clock: Clock = clock or self.platform.clock
        self.reaper = self.platform.process.new_reaper()
        self.cgroups: CgroupTree | None = None
        self.store = StateStore(state_dir, self.platform.process.start_time) if state_dir else None
        self.journal = SpawnJournal(state_dir) if state_dir else None
        #: Where runs' output FIFOs are made (``output_fifo.choose_dir``: in memory).
        self.output_dir = output_fifo.choose_dir(state_dir) if state_dir else None
        self._ids: dict[str, str] = self.store.load_ids() if self.store else {}
        self._stopped_at_boot: list[str] = []
        self._died_unseen: dict[str, dict[str, Any]] = {}
        self._live_at_boot: dict[str, Any] = {}
        #: Not booted again: they ran (and settled, or died unseen) under a predecessor.
        self._ran_this_session: set[str] = set()
        #: A re-exec's snapshot (``daemon.handover``): inherited fds and counters.
        self.handover: dict[str, Any] | None = handover
        #: The daemon's re-exec (``daemon.handover``); None in library use.
        self.reexec_hook: Callable[[], Any] | None = None
        self.overrides = OverrideLayer(state_dir, self.store)
        #: Supervisors by name and id: what transactions, dependencies and groups read.
        self.registry = Registry()
        self._sups: dict[str, Supervisor] = self.registry.by_name
        #: What every supervisor and feature talks to (engine/engine_host.py).
        self.host = EngineHost(
            facts=HostFacts(self.clock, self.platform, self.reaper, self.runtime_root),
            registry=self.registry, hub=self.hub, store=self.store, journal=self.journal,
            output_dir=self.output_dir, base_env=self.base_env, instance=instance,
            log_dir=log_dir, config=lambda: self.config, start=self.start,
            inherited_socket=self._inherited_socket, fingerprint=fingerprint)
        self.transactions = self.host.transactions
        #: Warnings of this engine (cgroups, boot), shown by ``describe``.
        self.warnings = self.host.warnings
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        #: The daemon's way out: ``wait_requested`` then ``run`` (see :class:`ShutdownSequence`).
        self.shutdown_sequence = ShutdownSequence(self.hub, self.transactions,
                                                  self._record_was_running)
        #: RPC calls by method and errors by code, kept by the RPC server for /metrics.
        self.rpc_stats: dict[str, dict[str, int]] = {"calls": {}, "errors": {}}
        self.started_at = time.time()
        #: Web listener counters for /metrics (kept by ``daemon.web``).
        self.web_stats: dict[str, int] = {"clients": 0, "connections": 0}
        from trio_procmgr.engine.instances import Instances

        self.instances = Instances(self, add_process=self._add_process)
        self.config = self.instances.with_overrides(self.config)
        #: The rarer read-only answers (``summary``, ``stats_many``): see engine/views.py.
        self.views = Views(self.registry, self.host, self.overrides, self.instances)

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> "ProcessManager":
        if not self.platform.process.become_subreaper():
            self.host.warn(f"no child subreaper ({self.platform.name} platform): orphans of services "
                      "are not adopted")
        self._setup_cgroups()
        live = self._live_at_boot = self._find_adoptable()
        for verified in live.values():
            self.host.track(verified.entry["pid"])  # before the reaper could collect its exit
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        try:
            await self._nursery.start(self.reaper.run)
            self.host.attach(self._nursery)
            for spec in self.config.processes.values():
                await self._add(self._boot_spec(spec), self._stable_record(spec.name))
            if self.store is not None:
                for spec, saved in self.store.load_processes(self._parse_raw):
                    if spec.name not in self._sups:
                        record = Record(name=spec.name, created_at=saved.get("created_at"))
                        record.id = saved.get("id") or record.id
                        await self._add(spec, record)
            self._restore_records()
            restart = await self._adopt(live)
            await self._restore_settled(live)
            self._save_ids()
            self.host.publish("daemon_started", None, None, processes=len(self._sups),
                         adopted=len(live) - len(self._stopped_at_boot))
            with trio.CancelScope() as self.shutdown_sequence.boot_scope:
                if not self.shutdown_sequence.requested:
                    await self._boot()
                    for name in restart:
                        await self.restart(name)
            self.shutdown_sequence.boot_scope = None
        except BaseException as exc:
            await self._close(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return await self._close(*exc_info)

    async def _close(self, *exc_info: Any) -> bool | None:
        with trio.CancelScope(shield=True):
            try:
                if not self.host.handing_over:
                    await self.shutdown_sequence.run()
            finally:
                for sup in self._sups.values():
                    sup.close()
                if not self.host.handing_over:
                    self.reaper.reap_untracked()
                if self._nursery is not None:
                    self._nursery.cancel_scope.cancel()
        try:
            swallowed: bool | None = await self._nursery_cm.__aexit__(*exc_info)
            return swallowed
        finally:
            if self.cgroups is not None and not self.host.handing_over:
                self.cgroups.cleanup()
            if self.store is not None and not self.host.handing_over:
                self.store.save_runtime({}, now=True)
            if self.journal is not None:
                if not self.host.handing_over and not self._still_running():
                    self.journal.reset()  # a clean stop: the next boot is a fresh boot
                    self._remove_output_dir()
                self.journal.close()
            self.hub.close_all()

    def _still_running(self) -> bool:
        return any(s.instance is not None for s in self._sups.values())

    def _record_was_running(self) -> None:
        """What runs now runs again after the next boot (clean restart or re-exec)."""
        if self.store is not None:
            self.store.save_was_running([s.name for s in self._sups.values()
                                         if s.is_active() or s.record.state is S.BACKOFF])

    def _setup_cgroups(self) -> None:
        if not self.use_cgroups:
            self.host.warn("cgroups disabled: kill_mode control-group falls back to process-group")
            return
        self.cgroups, why = self.platform.cgroups.open(self.instance)
        self.host.cgroup_tree = self.cgroups
        if self.cgroups is None:
            self.host.warn(f"{why}: kill_mode control-group falls back to process-group")
            return
        for line in self.cgroups.warnings:
            self.host.warn(line)

    # ------------------------------------------------------------------ continuity
    def _find_adoptable(self) -> dict[str, Any]:
        """Verified live entries of the spawn journal; strays in our cgroups are killed."""
        from trio_procmgr.engine import adoption

        if self.journal is None:
            if self.cgroups is not None:
                self._kill_strays(set())
            return {}
        live, self._died_unseen = adoption.find_live(self, self.journal.load())
        self._ran_this_session = set(self.journal.settled) | set(self._died_unseen)
        self.journal.live = {n: v.entry for n, v in live.items()}
        self.journal.compact()
        if self.cgroups is not None:
            self._kill_strays({c for v in live.values() if (c := v.entry.get("cgroup"))})
        self._remove_stale_output({p for v in live.values() for p in v.entry.get("fifos") or ()})
        return live

    def _remove_stale_output(self, keep: set[str]) -> None:
        """FIFOs of runs no one will read again (a crash between mkfifo and the journal),
        where this daemon makes them and in the state dir (where earlier versions did)."""
        if self.output_dir is None or self.state_dir is None:
            return
        for directory in {self.output_dir, os.path.join(self.state_dir, "output")}:
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            output_fifo.remove([p for p in (os.path.join(directory, n) for n in names)
                                if p not in keep])

    def _remove_output_dir(self) -> None:
        """After a clean stop: the FIFO directory, if empty. (Its parent in /dev/shm, the
        per-user ``dd-procmgr-<euid>``, stays: another daemon may be making its own
        directory in it right now; an empty 0700 directory on tmpfs costs nothing.)"""
        if self.output_dir is not None:
            with contextlib.suppress(OSError):  # not empty: someone's FIFOs
                os.rmdir(self.output_dir)

    def _kill_strays(self, keep: set[str]) -> None:
        if self.cgroups is None:
            return
        strays = self.cgroups.kill_strays({k for k in keep if k})
        if strays:
            self.host.warn(f"stopped processes a previous daemon left that no journal entry "
                      f"vouches for: {strays}")

    def _restore_records(self) -> None:
        """Counters of settled processes from the journal, then counters and log rings of
        every process from a re-exec's snapshot."""
        for name, saved in (self.journal.settled if self.journal is not None else {}).items():
            sup = self._sups.get(name)
            if sup is not None and saved.get("id") == sup.record.id:
                for key in ("runs", "restarts", "exit_code", "exit_signal", "ended_at"):
                    setattr(sup.record, key, saved.get(key))
        for name, saved in (self.handover or {}).get("records", {}).items():
            sup = self._sups.get(name)
            if sup is None or saved.get("id") != sup.record.id:
                continue
            for key in ("runs", "restarts", "created_at", "started_at", "ended_at",
                        "exit_code", "exit_signal"):
                if key in saved:
                    setattr(sup.record, key, saved[key])
            for t, stream, line in saved.get("ring") or ():
                sup.ring.append(stream, line, t)

    async def _restore_settled(self, live: Mapping[str, Any]) -> None:
        """Processes that had settled (exited, failed, stopped, backoff ...) show that
        state again (a backoff resumes its restart); those whose main process ended while
        no daemon watched go through their restart policy now."""
        for name, saved in list((self.journal.settled if self.journal else {}).items()):
            sup = self._sups.get(name)
            if sup is not None and name not in live and saved.get("id") == sup.record.id:
                await sup.request(msg.Restore(str(saved.get("state")), saved.get("reason") or ""))
        for name, entry in self._died_unseen.items():
            sup = self._sups.get(name)
            if sup is not None and entry.get("id") == sup.record.id:
                await sup.request(msg.DiedUnseen(entry))

    async def daemon_reexec(self) -> None:
        """Check the installed daemon program and schedule the re-exec (RPC
        ``daemon_reexec``, SIGUSR2); a refused check raises with the reason. The daemon
        sets :attr:`reexec_hook` (``daemon.handover``); a library has no program to re-exec."""
        if self.reexec_hook is None:
            raise errors.Unimplemented("re-exec is only available in the daemon (dd-procmgrd)")
        stopping = sorted(s.name for s in self._sups.values() if s.record.state is S.STOPPING)
        if stopping:  # a stop sequence cannot be handed over half-way
            raise errors.InvalidState(f"cannot re-exec while {', '.join(stopping)} "
                                      "is stopping; retry when it has stopped", processes=stopping)
        await self.reexec_hook()

    async def _adopt(self, live: dict[str, Any]) -> list[str]:
        """Adopt or stop each live service; returns the adopted ones to restart once."""
        from trio_procmgr.engine import adoption

        # Only the live ones: a configured name missing here is "stop it" to decide().
        fingerprints = {name: self.host.fingerprint_of(self._sups[name].spec)
                        for name in live if name in self._sups}
        decision = adoption.decide({n: v.entry for n, v in live.items()}, fingerprints)
        self._stopped_at_boot = decision.stop
        inherited = (self.handover or {}).get("readers") or {}
        for name in decision.stop:
            self.host.untrack(live[name].entry["pid"])
            if self.journal is not None:
                self.journal.record_exit(name, live[name].entry["pid"])
            self.host.warn(adoption.stop_unconfigured(self, live[name]))
        for name in decision.adopt:
            entry = live[name].entry
            if entry.get("id") and entry["id"] != self._sups[name].record.id:
                self.registry.rename_id(name, entry["id"])
            readers, fifos = adoption.reopen_output(entry, inherited)
            await self._sups[name].request(msg.Adopt(entry, live[name].pidfd, readers, fifos))
        return decision.restart

    def _inherited_socket(self, service: str, socket_name: str) -> int | None:
        """The listening activation socket to keep, if there is one: inherited over a
        re-exec, or taken back (``pidfd_getfd``) from the running service a crashed
        predecessor journalled, checked by inode. None: bind it anew."""
        handed = ((self.handover or {}).get("listeners") or {}).get("activation") or {}
        if socket_name in handed:
            return int(handed[socket_name])
        verified = self._live_at_boot.get(service)
        where = (verified.entry.get("sockets") or {}).get(socket_name) if verified else None
        if not where or verified is None:
            return None
        try:
            fd = self.platform.process.take_fd(verified.pidfd, where[0])
        except OSError as exc:
            self.host.warn(f"socket '{socket_name}': cannot take it back from '{service}': {exc}")
            return None
        if os.fstat(fd).st_ino != where[1]:
            os.close(fd)  # the service closed or replaced that fd: not our socket
            return None
        return fd

    def _stable_record(self, name: str) -> Record | None:
        known = self._ids.get(name)
        if known is None:
            return None
        return Record(name=name, id=known, created_at=time.time())

    def _save_ids(self) -> None:
        if self.store is None:
            return
        ids = {name: sup.record.id for name, sup in self._sups.items()}
        if ids != self._ids:
            self._ids = ids
            self.store.save_ids(ids)

    async def shutdown(self) -> None:
        """Ask the owner (daemon) to exit; it stops everything on its way out."""
        self.shutdown_sequence.request()


    # ------------------------------------------------------------------ registry
    def supervisor(self, ref: str) -> Supervisor:
        """The supervisor of ``ref`` (a name or a record id); PROCESS_NOT_FOUND else."""
        return self.registry.supervisor(ref)

    def supervisors(self) -> list[Supervisor]:
        return self.registry.supervisors()

    async def _add(self, spec: ProcessSpec, record: Record | None = None) -> Supervisor:
        sup = Supervisor(self.host, spec, record)
        if self.cgroups is not None:
            sup.cgroup = resources.service_cgroup(self.cgroups, self.config.groups, sup)
        self.registry.add(sup)
        assert self._nursery is not None
        await self._nursery.start(sup.run)
        self.host.added(sup)
        return sup

    # ------------------------------------------------------------------ transactions
    async def _boot(self) -> None:
        """Boot auto_start processes and what ran at the last clean shutdown; after a
        crash or a re-exec, not those that already ran this session (settled or died
        unseen: they follow their restart policy instead, see :meth:`_restore_settled`)."""
        was_running = self.store.take_was_running() if self.store is not None else []
        await self.transactions.boot(extra=[n for n in was_running if n in self._sups],
                                     skip=self._ran_this_session)

    async def _run_start_plan(self, plan: planner.StartPlan, *, manual: bool) -> dict[str, Any]:
        return await self.transactions.run_start_plan(plan, manual=manual)

    async def _run_stop_plan(self, plan: planner.StopPlan, **kw: Any) -> dict[str, Any]:
        return await self.transactions.run_stop_plan(plan, **kw)

    # ------------------------------------------------------------------ public API
    def list(self) -> list[dict[str, Any]]:
        return [self.views.row(sup) for sup in self.registry.supervisors()]

    def describe(self, ref: str) -> dict[str, Any]:
        return self.views.describe(ref)

    def deps(self, ref: str | None = None) -> dict[str, Any]:
        """Dependency trees of one process (both directions), or of every process.

        ``{"name", "state", "dependencies": DepNode, "dependants": DepNode,
        "conflicts": [{"name", "state"}]}``; every tree node also carries ``state``.
        """
        return self.views.deps(ref)

    def groups(self) -> builtins.list[dict[str, Any]]:
        """Every supervision group with its runtime view and its members' states."""
        return self.views.groups()

    async def create(self, name: str, raw: dict[str, Any], *, start: bool = False,
                     transient: bool = False) -> dict[str, Any]:
        if name in self._sups:
            raise errors.AlreadyExists(f"a process named '{name}' already exists", process=name)
        spec = self._parse_raw(name, raw, transient=transient)
        self._check_graph({**self.registry.specs, name: spec})
        sup = await self._add(spec)
        self.host.publish("process_created", name, sup.record.id)
        saved = self._persist()
        self._save_ids()
        if start or spec.auto_start and start is not False:
            return self._unsaved_warning(await self.start(name), saved)
        return self._unsaved_warning(sup.record.to_dict(), saved)

    def _unsaved_warning(self, record: dict[str, Any], saved: bool) -> dict[str, Any]:
        """A created process whose definition could not be written to the state dir runs
        anyway; the answer says it would not come back after a daemon restart."""
        if not saved and self.store is not None:
            record["warnings"] = [f"not persisted: {self.store.error} (the process exists "
                                  f"until the daemon stops; the state dir is retried with "
                                  f"the next state write)"]
        return record

    def _parse_raw(self, name: str, raw: Mapping[str, Any], *, transient: bool = False) -> ProcessSpec:
        from trio_procmgr.config.loader import parse_process

        spec = parse_process(name, dict(raw))
        return dataclasses.replace(spec, transient=transient) if transient else spec

    def _check_graph(self, specs: Mapping[str, ProcessSpec]) -> None:
        specs = planner.expand_instance_dependencies(specs)
        cycle = planner.find_ordering_cycle(specs)
        if cycle is not None:
            raise planner.ordering_cycle_error(specs, cycle)
        for spec in specs.values():
            for field in ("requires", "binds_to", "part_of"):  # soft ones may dangle (a warning)
                for other in getattr(spec, field):
                    if other not in specs:
                        raise errors.ConfigError(
                            f"process '{spec.name}' {field} unknown process '{other}'",
                            process=spec.name, field=field, unknown=other)

    async def _add_process(self, spec: ProcessSpec) -> dict[str, Any]:
        """Register an already-parsed spec (a template's instance) as a new process,
        not started; runtime-created ones (no source file) are persisted."""
        if spec.name in self._sups:
            raise errors.AlreadyExists(f"a process named '{spec.name}' already exists", process=spec.name)
        self._check_graph({**self.registry.specs, spec.name: spec})
        sup = await self._add(spec)
        self.host.publish("process_created", spec.name, sup.record.id)
        self._persist()
        return sup.record.to_dict()

    async def instantiate(self, template: str, instance: str, *, start: bool = False) -> dict[str, Any]:
        """``create --from TEMPLATE@ INST``: see :mod:`trio_procmgr.engine.instances`."""
        return await self.instances.instantiate(template.rstrip("@"), instance, start=start)

    async def scale(self, ref: str, replicas: int) -> dict[str, Any]:
        """Run ``replicas`` instances of the replicated process ``ref`` (SPEC §16)."""
        return await self.instances.scale(ref, replicas)

    async def start(self, ref: str) -> dict[str, Any]:
        if self.instances.is_set(ref):
            return await self.instances.act("start", ref)
        if self.instances.can_instantiate(ref):
            base, _, instance = ref.partition("@")
            await self.instances.instantiate(base, instance)
        name = self.registry.resolve(ref)
        sup = self._sups[name]
        if sup.record.state in (S.RUNNING, S.STARTING, S.PAUSED):
            raise errors.AlreadyRunning(f"process '{name}' is already {sup.record.state.value}",
                                        process=name, state=sup.record.state.value)
        plan = planner.single_start_plan(name) if self.registry.index.starts_alone(name) \
            else planner.start_transaction(self.registry.specs, [name])
        results = await self._run_start_plan(plan, manual=True)
        outcome = results.get(name)
        if isinstance(outcome, errors.ProcMgrError):
            raise outcome
        return sup.record.to_dict()

    async def stop(self, ref: str) -> dict[str, Any]:
        if self.instances.is_set(ref):
            return await self.instances.act("stop", ref)
        name = self.registry.resolve(ref)
        sup = self._sups[name]
        if not sup.is_active() and sup.record.state is not S.BACKOFF:
            settled: dict[str, Any] = await sup.request(msg.Stop())  # NOT_RUNNING, or a failed one
            return settled
        plan = planner.single_stop_plan(name) if self.registry.index.stops_alone(name) \
            else planner.stop_transaction(self.registry.specs, [name], self.registry.active_names())
        results = await self._run_stop_plan(plan)
        outcome = results.get(name)
        if isinstance(outcome, errors.ProcMgrError):
            raise outcome
        return sup.record.to_dict()

    async def restart(self, ref: str) -> dict[str, Any]:
        """Stop ``ref`` and what stops with it (its requires/binds_to/part_of dependants,
        dependants first), then start them all again in order (systemd: a restart on
        request propagates like a stop on request)."""
        if self.instances.is_set(ref):
            return await self.instances.act("restart", ref)
        name = self.registry.resolve(ref)
        sup = self._sups[name]
        active = self.registry.active_names()
        if name not in active:
            return await self.start(name)
        plan = planner.stop_transaction(self.registry.specs, [name], active)
        results = await self._run_stop_plan(plan, restarting=True)
        outcome = results.get(name)
        if isinstance(outcome, errors.ProcMgrError):
            raise outcome
        again = [name] + [n for n in plan.order if n != name]
        results = await self._run_start_plan(planner.start_transaction(self.registry.specs, again),
                                             manual=True)
        outcome = results.get(name)
        if isinstance(outcome, errors.ProcMgrError):
            raise outcome
        return sup.record.to_dict()

    async def delete(self, ref: str, *, force: bool = False) -> dict[str, Any]:
        name = self.registry.resolve(ref)
        sup = self._sups[name]
        dependants = [s.name for s in self._sups.values()
                      if name in s.spec.requires + s.spec.binds_to + s.spec.wants
                      + s.spec.part_of + s.spec.after + s.spec.before + s.spec.conflicts]
        if dependants and not force:
            raise errors.InvalidState(
                f"process '{name}' is referenced by {', '.join(sorted(dependants))}; "
                "delete those first or use --force", process=name, dependants=dependants)
        if sup.is_active() or sup.record.state is S.BACKOFF:
            if not force:
                raise errors.InvalidState(
                    f"process '{name}' is {sup.record.state.value}; stop it first or use --force",
                    process=name, state=sup.record.state.value)
            await sup.request(msg.Stop("deleted", StopCause.DELETED))
        record = sup.record.to_dict()
        sup.close()
        await sup.closed.wait()
        self.registry.remove(name)
        if sup.cgroup is not None:
            try:
                sup.cgroup.remove()
            except OSError:
                pass
        self.host.publish("process_deleted", name, sup.record.id)
        self.overrides.forget(name)
        self._persist()
        self._save_ids()
        return record

    async def pause(self, ref: str) -> dict[str, Any]:
        record: dict[str, Any] = await self.supervisor(ref).request(msg.Pause())
        return record

    async def resume(self, ref: str) -> dict[str, Any]:
        record: dict[str, Any] = await self.supervisor(ref).request(msg.Resume())
        return record

    async def update(self, ref: str, changes: dict[str, Any], *, dry_run: bool = False,
                     restart_process: bool = False) -> dict[str, Any]:
        from trio_procmgr.config.loader import spec_to_raw

        if "replicas" in changes:
            return await self.instances.update_replicas(ref, changes, dry_run=dry_run)
        name = self.registry.resolve(ref)
        sup = self._sups[name]
        from trio_procmgr.config.yamldoc import LineMap, merge_over

        # Maps merge key by key, as drop-ins do: `--cpu-limit 2` keeps the memory limit.
        raw, _ = merge_over(spec_to_raw(sup.spec), LineMap(), dict(changes), LineMap())
        new = self._parse_raw(name, raw, transient=sup.spec.transient)
        # An updated file-defined process stays defined by its file (not runtime-created).
        new = dataclasses.replace(new, source=sup.spec.source)
        self._check_graph({**self.registry.specs, name: new})
        changed = changed_fields(sup.spec, new)
        needs = restart_required(changed)
        result = {"updated_fields": changed, "restart_required": needs, "restarted": False,
                  "dry_run": dry_run}
        if dry_run or not changed:
            result["record"] = sup.record.to_dict()
            return result
        await sup.request(msg.ReplaceSpec(new))
        self.host.publish("process_updated", name, sup.record.id, fields=changed,
                     restart_required=needs)
        if self._from_config(name):  # a layer over the file, kept across reloads/restarts
            self.overrides.add(name, changes)
        self._persist()
        if needs and restart_process and (sup.is_active() or sup.record.state is S.BACKOFF):
            await self.restart(name)
            result["restarted"] = True
        result["record"] = sup.record.to_dict()
        return result

    async def reload_config(self, config: ConfigSet | None = None) -> dict[str, Any]:
        """Apply a freshly loaded config atomically: all of it, or nothing (SPEC §15).

        The whole directory is read and checked first (off the event loop); any error —
        a bad file, an unreadable directory, a dependency on a process that would not
        exist, a file naming a runtime-created process — changes nothing, leaves every
        running process as it is, and is reported (result ``errors``, event
        ``config_reload_failed``, daemon log). A valid config is applied: added, removed,
        replaced where changed, the rest left alone.
        """
        if config is None:
            if self.config_dir is None:
                raise errors.InvalidState("no configuration directory to reload from")
            from trio_procmgr.config.loader import load_config_dir

            config = await trio.to_thread.run_sync(load_config_dir, self.config_dir)
        config = self.instances.with_overrides(config)
        problems = self._reload_problems(config)
        if problems:
            return self._reject_reload(problems)
        return await self._apply_reload(config)

    def _reload_problems(self, config: ConfigSet) -> builtins.list[dict[str, Any]]:
        """Every reason not to apply ``config``, as ConfigIssue dicts (warnings excluded)."""
        problems = [i.to_dict() for i in config.issues
                    if getattr(i, "severity", "error") == "error"]
        runtime = {n: s for n, s in self._sups.items()
                   if self._is_runtime_created(s) and n not in self.config.processes}
        for name in sorted(set(config.processes) & set(runtime)):
            spec = config.processes[name]
            problems.append({"file": spec.source.file or "<config>", "line": spec.source.line,
                             "field": None, "expected": "a name no runtime-created process has",
                             "message": f"process '{name}' was created at run time "
                                        "(dd-procmgr create); a file cannot take it over"})
        if problems:
            return problems
        new = {n: s.spec for n, s in runtime.items()}
        for name, spec in config.processes.items():
            try:
                new[name] = self._effective_spec(spec)
            except errors.ProcMgrError as exc:
                problems.append({"file": spec.source.file or "<config>", "line": spec.source.line,
                                 "field": None, "expected": None,
                                 "message": f"the runtime overrides of '{name}' "
                                            f"({self.overrides.path or 'in memory'}) no longer "
                                            f"apply: {exc.message}"})
        if problems:
            return problems
        try:
            self._check_graph(new)
        except errors.ProcMgrError as exc:
            culprit = new.get(str(exc.details.get("process")))
            problems.append({"file": (culprit.source.file if culprit else None) or "<runtime>",
                             "line": culprit.source.line if culprit else None,
                             "field": exc.details.get("field"), "expected": None,
                             "message": exc.message})
        return problems

    def _reject_reload(self, problems: builtins.list[dict[str, Any]]) -> dict[str, Any]:
        for issue in problems:
            where = issue["file"] + (f":{issue['line']}" if issue.get("line") else "")
            field = f" field '{issue['field']}':" if issue.get("field") else ""
            log.error("reload refused, nothing changed: %s:%s %s", where, field, issue["message"])
        self.host.publish("config_reload_failed", None, None, errors=problems)
        return {"added": [], "removed": [], "changed": [], "unchanged": sorted(self._sups),
                "errors": problems}

    async def _apply_reload(self, config: ConfigSet) -> dict[str, Any]:
        old_names = {n for n, s in self._sups.items() if not self._is_runtime_created(s)}
        new = {n: self._effective_spec(spec) for n, spec in config.processes.items()}
        added = sorted(set(new) - set(self._sups))
        removed = sorted(old_names - set(new))
        changed: list[str] = []
        unchanged: list[str] = []
        for name in sorted(set(new) & set(self._sups)):
            (changed if self._sups[name].spec != new[name] else unchanged).append(name)
        for name in removed:
            await self.delete(name, force=True)
        for name in changed:
            sup = self._sups[name]
            needs = restart_required(changed_fields(sup.spec, new[name]))
            was_active = sup.is_active()
            await sup.request(msg.ReplaceSpec(new[name]))
            self.host.publish("process_updated", name, sup.record.id, restart_required=needs)
            if needs and was_active:
                await self.restart(name)
        # The new config is in place before processes are added: features read it when a
        # supervisor is added (socket activation binds the new `sockets:` entries then).
        self.config = config
        for name in added:
            sup = await self._add(new[name], self._stable_record(name))
            self.host.publish("process_created", name, sup.record.id)
        self._save_ids()
        self.overrides.forget_except(set(config.processes))
        autostart = [n for n in added if new[n].auto_start]
        if autostart:
            await self._run_start_plan(planner.start_transaction(self.registry.specs, autostart),
                                       manual=False)
        summary = {"added": added, "removed": removed, "changed": changed,
                   "unchanged": unchanged, "errors": []}
        self.host.publish("config_reloaded", None, None, **summary)
        return summary

    def _effective_spec(self, spec: ProcessSpec) -> ProcessSpec:
        """``spec`` from a file with the process's runtime overrides applied on top
        (ConfigError when they no longer fit the file)."""
        from trio_procmgr.config.loader import spec_to_raw

        return self.overrides.apply(spec, spec_to_raw, self._parse_raw)

    def _boot_spec(self, spec: ProcessSpec) -> ProcessSpec:
        """At boot, an override that no longer fits its file is reported, not fatal."""
        try:
            return self._effective_spec(spec)
        except errors.ProcMgrError as exc:
            self.host.warn(f"process '{spec.name}': runtime overrides ignored: {exc.message}")
            return spec

    def _from_config(self, name: str) -> bool:
        return name in self.config.processes

    def _is_runtime_created(self, sup: Supervisor) -> bool:
        return sup.spec.source.file is None

    def _persist(self) -> bool:
        """Write the runtime-created definitions; False when the state dir refused."""
        if self.store is None:
            return True
        from trio_procmgr.config.loader import spec_to_raw

        return self.store.save_processes({
            s.name: {"spec": spec_to_raw(s.spec), "id": s.record.id,
                     "created_at": s.record.created_at}
            for s in self._sups.values()
            if self._is_runtime_created(s) and not s.spec.transient})

    def stats(self, ref: str) -> dict[str, Any]:
        return self.views.stats(ref)

    def logs(self, ref: str, *, lines: int | None = None, stream: str | None = None) -> builtins.list[dict[str, Any]]:
        return self.supervisor(ref).ring.tail(lines, stream)

    def follow_logs(self, ref: str | None = None, stream: str | None = None, *,
                    maxsize: int = 10_000) -> Any:
        """Live output of ``ref`` (None: every process; items carry ``process``).

        A bounded subscription (``with ... as sub: async for item in sub``): a slow
        reader gets a ``{"type": "lost", "count": N}`` item instead of stalling the pumps.
        """
        return self.host.feature(LogCapture).follow(ref, stream=stream, maxsize=maxsize)

    def rotate_logs(self, ref: str | None = None) -> builtins.list[str]:
        """Rotate the log files of ``ref`` (None: every process) now; the rotated paths."""
        return self.host.feature(LogCapture).rotate(ref)

    # ------------------------------------------------------------------ operator verbs
    async def kill(self, ref: str, sig: int | str = "SIGTERM", *, whom: str = "all") -> dict[str, Any]:
        """``systemctl kill``: signal the service without changing what the daemon
        expects of it (an exit it causes is handled like any other exit)."""
        from trio_procmgr.units import parse_signal

        if whom not in ("all", "main"):
            raise errors.InvalidArgument(f"kill: whom must be 'all' or 'main', not {whom!r}",
                                         field="whom")
        try:
            number = parse_signal(sig)
        except ValueError as exc:
            raise errors.InvalidArgument(f"kill: {exc}", field="signal", value=sig) from None
        sup = self.supervisor(ref)
        await sup.request(msg.Kill(number, whom))
        return self.views.summary(sup.name)

    async def reload(self, ref: str) -> dict[str, Any]:
        """Send the configured ``reload_signal`` (default SIGHUP) to the main process:
        the service re-reads its own config, no restart (``systemctl reload``)."""
        sup = self.supervisor(ref)
        await sup.request(msg.Kill(sup.spec.reload_signal, "main"))
        return self.views.summary(sup.name)
