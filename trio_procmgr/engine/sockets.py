"""Socket activation (SPEC §2.4): listening sockets held by the daemon, passed as fds.

Each socket of ``config.sockets`` is bound when its service's supervisor is added —
before the boot transaction starts anything — and lives in that supervisor's nursery
(so it goes away with the process definition) together with its listener task. The
daemon never accepts: the listener waits until a socket is readable (a connection in
the backlog, a datagram queued) while the service is down, starts it through
the engine's ``start`` (dependencies included) and then waits until the service is down
again before re-arming. Sockets stay open across crashes, restarts and stops, so
connections queue in the backlog and none is refused; a crashed service is started
again by the next connection. A service that hit its start limit (``crashed``), or
whose activations would exceed it, is not re-triggered until something else starts it.

Each spawn of the service gets its sockets as fds 3, 4, ... (in socket-name order) with
``LISTEN_FDS``, ``LISTEN_FDNAMES`` (``fd_name``, default the socket's name),
``LISTEN_PID`` (the service's own PID) and the optional ``fd_env`` variable, exactly
as systemd sets them; the exec shim (``engine.exec_shim``) does the fd moves and the
PID. ``accept: true`` is refused (config error). Sockets are created from the config the
engine was built with; a reload does not add or rebind sockets (restart the daemon).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import socket
import trio

from trio_procmgr import errors
from trio_procmgr.engine import exec_shim
from trio_procmgr.engine.features import Feature, FeatureContext
from trio_procmgr.engine.spawner import SpawnError
from trio_procmgr.listen_env import ListenAddress, listen_environment, parse_listen
from trio_procmgr.restart import backoff_delay
from trio_procmgr.platform.posix import resolve_credentials
from trio_procmgr.spec import SocketSpec
from trio_procmgr.states import State

if TYPE_CHECKING:
    from trio_procmgr.engine.spawner import ExecPlan
    from trio_procmgr.engine.supervisor import Instance, Supervisor

log = logging.getLogger("trio_procmgr.sockets")
S = State
_STARTABLE = frozenset({S.CREATED, S.STOPPED, S.EXITED, S.FAILED, S.CONDITION_FAILED})


@dataclass
class BoundSocket:
    spec: SocketSpec
    address: ListenAddress | None = None
    sock: socket.socket | None = None
    error: str | None = None
    activations: int = 0
    last_activation_at: float | None = None
    created_path: str | None = None

    @property
    def fd_name(self) -> str:
        return self.spec.fd_name or self.spec.name

    def describe(self) -> dict[str, Any]:
        spec = self.spec
        return {"name": spec.name,
                "listen": spec.listen_stream or spec.listen_datagram,
                "type": "stream" if spec.listen_stream else "datagram",
                "fd_name": self.fd_name, "fd_env": spec.fd_env,
                "state": "listening" if self.sock is not None else "error",
                "error": self.error, "activations": self.activations,
                "last_activation_at": self.last_activation_at}

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.created_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.created_path)
            self.created_path = None


def open_listener(spec: SocketSpec) -> BoundSocket:
    """Bind (and listen on) one socket; errors are kept on the result, not raised."""
    bound = BoundSocket(spec)
    kind = socket.SOCK_STREAM if spec.listen_stream else socket.SOCK_DGRAM
    value = spec.listen_stream or spec.listen_datagram or ""
    try:
        address = bound.address = parse_listen(value)
        if address.family == socket.AF_UNIX:
            bound.sock = _bind_unix(bound, address.path or "", kind)
        else:
            bound.sock = _bind_inet(address, kind)
        if kind == socket.SOCK_STREAM:
            bound.sock.listen(spec.backlog)
    except (OSError, ValueError, LookupError) as exc:
        if bound.sock is not None:
            bound.sock.close()
            bound.sock = None
        bound.error = f"cannot listen on {value}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
    return bound


def adopt_listener(spec: SocketSpec, fd: int) -> BoundSocket:
    """The socket a re-exec'd daemon inherited (``daemon.handover``): the same listening
    socket, so the backlog and a running service's copy of it stay valid."""
    bound = BoundSocket(spec)
    try:
        bound.address = parse_listen(spec.listen_stream or spec.listen_datagram or "")
        bound.sock = socket.socket(fileno=fd)
        os.set_inheritable(fd, False)
    except (OSError, ValueError) as exc:
        bound.error = f"cannot take over the inherited socket (fd {fd}): {exc}"
        return bound
    if bound.address.family == socket.AF_UNIX:
        bound.created_path = bound.address.path
    return bound


