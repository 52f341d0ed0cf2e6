"""What each ``dd-procmgr`` command does, independent of how its arguments were parsed.

Each ``do_*`` function takes an Invocation and plain Python arguments, talks to the
daemon through it, prints through ``views`` and returns the exit status. The
asyncclick app and the hand-written fast path both call these, so a command behaves
the same whichever parser read the command line. Errors from the daemon propagate to
``entry.run_guarded`` (one place decides exit codes) except where several processes
are handled in one run: then each failure is reported and the run exits 1.
"""

from __future__ import annotations

import os
import time
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

from dd_procmgr_cli import selection, views
from dd_procmgr_cli.invocation import (EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, Invocation,
                                       UsageProblem)

LIVE = frozenset({"starting", "running", "stopping", "paused", "backoff"})
DEFAULT_CONFIG_DIR = "/etc/pm/processes.d"
FOLLOW_BACKLOG = 10  # `logs -f` starts with the last lines, as `tail -f` does (so does the daemon)


def error_dict(exc: Any) -> dict[str, Any]:
    doc = {"code": getattr(exc, "code", "INTERNAL"),
           "message": getattr(exc, "message", str(exc))}
    details = getattr(exc, "details", None)
    if details:
        doc["details"] = details
    return doc


def _procmgr_error() -> type[Exception]:
    from trio_procmgr.errors import ProcMgrError
    return ProcMgrError


# -- reading ---------------------------------------------------------------------------

def do_list(inv: Invocation, *, wide: bool = False, patterns: list[str] | None = None,
            states: list[str] | None = None, sort: str | None = None,
            groups: bool = False) -> int:
    """The table, filtered by glob patterns and ``--state``, sorted by ``--sort`` (cpu
    and mem take every process's stats in one ``stats_all`` call); ``--groups`` lists
    the supervision groups instead."""
    if groups:
        return do_groups(inv)
    try:
        wanted = selection.parse_states(states or [])
    except selection.SelectionError as exc:
        raise UsageProblem(str(exc)) from None
    records = inv.call("list")
    records = selection.filter_records(records, list(patterns or []), wanted)
    if wide:
        members = selection.group_names_of(_groups_or_none(inv))
        records = [dict(r, group=members.get(r.get("name"))) for r in records]
    if sort:
        stats = None
        if sort in ("cpu", "mem") and records:
            stats = selection.stats_by_name(
                inv.call("stats_all", names=[r["name"] for r in records]))
        try:
            records = selection.sort_records(records, sort, time.time(), stats)
        except selection.SelectionError as exc:
            raise UsageProblem(str(exc)) from None
    if inv.json:
        inv.emit_json(records)
    elif not records and (patterns or wanted):
        inv.echo("No process matches.")
    else:
        inv.echo(views.render_list(records, time.time(), wide=wide, colour=inv.colour))
    return EXIT_OK


def _groups_or_none(inv: Invocation) -> list[dict]:
    """The daemon's supervision groups; [] from a daemon that predates ``groups``."""
    try:
        return inv.call("groups") or []
    except _procmgr_error() as exc:
        if getattr(exc, "code", None) == "UNIMPLEMENTED":
            return []
        raise


def do_groups(inv: Invocation) -> int:
    """``list --groups``: each supervision group, its strategy, state and members."""
    groups = _groups_or_none(inv)
    if inv.json:
        inv.emit_json(groups)
    else:
        inv.echo(views.render_groups(groups, colour=inv.colour))
    return EXIT_OK


def do_describe(inv: Invocation, names: list[str]) -> int:
    if len(names) == 1:
        try:
            record = inv.call("describe", name=names[0])
        except _procmgr_error() as exc:
            group = _group_named(inv, names[0]) if exc.code == "PROCESS_NOT_FOUND" else None
            if group is None:
                raise
            if inv.json:
                inv.emit_json(group)
            else:
                inv.echo(views.render_group(group, colour=inv.colour))
            return EXIT_OK
        if inv.json:
            inv.emit_json(record)
        else:
            inv.echo(views.render_describe(record, time.time(), colour=inv.colour))
        return EXIT_OK
    return _each(inv, names, lambda name: inv.call("describe", name=name),
                 lambda rec: views.render_describe(rec, time.time(), colour=inv.colour),
                 separator="")


