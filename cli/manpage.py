"""Man pages written from the programs' own definitions (build time only).

``dd-procmgr(1)`` comes from the asyncclick command tree (every command, its usage, its
help and options) and ``dd-procmgrd(8)`` from the daemon's argparse parser, so a page
can never describe a flag the program does not have. The output is plain roff using the
``man`` macros; ``packaging/install.sh`` writes both pages and gzips them.
"""

from __future__ import annotations

import argparse
import inspect
from typing import Iterable

import asyncclick as click

SEE_ALSO_CLI = r"\fBdd-procmgrd\fR(8), \fBsystemctl\fR(1), \fBsupervisorctl\fR(1)"
SEE_ALSO_DAEMON = r"\fBdd-procmgr\fR(1), \fBsystemd.service\fR(5), \fBsystemd.kill\fR(5)"


def escape(text: str) -> str:
    """Quote ``text`` for roff: backslashes, leading dots/quotes, hyphens in flags."""
    text = text.replace("\\", "\\\\").replace("-", "\\-")
    lines = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith((".", "'")):
            line = "\\&" + stripped
        lines.append(line)
    return "\n".join(lines)


def _paragraphs(text: str) -> Iterable[str]:
    """Docstring text as paragraphs (blank-line separated, re-flowed by the reader)."""
    for block in inspect.cleandoc(text or "").split("\n\n"):
        block = " ".join(line.strip() for line in block.splitlines() if line.strip())
        if block:
            yield block


def _header(name: str, section: int, version: str, title: str, summary: str) -> list[str]:
    return [
        f'.TH "{name.upper()}" "{section}" "" "{name} {version}" "{title}"',
        ".SH NAME",
        f"{escape(name)} \\- {escape(summary)}",
    ]


def _option_items(records: Iterable[tuple[str, str]]) -> list[str]:
    out = []
    for term, help_text in records:
        out += [".TP", f"\\fB{escape(term)}\\fR", escape(help_text or "")]
    return out


def render_cli(group: click.Group, *, prog: str, version: str) -> str:
    """``dd-procmgr(1)`` from the click group ``group``."""
    root = click.Context(group, info_name=prog)
    out = _header(prog, 1, version, "User Commands",
                  "control the dd-procmgrd process supervisor")
    out += [".SH SYNOPSIS", f"\\fB{escape(prog)}\\fR [\\fIGLOBAL OPTIONS\\fR] "
            "\\fICOMMAND\\fR [\\fIARGS\\fR...]", ".SH DESCRIPTION"]
    for para in _paragraphs(group.help or ""):
        out += [".PP", escape(para)]
    out += [".SH GLOBAL OPTIONS"]
    out += _option_items(_records(group, root))
    out += [".SH COMMANDS"]
    for name in group.list_commands(root):
        command = group.get_command(root, name)
        if command is None or command.hidden:
            continue
        ctx = click.Context(command, info_name=name, parent=root)
        usage = " ".join(command.collect_usage_pieces(ctx))
        out += [f'.SS "{escape(prog)} {escape(name)} {escape(usage)}"']
        for para in _paragraphs(command.help or ""):
            out += [".PP", escape(para)]
        records = _records(command, ctx)
        if records:
            out += [".RS"] + _option_items(records) + [".RE"]
    out += [".SH EXIT STATUS",
            ".TP", "0", "success",
            ".TP", "1", "the daemon refused the request (stderr: \\fBerror: CODE: message\\fR)",
            ".TP", "2", "usage error",
            ".TP", "3", "the daemon cannot be reached (the socket and the reason are named)",
            ".SH ENVIRONMENT",
            ".TP", "\\fBDD_PM_SOCKET\\fR", "the daemon's Unix socket (like \\fB\\-\\-socket\\fR)",
            ".TP", "\\fBDD_PM_TIMEOUT\\fR", "seconds to wait for the daemon",
            ".TP", "\\fBNO_COLOR\\fR", "no colour even on a terminal",
            ".SH SEE ALSO", SEE_ALSO_CLI]
    return "\n".join(out) + "\n"


def _records(command: click.Command, ctx: click.Context) -> list[tuple[str, str]]:
    records = []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is not None:
            records.append(record)
    return records


def render_daemon(parser: argparse.ArgumentParser, *, version: str, summary: str,
                  extra: str = "") -> str:
    """``dd-procmgrd(8)`` from the daemon's argparse ``parser``."""
    prog = parser.prog
    out = _header(prog, 8, version, "System Administration", summary)
    usage = parser.format_usage().strip()
    if usage.lower().startswith("usage:"):
        usage = usage[len("usage:"):].strip()
    usage = "\n".join(line.strip() for line in usage.splitlines())
    out += [".SH SYNOPSIS", ".nf", escape(usage), ".fi", ".SH OPTIONS"]
    records = []
    for action in parser._actions:  # argparse exposes no public list of actions
        if action.help == argparse.SUPPRESS:
            continue
        term = ", ".join(action.option_strings) or action.dest
        if action.option_strings and action.nargs != 0:
            term += " " + (action.metavar or action.dest.upper())
        help_text = action.help or ""
        if action.choices:
            help_text += f" (one of: {', '.join(map(str, action.choices))})"
        records.append((term, help_text))
    out += _option_items(records)
    for para in _paragraphs(extra):
        if para.startswith("## "):
            out += [f".SH {escape(para[3:].upper())}"]
        else:
            out += [".PP", escape(para)]
    out += [".SH SEE ALSO", SEE_ALSO_DAEMON]
    return "\n".join(out) + "\n"


DAEMON_NOTES = """
## Signals

SIGTERM, SIGINT: stop every process in reverse dependency order, then exit 0.

SIGHUP: reload the configuration (atomically: a config with any error changes nothing).

SIGUSR1: rotate the log files.

SIGUSR2: re-execute the installed program in place (an upgrade): the managed processes keep
running with the same PIDs.

## Files

/etc/pm/processes.d/: the configuration directory (one NAME.yaml per process).

/var/lib/dd-procmgr/: the state directory as root (runtime-created processes, IDs).

/run/dd-procmgr.sock: the RPC socket as root.

/lib/systemd/system/dd-procmgrd.service: the systemd unit (Type=notify, Delegate=yes).
"""


def write_pages(directory: str, *, version: str) -> list[str]:
    """Write ``dd-procmgr.1`` and ``dd-procmgrd.8`` into ``directory``; their paths."""
    import os

    from dd_procmgr_cli.app import app
    from trio_procmgr.daemon.main import build_parser

    pages = {"dd-procmgr.1": render_cli(app, prog="dd-procmgr", version=version),
             "dd-procmgrd.8": render_daemon(
                 build_parser(), version=version, extra=DAEMON_NOTES,
                 summary="per-host process supervisor with systemd semantics")}
    paths = []
    for name, text in pages.items():
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m dd_procmgr_cli.manpage DIR``: write both pages into DIR."""
    import sys
    from importlib.metadata import version

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dd_procmgr_cli.manpage DIR", file=sys.stderr)
        return 2
    for path in write_pages(args[0], version=version("trio-procmgr")):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

