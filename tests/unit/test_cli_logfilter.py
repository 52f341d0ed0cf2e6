"""logs --since/--until/--grep: durations ago, timestamps, regexes."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dd_procmgr_cli.logfilter import LogFilter, WhenError, parse_when

NOW = 1_800_000_000.0


def test_durations_are_that_long_before_now():
    assert parse_when("10m", NOW) == NOW - 600
    assert parse_when("1h30m", NOW) == NOW - 5400
    assert parse_when("2d", NOW) == NOW - 2 * 86400
    assert parse_when("45", NOW) == NOW - 45


def test_iso_timestamps_with_a_zone_and_epoch_seconds():
    moment = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc).timestamp()
    assert parse_when("2026-12-01T10:00:00Z", NOW) == moment
    assert parse_when("2026-12-01 10:00+00:00", NOW) == moment
    assert parse_when("@1234.5", NOW) == 1234.5


def test_local_timestamps_without_a_zone():
    assert parse_when("2026-12-01T10:00:00", NOW) == datetime(2026, 12, 1, 10, 0).timestamp()


@pytest.mark.parametrize("text", ["yesterday", "10 parsecs", "@soon", "2026-13-45"])
def test_nonsense_names_the_flag_and_the_accepted_forms(text):
    with pytest.raises(WhenError, match=r"--since .*expected a duration ago like '10m'"):
        parse_when(text, NOW)


def test_the_window_and_the_pattern_both_apply():
    keep = LogFilter.build("10m", "1m", "err(or)?", NOW)
    assert keep.keeps({"time": NOW - 300, "line": "an error"})
    assert not keep.keeps({"time": NOW - 300, "line": "all fine"})
    assert not keep.keeps({"time": NOW - 3600, "line": "old error"})
    assert not keep.keeps({"time": NOW - 10, "line": "too recent error"})
    assert keep.keeps({"type": "lost", "count": 3})


def test_a_bad_regex_is_a_usage_error_naming_grep():
    with pytest.raises(WhenError, match="--grep '\\(': not a valid regular expression"):
        LogFilter.build(None, None, "(", NOW)
