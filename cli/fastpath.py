"""A hand-written parser for the commands typed all day, so they skip importing asyncclick.

It recognises only plain, well-formed uses of ``list``/``ls``, ``status``,
``describe``, ``ping`` and the lifecycle verbs (``start``, ``stop``, ``restart``,
``pause``, ``resume`` with names or ``--all``) with the global options; anything else — ``--help``, an
unknown flag, a malformed value, shell completion — returns None and the full
asyncclick app parses the command line (and reports usage errors) instead. The
commands themselves are the shared ``commands.do_*`` functions, so output cannot
differ between the two paths.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Callable, Mapping

    Plan = tuple[Invocation, Callable[[], int]]

from dd_procmgr_cli.invocation import Invocation

_GLOBAL_VALUED = {"--socket": "socket", "--timeout": "timeout", "--tcp": "tcp",
                  "--token-file": "token_file"}
_ENV = {"socket": "DD_PM_SOCKET", "tcp": "DD_PM_TCP", "token_file": "DD_PM_TOKEN_FILE",
        "timeout": "DD_PM_TIMEOUT"}
COMPLETE_VAR = "_DD_PROCMGR_COMPLETE"
DISABLE_VAR = "DD_PM_CLI_NO_FASTPATH"



class _NotFast(Exception):
    pass


def _split_valued(args: list[str], i: int) -> tuple[str, str, int]:
    """``--opt value`` or ``--opt=value`` at ``args[i]`` -> (opt, value, next index)."""
    opt, eq, value = args[i].partition("=")
    if eq:
        return opt, value, i + 1
    if i + 1 >= len(args):
        raise _NotFast
    return opt, args[i + 1], i + 2


def _globals(args: list[str], environ: Mapping[str, str]) -> tuple[dict, int]:
    values: dict = {key: environ.get(var) for key, var in _ENV.items() if environ.get(var)}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg == "--json":
            values["json"] = True
            i += 1
            continue
        opt = arg.partition("=")[0]
        if opt not in _GLOBAL_VALUED:
            raise _NotFast
        opt, value, i = _split_valued(args, i)
        values[_GLOBAL_VALUED[opt]] = value
    if "timeout" in values:
        try:
            values["timeout"] = float(values["timeout"])
        except ValueError:
            raise _NotFast from None
    return values, i


#: The verbs whose options are only names, ``--all`` and ``--json`` (``delete`` has
#: ``--force`` and stays with the full parser).
LIFECYCLE = ("start", "stop", "restart", "pause", "resume")


def _lifecycle_args(rest: list[str], inv: Invocation) -> tuple[list[str], bool]:
    """Names and ``--all``; ``--json`` anywhere; any other option goes to the full parser."""
    names: list[str] = []
    everything = False
    for arg in rest:
        if arg == "--json":
            inv.json = True
        elif arg == "--all":
            everything = True
        elif arg.startswith("-"):
            raise _NotFast
        else:
            names.append(arg)
    return names, everything


def _command_args(rest: list[str], inv: Invocation, *, output: bool) -> tuple[list[str], bool]:
    """Positional names and whether ``-o wide`` was given; ``--json`` may appear anywhere."""
    names: list[str] = []
    wide = False
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--json":
            inv.json = True
            i += 1
        elif output and arg in ("-o", "--output") and i + 1 < len(rest):
            if rest[i + 1] != "wide":
                raise _NotFast
            wide, i = True, i + 2
        elif output and arg in ("-owide", "-o=wide", "--output=wide"):
            wide, i = True, i + 1
        elif arg.startswith("-"):
            raise _NotFast
        else:
            names.append(arg)
            i += 1
    return names, wide


def plan(args: list[str], environ: Mapping[str, str]) -> Plan | None:
    """The invocation and the command to run, or None when asyncclick must parse."""
    if COMPLETE_VAR in environ or environ.get(DISABLE_VAR):
        return None
    try:
        values, i = _globals(args, environ)
        if i >= len(args):
            return None
        inv = Invocation(environ=environ, **values)
        command, rest = args[i], args[i + 1:]
        from dd_procmgr_cli import commands
        if command in ("list", "ls"):
            names, wide = _command_args(rest, inv, output=True)
            if names:
                return None
            return inv, lambda: commands.do_list(inv, wide=wide)
        if command == "status":
            names, wide = _command_args(rest, inv, output=True)
            return inv, lambda: commands.do_status(inv, names, wide=wide)
        if command == "describe":
            names, _ = _command_args(rest, inv, output=False)
            if not names:
                return None
            return inv, lambda: commands.do_describe(inv, names)
        if command == "ping":
            names, _ = _command_args(rest, inv, output=False)
            if names:
                return None
            return inv, lambda: commands.do_ping(inv)
        if command in LIFECYCLE:
            names, everything = _lifecycle_args(rest, inv)
            return inv, lambda: commands.do_action(inv, command, names, everything=everything)
    except _NotFast:
        return None
    return None
