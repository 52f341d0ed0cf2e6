"""``dd-procmgrd``: the daemon (SPEC §13).

It loads the config directory, enters a :class:`ProcessManager` (which boots every
``auto_start`` process), serves the RPC on a Unix socket (and optionally TCP and a
websocket), and runs until SIGTERM/SIGINT, when it stops everything in reverse
dependency order and exits 0. SIGHUP reloads the configuration.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import signal
import sys
import time
from typing import Any

from trio_procmgr.daemon.startup import DaemonStartError

log = logging.getLogger("trio_procmgr.daemon")


def default_state_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/dd-procmgr"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "dd-procmgr")


def instance_name(state_dir: str, explicit: str | None) -> str:
    """Name of this daemon's cgroup subtree; stable per state dir so a restarted daemon
    finds what its crashed predecessor left, and distinct daemons never collide."""
    if explicit:
        return explicit
    if os.path.realpath(state_dir) == os.path.realpath(default_state_dir()):
        return "dd-procmgrd"
    digest = hashlib.sha1(os.path.realpath(state_dir).encode()).hexdigest()[:10]
    return f"dd-procmgrd-{digest}"


def positive_seconds(text: str) -> float:
    """An argparse type: a duration in seconds, above 0 and at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text} must be above 0 and at most 86400 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dd-procmgrd", description=__doc__.split("\n")[0])
    p.add_argument("config", nargs="?", metavar="CONFIG",
                   help="a directory of process YAML files, or one YAML file (same as --config-dir)")
    p.add_argument("--config-dir", help="directory of process YAML files, or one YAML file "
                   "(default: $DD_PM_CONFIG_DIR, else /etc/pm/processes.d if it exists)")
    p.add_argument("--socket", help="Unix socket path of the RPC (default: /run/dd-procmgr.sock "
                   "as root, else $XDG_RUNTIME_DIR/dd-procmgr.sock)")
    p.add_argument("--tcp", metavar="HOST:PORT", help="also serve the RPC over TCP (token required)")
    p.add_argument("--token-file", help="file holding the bearer token for TCP and websocket clients")
    p.add_argument("--ws", metavar="HOST:PORT", help="serve the live dashboard at /, its API and the "
                   "/events, /logs, /stats websockets (read-only without --token-file)")
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics at /metrics")
    p.add_argument("--state-dir", help="where runtime-created processes and PIDs are kept")
    p.add_argument("--log-dir", help="write each process's output to <log-dir>/<name>.log")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--log-level", default="info",
                   choices=("debug", "info", "warning", "error", "critical"))
    p.add_argument("--admin-group", help="members of this group may mutate over the socket")
    p.add_argument("--instance", help="cgroup subtree name (default: derived from --state-dir)")
    p.add_argument("--platform", choices=("linux", "portable", "auto"),
                   default=os.environ.get("DD_PM_PLATFORM") or "auto",
                   help="OS adapter: linux (pidfd, cgroups, subreaper), portable (POSIX "
                        "process groups and waitpid only), auto (linux when pidfd and a "
                        "cgroup v2 hierarchy work here; the default, or $DD_PM_PLATFORM)")
    p.add_argument("--no-cgroups", action="store_true",
                   help="do not use cgroups (control-group falls back to process-group)")
    p.add_argument("--exit-with", metavar="NAME",
                   help="shut down when process NAME ends for good and exit with its status "
                        "(128+signal if killed): the main process of a container")
    p.add_argument("--auth-timeout", type=positive_seconds, default=10.0, metavar="SECONDS",
                   help="close a TCP client that has not authenticated within this (default 10)")
    p.add_argument("--client-send-timeout", type=positive_seconds, default=30.0, metavar="SECONDS",
                   help="drop an RPC client that reads nothing for this long (default 30)")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("--check-reexec", action="store_true",
                   help="check that this program can take over from a running daemon with "
                        "these flags (imports, flags, config dir), then exit 0 (used by re-exec)")
    return p


