"""``--exit-with NAME``: when a process has ended for good, and what status that is.

Pure decisions on a process record (no I/O), so the daemon's shell stays a few lines.
"""

from __future__ import annotations

from trio_procmgr.states import Record, State

S = State
_SETTLED = frozenset({S.EXITED, S.FAILED, S.CRASHED, S.CONDITION_FAILED})


def ended_for_good(record: Record) -> bool:
    """True once the process is down with no restart pending (backoff is pending).

    ``stopped`` is not an end: a stop on request is an operator's act (``restart`` passes
    through it), and ``dd-procmgr shutdown`` ends the daemon explicitly.
    """
    return record.state in _SETTLED


def exit_status_of(record: Record) -> int:
    """The shell's convention: the exit code, or 128 + the signal that killed it; 1 when
    it failed without a status (spawn failure, condition)."""
    if record.exit_code is not None:
        return record.exit_code & 0xFF
    if record.exit_signal is not None:
        return 128 + record.exit_signal
    return 0 if record.state is S.EXITED else 1