def _group_named(inv: Invocation, name: str) -> dict | None:
    for group in _groups_or_none(inv):
        if group.get("name") == name:
            return group
    return None


def do_status(inv: Invocation, names: list[str], *, wide: bool = False) -> int:
    """``status`` alone is ``list``; with names it is ``describe`` (systemctl habit)."""
    return do_describe(inv, names) if names else do_list(inv, wide=wide)


def do_ping(inv: Invocation) -> int:
    began = time.perf_counter()
    answer = inv.call("ping")
    latency_ms = round((time.perf_counter() - began) * 1000, 2)
    if inv.json:
        doc = dict(answer) if isinstance(answer, dict) else {"answer": answer}
        doc.setdefault("ok", True)
        doc["latency_ms"] = latency_ms
        inv.emit_json(doc)
    else:
        inv.echo(f"pong ({latency_ms} ms)")
        if isinstance(answer, dict) and answer.get("state_error"):  # degraded, still serving
            inv.warn(f"warning: state dir not written ({answer['state_error']}; "
                     f"{answer.get('state_write_errors', 0)} failed writes)")
    return EXIT_OK


def do_version(inv: Invocation) -> int:
    from trio_procmgr import __version__
    if not inv.json:
        inv.echo(f"dd-procmgr {__version__}")
        inv.flush()
    daemon = inv.call("version")
    if inv.json:
        inv.emit_json({"cli": __version__, "daemon": daemon})
    elif isinstance(daemon, dict):
        version = daemon.get("server_version") or daemon.get("version") or "?"
        bits = []
        if daemon.get("protocol_version") is not None:
            bits.append(f"protocol {daemon['protocol_version']}")
        if daemon.get("schema_hash"):
            bits.append(f"schema {str(daemon['schema_hash'])[:12]}")
        inv.echo(f"dd-procmgrd {version}" + (f" ({', '.join(bits)})" if bits else ""))
    else:
        inv.echo(f"dd-procmgrd {daemon}")
    return EXIT_OK


def do_stats_many(inv: Invocation, names: list[str], *, everything: bool = False) -> int:
    """``stats A B`` / ``stats --all``: every named process's figures from one
    ``stats_all`` call, as one table (``--json``: the list of stats)."""
    if everything and names:
        raise UsageProblem("stats: give process names or --all, not both")
    items = inv.call("stats_all", names=None if everything else names)
    if inv.json:
        inv.emit_json(items)
    else:
        inv.echo(views.render_stats_table(items))
    return EXIT_OK


def do_stats(inv: Invocation, name: str, *, watch: bool = False,
             interval: float = 2.0) -> int:
    if not watch:
        stats = inv.call("stats", name=name)
        if inv.json:
            inv.emit_json(stats)
        else:
            inv.echo(views.render_stats(stats, name))
        return EXIT_OK
    clear = inv.colour
    previous = None
    try:
        while True:
            stats = inv.call("stats", name=name)
            usage = views.cpu_percent(previous, stats)
            previous = dict(stats)
            if usage is not None:
                stats["cpu_percent"] = round(usage, 2)
            if inv.json:
                inv.emit_json_line(stats)
            else:
                if clear:
                    inv.out.write("\x1b[H\x1b[2J")
                inv.echo(views.render_stats(stats, name))
                inv.echo()
                inv.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return EXIT_OK


# -- acting on processes ----------------------------------------------------------------

