"""Limits on network peers that have not authenticated yet (SPEC §14, issue 14.4).

A TCP RPC or websocket peer costs the daemon a file descriptor and buffers before it has
shown its token. Until it authenticates:

* its first frame (or request head) is capped at :attr:`PreAuthLimits.first_frame` bytes;
* it must authenticate within :attr:`PreAuthLimits.deadline` seconds, else it is closed;
* at most :attr:`PreAuthLimits.max_pending` such peers exist at once; one more is closed
  at accept, so a flood of idle connections cannot exhaust the daemon's descriptors.

Shared by the RPC server and the web listener: each accepted connection enters
:meth:`PreAuthGate.admit`, runs inside the ticket's cancel scope, and calls
:meth:`PreAuthTicket.authenticated` once the token checked out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import trio

FIRST_FRAME = 64 * 1024
AUTH_DEADLINE = 10.0
MAX_PENDING = 64


@dataclass(frozen=True, slots=True)
class PreAuthLimits:
    """The three pre-authentication bounds (defaults are the documented ones)."""

    first_frame: int = FIRST_FRAME
    deadline: float = AUTH_DEADLINE
    max_pending: int = MAX_PENDING


class PreAuthTicket:
    """One unauthenticated peer's slot; its ``scope`` expires at the auth deadline."""

    def __init__(self, gate: "PreAuthGate", scope: trio.CancelScope) -> None:
        self._gate = gate
        self.scope = scope
        self.done = False

    def authenticated(self) -> None:
        """The peer proved itself: lift the deadline and free the slot."""
        self.scope.deadline = math.inf
        self._leave()

    @property
    def timed_out(self) -> bool:
        """True when the deadline (not the peer or a shutdown) ended the connection."""
        return self.scope.cancelled_caught and not self.done

    def _leave(self) -> None:
        if not self.done:
            self.done = True
            self._gate.pending -= 1


class PreAuthGate:
    """Counts unauthenticated peers of one listener and hands out deadline scopes."""

    def __init__(self, limits: PreAuthLimits = PreAuthLimits()) -> None:
        self.limits = limits
        self.pending = 0
        self.refused = 0
        self.timed_out = 0

    @contextmanager
    def admit(self) -> Iterator[PreAuthTicket | None]:
        """A ticket for one new peer, or None when ``max_pending`` are already waiting.

        Run the connection inside ``ticket.scope``: it is cancelled at the deadline unless
        :meth:`PreAuthTicket.authenticated` was called first.
        """
        if self.pending >= self.limits.max_pending:
            self.refused += 1
            yield None
            return
        self.pending += 1
        ticket = PreAuthTicket(self, trio.CancelScope(
            deadline=trio.current_time() + self.limits.deadline))
        try:
            yield ticket
        finally:
            if ticket.timed_out:
                self.timed_out += 1
            ticket._leave()
