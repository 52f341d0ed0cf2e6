"""The daemon's end of NOTIFY_SOCKET: an abstract datagram socket with SO_PASSCRED.

With SO_PASSCRED every datagram carries the sender's pid/uid/gid (SCM_CREDENTIALS),
filled in by the kernel, which is what lets the engine accept a notification only from
the service's own processes. File descriptors sent along (SCM_RIGHTS: sd_notify
barriers, FDSTORE=1) are handed to the caller, who closes them (``Datagram.close_fds``)
*after* checking the sender: closing a barrier's pipe end is what ``sd_notify_barrier()``
(used by ``systemd-notify``) waits for before it exits, so until then the sender is
alive and can be matched to its service.
"""

from __future__ import annotations

import array
import os
import secrets
import socket
import struct
from dataclasses import dataclass

import trio

_UCRED = struct.Struct("iII")
_MAX_FDS = 253  # SCM_MAX_FD


@dataclass(frozen=True, slots=True)
class Datagram:
    data: bytes
    pid: int | None
    uid: int | None
    gid: int | None
    truncated: bool
    fds: tuple[int, ...]

    def close_fds(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass


class NotifySocket:
    """One bound notify socket; ``address`` is the NOTIFY_SOCKET value ("@name")."""

    def __init__(self, label: str, max_size: int, address: str | None = None) -> None:
        # ``address``: bind that exact "@name" again (a service adopted after a daemon
        # crash or re-exec keeps the NOTIFY_SOCKET it was given).
        name = address[1:] if address else f"dd-procmgr/{label}/{secrets.token_hex(6)}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sock.bind("\0" + name)
        except BaseException:
            sock.close()
            raise
        self.address = "@" + name
        self._max = max_size
        self._sock = trio.socket.from_stdlib_socket(sock)

    async def receive(self) -> Datagram:
        """The next datagram; the caller must ``close_fds()`` it."""
        anc = socket.CMSG_SPACE(_UCRED.size) + socket.CMSG_SPACE(_MAX_FDS * 4)
        data, ancdata, flags, _ = await self._sock.recvmsg(
            self._max + 1, anc, socket.MSG_CMSG_CLOEXEC)
        pid = uid = gid = None
        fds: list[int] = []
        for level, kind, payload in ancdata:
            if level != socket.SOL_SOCKET:
                continue
            if kind == socket.SCM_CREDENTIALS and len(payload) >= _UCRED.size:
                pid, uid, gid = _UCRED.unpack_from(payload)
            elif kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(payload[: len(payload) - len(payload) % received.itemsize])
                fds.extend(received)
        truncated = bool(flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC)) or len(data) > self._max
        return Datagram(bytes(data), pid, uid, gid, truncated, tuple(fds))

    def close(self) -> None:
        self._sock.close()