def main(argv: list[str] | None = None) -> int:
    from trio_procmgr.daemon import heap

    heap.pause_collection()  # until booted (daemon/heap.py)
    args = build_parser().parse_args(argv)
    if args.version:
        from trio_procmgr import __version__
        print(f"dd-procmgrd {__version__}")
        return 0
    if args.check_reexec:
        return check_reexec(args)
    from trio_procmgr.daemon.logsetup import setup_logging

    setup_logging(args.log_level, args.log_format)
    import trio

    from trio_procmgr.platform.rlimits import raise_nofile_limit

    raise_nofile_limit()
    try:
        check_listener_args(args)
        code = trio.run(run_daemon, args)
        # Everything is stopped: a late SIGTERM/SIGINT must not turn exit 0 into -15.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return code
    except KeyboardInterrupt:
        return 0
    except DaemonStartError as exc:
        print(f"dd-procmgrd: {exc}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:
        failed = group.subgroup(lambda e: isinstance(e, DaemonStartError))
        if failed is None:
            raise
        print(f"dd-procmgrd: {_first_leaf(failed)}", file=sys.stderr)
        return 1


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def check_listener_args(args: argparse.Namespace) -> None:
    """Refuse bad listener flags before any process starts (DaemonStartError)."""
    from trio_procmgr.listener_policy import plan_listeners

    plan_listeners(tcp=args.tcp, ws=args.ws, metrics=args.metrics, token_file=args.token_file)


def check_reexec(args: argparse.Namespace) -> int:
    """The re-exec preflight (``daemon.handover``): import everything the daemon runs and
    check its flags, without touching anything; exit 1 with the reason otherwise."""
    import importlib

    try:
        for module in ("trio", "trio_procmgr.engine.manager", "trio_procmgr.rpc.server",
                       "trio_procmgr.daemon.web", "trio_procmgr.daemon.handover",
                       "trio_procmgr.config.loader", "trio_procmgr.engine.features"):
            importlib.import_module(module)
        check_listener_args(args)
        from trio_procmgr.config.loader import config_path_problem

        explicit = args.config or args.config_dir
        problem = config_path_problem(explicit) if explicit else None
        if problem:
            raise DaemonStartError(f"configuration {problem}")
    except DaemonStartError as exc:
        print(f"dd-procmgrd: {exc}", file=sys.stderr)
        return 1
    print("dd-procmgrd: ready to take over")
    return 0


async def run_daemon(args: argparse.Namespace) -> int:
    import trio

    from trio_procmgr.config.loader import config_path_problem, load_config_path, resolve_config_dir
    from trio_procmgr.engine.manager import ProcessManager
    from trio_procmgr.paths import default_socket_path

    if args.config and args.config_dir and args.config != args.config_dir:
        raise DaemonStartError(f"two configurations given: {args.config} and --config-dir {args.config_dir}")
    explicit = args.config or args.config_dir
    config_dir = resolve_config_dir(explicit, os.environ)
    problem = config_path_problem(explicit) if explicit else None
    if problem:
        raise DaemonStartError(f"configuration {problem}")
    config = _load(config_dir, load_config_path)
    from trio_procmgr.daemon import handover

    state_dir = args.state_dir or default_state_dir()
    socket_path = args.socket or default_socket_path()
    snap = handover.take()
    from trio_procmgr.platform.choice import choose_platform

    try:
        platform = choose_platform(args.platform)
    except ValueError as exc:  # only an environment default can get past argparse's choices
        raise DaemonStartError(f"--platform / DD_PM_PLATFORM: {exc}") from None
    manager = ProcessManager(config, state_dir=state_dir, log_dir=args.log_dir,
                             instance=instance_name(state_dir, args.instance),
                             use_cgroups=not args.no_cgroups, config_dir=config_dir,
                             handover=snap, platform=platform)
    log.info("platform %s", manager.platform.name)
    status = ExitStatusBox()
    # Until the very end, a further SIGTERM/SIGINT (during the stop, or once the signal
    # task is gone) lands here and is ignored: the shutdown already under way finishes.
    # Leaving the receiver restores SIG_IGN (set just before), not the default that
    # would kill the daemon while Trio winds down.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT):
        return await _serve(manager, args, config_dir, socket_path, snap, status)


async def _serve(manager: Any, args: argparse.Namespace, config_dir: str | None,
                 socket_path: str, snap: Any, status: "ExitStatusBox") -> int:
    import trio

    # Signals are read from before the boot to the end, so a SIGTERM while a long boot
    # is still starting processes is not lost: the manager's shutdown request cancels
    # the rest of the boot, what was started is stopped like at any shutdown, and the
    # daemon exits.
    ready = trio.Event()
    async with trio.open_nursery() as signal_nursery:
        signal_nursery.start_soon(_handle_signals, manager, config_dir, ready)
        try:
            return await _serve_entered(manager, args, config_dir, socket_path, snap,
                                        status, ready)
        finally:
            signal_nursery.cancel_scope.cancel()


async def _serve_entered(manager: Any, args: argparse.Namespace, config_dir: str | None,
                         socket_path: str, snap: Any, status: "ExitStatusBox",
                         ready: Any) -> int:
    import trio

    from trio_procmgr.daemon.sdnotify import sd_notify, watchdog_interval

    async with manager:
        async with trio.open_nursery() as nursery:
            info = await _start_listeners(nursery, manager, args, socket_path,
                                          (snap or {}).get("listeners"))
            manager.reexec_hook = _reexec_hook(manager, info, nursery)
            if snap is not None:
                took = time.time() - snap["at"]
                log.info("re-executed in place in %.0f ms: %d processes adopted", took * 1000,
                         sum(1 for s in manager.supervisors() if s.instance is not None))
                manager.host.publish("daemon_reexecuted", None, None, seconds=round(took, 3),
                                previous_started_at=snap.get("started_at"))
            ready.set()  # reloads, re-execs and log rotation from signals from now on
            from trio_procmgr.daemon import heap

            heap.freeze_boot_heap()
            if args.exit_with:
                _check_exit_with(manager, args.exit_with)
                nursery.start_soon(_exit_with, manager, args.exit_with, status)
            interval = watchdog_interval()
            if interval:
                nursery.start_soon(_watchdog_pinger, interval)
            log.info("dd-procmgrd ready: %d processes, socket %s, config %s%s",
                     len(manager.supervisors()), socket_path, config_dir or "(none)",
                     " (PID 1)" if os.getpid() == 1 else "")
            if manager.shutdown_sequence.requested:
                log.info("stop requested during the boot: stopping what it started")
            else:
                sd_notify("READY=1\nSTATUS=supervising")
            await manager.shutdown_sequence.wait_requested()
            log.info("shutting down: stopping every process")
            sd_notify("STOPPING=1")
            await _stop_then_close_listeners(manager, nursery.cancel_scope)
    _unlink(socket_path)
    return status.code


class ExitStatusBox:
    """The daemon's exit status: 0, or that of the ``--exit-with`` process."""

    code = 0


async def _stop_then_close_listeners(manager: Any, listeners: Any) -> None:
    """Stop everything while the listeners still serve, so RPC watchers receive
    ``daemon_stopping``, each process's stop and ``daemon_stopped`` and then the normal
    end of their stream; only then close the listeners. The final frames are flushed
    once every task is idle (bounded: a client that never reads cannot hold us)."""
    import trio
    import trio.testing

    await manager.shutdown_sequence.run()
    with trio.move_on_after(2.0):
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
    listeners.cancel()


def _check_exit_with(manager: Any, name: str) -> None:
    from trio_procmgr.errors import ProcMgrError

    try:
        manager.registry.resolve(name)
    except ProcMgrError:
        raise DaemonStartError(f"--exit-with {name}: no such process in the configuration") from None


async def _exit_with(manager: Any, name: str, status: ExitStatusBox) -> None:
    """Shut the daemon down once ``name`` has ended for good (exited, failed or crashed
    with no restart pending, or stopped after having run); its status becomes ours."""
    from trio_procmgr.daemon.exit_with import ended_for_good, exit_status_of

    sup = manager.supervisor(name)
    await sup.wait_until(lambda s: ended_for_good(s.record))
    status.code = exit_status_of(sup.record)
    log.info("--exit-with %s: it ended (%s); shutting down with status %d", name,
             sup.record.reason, status.code)
    await manager.shutdown()


def _load(config_dir: str | None, load_config_dir: Any) -> Any:
    from trio_procmgr.spec import ConfigSet

    if config_dir is None:
        log.warning("no configuration directory: starting empty")
        return ConfigSet()
    config = load_config_dir(config_dir)
    for issue in config.issues:
        (log.warning if issue.severity == "warning" else log.error)("config: %s", issue)
    return config


def _reexec_hook(manager: Any, info: Any, nursery: Any) -> Any:
    """``manager.daemon_reexec``: preflight the installed program, then schedule the exec
    in the daemon's own nursery (so a caller hanging up cannot cancel it) and return; the
    RPC answer goes out before the exec (see :func:`_exec_soon`)."""
    import trio

    from trio_procmgr.daemon import handover

    async def prepare() -> None:
        proc, output = handover.start_preflight(list(sys.orig_argv))
        manager.host.track(proc.pid)  # its exit status is ours to read, not the orphan reaper's
        try:
            with trio.move_on_after(handover.PREFLIGHT_TIMEOUT):
                await trio.to_thread.run_sync(proc.wait, abandon_on_cancel=True)
            returncode = proc.returncode if proc.returncode is not None and \
                proc.returncode >= 0 else None
        finally:  # timed out, or cancelled by a shutdown: the check never outlives us
            if proc.returncode is None:
                proc.kill()
                proc.wait()  # SIGKILLed: returns at once
            manager.host.untrack(proc.pid)
        handover.preflight_verdict(returncode, output)
        nursery.start_soon(_exec_soon, manager, info)

    return prepare


async def _exec_soon(manager: Any, info: Any) -> None:
    """Exec once what is queued was sent (the RPC answer to the re-exec call itself):
    until every other task is blocked, at most a second."""
    import trio
    import trio.testing

    from trio_procmgr.daemon import handover

    with trio.move_on_after(1.0):
        await trio.testing.wait_all_tasks_blocked(0.005)
    try:
        handover.execute(manager, info.fds)
    except Exception:  # the exec failed: this image keeps running; say why
        log.exception("re-exec failed; this image keeps running")


async def _start_listeners(nursery: Any, manager: Any, args: argparse.Namespace,
                           socket_path: str, inherited: Any = None) -> Any:
    from trio_procmgr.errors import ProcMgrError
    from trio_procmgr.preauth import PreAuthLimits
    from trio_procmgr.rpc.server import serve_rpc

    try:
        info = await nursery.start(lambda task_status: serve_rpc(
            manager, socket_path=socket_path, tcp=args.tcp, token_file=args.token_file,
            admin_group=args.admin_group, preauth=PreAuthLimits(deadline=args.auth_timeout),
            send_deadline=args.client_send_timeout, inherited=inherited,
            task_status=task_status))
    except OSError as exc:
        raise DaemonStartError(f"cannot listen on {socket_path}: {exc}") from None
    except ProcMgrError as exc:
        raise DaemonStartError(exc.message) from None
    if args.ws or args.metrics:
        from trio_procmgr.daemon import web

        web_info = await nursery.start(lambda task_status: web.serve_web(
            manager, ws=args.ws, metrics=args.metrics, token_file=args.token_file,
            inherited=inherited, task_status=task_status))
        info.fds.update(web_info.fds)  # handed over on a re-exec with the RPC's
    return info


async def _handle_signals(manager: Any, config_dir: str | None, ready: Any) -> None:
    """Act on the daemon's signals. SIGTERM/SIGINT are acted on at once — during the
    boot too (it is cancelled) and while a reload (SIGHUP) or a re-exec preflight
    (SIGUSR2) runs: those run one at a time in a task of their own, once the daemon is
    ready, so a slow or stuck preflight never delays a stop."""
    import trio

    serial = trio.Lock()

    async def one_at_a_time(work: Any) -> None:
        await ready.wait()
        async with serial:
            await work(manager)

    async def rotate_when_ready() -> None:  # not behind a reload: rotation is instant
        await ready.wait()
        manager.rotate_logs()

    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                                       signal.SIGUSR1, signal.SIGUSR2) as signals:
            stopping = False
            async for signum in signals:
                if signum in (signal.SIGTERM, signal.SIGINT):
                    if not stopping:
                        log.info("received %s", signal.Signals(signum).name)
                        stopping = True
                    else:
                        log.debug("received %s again: already shutting down",
                                  signal.Signals(signum).name)
                    await manager.shutdown()
                elif stopping:
                    log.info("received %s while shutting down: ignored",
                             signal.Signals(signum).name)
                elif signum == signal.SIGHUP:
                    if config_dir is None:
                        log.warning("SIGHUP: no configuration directory to reload")
                        continue
                    nursery.start_soon(one_at_a_time, _reload_on_signal)
                elif signum == signal.SIGUSR2:
                    nursery.start_soon(one_at_a_time, _reexec_on_signal)
                elif signum == signal.SIGUSR1:
                    nursery.start_soon(rotate_when_ready)