def _each(inv: Invocation, names: list[str], act, render, *, separator: str | None = None) -> int:
    """Run ``act`` for every name; report each failure and keep going; exit 1 if any failed."""
    error_cls = _procmgr_error()
    results: list[Any] = []
    failed = False
    for index, name in enumerate(names):
        try:
            result = act(name)
        except error_cls as exc:
            failed = True
            results.append({"name": name, "error": error_dict(exc)})
            if not inv.json:
                inv.warn(f"error: {exc.code}: {exc.message}")
            continue
        results.append(result)
        if not inv.json:
            if separator is not None and index:
                inv.echo(separator)
            inv.echo(render(result))
            inv.flush()
    if inv.json:
        inv.emit_json(results)
    return EXIT_REFUSED if failed else EXIT_OK


_VERBS = {"start": "started", "stop": "stopped", "restart": "restarted", "pause": "paused",
          "resume": "resumed", "delete": "deleted"}


def _targets_for_all(inv: Invocation, method: str) -> list[str]:
    records = inv.call("list")
    if method == "start":
        chosen = [r for r in records if r.get("state") not in LIVE]
    elif method in ("stop", "pause"):
        chosen = [r for r in records if r.get("state") in LIVE]
        chosen.reverse()
    elif method == "resume":
        chosen = [r for r in records if r.get("state") == "paused"]
    else:
        chosen = list(records)
    return [r["name"] for r in chosen]


# The RPC keeps its codes for library users (ALREADY_RUNNING, NOT_RUNNING); the CLI,
# like systemctl, treats "already there" as success and says so.
_ALREADY = {"start": ("ALREADY_RUNNING", "already running"),
            "stop": ("NOT_RUNNING", "already stopped")}


def _settle(inv: Invocation, method: str, name: str, outcome: Any) -> Any:
    """The outcome of one call, with an "already in that state" refusal turned into
    the process's record marked ``already`` (idempotent start/stop)."""
    if not isinstance(outcome, BaseException):
        return outcome
    code, words = _ALREADY.get(method, (None, None))
    if getattr(outcome, "code", None) != code:
        raise outcome
    record = dict(inv.call("describe", name=name))
    record["already"] = words
    return record


def _render_outcome(verb: str, record: dict) -> str:
    if record.get("already"):
        return views.render_already(record)
    return views.render_action(verb, record)


def _group_members(inv: Invocation, method: str, name: str) -> list[str] | None:
    """start/stop/restart GROUP: the members of the supervision group ``name`` (in
    member order; stop: reverse), or None when it is no group. Asked only after the
    daemon said no process has that name, so a process always wins over a group."""
    if method not in ("start", "stop", "restart"):
        return None
    for group in _groups_or_none(inv):
        if group.get("name") == name:
            members = list(group.get("members") or [])
            return members[::-1] if method == "stop" else members
    return None


def do_action(inv: Invocation, method: str, names: list[str], *, everything: bool = False,
              **params: Any) -> int:
    """start/stop/restart/pause/resume/delete on names, groups (or ``--all``)."""
    if everything and names:
        raise UsageProblem(f"{method}: give process names or --all, not both")
    if not everything and not names:
        raise UsageProblem(f"{method}: give at least one process name (or --all)")
    verb = _VERBS[method]
    if everything:
        names = _targets_for_all(inv, method)
        if not names:
            if inv.json:
                inv.emit_json([])
            else:
                inv.echo(f"Nothing to {method}.")
            return EXIT_OK
    render = lambda rec: _render_outcome(verb, rec)  # noqa: E731
    outcomes = _outcomes_of_many(inv, method, names, params)
    targets: list[str] = []
    for name in names:
        members = (_group_members(inv, method, name)
                   if getattr(outcomes[name], "code", None) == "PROCESS_NOT_FOUND" else None)
        if members is None:
            targets.append(name)
            continue
        for member in members:  # a group: one member after the other, in order
            if member not in outcomes:
                outcomes[member] = _call_or_error(inv, method, member, params)
                targets.append(member)
    if len(targets) == 1 and not everything and targets == names:
        record = _settle(inv, method, names[0], outcomes[names[0]])
        if inv.json:
            inv.emit_json(record)
        else:
            inv.echo(render(record))
        return EXIT_OK
    return _each(inv, targets, lambda name: _settle(inv, method, name, outcomes[name]), render)


