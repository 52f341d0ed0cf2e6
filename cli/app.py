"""The full ``dd-procmgr`` command line, built with asyncclick.

Only parsing lives here: every callback converts its arguments and calls the matching
``commands.do_*`` function, returning its exit status (the app runs with
``standalone_mode=False`` and ``entry`` turns that value, or the exception, into the
process exit status). Callbacks are synchronous, so the asyncclick coroutine finishes
without an event loop (see ``entry.drive``) and neither asyncio nor trio is imported.
"""

from __future__ import annotations

import os
from typing import Any

import asyncclick as click

from dd_procmgr_cli import commands, importing
from dd_procmgr_cli.completion import (SHELLS, complete_process_names, complete_signals,
                                       complete_states, complete_targets, completion_source)
from dd_procmgr_cli.fieldflags import (FIELD_FLAGS, FlagValueError, changes_from_options,
                                       command_changes, create_spec, resolve_relative_paths)
from dd_procmgr_cli.invocation import DEFAULT_TIMEOUT, Invocation
from dd_procmgr_cli.selection import SORT_KEYS

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


def names_argument(required: bool = True, nargs: int = -1, complete=complete_process_names,
                   metavar: str = "NAME..."):
    return click.argument("names", nargs=nargs, required=required,
                          shell_complete=complete, metavar=metavar)


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
@click.argument("command", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@field_options
@click.option("--start", "start_now", is_flag=True, help="Start it right after creating it.")
@click.option("--transient", is_flag=True,
              help="Forget it when the daemon restarts (not persisted).")
@click.option("--from", "from_template", metavar="TEMPLATE@",
              help="Make instance NAME of template TEMPLATE@ (a file TEMPLATE@.yaml) instead.")
@json_option
@pass_inv
def create(inv: Invocation, name, command, args, start_now, transient, from_template, **fields) -> int:
    """Create process NAME running COMMAND [ARGS...] (created, not started, by default).

    Options may come before or after COMMAND; put ARGS that look like this
    command's own options after `--`:
    dd-procmgr create web --restart always -- python3 -m http.server --bind 127.0.0.1

    With --from worker@, NAME is an instance: `create --from worker@ a` makes worker@a.
    """
    if from_template is not None:
        if command is not None:
            raise click.UsageError("create --from TEMPLATE@ INSTANCE takes no COMMAND")
        return commands.do_instantiate(inv, from_template, name, start=start_now)
    if command is None:
        raise click.UsageError("Missing argument 'COMMAND'.")
    try:
        spec = create_spec(command, list(args), fields)
    except FlagValueError as exc:
        raise click.UsageError(str(exc)) from None
    spec = resolve_relative_paths(spec, os.getcwd())
    start = start_now or bool(spec.get("auto_start"))
    return commands.do_create(inv, name, spec, start=start, transient=transient)


@app.command()
@click.argument("name", shell_complete=complete_process_names)
@click.argument("replicas", type=click.IntRange(1, 1000))
@json_option
@pass_inv
def scale(inv: Invocation, name, replicas) -> int:
    """Run REPLICAS instances NAME@1..N of replicated process NAME (highest stop first)."""
    return commands.do_scale(inv, name, replicas)


@app.command()
@click.argument("name", shell_complete=complete_process_names)
@field_options
@click.option("--command", "new_command", metavar="COMMAND",
              help="New executable (restart required; ID and history are kept).")
@click.option("--args", "new_args", metavar="'ARG ...'",
              help="New arguments as one shell-quoted string ('' clears them).")
@click.option("--dry-run", is_flag=True, help="Validate and show what would change.")
@click.option("--restart-process", is_flag=True,
              help="Restart it if a changed field needs a restart.")
@click.option("--replicas", type=click.IntRange(1, 1000),
              help="Instances of a replicated process NAME (same as scale NAME N).")
@json_option
@pass_inv
def update(inv: Invocation, name, new_command, new_args, dry_run, restart_process, replicas,
           **fields) -> int:
    """Change fields of process NAME; hot fields apply without a restart."""
    changes = _changes(fields)
    try:
        changes.update(command_changes(new_command, new_args))
    except FlagValueError as exc:
        raise click.UsageError(str(exc)) from None
    changes = resolve_relative_paths(changes, os.getcwd())
    if replicas is not None:
        changes["replicas"] = replicas
    return commands.do_update(inv, name, changes, dry_run=dry_run,
                              restart_process=restart_process)


# -- lifecycle ------------------------------------------------------------------------------

def _lifecycle(method: str, doc: str, extra=None):
    groups = method in ("start", "stop", "restart")

    @names_argument(required=False, complete=complete_targets if groups else complete_process_names)
    @click.option("--all", "everything", is_flag=True, help=f"{method.capitalize()} every process.")
    @json_option
    @pass_inv
    def callback(inv: Invocation, names, everything, **params) -> int:
        return commands.do_action(inv, method, list(names), everything=everything, **params)
    callback.__doc__ = doc
    if extra:
        callback = extra(callback)
    return app.command(method)(callback)


_lifecycle("start", "Start processes (with their dependencies) or a group's members in order; "
           "already running is success.")
_lifecycle("stop", "Stop processes (kill_signal, then SIGKILL after timeout_stop_sec) or a "
           "group's members in reverse order; already stopped is success.")
_lifecycle("restart", "Restart processes (or a group's members in order).")
_lifecycle("pause", "Freeze processes (cgroup freezer or SIGSTOP).")
_lifecycle("resume", "Thaw paused processes.")
_lifecycle("delete", "Delete processes (alias: remove). Running ones need --force.",
           extra=click.option("--force", is_flag=True, help="Stop it first if it runs."))


# -- reading ---------------------------------------------------------------------------------

@app.command("list")
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...",
                shell_complete=complete_process_names)