def _bind_inet(address: ListenAddress, kind: int) -> socket.socket:
    infos = socket.getaddrinfo(address.host, address.port, address.family, kind, 0,
                               socket.AI_PASSIVE)
    family, _, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind | socket.SOCK_CLOEXEC, proto)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(bound: BoundSocket, path: str, kind: int) -> socket.socket:
    spec = bound.spec
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)  # stale socket of an earlier run
    sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    try:
        sock.bind(path)
        bound.created_path = path
        os.chmod(path, spec.socket_mode)
        if spec.socket_user is not None or spec.socket_group is not None:
            creds = resolve_credentials(spec.socket_user, spec.socket_group)
            assert creds is not None  # a user or a group was named
            os.chown(path, creds.uid if spec.socket_user is not None else -1,
                     creds.gid if spec.socket_group is not None or spec.socket_user else -1)
    except BaseException:
        sock.close()
        raise
    return sock


class SocketActivation(Feature):
    """The activation sockets of every process, bound when its supervisor is added."""

    def __init__(self, context: FeatureContext) -> None:
        self.context = context
        self.bound: dict[str, list[BoundSocket]] = {}
        self.per_spawn: dict[str, list[int]] = {}
        self.generation: dict[str, int] = {}  # bumped by each update of the process
        for spec in context.config.sockets.values():
            if spec.accept:
                raise errors.ConfigError(
                    f"socket '{spec.name}': accept: true (one instance per connection) is "
                    "not supported; use accept: false", socket=spec.name, field="accept")

    def spawn_fds(self, name: str) -> dict[str, list[int]]:
        """Socket name -> [fd number in the service, socket inode] for the journal: how a
        daemon restarted after a crash takes the listening socket back from the running
        service (``pidfd_getfd``) instead of failing to bind its address again."""
        return {b.spec.name: [3 + i, os.fstat(b.sock.fileno()).st_ino]
                for i, b in enumerate(self.bound.get(name, [])) if b.sock is not None}

    def listening_fds(self) -> dict[str, int]:
        """Socket name -> fd of every listening activation socket (handed over on a re-exec)."""
        return {b.spec.name: b.sock.fileno() for bound in self.bound.values() for b in bound
                if b.sock is not None}

    def on_added(self, sup: "Supervisor") -> None:
        specs = sorted((s for s in self.context.config.sockets.values() if s.service == sup.name),
                       key=lambda s: s.name)
        if not specs:
            return
        bound = []
        for spec in specs:
            fd = self.context.inherited_socket(sup.name, spec.name)
            bound.append(adopt_listener(spec, fd) if fd is not None else open_listener(spec))
        for b in bound:
            if b.error:
                self.context.warn(f"socket '{b.spec.name}' of process '{sup.name}': {b.error}")
        self.bound[sup.name] = bound
        sup.extras["sockets"] = [b.describe() for b in bound]
        assert sup.nursery is not None
        sup.nursery.start_soon(self._serve, sup, bound)

    def prepare_exec(self, sup: "Supervisor", plan: "ExecPlan") -> None:
        self._close_spawn_fds(sup)
        bound = self.bound.get(sup.name)
        if not bound:
            return
        broken = [b for b in bound if b.sock is None]
        if broken:
            raise SpawnError(f"socket '{broken[0].spec.name}' is not listening: {broken[0].error}")
        n = len(bound)
        dups: list[int] = []
        self.per_spawn[sup.name] = dups
        for b in bound:
            assert b.sock is not None
            dups.append(fcntl.fcntl(b.sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 3 + n))
        plan.env.update(listen_environment([(b.fd_name, b.spec.fd_env) for b in bound]))
        exec_shim.request(plan, fds=dups, pid_vars=["LISTEN_PID"])

    def on_spawned(self, sup: "Supervisor", inst: "Instance | None") -> None:
        """The child has its copies of the sockets (or never will): ours go."""
        self._close_spawn_fds(sup)

    def _close_spawn_fds(self, sup: "Supervisor") -> None:
        for fd in self.per_spawn.pop(sup.name, []):
            with contextlib.suppress(OSError):
                os.close(fd)

    async def _serve(self, sup: "Supervisor", bound: list[BoundSocket]) -> None:
        """Activate ``sup`` on traffic while it is down; owns (and closes) the sockets."""
        try:
            live = [b for b in bound if b.sock is not None]
            if not live:
                return
            streak = 0  # activations in a row whose run failed: they back off
            while True:
                await self._wait_armed(sup, bound, streak)
                which = await _first_readable(live)
                if not _down(sup):
                    continue
                await self._activate(sup, bound, which)
                await sup.wait_until(_down)
                streak = streak + 1 if sup.record.state in (S.FAILED, S.CRASHED) else 0
        finally:
            for b in bound:
                b.close()
            if self.bound.get(sup.name) is bound:
                del self.bound[sup.name]
                self._close_spawn_fds(sup)

    async def _activate(self, sup: "Supervisor", bound: list[BoundSocket], which: BoundSocket) -> None:
        which.activations += 1
        which.last_activation_at = time.time()
        sup.extras["sockets"] = [b.describe() for b in bound]
        self.context.publish("socket_activated", sup.name, sup.record.id, socket=which.spec.name)
        try:
            await self.context.start(sup.name)
        except errors.ProcMgrError as exc:
            log.warning("socket %s: activating %s failed: %s", which.spec.name, sup.name,
                        exc.message)

    async def _wait_armed(self, sup: "Supervisor", bound: list[BoundSocket], streak: int) -> None:
        """Return once traffic may start ``sup``: it is down, and neither its start limit,
        a crash (start limit hit) nor the backoff after failed activations holds it.

        A hold ends by itself when its time is up, or when the process is started by
        other means or updated (``dd-procmgr update``/``reload-config`` re-arm it).
        """
        generation = self.generation.get(sup.name, 0)
        while True:
            await sup.wait_until(_down)
            updated = self.generation.get(sup.name, 0) != generation
            why, wait = activation_hold(sup, streak, time.time(), crash_cleared=updated)
            if why is None:
                self._set_trigger_state(sup, bound, None)
                return
            self._set_trigger_state(sup, bound, f"not activating: {why}")
            seen = self.generation.get(sup.name, 0)
            await sup.wait_until(lambda s: not _down(s) or self.generation.get(s.name, 0) != seen,
                                 timeout=wait)
            if not _down(sup) or self.generation.get(sup.name, 0) != seen:
                streak = 0  # started by other means, or updated: a fresh start

    def on_spec_replaced(self, sup: "Supervisor") -> None:
        """An update re-arms a held listener (the hold is decided again)."""
        self.generation[sup.name] = self.generation.get(sup.name, 0) + 1
        sup.notify_changed()

    def _set_trigger_state(self, sup: "Supervisor", bound: list[BoundSocket], note: str | None) -> None:
        described = [b.describe() for b in bound]
        for d in described:
            d["trigger"] = note
        sup.extras["sockets"] = described