def _outcomes_of_many(inv: Invocation, method: str, names: list[str],
                      params: dict) -> dict[str, Any]:
    """name -> record or the error of that name.

    start/stop/restart of several names is one call and one transaction in the daemon
    (``*_many``); other verbs, and daemons without those methods, get every call in
    flight at once on one connection (the daemon orders dependants itself)."""
    if method in ("start", "stop", "restart") and len(names) > 1 and not params:
        from trio_procmgr.errors import Unimplemented, error_for_code
        try:
            result = inv.call(f"{method}_many", names=names)
        except Unimplemented:
            pass
        else:
            outcomes: dict[str, Any] = {}
            for item in result["outcomes"]:
                error = item.get("error")
                outcomes[item["name"]] = item.get("record") if error is None else error_for_code(
                    error.get("code", "INTERNAL"), error.get("message", ""), error.get("details"))
            return outcomes
    return dict(zip(names, inv.call_many(method, [{"name": n, **params} for n in names])))


def _call_or_error(inv: Invocation, method: str, name: str, params: dict) -> Any:
    try:
        return inv.call(method, name=name, **params)
    except _procmgr_error() as exc:
        return exc


def do_create(inv: Invocation, name: str, spec: dict[str, Any], *, start: bool = False,
              transient: bool = False) -> int:
    result = inv.call("create", name=name, config=spec, start=start, transient=transient)
    if inv.json:
        inv.emit_json(result)
        return EXIT_OK
    record = result.get("record", result) if isinstance(result, dict) else {}
    line = f"created {record.get('name') or name}"
    if record.get("id"):
        line += f" {record['id']}"
    bits = [str(record["state"])] if record.get("state") else []
    if record.get("pid"):
        bits.append(f"pid {record['pid']}")
    inv.echo(line + (f" ({', '.join(bits)})" if bits else ""))
    for warning in record.get("warnings") or ():  # e.g. a full state dir: not persisted
        inv.warn(f"warning: {warning}")
    return EXIT_OK


def do_instantiate(inv: Invocation, template: str, instance: str, *, start: bool = False) -> int:
    """``create --from TEMPLATE@ INSTANCE`` (SPEC §16)."""
    result = inv.call("instantiate", template=template, instance=instance, start=start)
    if inv.json:
        inv.emit_json(result)
        return EXIT_OK
    record = result.get("record", result) if isinstance(result, dict) else {}
    inv.echo(f"created {record.get('name')} {record.get('id', '')} ({record.get('state')})".replace("  ", " "))
    return EXIT_OK


def do_scale(inv: Invocation, name: str, replicas: int) -> int:
    """``scale NAME N``: prints each instance and its state."""
    result = inv.call("scale", name=name, replicas=replicas)
    record = result.get("record", result) if isinstance(result, dict) else {}
    if inv.json:
        inv.emit_json(record)
        return EXIT_OK
    inv.echo(f"{name}: {replicas} replica(s)")
    for row in record.get("instances", []):
        inv.echo(f"  {row['name']}  {row['state']}")
    return EXIT_OK


def do_update(inv: Invocation, name: str, changes: dict[str, Any], *, dry_run: bool = False,
              restart_process: bool = False) -> int:
    if not changes:
        raise UsageProblem("update: no field flags given; see dd-procmgr update --help")
    result = inv.call("update", name=name, changes=changes, dry_run=dry_run,
                      restart_process=restart_process)
    if inv.json:
        inv.emit_json(result)
    else:
        inv.echo(views.render_update(result))
    return EXIT_OK


def do_reload(inv: Invocation) -> int:
    """Exit 1 when the daemon refused the config: one error anywhere and nothing was
    applied, so scripts must notice that the configuration on disk is not what runs."""
    result = inv.call("reload_config")
    if inv.json:
        inv.emit_json(result)
    else:
        inv.echo(views.render_reload(result))
    errors = views.reload_errors(result)  # warnings alone are a success, as in validate
    if errors and not inv.json:  # exit 1 says "refused" on stderr like every other refusal
        inv.warn(f"error: CONFIG_ERROR: {len(errors)} configuration error"
                 f"{'' if len(errors) == 1 else 's'} (listed above)")
    return EXIT_REFUSED if errors else EXIT_OK


