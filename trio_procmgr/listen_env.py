"""Socket-activation and exec-shim values, computed without I/O (SPEC §2.4, §4).

* :func:`parse_listen` — a ``listen_stream``/``listen_datagram`` string to an address;
* :func:`listen_environment` — ``LISTEN_FDS``/``LISTEN_FDNAMES``/``fd_env`` exactly as
  systemd sets them for fds 3, 4, ...;
* :func:`shim_argv` — the argv that runs the real command through the exec shim, which
  sets ``LISTEN_PID``/``WATCHDOG_PID`` to its own PID and moves the passed fds to 3, 4,
  ... before exec'ing the command (same PID). Why a shim and which one: see
  ``trio_procmgr.engine.exec_shim``.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Sequence

_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.%\w]*\]|[^:\[\]]*):(\d{1,5})")


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """Where a socket listens: an inet host/port or an absolute Unix path."""

    family: int
    host: str | None = None
    port: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return self.path
        if self.family == socket.AF_INET6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def parse_listen(value: str) -> ListenAddress:
    """``HOST:PORT``, ``[V6]:PORT`` or ``/abs/path``; ValueError names what is wrong.

    An empty host or ``*`` means every IPv4 address (``0.0.0.0``); a bracketed host is
    IPv6 (``[::]`` listens on both stacks unless the host disabled dual-stack).
    Host names are kept as written; the caller resolves them.
    """
    if value.startswith("/"):
        return ListenAddress(socket.AF_UNIX, path=value)
    match = _HOST_PORT.fullmatch(value)
    if match is None:
        raise ValueError(f"invalid listen address {value!r}: expected HOST:PORT, [::]:PORT "
                         "or an absolute Unix path")
    host, port = match.group(1), int(match.group(2))
    if port > 65535:
        raise ValueError(f"invalid listen address {value!r}: port {port} is above 65535")
    if host.startswith("["):
        return ListenAddress(socket.AF_INET6, host=host[1:-1] or "::", port=port)
    return ListenAddress(socket.AF_INET, host=host if host not in ("", "*") else "0.0.0.0",
                         port=port)


def listen_environment(entries: Sequence[tuple[str, str | None]]) -> dict[str, str]:
    """The LISTEN_* environment for sockets passed as fds 3, 4, ... in this order.

    ``entries`` are ``(fd_name, fd_env)`` pairs. ``LISTEN_PID`` is not included: only the
    child knows its PID (the exec shim sets it). Empty ``entries`` give ``{}``.
    """
    if not entries:
        return {}
    env = {"LISTEN_FDS": str(len(entries)),
           "LISTEN_FDNAMES": ":".join(name for name, _ in entries)}
    for index, (_, fd_env) in enumerate(entries):
        if fd_env:
            env[fd_env] = str(3 + index)
    return env


# Runs under ``python -I -S``: set the PID variables, move fds to 3.., drop the locale
# variable Python's own start-up coerced, then exec the command (same PID).
PYTHON_SHIM = (
    "import os,sys\n"
    "a=sys.argv\n"
    "p=str(os.getpid())\n"
    "for k in a[1].split(','):\n"
    " k and os.environ.__setitem__(k,p)\n"
    "for i,s in enumerate(int(x) for x in a[2].split(',') if x):\n"
    " (os.dup2(s,3+i),os.close(s)) if s!=3+i else os.set_inheritable(s,True)\n"
    "a[3]=='-' and os.environ.pop('LC_CTYPE',None)\n"
    "os.execvpe(a[4],a[4:],os.environ)\n"
)
SHIM_NAME = "dd-procmgr-exec"


def shim_argv(argv: Sequence[str], *, fd_sources: Sequence[int], pid_vars: Sequence[str],
              env: dict[str, str], python: str, sh: str = "/bin/sh") -> list[str]:
    """Wrap ``argv`` in the exec shim; ``argv`` unchanged when nothing needs it.

    ``fd_sources`` are the fds as the child inherits them (``pass_fds`` keep their
    numbers), to become 3, 4, ...; they must all be >= 3 + len(fd_sources) so no move
    overwrites a source not yet moved. ``pid_vars`` get the child's own PID. ``env`` is
    the environment the child is given (the shim must not add to it).

    A POSIX shell is used when every source fd is a single digit (dash cannot name fd
    10 and above in a redirection), else Python.
    """
    if not fd_sources and not pid_vars:
        return list(argv)
    n = len(fd_sources)
    if any(fd < 3 + n and fd != 3 + i for i, fd in enumerate(fd_sources)):
        raise ValueError(f"fd sources {list(fd_sources)} overlap the targets 3..{2 + n}")
    if all(fd <= 9 for fd in fd_sources):
        parts = [f"{var}=$$; export {var}" for var in pid_vars]
        moves = " ".join(f"{3 + i}<&{fd} {fd}<&-" for i, fd in enumerate(fd_sources) if fd != 3 + i)
        if moves:
            parts.append(f"exec {moves}")
        if "PWD" not in env:
            parts.append("unset PWD")  # dash exports PWD otherwise
        parts.append('exec "$@"')
        return [sh, "-c", "; ".join(parts), SHIM_NAME, *argv]
    return [python, "-I", "-S", "-c", PYTHON_SHIM, ",".join(pid_vars),
            ",".join(map(str, fd_sources)), "+" if "LC_CTYPE" in env else "-", *argv]