@click.option("-o", "--output", type=click.Choice(["wide"]),
              help="wide: more columns (restarts, exit, group, times, reason).")
@click.option("--state", "states", multiple=True, metavar="STATE[,STATE]",
              shell_complete=complete_states,
              help="Only processes in these states (repeatable, or running,failed).")
@click.option("--sort", type=click.Choice(list(SORT_KEYS)),
              help="Order by this key (uptime, restarts, cpu, mem: largest first).")
@click.option("--groups", "groups", is_flag=True, help="List the supervision groups instead.")
@json_option
@pass_inv
def list_(inv: Invocation, patterns, output, states, sort, groups) -> int:
    """List processes (alias: ls); PATTERNs are shell globs on names ('web*')."""
    return commands.do_list(inv, wide=output == "wide", patterns=list(patterns),
                            states=list(states), sort=sort, groups=groups)


@app.command()
@names_argument(complete=complete_targets)
@json_option
@pass_inv
def describe(inv: Invocation, names) -> int:
    """Show everything about processes (or a supervision group)."""
    return commands.do_describe(inv, list(names))


@app.command()
@names_argument(required=False, metavar="[NAME]...")
@click.option("-o", "--output", type=click.Choice(["wide"]), help="wide: more columns.")
@json_option
@pass_inv
def status(inv: Invocation, names, output) -> int:
    """Without NAME: the list; with NAME: describe it."""
    return commands.do_status(inv, list(names), wide=output == "wide")


@app.command()
@names_argument(required=False)
@click.option("--all", "everything", is_flag=True, help="Every process, as one table.")
@click.option("-w", "--watch", is_flag=True, help="Refresh until interrupted (one NAME).")
@click.option("--interval", type=float, default=2.0, show_default=True,
              help="Seconds between refreshes with --watch.")
@json_option
@pass_inv
def stats(inv: Invocation, names, everything, watch, interval) -> int:
    """Resource usage: one NAME in detail (memory, CPU, PIDs, fds, I/O, sockets);
    several NAMEs or --all as one table from a single call."""
    if len(names) == 1 and not everything:
        return commands.do_stats(inv, names[0], watch=watch, interval=interval)
    if watch:
        raise click.UsageError("stats --watch takes one NAME; use dd-procmgr top for all")
    if not names and not everything:
        raise click.UsageError("stats: give process names or --all")
    return commands.do_stats_many(inv, list(names), everything=everything)


def log_filter_options(func):
    """--since/--until/--grep, shared by logs and tail."""
    func = click.option("--grep", metavar="REGEX",
                        help="Only lines matching this regular expression.")(func)
    func = click.option("--until", metavar="WHEN",
                        help="Only lines up to WHEN (same forms as --since).")(func)
    func = click.option("--since", metavar="WHEN",
                        help="Only lines since WHEN: 10m, 1h30m (ago), "
                             "2026-12-01T10:00:00, @EPOCH.")(func)
    return func


@app.command()
@names_argument(required=False)
@click.option("--all", "everything", is_flag=True, help="Every process, prefixed by name.")
@click.option("-n", "--lines", type=int, help="Last N lines (default: the whole ring; 10 with -f).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--stream", type=click.Choice(["stdout", "stderr"]), help="Only this stream.")
@click.option("-t", "--timestamps", is_flag=True, help="Prefix time and stream.")
@log_filter_options
@json_option
@pass_inv
def logs(inv: Invocation, names, everything, lines, follow, stream, timestamps, since, until,
         grep) -> int:
    """Output of processes (-f: follow live; --json with -f: one JSON object per line)."""
    return commands.do_logs(inv, list(names), everything=everything, lines=lines,
                            follow=follow, stream=stream, timestamps=timestamps,
                            since=since, until=until, grep=grep)


@app.command()
@names_argument(required=False)
@click.option("--all", "everything", is_flag=True, help="Every process, prefixed by name.")
@click.option("-n", "--lines", type=int, help="Start with the last N lines (default 10).")
@click.option("--stream", type=click.Choice(["stdout", "stderr"]), help="Only this stream.")
@click.option("-t", "--timestamps", is_flag=True, help="Prefix time and stream.")
@log_filter_options
@json_option
@pass_inv
def tail(inv: Invocation, names, everything, lines, stream, timestamps, since, until,
         grep) -> int:
    """Follow output live: the same as logs -f."""
    return commands.do_logs(inv, list(names), everything=everything, lines=lines,
                            follow=True, stream=stream, timestamps=timestamps,
                            since=since, until=until, grep=grep)


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


