"""systemd ``.socket`` units -> our ``sockets:`` entries (SPEC §2.4).

``SOCKET_MAP`` is the mapping table (docs/migrating.md reproduces it). The socket's
service must be imported too: ``finish_socket`` links to it as a required reference.
"""

from __future__ import annotations

import re

from .builder import Handler, UnitBuilder
from .systemd_syntax import Directive, UnitName


def _listen(field_name: str) -> Handler:
    def convert(b: UnitBuilder, d: Directive) -> None:
        if field_name in b.fields:
            b.unmapped(d.line, str(d), "one address per socket: add another socket entry for it")
            return
        address = _listen_address(d.value)
        if address is None:
            b.error(d.line, f"{d}: only a port, HOST:PORT, [IPv6]:PORT or an absolute path can be listened on")
            return
        b.set(field_name, b.expand(d, address))
    return convert


def _listen_address(value: str) -> str | None:
    if value.isdigit():
        return f"[::]:{value}"
    if value.startswith("/") or re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}", value):
        return value
    return None


def _accept(b: UnitBuilder, d: Directive) -> None:
    if d.value.lower() in ("yes", "true", "on", "1"):
        b.error(d.line, "Accept=yes (one process per connection) is not supported: the service must accept on the passed socket")


def _socket_text(field_name: str) -> Handler:
    def convert(b: UnitBuilder, d: Directive) -> None:
        b.set(field_name, b.expand(d, d.value))
    return convert


def _socket_int(field_name: str, base: int) -> Handler:
    def convert(b: UnitBuilder, d: Directive) -> None:
        try:
            value = int(d.value, base)
        except ValueError:
            b.error(d.line, f"{d}: expected a number")
            return
        b.set(field_name, f"{value:04o}" if base == 8 else value)
    return convert


def _socket_service(b: UnitBuilder, d: Directive) -> None:
    b.service = UnitName.parse(d.value).process_name


SOCKET_MAP: dict[str, tuple[str, Handler]] = {
    "ListenStream": ("listen_stream (a bare port listens on [::]:PORT)", _listen("listen_stream")),
    "ListenDatagram": ("listen_datagram", _listen("listen_datagram")),
    "FileDescriptorName": ("fd_name", _socket_text("fd_name")),
    "SocketMode": ("socket_mode", _socket_int("socket_mode", 8)),
    "SocketUser": ("socket_user", _socket_text("socket_user")),
    "SocketGroup": ("socket_group", _socket_text("socket_group")),
    "Backlog": ("backlog", _socket_int("backlog", 10)),
    "Accept": ("accept: false (Accept=yes is an error)", _accept),
    "Service": ("service", _socket_service),
}


def finish_socket(b: UnitBuilder) -> None:
    if "listen_stream" not in b.fields and "listen_datagram" not in b.fields:
        b.error(None, "no ListenStream= or ListenDatagram= in [Socket]")
        return
    b.fields.setdefault("fd_name", f"{b.unit.process_name}.socket")
    b.link("service", b.service, None, f"Service={b.service}.service (the socket's service)", required=True)
