"""``dd-procmgr`` entry point: choose a parser, run the command, decide the exit status.

Exit status (SPEC §11): 0 ok; 1 the daemon refused (``error: CODE: message`` on stderr,
or ``{"error": {...}}`` on stdout with --json); 2 usage error; 3 the daemon cannot be
reached (naming the socket and the reason). This module is the only place that maps
exceptions to those numbers, for both the fast path and the asyncclick app.
"""

from __future__ import annotations

import errno
import os
import sys
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, Sequence

from dd_procmgr_cli.invocation import (
    EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, ExitWith, Invocation, UsageProblem,
)

PROG = "dd-procmgr"


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry: run and exit with the status."""
    import gc

    # Decoding and rendering 1000 records makes ~10,000 containers: with the default
    # threshold (700) the cyclic collector ran a dozen times in one ``list`` (~6 ms).
    # Long-running commands (watch, top, logs -f) still collect, less often.
    gc.set_threshold(100_000, 10, 10)
    code = run(list(sys.argv[1:] if argv is None else argv))
    # Leave without tearing the interpreter down: for a ``list`` of 1000 that frees
    # every record and module one by one (~5 ms of a 60 ms call). Nothing of ours
    # registers atexit work; what is buffered is flushed first.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass
    os._exit(code)


def run(args: list[str], environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    from dd_procmgr_cli import fastpath
    planned = fastpath.plan(args, environ)
    if planned is not None:
        inv, command = planned
        return run_guarded(inv, command)
    inv = Invocation(environ=environ)
    return run_guarded(inv, lambda: _run_app(args, inv))


def drive(coro: Any) -> Any:
    """Finish a coroutine that never suspends (asyncclick with synchronous callbacks).

    This avoids starting an event loop, and importing asyncio (~90 ms) or trio for
    nothing. A coroutine that does suspend is a programming error, reported as such.
    """
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a dd-procmgr command awaited real I/O; commands must be synchronous")


def _run_app(args: list[str], inv: Invocation) -> int:
    import asyncclick as click
    from dd_procmgr_cli.app import app
    try:
        result = drive(app.main(args=args, prog_name=PROG, obj=inv, standalone_mode=False))
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        return 130
    return result if isinstance(result, int) else EXIT_OK


def run_guarded(inv: Invocation, command: Callable[[], int]) -> int:
    """Run ``command`` and turn its outcome into an exit status, printing errors once."""
    try:
        return command()
    except ExitWith as stop:
        return stop.code
    except UsageProblem as problem:
        inv.warn(f"error: {problem}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:
        return report_failure(inv, exc)
    finally:
        inv.close()
        inv.flush()


def report_failure(inv: Invocation, exc: Exception) -> int:
    """Refusals -> 1, unreachable daemon -> 3; anything else is a bug and re-raised."""
    from trio_procmgr.errors import ProcMgrError
    if isinstance(exc, ProcMgrError):
        if inv.json:
            from dd_procmgr_cli.commands import error_dict
            inv.emit_json({"error": error_dict(exc)})
        else:
            inv.warn(f"error: {exc.code}: {exc.message}")
        return EXIT_REFUSED
    if isinstance(exc, (ConnectionError, TimeoutError, FileNotFoundError, PermissionError)):
        message = unreachable_message(inv, exc)
        if inv.json:
            inv.emit_json({"error": {"code": "UNREACHABLE", "message": message}})
        else:
            inv.warn(f"error: {message}")
        return EXIT_UNREACHABLE
    raise exc


_HINTS = {
    errno.ENOENT: "is the daemon running? set --socket or DD_PM_SOCKET",
    errno.ECONNREFUSED: "nothing listens there: the daemon is not running or died",
    errno.EACCES: "run as root or as a member of the daemon's admin group",
    errno.EPERM: "run as root or as a member of the daemon's admin group",
}
_DEFAULT_HINT = "is the daemon running? set --socket or DD_PM_SOCKET"


def unreachable_message(inv: Invocation, exc: Exception) -> str:
    """``cannot reach dd-procmgrd at SOCKET: REASON (what to do)``."""
    socket = getattr(exc, "socket", None) or inv.tcp or inv.socket or _default_socket()
    reason = getattr(exc, "reason", None)
    if reason is None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else (
            str(exc) or type(exc).__name__)
    if isinstance(exc, TimeoutError) and not getattr(exc, "reason", None):
        reason = f"no answer within {inv.timeout:g}s"
    hint = _HINTS.get(getattr(exc, "errno", None), _DEFAULT_HINT)
    return f"cannot reach dd-procmgrd at {socket}: {reason} ({hint})"


def _default_socket() -> str:
    try:
        from trio_procmgr.paths import default_socket_path
        return str(default_socket_path())
    except Exception:
        return "the default socket"


def _silence_stdout() -> None:
    """After EPIPE (``dd-procmgr list | head``), stop Python complaining at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    main()
