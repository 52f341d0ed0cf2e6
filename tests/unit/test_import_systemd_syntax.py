"""systemd unit-file syntax: lines, quoting, time spans, sizes and specifiers."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from trio_procmgr.importers.systemd_syntax import (
    COMMAND_SEPARATOR, INFINITY, UnitName, UnitSyntaxError, expand_specifiers, format_duration,
    format_size, parse_size, parse_timespan, parse_unit, quote_word, split_words,
)


def test_sections_keys_and_line_numbers_with_comments_and_continuations():
    text = "# c\n[Unit]\nDescription=x\n\n[Service]\n; c\nExecStart=/bin/a \\\n  # skipped\n  b\nUser=u\n"
    directives = parse_unit(text)
    assert [(d.section, d.key, d.value, d.line) for d in directives] == [
        ("Unit", "Description", "x", 3), ("Service", "ExecStart", "/bin/a b", 7),
        ("Service", "User", "u", 10)]


@pytest.mark.parametrize("text, line", [
    ("[Service]\nExecStart /bin/x\n", 2),
    ("User=x\n", 1),
    ("[Service\n", 1),
])
def test_malformed_lines_name_their_line(text, line):
    with pytest.raises(UnitSyntaxError) as err:
        parse_unit(text)
    assert err.value.line == line


def test_words_follow_systemd_quoting_and_escapes():
    assert split_words(r"""/bin/x "a b" 'c d' e\sf "q\"uote" 'it\'s' a"b c"d \x41\t""") == [
        "/bin/x", "a b", "c d", "e f", 'q"uote', "it's", "ab cd", "A\t"]


def test_a_lone_semicolon_separates_commands_but_an_escaped_one_does_not():
    assert split_words(r"/bin/a ; /bin/b \;", commands=True) == ["/bin/a", COMMAND_SEPARATOR, "/bin/b", ";"]


@pytest.mark.parametrize("text", ['"open', "trailing\\", r"bad\q"])
def test_broken_quoting_is_an_error(text):
    with pytest.raises(UnitSyntaxError):
        split_words(text)


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\r"),
                        max_size=12), max_size=6))
def test_quoted_words_round_trip(words):
    assert split_words(" ".join(quote_word(w) for w in words)) == words


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("1min 30s", 90), ("1min30s", 90), ("500ms", 0.5), ("2h", 7200),
    ("1d 1us", 86400.000001), ("5 sec", 5), ("infinity", INFINITY),
])
def test_time_spans(text, seconds):
    assert parse_timespan(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5 parsecs", "1min x", "-3"])
def test_bad_time_spans(text):
    with pytest.raises(ValueError):
        parse_timespan(text)


@given(st.integers(min_value=0, max_value=10**7), st.sampled_from([1, 1000, 10**6]))
def test_durations_are_written_in_our_syntax_without_loss(amount, scale):
    from trio_procmgr.units import parse_duration
    seconds = amount / scale
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("text, size", [("512M", 512 * 2**20), ("1G", 2**30), ("100", 100),
                                        ("1.5K", 1536), ("infinity", INFINITY)])
def test_sizes_are_binary_as_systemd_reads_them(text, size):
    assert parse_size(text) == size


@given(st.integers(min_value=1, max_value=2**50))
def test_sizes_are_written_in_our_syntax_without_loss(size):
    from trio_procmgr.units import parse_size as ours
    assert ours(format_size(size)) == size


def test_unit_names():
    assert UnitName.parse("redis-server@.service").process_name == "redis-server@"
    assert UnitName.parse("redis-server@.service").is_template
    assert UnitName.parse("getty@tty1.service").process_name == "getty@tty1"
    assert UnitName.parse("ssh.socket").suffix == "socket"


def test_template_specifiers_become_placeholders_and_unknown_ones_are_listed():
    unit = UnitName.parse("web@.service")
    text, unknown = expand_specifiers("%i %I %n %N %p %t/%i %% %h", unit)
    assert text == "%i %i %n.service %n web /run/%i % %h"
    assert unknown == ["%h"]


def test_specifiers_of_a_plain_unit_are_substituted():
    text, unknown = expand_specifiers("%n %N %p %i", UnitName.parse("db.service"))
    assert (text, unknown) == ("db.service db db ", [])
