"""Tell our own supervisor (systemd, or another dd-procmgrd) how we are doing."""

from __future__ import annotations

import os
import socket


def sd_notify(message: str, environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Send ``message`` to $NOTIFY_SOCKET; False (and no error) when there is none."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval(environ: dict[str, str] | os._Environ[str] = os.environ) -> float | None:
    """Half the supervisor's watchdog period, if it armed one for us."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None