def do_shutdown(inv: Invocation) -> int:
    result = inv.call("shutdown")
    if inv.json:
        inv.emit_json(result if result is not None else {"ok": True})
    else:
        inv.echo("dd-procmgrd is shutting down (stopping every process in reverse order)")
    return EXIT_OK


def do_daemon_reexec(inv: Invocation, timeout: float = 60.0) -> int:
    """Ask for the re-exec, then wait until the new image answers (a refused re-exec is
    the daemon's error: exit 1 with its reason)."""
    from trio_procmgr.client import DaemonUnreachable

    began = time.perf_counter()
    inv.call("daemon_reexec")
    deadline = time.monotonic() + timeout
    try:  # the old image closes every connection as it execs: wait for that on this one
        while time.monotonic() < deadline:
            inv.call("ping")
            time.sleep(0.02)
    except DaemonUnreachable:
        pass
    inv.close()
    while True:
        try:
            inv.call("ping")
            break
        except DaemonUnreachable:  # the old image closed its connections: wait for the new one
            inv.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
    seconds = round(time.perf_counter() - began, 3)
    if inv.json:
        inv.emit_json({"ok": True, "seconds": seconds})
    else:
        inv.echo(f"dd-procmgrd re-executed in place ({seconds} s); every process kept running")
    return EXIT_OK


def do_rotate_logs(inv: Invocation, names: list[str]) -> int:
    targets = names or [None]
    results = []
    for name in targets:
        params = {"name": name} if name else {}
        results.append(inv.call("rotate_logs", **params))
    if inv.json:
        inv.emit_json(results[0] if len(results) == 1 else results)
    else:
        inv.echo("log files rotated" + (f" for {', '.join(names)}" if names else ""))
    return EXIT_OK


# -- streams ---------------------------------------------------------------------------

WHOLE_RING = 1_000_000_000  # `lines` asking for every buffered line, also with follow


def do_logs(inv: Invocation, names: list[str], *, everything: bool = False,
            lines: int | None = None, follow: bool = False, stream: str | None = None,
            timestamps: bool = False, since: str | None = None, until: str | None = None,
            grep: str | None = None) -> int:
    """Captured output. One name or ``--all`` is one RPC call (or one stream with -f);
    several names are merged here. ``-n N`` counts lines of the merged output, after
    ``--since``/``--until``/``--grep`` (applied here, to backlog and live lines alike)."""
    if everything and names:
        raise UsageProblem("logs: give process names or --all, not both")
    if not everything and not names:
        raise UsageProblem("logs: give a process name (or --all)")
    from dd_procmgr_cli.logfilter import LogFilter, WhenError
    try:
        keep = LogFilter.build(since, until, grep, time.time())
    except WhenError as exc:
        raise UsageProblem(str(exc)) from None
    prefixed = everything or len(names) > 1
    one = None if everything else names[0]

    def show(item: dict) -> None:
        if not keep.keeps(item):
            return
        if one is not None and len(names) == 1:
            item = dict(item, process=item.get("process") or one)
        if inv.json:
            inv.emit_json_line(item)
        else:
            inv.echo(views.render_log(item, timestamps=timestamps, colour=inv.colour,
                                      prefix=item.get("process") if prefixed else None))
            inv.flush()

    if follow:
        return _follow(inv, names, one, show, keep, lines=lines, stream=stream)
    asked = None if keep.active else lines
    if everything or len(names) == 1:
        items = inv.call("logs", name=one, lines=asked, stream=stream)
    else:
        items = _merged_tail(inv, names, lines=asked, stream=stream)
    items = [item for item in items if keep.keeps(item)]
    if lines is not None and keep.active:
        items = items[-lines:] if lines else []
    if inv.json:
        if one is not None and len(names) == 1:
            items = [dict(item, process=item.get("process") or one) for item in items]
        inv.emit_json(items)
        return EXIT_OK
    for item in items:
        inv.echo(views.render_log(item, timestamps=timestamps, colour=inv.colour,
                                  prefix=item.get("process") if prefixed else None))
    return EXIT_OK


