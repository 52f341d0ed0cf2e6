"""The wall clock behind :class:`~trio_procmgr.platform.ports.Clock`."""

from __future__ import annotations

import time


class WallClock:
    """``time.time()``: seconds since the epoch, for records shown to users."""

    def now(self) -> float:
        return time.time()
