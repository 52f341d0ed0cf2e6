"""Which network listeners the daemon may open, and with what protection (SPEC §14).

The one place the listener rule lives, so the daemon's flag check, the RPC server and the
web listener cannot drift apart:

* the TCP RPC always needs a bearer token (a TCP peer has no credentials to check);
* the web listener (``--ws``, ``--metrics``) on a non-loopback address needs a token;
* without a token the web listener is read-only (events, metrics, the dashboard's view).

Pure: flags in, a validated :class:`ListenerPlan` out. The token file is read through the
``read_token`` callable it is given (the real file reader by default), so tests need no
files and nothing here opens a socket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trio_procmgr.daemon.startup import DaemonStartError
from trio_procmgr.endpoints import is_loopback, parse_hostport, read_token as read_token_file


class ListenerError(DaemonStartError):
    """A listener cannot be set up as asked; the message names the flag and what to do."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One validated ``HOST:PORT`` flag."""

    flag: str
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ListenerPlan:
    """The listeners to open and the token that guards them (None: no token file)."""

    tcp: Endpoint | None = None
    ws: Endpoint | None = None
    metrics: Endpoint | None = None
    token: str | None = None

    @property
    def web_read_only(self) -> bool:
        """Without a token the web side may only be watched: nothing changes through it."""
        return self.token is None

    @property
    def web_needs_token(self) -> bool:
        """With a token every web request but the static page must present it."""
        return self.token is not None


def parse_endpoint(flag: str, text: str) -> Endpoint:
    """``HOST:PORT`` of ``flag``; ListenerError naming the flag otherwise."""
    try:
        host, port = parse_hostport(text)
    except ValueError as exc:
        raise ListenerError(f"{flag}: {exc} (expected HOST:PORT, e.g. 127.0.0.1:8765)") from None
    return Endpoint(flag, host, port)


def plan_listeners(*, tcp: str | None = None, ws: str | None = None,
                   metrics: str | None = None, token_file: str | None = None,
                   read_token: Callable[[str], str] = read_token_file) -> ListenerPlan:
    """Validate the listener flags together; raises ListenerError for the first problem."""
    token = None
    if token_file:
        try:
            token = read_token(token_file)
        except (OSError, ValueError) as exc:
            raise ListenerError(f"--token-file: {exc}") from None
    plan = ListenerPlan(
        tcp=parse_endpoint("--tcp", tcp) if tcp else None,
        ws=parse_endpoint("--ws", ws) if ws else None,
        metrics=parse_endpoint("--metrics", metrics) if metrics else None,
        token=token)
    check_plan(plan)
    return plan


def check_plan(plan: ListenerPlan) -> None:
    """The rule itself: TCP needs a token; a non-loopback web address needs a token."""
    if plan.token is not None:
        return
    if plan.tcp is not None:
        where = "" if plan.tcp.loopback else f" (and {plan.tcp.host} is not a loopback address)"
        raise ListenerError(f"--tcp {plan.tcp}: a TCP listener needs --token-file{where}; "
                            "clients then pass the token with --token-file or DD_PM_TOKEN")
    for endpoint in (plan.ws, plan.metrics):
        if endpoint is not None and not endpoint.loopback:
            raise ListenerError(
                f"{endpoint.flag} {endpoint}: a non-loopback address ({endpoint.host}) needs "
                "--token-file (clients then send Authorization: Bearer <token>); without a "
                "token file the web listener is read-only and local only")