def _follow(inv: Invocation, names: list[str], one: str | None, show, keep, *,
            lines: int | None, stream: str | None) -> int:
    """``-f``: backlog then live lines until interrupted (or past ``--until``). With a
    filter and no ``-n`` the backlog is the whole ring (``--since 1h -f`` shows the last
    hour, then follows); ``-n N`` takes the last N buffered lines, then filters them.
    A stream the daemon ends is the daemon going away (exit 3), unless the followed
    process was deleted."""
    backlog = WHOLE_RING if keep.active and lines is None else lines
    try:
        if one is None or len(names) == 1:
            source = inv.stream("logs", name=one, lines=backlog, stream=stream, follow=True)
        else:
            source = _several_source(inv, names, lines=backlog, stream=stream)
        for item in source:
            if keep.past_until(item):
                return EXIT_OK
            show(item)
    except KeyboardInterrupt:
        return EXIT_OK
    except ConnectionError:
        return daemon_gone(inv)
    return EXIT_OK if one is not None and _deleted(inv, one) else daemon_gone(inv)


def _merged_tail(inv: Invocation, names: list[str], *, lines, stream) -> list[dict]:
    """The last ``lines`` of the named processes' output merged by time, each line
    naming its process (as the daemon does for every process)."""
    merged = []
    for name in names:
        merged += [dict(item, process=name)
                   for item in inv.call("logs", name=name, lines=lines, stream=stream)]
    merged.sort(key=lambda item: item.get("time") or 0.0)
    return merged[-lines:] if lines else merged


def _several_source(inv: Invocation, names: list[str], *, lines, stream):
    """Backlog of the named processes, then the daemon's every-process stream filtered
    to them: one connection, whatever the number of names."""
    backlog = FOLLOW_BACKLOG if lines is None else lines
    tail = _merged_tail(inv, names, lines=backlog, stream=stream) if backlog else []
    wanted = set()
    for record in inv.call("list"):
        if record["name"] in names or record.get("id") in names:
            wanted.add(record["name"])
    yield from tail
    for item in inv.stream("logs", name=None, lines=0, stream=stream, follow=True):
        if item.get("process") in wanted or item.get("type") == "lost":
            yield item


def do_events(inv: Invocation, processes: list[str], types: list[str]) -> int:
    params: dict[str, Any] = {}
    if processes:
        params["processes"] = list(processes)
    if types:
        params["types"] = list(types)
    try:
        for event in inv.stream("watch", **params):
            if inv.json:
                inv.emit_json_line(event)
            else:
                inv.echo(views.render_event(event, colour=inv.colour))
                inv.flush()
    except KeyboardInterrupt:
        return EXIT_OK
    except ConnectionError:
        pass
    return daemon_gone(inv)  # the daemon ends event streams only when it stops


DAEMON_GONE = "dd-procmgr: daemon stopped (connection closed)"


def daemon_gone(inv: Invocation) -> int:
    """A follower (``events``, ``logs -f``) whose daemon went away: one line, exit 3."""
    inv.flush()
    inv.warn(DAEMON_GONE)
    return EXIT_UNREACHABLE


def _deleted(inv: Invocation, name: str) -> bool:
    """Did a followed stream end because its process was deleted (not the daemon)?"""
    try:
        inv.call("describe", name=name)
    except ConnectionError:
        return False
    except _procmgr_error() as exc:
        return getattr(exc, "code", "") == "PROCESS_NOT_FOUND"
    return False


# -- dependencies ------------------------------------------------------------------------

def do_deps(inv: Invocation, name: str, *, reverse: bool = False) -> int:
    """Both trees from the daemon's ``deps`` (one call; live states included).
    ``--reverse``: only what depends on NAME. ``--json``: the RPC result as is."""
    graph = inv.call("deps", name=name)
    if inv.json:
        inv.emit_json(graph)
    else:
        inv.echo(views.render_deps(graph, colour=inv.colour, forward=not reverse))
    return EXIT_OK


