"""The daemon's garbage collector: off while booting, then the boot's heap frozen.

Why: CPython's cyclic collector walks every tracked object of the generation it
collects, and the oldest generation holds everything the daemon keeps for good (specs,
records, Trio tasks of each service). With 1000 services that is ~190,000 objects: a
full collection took 60-105 ms, and the allocations of a boot or a ``stop --all``
triggered two or three of them (measured with ``gc.callbacks``: 130 ms of a 370 ms stop
of 1000 processes, and as much of the boot). ``gc.freeze()`` moves what exists into a
permanent generation the collector no longer walks; what is made later (a run's
instance, an RPC's frames) is collected as usual. Refcounting frees most garbage
anyway; the collector is only for cycles.
"""

from __future__ import annotations

import gc


def pause_collection() -> None:
    """From the start of the process until :func:`freeze_boot_heap` (the boot makes many
    long-lived objects and little cyclic garbage)."""
    gc.disable()


#: Containers allocated (net) between two young collections; CPython's default is 700.
#: Acting on 1000 processes at once (``stop --all``) makes tens of thousands of
#: short-lived containers: with 700 the collector ran ~90 times in such a stop.
YOUNG_THRESHOLD = 10_000


def freeze_boot_heap() -> None:
    """Once booted: collect the boot's cyclic garbage once, freeze what is left, resume."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    gc.enable()
