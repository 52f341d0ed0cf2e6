"""start / stop / restart of many processes as one transaction (``stop --all``).

One RPC and one plan instead of one of each per process: the planner orders the whole
set once (dependants stop first, independent branches concurrently) and the executor
carries it out, so stopping a thousand services costs one stop sequence per service and
no per-process planning or round trip. Names that are no plain process (an instance set
``worker``, a template instance still to be made) are passed to the single-name calls,
which know those. Each outcome is reported on its own: one failure does not hide the
others, and the caller gets them in the order it asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

from trio_procmgr import errors, planner
from trio_procmgr.states import State

if TYPE_CHECKING:
    from trio_procmgr.engine.manager import ProcessManager

S = State
VERBS = ("start", "stop", "restart")
_RUNNING = (S.RUNNING, S.STARTING, S.PAUSED)


async def act_on_many(manager: "ProcessManager", verb: str, refs: list[str]) -> list[dict[str, Any]]:
    """``verb`` on every ref; ``[{"name", "record"} | {"name", "error"}]`` in ref order."""
    if verb not in VERBS:
        raise errors.InvalidArgument(f"cannot {verb} many processes at once", verb=verb)
    names: dict[str, str] = {}
    single: list[str] = []
    for ref in dict.fromkeys(refs):
        try:
            names[ref] = manager.registry.resolve(ref)
        except errors.ProcessNotFound:
            single.append(ref)
    outcomes: dict[str, Any] = {}
    run = {"start": _start, "stop": _stop, "restart": _restart}[verb]
    outcomes.update(await run(manager, list(dict.fromkeys(names.values()))))
    for ref in single:
        outcomes[ref] = await _one(getattr(manager, verb), ref)
    return [_outcome(ref, outcomes[names.get(ref, ref)]) for ref in refs]


def _outcome(ref: str, value: Any) -> dict[str, Any]:
    if isinstance(value, errors.ProcMgrError):
        return {"name": ref, "error": value.to_dict()}
    return {"name": ref, "record": value}


async def _one(call: Callable[[str], Awaitable[Any]], name: str) -> Any:
    try:
        return await call(name)
    except errors.ProcMgrError as exc:
        return exc


def _record(manager: "ProcessManager", name: str, result: Any) -> Any:
    if isinstance(result, errors.ProcMgrError):
        return result
    return manager.supervisor(name).record.to_dict()


async def _stop(manager: "ProcessManager", names: list[str]) -> dict[str, Any]:
    tx = manager.transactions
    active = tx.active_names()
    moving = [n for n in names if n in active or manager.supervisor(n).record.state is S.BACKOFF]
    out: dict[str, Any] = {}
    if moving:
        results = await tx.run_stop_plan(planner.stop_transaction(manager.registry.specs, moving, active))
        out.update({n: _record(manager, n, results.get(n)) for n in moving})
    for name in names:
        if name not in out:  # not running: NOT_RUNNING, or settles a failed one
            out[name] = await _one(manager.stop, name)
    return out


async def _start(manager: "ProcessManager", names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    todo = []
    for name in names:
        state = manager.supervisor(name).record.state
        if state in _RUNNING:
            out[name] = errors.AlreadyRunning(f"process '{name}' is already {state.value}",
                                              process=name, state=state.value)
        else:
            todo.append(name)
    if todo:
        plan = planner.start_transaction(manager.registry.specs, todo)
        results = await manager.transactions.run_start_plan(plan, manual=True)
        out.update({n: _record(manager, n, results.get(n)) for n in todo})
    return out


async def _restart(manager: "ProcessManager", names: list[str]) -> dict[str, Any]:
    """Stop the running ones and what stops with them, then start the whole set again
    in order (like :meth:`ProcessManager.restart`, for many names at once)."""
    tx = manager.transactions
    active = tx.active_names()
    running = [n for n in names if n in active]
    again = list(names)
    if running:
        plan = planner.stop_transaction(manager.registry.specs, running, active)
        stopped = await tx.run_stop_plan(plan, restarting=True)
        failed = {n: r for n, r in stopped.items() if isinstance(r, errors.ProcMgrError)}
        again = [n for n in names if n not in failed] + \
            [n for n in plan.order if n not in names and n not in failed]
    else:
        failed = {}
    results = await tx.run_start_plan(planner.start_transaction(manager.registry.specs, again), manual=True)
    out = {n: failed.get(n) or _record(manager, n, results.get(n)) for n in names}
    return out
