"""systemd ``ExecStart=`` -> our ``command`` and ``args`` (prefixes, quoting, variables).

systemd expands ``$VAR``/``${VAR}`` itself; we never hand a command to a shell, so a
command that uses variables is converted to ``/bin/sh -c 'exec ...'`` written so the shell
expands them exactly as systemd would (``shell_command``).
"""

from __future__ import annotations

import re
import shlex

from .builder import UnitBuilder
from .systemd_syntax import COMMAND_SEPARATOR, Directive, UnitSyntaxError, split_words


EXEC_PREFIXES = "-@+!:"


def finish_exec_start(b: UnitBuilder) -> None:
    """command/args from the effective ExecStart= lines (after resets), or an error."""
    lines = b.exec_start
    if not lines:
        b.error(None, "no ExecStart= in [Service]: there is nothing to run")
        return
    if len(lines) > 1 and b.fields.get("process_type") != "oneshot":
        b.error(lines[1].line, "more than one ExecStart= is only allowed with Type=oneshot")
        return
    for extra in lines[1:]:
        b.unmapped(extra.line, str(extra), "a process runs one command; make a oneshot process per command, ordered with after")
    _exec_command(b, lines[0])


def _exec_command(b: UnitBuilder, d: Directive) -> None:
    prefixes, text = _split_prefixes(d.value)
    try:
        commands = split_words(text, commands=True)
    except UnitSyntaxError as exc:
        b.error(d.line, f"ExecStart=: {exc}")
        return
    if COMMAND_SEPARATOR in commands:
        b.unmapped(d.line, str(d), "only the first command of a ';'-separated list is run")
        commands = commands[:commands.index(COMMAND_SEPARATOR)]
    words = [b.expand(d, w) for w in commands if isinstance(w, str)]  # separators cut off above
    if "@" in prefixes and len(words) > 1:
        b.unmapped(d.line, f"ExecStart=@ ({words[1]})", "argv[0] cannot be set; the executable path is used")
        del words[1]
    if not words:
        b.error(d.line, "ExecStart= has no command")
        return
    _report_prefixes(b, d, prefixes)
    if ":" not in prefixes and any(_VARIABLE.search(w) for w in words):
        b.approx(d.line, str(d), "runs as /bin/sh -c 'exec ...' so that $VARIABLES expand as systemd "
                                 "expands them (commands are otherwise never given to a shell)")
        words = ["/bin/sh", "-c", shell_command(words)]
    b.set("command", words[0])
    if words[1:]:
        b.set("args", words[1:])


def _split_prefixes(value: str) -> tuple[str, str]:
    index = 0
    while index < len(value) and value[index] in EXEC_PREFIXES:
        index += 1
    return value[:index], value[index:]


def _report_prefixes(b: UnitBuilder, d: Directive, prefixes: str) -> None:
    reasons = {
        "-": "a failing status is not ignored; list it in success_exit_status",
        "+": "the command runs as user/group like the rest of the process",
        "!": "the command runs with the ambient capabilities set for the process",
    }
    for prefix in dict.fromkeys(prefixes):
        if prefix in reasons:
            b.unmapped(d.line, f"ExecStart={prefix}", reasons[prefix])


_VARIABLE = re.compile(r"^\$[A-Za-z_][A-Za-z0-9_]*$|\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_WHOLE_WORD_VARIABLE = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")


def shell_command(words: list[str]) -> str:
    """An ``exec`` line for ``sh -c`` that expands variables the way systemd does.

    A word that is exactly ``$NAME`` splits into several words (left unquoted); ``${NAME}``
    inside a word is one word (double-quoted); anything else is quoted literally.
    """
    return "exec " + " ".join(_shell_word(word) for word in words)


def _shell_word(word: str) -> str:
    if _WHOLE_WORD_VARIABLE.fullmatch(word):
        return word
    if not _VARIABLE.search(word):
        return shlex.quote(word)
    parts = re.split(r"(\$\{[A-Za-z_][A-Za-z0-9_]*\})", word)
    escaped = (p if p.startswith("${") else re.sub(r'([\\"$`])', r"\\\1", p) for p in parts)
    return '"' + "".join(escaped) + '"'