async def _reexec_on_signal(manager: Any) -> None:
    """SIGUSR2: re-exec in place; a refused preflight is logged, the daemon goes on."""
    from trio_procmgr.errors import ProcMgrError

    try:
        await manager.daemon_reexec()
    except ProcMgrError as exc:
        log.error("SIGUSR2: %s", exc.message)


async def _reload_on_signal(manager: Any) -> None:
    """SIGHUP: reload, and whatever goes wrong, log and report it — never fatal.

    The manager refuses a bad config itself (nothing changes, ``config_reload_failed``);
    this boundary catches what it did not foresee, so a reload can never take the daemon
    and every service down with it.
    """
    from trio_procmgr.errors import ProcMgrError

    try:
        summary = await manager.reload_config()
    except ProcMgrError as exc:
        log.error("SIGHUP: reload failed: %s", exc.message)
        manager.host.publish("config_reload_failed", None, None, errors=[
            {"file": manager.config_dir or "<config>", "message": exc.message}])
        return
    except Exception as exc:  # contained: logged with its traceback and reported
        log.exception("SIGHUP: reload failed unexpectedly")
        manager.host.publish("config_reload_failed", None, None, errors=[
            {"file": manager.config_dir or "<config>", "message": f"internal error: {exc!r}"}])
        return
    if summary.get("errors"):
        log.error("SIGHUP: configuration not reloaded (%d errors); nothing changed",
                  len(summary["errors"]))
    else:
        log.info("configuration reloaded: %s", {k: v for k, v in summary.items() if v})


async def _watchdog_pinger(interval: float) -> None:
    import trio

    from trio_procmgr.daemon.sdnotify import sd_notify

    while True:
        sd_notify("WATCHDOG=1")
        await trio.sleep(interval)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
