"""Health checks and log-line readiness (SPEC §7, §6.2): the Trio shell.

Probes run as one task inside each instance's own nursery (``Feature.on_instance``),
so they exist only while that run of the child exists and are cancelled with it. The
counting lives in :mod:`trio_procmgr.health_state`. What this module guarantees:

* every probe is bounded by ``timeout`` (a cancel scope); an exec probe that outlives it
  is killed with its whole process group, and every probe socket is closed;
* ``sup.record.health`` is written only here, each change is a ``health_changed`` event
  and wakes the process's waiters (``wait_healthy`` dependants);
* ``restart_after`` consecutive counted failures post ``kill_for_failure`` once;
* ``ready_log_line``: a simple service stays ``starting`` until a line of its output
  matches the regex (the start timeout applies).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import trio

from trio_procmgr.engine import messages as msg
from trio_procmgr.engine.features import Feature, FeatureContext
from trio_procmgr.health_state import (HealthCounter, ProbeResult, StatusSet, excerpt,
                                       parse_host_port, push_result)
from trio_procmgr.spec import HealthCheckSpec

if TYPE_CHECKING:
    from trio_procmgr.engine.containment import TaskNursery
    from trio_procmgr.engine.supervisor import Instance, Supervisor

log = logging.getLogger("trio_procmgr.health")

MAX_RESPONSE = 64 * 1024
MAX_EXEC_OUTPUT = 64 * 1024


# ---------------------------------------------------------------- probes
async def probe_http(url: str, expected: StatusSet) -> tuple[bool, int | None, str]:
    """GET ``url`` (HTTP/1.1, ``Connection: close``); healthy when the status is in
    ``expected``. Reads at most :data:`MAX_RESPONSE` bytes of body; HTTPS certificates
    are not verified (as Kubernetes' HTTPS probes)."""
    import h11  # only a daemon with an HTTP check pays for it (~0.3 MiB, 16 ms)

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or "127.0.0.1"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
    async with stream:
        if parts.scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            stream = trio.SSLStream(stream, ctx, server_hostname=host)
        conn = h11.Connection(h11.CLIENT)
        netloc = parts.netloc.rpartition("@")[2]
        await stream.send_all(conn.send(h11.Request(
            method="GET", target=target,
            headers=[("Host", netloc), ("User-Agent", "dd-procmgrd-health"),
                     ("Connection", "close"), ("Accept", "*/*")])))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        status: int | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(16384)))
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data[:MAX_RESPONSE - len(body)]
                if len(body) >= MAX_RESPONSE:
                    break
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
    assert status is not None
    text = body.decode("utf-8", "replace")
    return status in expected, status, f"HTTP {status}" + (f": {excerpt(text)}" if text.strip() else "")


async def probe_tcp(address: str) -> tuple[bool, int | None, str]:
    host, port = parse_host_port(address)
    stream = await trio.open_tcp_stream(host, port)
    await stream.aclose()
    return True, None, f"connected to {address}"


async def probe_exec(argv: tuple[str, ...], timeout: float, env: dict[str, str],
                     host: FeatureContext | None = None) -> tuple[bool, int | None, str]:
    """Run ``argv`` in its own session; exit 0 = healthy.

    At ``timeout`` (or on cancellation) the whole process group is SIGKILLed and the
    probe reaped before this returns. The pid is registered with the engine's reaper
    (``host``) from spawn to reap, so the reaper of orphans never steals its exit status.
    """
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=write_fd,
                                stderr=write_fd, start_new_session=True, env=env, close_fds=True)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    if host is not None:
        host.track(proc.pid)
    output = bytearray()
    try:
        with trio.move_on_after(timeout) as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drain, read_fd, output)
                await _wait_exit(proc, host)
    finally:
        _kill_group(proc.pid)
        with trio.CancelScope(shield=True):
            await _wait_exit(proc, host)
        if host is not None:
            host.untrack(proc.pid)
    text = excerpt(output.decode("utf-8", "replace"))
    if scope.cancelled_caught:
        return False, None, f"timed out after {timeout:g}s" + (f": {text}" if text else "")
    rc = proc.returncode
    return rc == 0, rc, (f"exit {rc}" if rc >= 0 else f"killed by signal {-rc}") + (f": {text}" if text else "")


async def _drain(fd: int, output: bytearray) -> None:
    """Keep at most :data:`MAX_EXEC_OUTPUT` bytes, read the rest away; owns ``fd``."""
    async with trio.lowlevel.FdStream(fd) as stream:
        try:
            while chunk := await stream.receive_some(16384):
                if len(output) < MAX_EXEC_OUTPUT:
                    output.extend(chunk[:MAX_EXEC_OUTPUT - len(output)])
        except trio.BrokenResourceError:
            pass


async def _wait_exit(proc: "subprocess.Popen[bytes]", host: FeatureContext | None = None) -> int:
    """The probe's exit: through the platform's watch handle (a pidfd on Linux), else
    ``waitpid`` in a thread (portable platform, or no host)."""
    if proc.returncode is not None:
        return proc.returncode
    if host is None:
        return await trio.to_thread.run_sync(proc.wait)
    try:
        handle = host.facts.platform.process.watch(proc.pid)
    except OSError:
        handle = None
    if handle is None:
        rc: int = await host.facts.reaper.wait_child(proc)
        return rc
    try:
        await host.facts.platform.process.wait_watched(handle)
    finally:
        os.close(handle)
    return proc.wait()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def run_probe(check: HealthCheckSpec, env: dict[str, str],
                    host: FeatureContext | None = None) -> ProbeResult:
    """One probe, bounded by ``check.timeout``; never raises (a failure is a result)."""
    started = trio.current_time()
    wall = time.time()
    ok, status, detail = False, None, ""
    try:
        if check.type == "exec":
            ok, status, detail = await probe_exec(check.exec_command, check.timeout, env, host)
        else:
            with trio.fail_after(check.timeout):
                if check.type == "http":
                    ok, status, detail = await probe_http(check.http_endpoint or "",
                                                          StatusSet(check.expected_status))
                else:
                    ok, status, detail = await probe_tcp(check.tcp_address or "")
    except trio.TooSlowError:
        detail = f"timed out after {check.timeout:g}s"
    except _probe_errors() as exc:
        detail = excerpt(_describe_error(exc))
    return ProbeResult(time=wall, ok=ok, latency=trio.current_time() - started,
                       detail=detail, status=status)


