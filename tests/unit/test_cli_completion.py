"""Completion of the operator verbs' values (no daemon needed for these)."""

from __future__ import annotations

from dd_procmgr_cli.completion import complete_signals, complete_states


def test_state_completion_completes_the_last_comma_item():
    assert complete_states(None, None, "running,fa") == ["running,failed"]
    assert "crashed" in complete_states(None, None, "c")


def test_signal_completion_is_case_insensitive():
    assert complete_signals(None, None, "sigus") == ["SIGUSR1", "SIGUSR2"]