def _down(sup: "Supervisor") -> bool:
    return sup.record.state in _STARTABLE or sup.record.state is S.CRASHED


def activation_hold(sup: "Supervisor", streak: int, now: float, *,
                    crash_cleared: bool = False) -> tuple[str | None, float | None]:
    """Why traffic may not start ``sup`` now, and for how long at most (None: until
    something changes); ``(None, None)`` when it may."""
    spec = sup.spec
    if sup.record.state is S.CRASHED and not crash_cleared:
        return "start limit hit", None
    if sup.limiter.would_exceed(now):
        return "activations would exceed the start limit", max(spec.start_limit_interval / 10, 0.1)
    if streak and sup.record.ended_at is not None:
        delay = backoff_delay(spec.backoff, spec.restart_sec, spec.restart_max_delay, streak)
        left = sup.record.ended_at + delay - now
        if left > 0:
            return f"backing off {delay:g}s after {streak} failed activation(s)", left
    return None, None


async def _first_readable(live: list[BoundSocket]) -> BoundSocket:
    if len(live) == 1:
        assert live[0].sock is not None
        await trio.lowlevel.wait_readable(live[0].sock)
        return live[0]
    found: list[BoundSocket] = []
    async with trio.open_nursery() as nursery:
        for b in live:
            async def wait(b: BoundSocket = b) -> None:
                assert b.sock is not None
                await trio.lowlevel.wait_readable(b.sock)
                found.append(b)
                nursery.cancel_scope.cancel()
            nursery.start_soon(wait)
    return found[0]


FEATURE = SocketActivation