def _probe_errors() -> tuple[type[Exception], ...]:
    """What a failed probe raises; h11's error once an HTTP probe has imported h11 (none
    can be raised before)."""
    errors: tuple[type[Exception], ...] = (OSError, ValueError, trio.BrokenResourceError,
                                           ssl.SSLError, AssertionError)
    h11 = sys.modules.get("h11")
    return errors + (h11.ProtocolError,) if h11 is not None else errors


def _describe_error(exc: BaseException) -> str:
    """The root OS error, not trio's "all attempts to connect ... failed" wrapper."""
    cause = exc.__cause__
    while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[0]
    if isinstance(cause, OSError):
        exc = cause
    return f"{type(exc).__name__}: {exc.strerror or exc}" if isinstance(exc, OSError) \
        else f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- the feature
def set_health(sup: "Supervisor", health: str, reason: str) -> None:
    """Write ``sup.record.health``; publish and wake waiters only on a change."""
    old = sup.record.health
    if old == health:
        return
    sup.record.health = health
    sup.host.publish("health_changed", sup.name, sup.record.id, **{"from": old, "to": health},
                        reason=reason)
    log.info("process %s: health %s -> %s (%s)", sup.name, old, health, reason)
    sup.notify_changed()


class HealthFeature(Feature):
    """Per-supervisor probe task bookkeeping (so a hot update can replace the probe)."""

    def __init__(self, context: FeatureContext) -> None:
        self.context = context
        self._scopes: weakref.WeakKeyDictionary[Any, tuple[Any, trio.CancelScope, Any]] = \
            weakref.WeakKeyDictionary()
        self._ready_res: dict[str, re.Pattern[str]] = {}

    def on_instance(self, sup: "Supervisor", inst: "Instance", nursery: "TaskNursery") -> None:
        sup.extras.pop("health_checks", None)
        if sup.spec.health_check is not None:
            self._start_probe(sup, inst, nursery)

    def _start_probe(self, sup: "Supervisor", inst: "Instance", nursery: "TaskNursery") -> None:
        scope = trio.CancelScope()
        self._scopes[sup] = (inst, scope, sup.spec.health_check)
        nursery.start_soon(self._probe_loop, sup, inst, scope)

    async def _probe_loop(self, sup: "Supervisor", inst: "Instance", scope: trio.CancelScope) -> None:
        with scope:
            check = sup.spec.health_check
            assert check is not None
            counter = HealthCounter(check, trio.current_time())
            set_health(sup, "starting", "health check configured; waiting for a first success")
            env = {**self.context.base_env, **dict(sup.spec.env)}
            while True:
                next_at = trio.current_time() + check.interval
                result = await run_probe(check, env, self.context)
                if inst is not sup.instance or inst.exited.is_set():
                    return
                sup.extras["health_checks"] = push_result(sup.extras.get("health_checks", []), result)
                verdict = counter.observe(result.ok, trio.current_time())
                if result.ok:
                    inst.healthy_seen = True
                if verdict.changed:
                    why = result.detail if result.ok else \
                        f"{verdict.consecutive_failures} consecutive failures: {result.detail}"
                    set_health(sup, verdict.health, why)
                if verdict.kill:
                    sup.post(msg.KillForFailure(
                        inst, f"health check failed {verdict.consecutive_failures} "
                              f"times in a row ({result.detail})"))
                    return
                await trio.sleep_until(next_at)

    def on_down(self, sup: "Supervisor", requested: bool) -> None:
        self._scopes.pop(sup, None)
        set_health(sup, "none", "process is not running")

    def on_spec_replaced(self, sup: "Supervisor") -> None:
        """A hot update of ``health_check`` restarts the probe of the running instance."""
        held = self._scopes.get(sup)
        inst = sup.instance
        if held is not None and held[0] is inst and held[2] == sup.spec.health_check:
            return
        if held is None and sup.spec.health_check is None:
            return
        if held is not None:
            held[1].cancel()
            self._scopes.pop(sup, None)
        if inst is None or inst.nursery is None or inst.exited.is_set():
            return
        if sup.spec.health_check is None:
            set_health(sup, "none", "health check removed")
            sup.extras.pop("health_checks", None)
        else:
            self._start_probe(sup, inst, inst.nursery)

    def on_log_line(self, sup: "Supervisor", stream: str, line: str, now: float) -> None:
        pattern = sup.spec.ready_log_line
        if not pattern or sup.spec.process_type != "simple":
            return
        inst = sup.instance
        if inst is None or inst.ready:
            return
        rx = self._ready_res.get(pattern)
        if rx is None:
            rx = self._ready_res[pattern] = re.compile(pattern)
        if rx.search(line):
            sup.mark_ready(inst, f"ready: output matched {pattern!r}")


FEATURE = HealthFeature
