import signal

import pytest
from hypothesis import given, strategies as st

from trio_procmgr.units import parse_cpu, parse_duration, parse_signal, parse_size, signal_name


@pytest.mark.parametrize("text, seconds", [
    (30, 30.0), (1.5, 1.5), (0, 0.0), ("30", 30.0), ("0.25", 0.25), ("500ms", 0.5),
    ("30s", 30.0), ("5m", 300.0), ("5min", 300.0), ("1h", 3600.0), ("1h30m", 5400.0),
    ("1h 30m", 5400.0), ("2d", 172800.0), ("1w", 604800.0), ("250us", 0.00025), ("1.5s", 1.5),
])
def test_durations_normalise_to_float_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "5x", "-1s", -1, "1h-5m", "s", True, None, [1], "1.2.3s", float("inf")])
def test_bad_durations_say_what_was_expected(bad):
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


@given(st.integers(0, 10**6), st.integers(0, 999))
def test_duration_parts_add_up(seconds, millis):
    assert parse_duration(f"{seconds}s{millis}ms") == pytest.approx(seconds + millis / 1000)


@pytest.mark.parametrize("text, size", [
    (1024, 1024), ("100K", 100_000), ("100k", 100_000), ("512M", 512_000_000),
    ("2G", 2_000_000_000), ("512Mi", 512 * 2**20), ("1Gi", 2**30), ("1.5Ki", 1536),
    ("0.5", 1), ("7", 7), ("1Ti", 2**40),
])
def test_sizes_follow_kubernetes_suffixes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "12X", "1ki", "-5M", -1, 1.5, True, "M", None])
def test_bad_sizes_say_what_was_expected(bad):
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(bad)


@given(st.integers(0, 2**40))
def test_sizes_in_mebibytes_are_exact(n):
    assert parse_size(f"{n}Mi") == n * 2**20
    assert parse_size(n) == n


@pytest.mark.parametrize("text, cores", [("500m", 0.5), ("2000m", 2.0), ("0.5", 0.5), (2, 2.0), (0.25, 0.25), ("2", 2.0)])
def test_cpu_quantities_are_cores(text, cores):
    assert parse_cpu(text) == cores


@pytest.mark.parametrize("bad", ["0", 0, "-1", "1 core", "m", True, "500M"])
def test_bad_cpu_quantities_are_rejected(bad):
    with pytest.raises(ValueError, match="expected a CPU quantity"):
        parse_cpu(bad)


@pytest.mark.parametrize("text, number", [
    ("SIGTERM", signal.SIGTERM), ("TERM", signal.SIGTERM), ("sigkill", signal.SIGKILL),
    ("hup", signal.SIGHUP), (15, 15), ("9", 9), ("SIGRTMIN+2", int(signal.SIGRTMIN) + 2),
])
def test_signals_by_name_or_number(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("bad", ["SIGFOO", "", 0, 999, -15, True, None, "SIG"])
def test_unknown_signals_are_rejected(bad):
    with pytest.raises(ValueError, match="expected a signal"):
        parse_signal(bad)


@pytest.mark.parametrize("number", sorted(int(s) for s in signal.valid_signals()))
def test_signal_names_read_back(number):
    assert parse_signal(signal_name(number)) == number