# -- offline ----------------------------------------------------------------------------

def default_config_dir(environ) -> str:
    return environ.get("DD_PM_CONFIG_DIR") or DEFAULT_CONFIG_DIR


def do_validate(inv: Invocation, directory: str | None) -> int:
    """Check a config directory (or one file) without a daemon; exit 1 on any error,
    0 when there are only warnings (printed)."""
    directory = directory or default_config_dir(inv.environ)
    if not os.path.isdir(directory) and not os.path.isfile(directory):
        raise UsageProblem(f"validate: {directory} is neither a directory nor a file")
    from trio_procmgr.config.loader import validate_dir
    issues = [issue.to_dict() if hasattr(issue, "to_dict") else issue
              for issue in validate_dir(directory)]
    errors = [i for i in issues if i.get("severity", "error") == "error"]
    if inv.json:
        inv.emit_json({"directory": directory, "ok": not errors, "issues": issues})
    elif issues:
        for issue in issues:
            inv.echo(views.issue_line(issue))
        counts = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in
                  ((len(errors), "error"), (len(issues) - len(errors), "warning")) if n]
        inv.warn(f"{' and '.join(counts)} in {directory}")
    else:
        inv.echo(f"{directory}: configuration OK")
    return EXIT_REFUSED if errors else EXIT_OK


def do_schema(inv: Invocation) -> int:
    from trio_procmgr.config.jsonschema import export_json_schema
    inv.emit_json(export_json_schema())
    return EXIT_OK


# -- signals and config switches ------------------------------------------------------------

def do_kill(inv: Invocation, names: list[str], *, signal: str = "SIGTERM",
            whom: str = "all") -> int:
    """``systemctl kill``: signal every process of each service (or its main PID)."""
    if not names:
        raise UsageProblem("kill: give at least one process name")
    shown = signal.upper() if not signal.isdigit() else signal
    reach = "its main process" if whom == "main" else "all its processes"
    render = lambda rec: f"sent {shown} to {rec.get('name')} ({reach}" \
        f"{', main pid ' + str(rec['pid']) if rec.get('pid') else ''})"  # noqa: E731
    return _each_or_one(inv, names, lambda n: inv.call("kill", name=n, signal=signal, whom=whom),
                        render)


def do_reload_process(inv: Invocation, names: list[str]) -> int:
    """``reload NAME``: the configured reload_signal to the main PID, no restart."""
    if not names:
        raise UsageProblem("reload: give at least one process name "
                           "(reload-config re-reads the configuration files)")

    def render(rec: dict) -> str:
        sig = (rec.get("spec") or {}).get("reload_signal", "SIGHUP")
        return f"reloaded {rec.get('name')} (sent {sig} to pid {rec.get('pid')})"
    return _each_or_one(inv, names, lambda n: inv.call("reload", name=n), render)


def do_enable(inv: Invocation, names: list[str], *, enable: bool) -> int:
    """enable/disable: ``auto_start`` on/off through ``update`` (persisted like any
    update: in the state dir for runtime processes, the override layer for files)."""
    if not names:
        raise UsageProblem(f"{'enable' if enable else 'disable'}: give at least one process name")
    word = "enabled" if enable else "disabled"

    def act(name: str) -> Any:
        result = inv.call("update", name=name, changes={"auto_start": enable})
        return result.get("record") or {"name": name}
    return _each_or_one(inv, names, act,
                        lambda rec: f"{word} {rec.get('name')} (auto_start: "
                                    f"{'true' if enable else 'false'})")


def _each_or_one(inv: Invocation, names: list[str], act, render) -> int:
    """One name: its record (or error) alone; several: ``_each``'s report."""
    if len(names) == 1:
        record = act(names[0])
        if inv.json:
            inv.emit_json(record)
        else:
            inv.echo(render(record))
        return EXIT_OK
    return _each(inv, names, act, render)
