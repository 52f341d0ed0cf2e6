"""The output budget (sans-IO) and the line splitter a flooding child goes through."""

from __future__ import annotations

from hypothesis import given, strategies as st

from trio_procmgr.logs import LineSplitter
from trio_procmgr.output_budget import OutputBudget


def test_lines_within_the_budget_are_all_taken_at_once():
    budget = OutputBudget(lines_per_second=100, bytes_per_second=10_000)
    assert budget.take([10] * 100, now=0.0) == 100


def test_beyond_the_budget_the_pump_waits_for_the_refill_instead_of_dropping():
    budget = OutputBudget(lines_per_second=100, bytes_per_second=10_000)
    assert budget.take([1] * 150, now=0.0) == 100
    assert budget.take([1] * 50, now=0.0) == 0
    wait = budget.wait(1, now=0.0)
    assert 0.009 <= wait <= 0.011  # one line's worth of a 100 lines/s bucket
    assert budget.take([1] * 50, now=0.5) == 50  # the rest, half a second later


def test_the_budget_refills_with_time_up_to_one_second_of_burst():
    budget = OutputBudget(lines_per_second=100, bytes_per_second=1_000_000)
    budget.take([1] * 100, now=0.0)
    assert budget.take([1] * 100, now=0.5) == 50
    assert budget.take([1] * 500, now=100.0) == 100


def test_the_byte_budget_bounds_long_lines():
    budget = OutputBudget(lines_per_second=1_000, bytes_per_second=1_000)
    assert budget.take([400, 400, 400], now=0.0) == 2


def test_a_line_longer_than_a_seconds_bytes_is_taken_alone_when_the_bucket_is_full():
    budget = OutputBudget(lines_per_second=1_000, bytes_per_second=1_000)
    assert budget.take([5_000, 10], now=0.0) == 1
    assert budget.take([10], now=0.0) == 0
    assert budget.wait(10, now=0.0) > 0


@given(st.lists(st.binary(max_size=50), max_size=40), st.integers(min_value=1, max_value=17))
def test_splitter_cuts_long_lines_and_loses_no_byte_however_chunked(chunks, max_line):
    data = b"".join(chunks)
    splitter = LineSplitter(max_line=max_line)
    got = [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.flush()
    assert b"".join(got) == data.replace(b"\n", b"")
    assert all(len(line) <= max_line for line in got)


@given(st.lists(st.binary(max_size=50), max_size=40))
def test_splitter_yields_the_lines_of_the_stream_however_chunked(chunks):
    data = b"".join(chunks)
    splitter = LineSplitter(max_line=10**6)
    got = [line for chunk in chunks for line in splitter.feed(chunk)] + splitter.flush()
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    assert got == expected


def test_a_flood_of_short_lines_splits_in_linear_time():
    import time
    splitter = LineSplitter()
    data = b"y\n" * 32768
    started = time.perf_counter()
    for _ in range(20):
        assert len(splitter.feed(data)) == 32768
    assert time.perf_counter() - started < 2.0
