"""Where the daemon listens by default (SPEC §13), shared by the daemon and every client.

Import-light on purpose: the CLI imports it before deciding whether it needs anything else.
"""

from __future__ import annotations

import os

SOCKET_ENV = "DD_PM_SOCKET"
SOCKET_NAME = "dd-procmgr.sock"


def default_socket_path() -> str:
    """The socket path a daemon and its clients agree on without being told.

    ``$DD_PM_SOCKET`` wins; then ``/run/dd-procmgr.sock`` for root; then
    ``$XDG_RUNTIME_DIR/dd-procmgr.sock``; then a per-user ``/tmp/dd-procmgr-<uid>/`` path.
    """
    explicit = os.environ.get(SOCKET_ENV)
    if explicit:
        return explicit
    uid = os.geteuid()
    if uid == 0:
        return f"/run/{SOCKET_NAME}"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir:
        return os.path.join(runtime_dir, SOCKET_NAME)
    return f"/tmp/dd-procmgr-{uid}/{SOCKET_NAME}"


def read_only_socket_path(path: str) -> str:
    """The read-only companion of the RPC socket ``path`` (``x.sock`` -> ``x.ro.sock``).

    The main socket is 0660 (root and the socket's group connect; SO_PEERCRED then
    decides who may change things); the companion is 0666 and every connection on it
    is read-only, so any local user can watch without being able to act.
    """
    if path.endswith(".sock"):
        return path[: -len(".sock")] + ".ro.sock"
    return path + ".ro"
