"""The engine's wall clock: a port, so tests can run the engine on Trio's MockClock.

Two clocks matter to a supervisor. Waits (backoff, stop timeouts, probes, watchdog)
use Trio's clock (``trio.sleep``, ``move_on_after``), which a test replaces with
``trio.testing.MockClock(autojump_threshold=0)``. Wall-clock stamps (``started_at``,
``next_restart_at``, the start-limit window) come from a :class:`Clock` given to the
:class:`~trio_procmgr.engine.manager.ProcessManager`; the default is the platform's
clock (``platform/ports.py``: ``time.time()``).
:class:`TrioWallClock` follows Trio's clock instead, so under a mock clock the stamps
move exactly as far as the waits did and a test can assert on them.

The shape is the platform's ``Clock`` port (one ``now()``), re-exported here.
"""

from __future__ import annotations

import trio

from trio_procmgr.platform.ports import Clock

__all__ = ["Clock", "TrioWallClock"]


class TrioWallClock:
    """Wall time that advances with the running Trio clock (``epoch`` at Trio time 0).

    Only valid inside ``trio.run``; made for tests on ``MockClock``, where it turns the
    jumps of the autojump clock into deterministic wall stamps.
    """

    def __init__(self, epoch: float = 1_700_000_000.0) -> None:
        self.epoch = epoch

    def now(self) -> float:
        return self.epoch + trio.current_time()
