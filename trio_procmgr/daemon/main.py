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
    p.add_argument("--no-cgroups", action="store_true",
                   help="do not use cgroups (control-group falls back to process-group)")
    p.add_argument("--auth-timeout", type=positive_seconds, default=10.0, metavar="SECONDS",
                   help="close a TCP client that has not authenticated within this (default 10)")
    p.add_argument("--client-send-timeout", type=positive_seconds, default=30.0, metavar="SECONDS",
                   help="drop an RPC client that reads nothing for this long (default 30)")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        from trio_procmgr import __version__
        print(f"dd-procmgrd {__version__}")
        return 0
    from trio_procmgr.daemon.logsetup import setup_logging

    setup_logging(args.log_level, args.log_format)
    import trio

    from trio_procmgr.platform.rlimits import raise_nofile_limit

    raise_nofile_limit()
    try:
        check_listener_args(args)
        return trio.run(run_daemon, args)
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


async def run_daemon(args: argparse.Namespace) -> int:
    import trio

    from trio_procmgr.config.loader import config_path_problem, load_config_path, resolve_config_dir
    from trio_procmgr.daemon.sdnotify import sd_notify, watchdog_interval
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
    state_dir = args.state_dir or default_state_dir()
    socket_path = args.socket or default_socket_path()
    manager = ProcessManager(config, state_dir=state_dir, log_dir=args.log_dir,
                             instance=instance_name(state_dir, args.instance),
                             use_cgroups=not args.no_cgroups, config_dir=config_dir)
    async with manager:
        async with trio.open_nursery() as nursery:
            await _start_listeners(nursery, manager, args, socket_path)
            nursery.start_soon(_handle_signals, manager, config_dir, nursery.cancel_scope)
            interval = watchdog_interval()
            if interval:
                nursery.start_soon(_watchdog_pinger, interval)
            log.info("dd-procmgrd ready: %d processes, socket %s, config %s",
                     len(manager.supervisors()), socket_path, config_dir or "(none)")
            sd_notify("READY=1\nSTATUS=supervising")
            await manager.wait_shutdown()
            log.info("shutting down: stopping every process")
            sd_notify("STOPPING=1")
            nursery.cancel_scope.cancel()
    _unlink(socket_path)
    return 0


def _load(config_dir: str | None, load_config_dir: Any) -> Any:
    from trio_procmgr.spec import ConfigSet

    if config_dir is None:
        log.warning("no configuration directory: starting empty")
        return ConfigSet()
    config = load_config_dir(config_dir)
    for issue in config.issues:
        (log.warning if issue.severity == "warning" else log.error)("config: %s", issue)
    return config


async def _start_listeners(nursery: Any, manager: Any, args: argparse.Namespace,
                           socket_path: str) -> None:
    from trio_procmgr.errors import ProcMgrError
    from trio_procmgr.preauth import PreAuthLimits
    from trio_procmgr.rpc.server import serve_rpc

    try:
        await nursery.start(lambda task_status: serve_rpc(
            manager, socket_path=socket_path, tcp=args.tcp, token_file=args.token_file,
            admin_group=args.admin_group, preauth=PreAuthLimits(deadline=args.auth_timeout),
            send_deadline=args.client_send_timeout, task_status=task_status))
    except OSError as exc:
        raise DaemonStartError(f"cannot listen on {socket_path}: {exc}") from None
    except ProcMgrError as exc:
        raise DaemonStartError(exc.message) from None
    if args.ws or args.metrics:
        from trio_procmgr.daemon import web

        await nursery.start(lambda task_status: web.serve_web(
            manager, ws=args.ws, metrics=args.metrics, token_file=args.token_file,
            task_status=task_status))


async def _handle_signals(manager: Any, config_dir: str | None, scope: Any) -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                                   signal.SIGUSR1) as signals:
        async for signum in signals:
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("received %s", signal.Signals(signum).name)
                await manager.shutdown()
            elif signum == signal.SIGHUP:
                if config_dir is None:
                    log.warning("SIGHUP: no configuration directory to reload")
                    continue
                summary = await manager.reload_config()
                log.info("configuration reloaded: %s", {k: v for k, v in summary.items() if v})
            elif signum == signal.SIGUSR1:
                rotate = getattr(manager, "rotate_logs", None)
                if rotate is not None:
                    rotate()


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
