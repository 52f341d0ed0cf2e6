"""The full ``dd-procmgr`` command line, built with asyncclick.

Only parsing lives here: every callback converts its arguments and calls the matching
``commands.do_*`` function, returning its exit status (the app runs with
``standalone_mode=False`` and ``entry`` turns that value, or the exception, into the
process exit status). Callbacks are synchronous, so the asyncclick coroutine finishes
without an event loop (see ``entry.drive``) and neither asyncio nor trio is imported.
"""

from __future__ import annotations

from typing import Any

import asyncclick as click

from dd_procmgr_cli import commands
from dd_procmgr_cli.completion import complete_process_names
from dd_procmgr_cli.fieldflags import FIELD_FLAGS, FlagValueError, changes_from_options, create_spec
from dd_procmgr_cli.invocation import DEFAULT_TIMEOUT, Invocation

ALIASES = {"remove": "delete", "rm": "delete", "ls": "list"}


class AliasedGroup(click.Group):
    """Accepts the aliases (``remove`` = ``delete``) without listing them twice in help."""

    def get_command(self, ctx: click.Context, cmd_name: str):
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))

    async def resolve_command(self, ctx, args):
        name, cmd, rest = await super().resolve_command(ctx, args)
        return (cmd.name if cmd else name), cmd, rest


def _set_json(ctx: click.Context, _param, value: bool) -> bool:
    if value:
        ctx.find_object(Invocation).json = True
    return value


def json_option(func):
    """``--json`` accepted after the command as well as before it."""
    return click.option("--json", "json_flag", is_flag=True, expose_value=False,
                        callback=_set_json, help="Machine-readable output.")(func)


def names_argument(required: bool = True, nargs: int = -1):
    return click.argument("names", nargs=nargs, required=required,
                          shell_complete=complete_process_names, metavar="NAME...")


def field_options(func):
    """One option per FIELD_FLAGS entry (SPEC §2.3 fields), in table order in --help."""
    for flag in reversed(FIELD_FLAGS):
        kw: dict[str, Any] = {"help": flag.help, "default": None}
        decls = list(flag.flags) + [flag.dest]
        if flag.kind == "bool":
            decls = [f"{flag.flags[0]}/--no-{flag.flags[0][2:]}", flag.dest]
        elif flag.kind == "choice":
            kw["type"] = click.Choice(flag.choices)
        elif flag.kind == "int":
            kw["type"] = int
        elif flag.kind in ("list", "env", "exit_status"):
            kw["multiple"] = True
            kw.pop("default")
        if flag.metavar:
            kw["metavar"] = flag.metavar
        func = click.option(*decls, **kw)(func)
    return func


def _changes(options: dict[str, Any]) -> dict[str, Any]:
    try:
        return changes_from_options(options)
    except FlagValueError as exc:
        raise click.UsageError(str(exc)) from None


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--socket", "socket_path", envvar="DD_PM_SOCKET", metavar="PATH",
              help="Daemon socket [env DD_PM_SOCKET; default /run/dd-procmgr.sock as root].")
@click.option("--tcp", envvar="DD_PM_TCP", metavar="HOST:PORT",
              help="Reach the daemon over TCP instead (needs --token-file).")
@click.option("--token-file", envvar="DD_PM_TOKEN_FILE", metavar="FILE",
              help="Bearer token for --tcp.")
@click.option("--json", "json_output", is_flag=True,
              help="Machine-readable output: one JSON document on stdout.")
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT, envvar="DD_PM_TIMEOUT",
              show_default=True, help="Seconds to wait for the daemon.")
@click.version_option(package_name="trio-procmgr", prog_name="dd-procmgr",
                      message="%(prog)s %(version)s")
@click.pass_context
def app(ctx: click.Context, socket_path, tcp, token_file, json_output, timeout) -> None:
    """dd-procmgr: control the dd-procmgrd process supervisor.

    Processes are referenced by name or ID everywhere. Exit status: 0 ok, 1 the
    daemon refused, 2 usage error, 3 the daemon cannot be reached.
    """
    inv = ctx.ensure_object(Invocation)
    inv.socket, inv.tcp, inv.token_file = socket_path, tcp, token_file
    inv.json = inv.json or json_output
    inv.timeout = timeout


pass_inv = click.make_pass_decorator(Invocation)


# -- create / update ---------------------------------------------------------------------

@app.command(context_settings={"ignore_unknown_options": True,
                               "help_option_names": ["--help"]})
@click.argument("name")
@click.argument("command")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@field_options
@click.option("--start", "start_now", is_flag=True, help="Start it right after creating it.")
@click.option("--transient", is_flag=True,
              help="Forget it when the daemon restarts (not persisted).")
@json_option
@pass_inv
def create(inv: Invocation, name, command, args, start_now, transient, **fields) -> int:
    """Create process NAME running COMMAND [ARGS...] (created, not started, by default).

    Options may come before or after COMMAND; put ARGS that look like this
    command's own options after `--`:
    dd-procmgr create web --restart always -- python3 -m http.server --bind 127.0.0.1
    """
    try:
        spec = create_spec(command, list(args), fields)
    except FlagValueError as exc:
        raise click.UsageError(str(exc)) from None
    start = start_now or bool(spec.get("auto_start"))
    return commands.do_create(inv, name, spec, start=start, transient=transient)


@app.command()
@click.argument("name", shell_complete=complete_process_names)
@field_options
@click.option("--dry-run", is_flag=True, help="Validate and show what would change.")
@click.option("--restart-process", is_flag=True,
              help="Restart it if a changed field needs a restart.")