@app.command()
@click.option("--interval", type=float, default=2.0, show_default=True,
              help="Seconds between stats pushes from the daemon.")
@click.option("--sort", type=click.Choice(["name", "state", "cpu", "mem", "restarts", "uptime"]),
              default="name", show_default=True, help="Initial order (key s cycles).")
@click.option("--once", is_flag=True, help="Print one snapshot table and exit (also without a TTY).")
@json_option
@pass_inv
def top(inv: Invocation, interval, sort, once) -> int:
    """Live full-screen view of every process: state, CPU, memory, restarts, health and
    the selected process's log tail. Keys: arrows/j k select, s sort, / filter,
    S start, T stop, R restart, q quit."""
    from dd_procmgr_cli.top import do_top
    return do_top(inv, interval=interval, once=once, sort=sort)


# -- signals and switches ------------------------------------------------------------------

@app.command()
@names_argument()
@click.option("-s", "--signal", "signal_name", default="SIGTERM", show_default=True,
              shell_complete=complete_signals,
              metavar="SIGNAL", help="Signal name (SIGHUP, HUP) or number.")
@click.option("--main", "whom", flag_value="main",
              help="Only the main process.")
@click.option("--all", "whom", flag_value="all", default=True,
              help="Every process of the service: its cgroup, else its process group (default).")
@json_option
@pass_inv
def kill(inv: Invocation, names, signal_name, whom) -> int:
    """Send a signal to processes without stopping them (like systemctl kill)."""
    return commands.do_kill(inv, list(names), signal=signal_name, whom=whom)


@app.command()
@names_argument()
@json_option
@pass_inv
def reload(inv: Invocation, names) -> int:
    """Send each process its reload_signal (default SIGHUP): it re-reads its own
    config, no restart. (reload-config re-reads the daemon's configuration.)"""
    return commands.do_reload_process(inv, list(names))


@app.command()
@names_argument()
@json_option
@pass_inv
def enable(inv: Invocation, names) -> int:
    """Start processes with the daemon (auto_start: true, persisted)."""
    return commands.do_enable(inv, list(names), enable=True)


@app.command()
@names_argument()
@json_option
@pass_inv
def disable(inv: Invocation, names) -> int:
    """Do not start processes with the daemon (auto_start: false, persisted)."""
    return commands.do_enable(inv, list(names), enable=False)


@app.command()
@click.argument("name", shell_complete=complete_process_names)
@json_option
@pass_inv
def cat(inv: Invocation, name) -> int:
    """Effective config of process NAME as YAML, each field labelled with where it
    comes from (file, drop-in, runtime change)."""
    from dd_procmgr_cli.editing import do_cat
    return do_cat(inv, name)


@app.command()
@click.argument("name", shell_complete=complete_process_names)
@json_option
@pass_inv
def edit(inv: Invocation, name) -> int:
    """Edit process NAME in $EDITOR: a drop-in NAME.yaml.d/50-edit.yaml for a file-defined
    process (validated, then reload-config), its spec for a runtime one (then update).
    An invalid result is never saved."""
    from dd_procmgr_cli.editing import do_edit
    return do_edit(inv, name)


# -- daemon ----------------------------------------------------------------------------------

@app.command("reload-config")
@json_option
@pass_inv
def reload_config(inv: Invocation) -> int:
    """Re-read the config directory; prints added/removed/changed/unchanged."""
    return commands.do_reload(inv)


@app.command("rotate-logs")
@names_argument(required=False, metavar="[NAME]...")
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


@app.command("daemon-reexec")
@json_option
@pass_inv
def daemon_reexec(inv: Invocation) -> int:
    """Replace the daemon with the installed program, same PID; services keep running (admin)."""
    return commands.do_daemon_reexec(inv)


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
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell) -> int:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    The package installs these already; by hand: dd-procmgr completion bash >
    /etc/bash_completion.d/dd-procmgr (zsh: a file named _dd-procmgr in $fpath; fish:
    ~/.config/fish/completions/dd-procmgr.fish).
    """
    click.echo(completion_source(shell), nl=False)
    return 0


@app.command()
@pass_inv
def schema(inv: Invocation) -> int:
    """Print the JSON Schema of the config file format (for editors)."""
    return commands.do_schema(inv)


@app.command("import")
@click.argument("source", type=click.Choice(importing.SOURCES))
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("-o", "--output-dir", "out_dir", metavar="DIR", help="Write one file per process into DIR.")
@click.option("--force", is_flag=True, help="With -o, replace files that exist already.")
@json_option
@pass_inv
def import_(inv: Invocation, source, files, out_dir, force) -> int:
    """Convert systemd units, supervisord or PM2 files to our YAML (offline)."""
    return importing.do_import(inv, source, list(files), out_dir, force=force)
