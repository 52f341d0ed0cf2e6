"""The engine calls the RPC server makes, declared once and bound once.

The server does not look names up on an untyped manager per call: :class:`EngineApi`
says which engine calls exist, :func:`bind_engine` builds the name → bound callable
table once per server, and a call the engine lacks answers ``UNIMPLEMENTED`` naming
it. :class:`~trio_procmgr.engine.manager.ProcessManager` serves all of them (a test
checks it, and that every schema method has a handler): most as its own methods, the
few in :data:`ROUTES` from the object behind one of its attributes (the façade keeps
its public methods few). Protocol-level tests may serve a smaller fake, which then
simply lacks the rest.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

from trio_procmgr import errors

#: Records as the engine answers them; also spelled so because ``EngineApi.list`` shadows
#: the builtin inside the class body.
Records = list[dict[str, Any]]


class EngineApi(Protocol):
    """What the RPC server needs from the engine (a ``ProcessManager``)."""

    def resolve(self, ref: str) -> str: ...
    def list(self) -> Records: ...
    def describe(self, ref: str) -> dict[str, Any]: ...
    def summary(self, ref: str) -> dict[str, Any]: ...
    async def create(self, name: str, config: Any, *, start: bool = ...,
                     transient: bool = ...) -> dict[str, Any]: ...
    async def start(self, ref: str) -> dict[str, Any]: ...
    async def stop(self, ref: str) -> dict[str, Any]: ...
    async def restart(self, ref: str) -> dict[str, Any]: ...
    async def pause(self, ref: str) -> dict[str, Any]: ...
    async def resume(self, ref: str) -> dict[str, Any]: ...
    async def delete(self, ref: str, *, force: bool = ...) -> dict[str, Any]: ...
    async def update(self, ref: str, changes: Any, **kw: Any) -> dict[str, Any]: ...
    def stats(self, ref: str) -> dict[str, Any]: ...
    def stats_many(self, names: Any) -> Records: ...
    def logs(self, ref: str, **kw: Any) -> Records: ...
    def follow_logs(self, ref: str | None, **kw: Any) -> Any: ...
    def rotate_logs(self, ref: str | None = ...) -> Any: ...
    def deps(self, ref: str | None = ...) -> Any: ...
    async def kill(self, ref: str, sig: Any, *, whom: str = ...) -> dict[str, Any]: ...
    async def reload(self, ref: str) -> dict[str, Any]: ...
    def groups(self) -> Records: ...
    async def scale(self, name: str, replicas: int) -> dict[str, Any]: ...
    async def instantiate(self, template: str, instance: str, *,
                          start: bool = ...) -> dict[str, Any]: ...
    async def reload_config(self, config: Any = ...) -> dict[str, Any]: ...
    async def shutdown(self) -> None: ...
    async def daemon_reexec(self) -> None: ...


#: Every call of :class:`EngineApi`, by name (what :func:`bind_engine` binds).
ENGINE_CALLS: tuple[str, ...] = tuple(
    name for name in EngineApi.__dict__ if not name.startswith("_"))

#: Calls the ``ProcessManager`` serves from behind an attribute: name -> attribute path.
ROUTES: Mapping[str, str] = {
    "resolve": "registry.resolve",
    "summary": "views.summary",
    "stats_many": "views.stats_many",
}


def _lookup(engine: object, name: str) -> Any:
    """``engine.name``, else the attribute path :data:`ROUTES` gives for it, else None."""
    fn = getattr(engine, name, None)
    if fn is None and name in ROUTES:
        fn = engine
        for part in ROUTES[name].split("."):
            fn = getattr(fn, part, None)
    return fn


def bind_engine(engine: object) -> dict[str, Callable[..., Any]]:
    """The engine's calls as bound callables, looked up once; a missing one is absent."""
    table: dict[str, Callable[..., Any]] = {}
    for name in ENGINE_CALLS:
        fn = _lookup(engine, name)
        if callable(fn):
            table[name] = fn
    return table


def engine_call(table: Mapping[str, Callable[..., Any]], name: str) -> Callable[..., Any]:
    """The bound call ``name``, or UNIMPLEMENTED naming it when this engine lacks it."""
    try:
        return table[name]
    except KeyError:
        raise errors.Unimplemented(f"this daemon does not implement {name} yet",
                                   method=name) from None