@json_option
@pass_inv
def update(inv: Invocation, name, dry_run, restart_process, **fields) -> int:
    """Change fields of process NAME; hot fields apply without a restart."""
    return commands.do_update(inv, name, _changes(fields), dry_run=dry_run,
                              restart_process=restart_process)


# -- lifecycle ------------------------------------------------------------------------------

def _lifecycle(method: str, doc: str, extra=None):
    @names_argument(required=False)
    @click.option("--all", "everything", is_flag=True, help=f"{method.capitalize()} every process.")
    @json_option
    @pass_inv
    def callback(inv: Invocation, names, everything, **params) -> int:
        return commands.do_action(inv, method, list(names), everything=everything, **params)
    callback.__doc__ = doc
    if extra:
        callback = extra(callback)
    return app.command(method)(callback)


_lifecycle("start", "Start processes (with their dependencies).")
_lifecycle("stop", "Stop processes (kill_signal, then SIGKILL after timeout_stop_sec).")
_lifecycle("restart", "Restart processes.")
_lifecycle("pause", "Freeze processes (cgroup freezer or SIGSTOP).")
_lifecycle("resume", "Thaw paused processes.")
_lifecycle("delete", "Delete processes (alias: remove). Running ones need --force.",
           extra=click.option("--force", is_flag=True, help="Stop it first if it runs."))


# -- reading ---------------------------------------------------------------------------------

@app.command("list")
@click.option("-o", "--output", type=click.Choice(["wide"]), help="wide: more columns.")
@json_option
@pass_inv
def list_(inv: Invocation, output) -> int:
    """List processes (alias: ls)."""
    return commands.do_list(inv, wide=output == "wide")


@app.command()
@names_argument()
@json_option
@pass_inv
def describe(inv: Invocation, names) -> int:
    """Show everything about processes."""
    return commands.do_describe(inv, list(names))


@app.command()
@names_argument(required=False)
@click.option("-o", "--output", type=click.Choice(["wide"]), help="wide: more columns.")
@json_option
@pass_inv
def status(inv: Invocation, names, output) -> int:
    """Without NAME: the list; with NAME: describe it."""
    return commands.do_status(inv, list(names), wide=output == "wide")


@app.command()
@click.argument("name", shell_complete=complete_process_names)
@click.option("-w", "--watch", is_flag=True, help="Refresh until interrupted.")
@click.option("--interval", type=float, default=2.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@json_option
@pass_inv
def stats(inv: Invocation, name, watch, interval) -> int:
    """Resource usage of process NAME (memory, CPU, PIDs, fds, I/O, sockets)."""
    return commands.do_stats(inv, name, watch=watch, interval=interval)


@app.command()
@names_argument(required=False)
@click.option("--all", "everything", is_flag=True, help="Every process, prefixed by name.")
@click.option("-n", "--lines", type=int, help="Last N lines (default: the whole ring; 10 with -f).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--stream", type=click.Choice(["stdout", "stderr"]), help="Only this stream.")
@click.option("-t", "--timestamps", is_flag=True, help="Prefix time and stream.")
@json_option
@pass_inv
def logs(inv: Invocation, names, everything, lines, follow, stream, timestamps) -> int:
    """Output of processes (-f: follow live; --json with -f: one JSON object per line)."""
    return commands.do_logs(inv, list(names), everything=everything, lines=lines,
                            follow=follow, stream=stream, timestamps=timestamps)


@app.command()
@click.option("--process", "processes", multiple=True, metavar="NAME",
              shell_complete=complete_process_names, help="Only this process (repeatable).")
@click.option("--type", "types", multiple=True, metavar="TYPE",
              help="Only this event type (repeatable).")
@json_option
@pass_inv
def events(inv: Invocation, processes, types) -> int:
    """Follow the event stream (--json: one JSON object per line)."""
    return commands.do_events(inv, list(processes), list(types))


@app.command()
@click.argument("name", shell_complete=complete_process_names)
@click.option("--reverse", is_flag=True, help="Only what depends on NAME.")
@json_option
@pass_inv
def deps(inv: Invocation, name, reverse) -> int:
    """What process NAME pulls in, what depends on it, and its conflicts (live states)."""
    return commands.do_deps(inv, name, reverse=reverse)


# -- daemon ----------------------------------------------------------------------------------

@app.command("reload-config")
@json_option
@pass_inv
def reload_config(inv: Invocation) -> int:
    """Re-read the config directory; prints added/removed/changed/unchanged."""
    return commands.do_reload(inv)


@app.command("rotate-logs")
@names_argument(required=False)
@json_option
@pass_inv
def rotate_logs(inv: Invocation, names) -> int:
    """Rotate the log files now (all processes, or the named ones)."""
    return commands.do_rotate_logs(inv, list(names))


@app.command()
@json_option
@pass_inv
def ping(inv: Invocation) -> int:
    """Exit 0 when the daemon answers."""
    return commands.do_ping(inv)


@app.command()
@json_option
@pass_inv
def shutdown(inv: Invocation) -> int:
    """Stop every process and the daemon (admin)."""
    return commands.do_shutdown(inv)


@app.command()
@json_option
@pass_inv
def version(inv: Invocation) -> int:
    """Versions of this CLI and of the daemon."""
    return commands.do_version(inv)


# -- offline ----------------------------------------------------------------------------------

@app.command()
@click.argument("directory", required=False, type=click.Path())
@json_option
@pass_inv
def validate(inv: Invocation, directory) -> int:
    """Check a config directory or file offline (default: $DD_PM_CONFIG_DIR or
    /etc/pm/processes.d); exit 1 on errors, 0 when there are only warnings."""
    return commands.do_validate(inv, directory)


@app.command()
@pass_inv
def schema(inv: Invocation) -> int:
    """Print the JSON Schema of the config file format (for editors)."""
    return commands.do_schema(inv)
