import pytest
from hypothesis import given, strategies as st

from trio_procmgr.envfile import load_environment_files, parse_env_file


def test_plain_lines_comments_and_blanks():
    text = "# comment\n; also a comment\n\nA=1\n  B = two words  \nEMPTY=\n"
    assert parse_env_file(text) == {"A": "1", "B": "two words", "EMPTY": ""}


def test_export_prefix_is_tolerated():
    assert parse_env_file("export PATH_X=/usr/bin\n") == {"PATH_X": "/usr/bin"}


def test_single_quotes_are_literal():
    assert parse_env_file("A='x \\n $HOME \"q\"'") == {"A": 'x \\n $HOME "q"'}


def test_double_quotes_understand_escapes():
    assert parse_env_file(r'A="say \"hi\"\\ then\nnewline \q"') == {"A": 'say "hi"\\ then\nnewline \\q'}


def test_quoted_whitespace_is_kept():
    assert parse_env_file('A="  padded  "   \n') == {"A": "  padded  "}


def test_quoted_and_unquoted_pieces_concatenate():
    assert parse_env_file('A="x"y\'z\'') == {"A": "xyz"}


def test_trailing_backslash_continues_the_line():
    assert parse_env_file("A=first \\\nsecond\nB=2\n") == {"A": "first second", "B": "2"}


def test_quoted_value_may_span_lines():
    assert parse_env_file('A="one\ntwo"\nB=3') == {"A": "one\ntwo", "B": "3"}


def test_hash_inside_a_value_is_not_a_comment():
    assert parse_env_file("URL=http://h/#frag") == {"URL": "http://h/#frag"}


def test_later_definition_wins():
    assert parse_env_file("A=1\nA=2\n") == {"A": "2"}


def test_crlf_line_endings():
    assert parse_env_file("A=1\r\nB=2\r\n") == {"A": "1", "B": "2"}


@pytest.mark.parametrize("text, line, what", [
    ("A=1\nnot a definition\n", 2, "expected KEY=VALUE"),
    ("A=1\n\n1BAD=x\n", 3, "invalid variable name"),
    ("A=1\nB=\"open\n\n", 2, "unterminated"),
    ("A='open", 1, "unterminated"),
    ("=value", 1, "invalid variable name"),
])
def test_invalid_lines_are_reported_with_file_and_line(text, line, what):
    with pytest.raises(ValueError, match=f"^/etc/app.env:{line}: {what}"):
        parse_env_file(text, source="/etc/app.env")


def test_line_numbers_count_continuations():
    with pytest.raises(ValueError, match=r"^f:3:"):
        parse_env_file("A=a\\\nb\nbroken\n", source="f")


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\r"), max_size=20)


@given(st.dictionaries(names, values, max_size=5))
def test_single_quoted_values_read_back_exactly(env):
    text = "".join(f"{k}='{v}'\n" for k, v in env.items() if "'" not in v)
    expected = {k: v for k, v in env.items() if "'" not in v}
    assert parse_env_file(text) == expected


def test_files_load_in_order_and_later_ones_override(tmp_path):
    (tmp_path / "a.env").write_text("A=1\nB=1\n")
    (tmp_path / "b.env").write_text("B=2\n")
    assert load_environment_files([str(tmp_path / "a.env"), str(tmp_path / "b.env")]) == {"A": "1", "B": "2"}


def test_dash_prefix_ignores_a_missing_file(tmp_path):
    (tmp_path / "a.env").write_text("A=1\n")
    paths = ["-" + str(tmp_path / "missing.env"), str(tmp_path / "a.env")]
    assert load_environment_files(paths) == {"A": "1"}


def test_missing_file_without_dash_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="missing.env: environment file not found"):
        load_environment_files([str(tmp_path / "missing.env")])


def test_dash_prefix_does_not_hide_a_syntax_error(tmp_path):
    (tmp_path / "bad.env").write_text("nonsense\n")
    with pytest.raises(ValueError, match="bad.env:1:"):
        load_environment_files(["-" + str(tmp_path / "bad.env")])
