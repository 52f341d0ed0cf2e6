"""How daemon answers look to a person: the one place that renders records and results.

Every function takes the daemon's plain dicts (SPEC §3.1 field names) plus ``now`` and
``colour`` and returns text; none does I/O. Both the fast path and the asyncclick app
print through here, so the two can never disagree. Unknown extra keys in an answer are
shown generically rather than dropped, so a newer daemon's details stay visible.
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any, Iterable

from dd_procmgr_cli.format import (
    DASH, STATE_COLOURS, cell, human_duration, human_size, local_timestamp, paint, percent,
    render_pairs, render_table,
)

LIST_COLUMNS = ["NAME", "ID", "PID", "STATE", "HEALTH", "RUNS", "UPTIME", "COMMAND"]
WIDE_COLUMNS = LIST_COLUMNS + ["RESTARTS", "EXIT", "GROUP", "CREATED", "STARTED", "ENDED",
                               "STATUS", "REASON"]
LIVE_STATES = frozenset({"starting", "running", "stopping", "paused"})
COMMAND_WIDTH = 48


def text(value: Any) -> str:
    """A cell: ``-`` for None/empty, the value otherwise."""
    if value is None or value == "" or value == [] or value == {}:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def command_line(record: dict) -> str:
    """Command and args as a shell would need them quoted."""
    argv = [record.get("command") or ""] + [str(a) for a in record.get("args") or ()]
    if not argv[0]:
        return DASH
    from shlex import quote
    return " ".join(quote(arg) for arg in argv)


def signal_name(sig: Any) -> str:
    if isinstance(sig, int):
        import signal
        try:
            return signal.Signals(sig).name
        except ValueError:
            return f"signal {sig}"
    return str(sig)


def exit_text(record: dict) -> str:
    """``0``, ``1`` or ``SIGKILL``; ``-`` when the process has not ended."""
    if record.get("exit_signal"):
        return signal_name(record["exit_signal"])
    return text(record.get("exit_code"))


def uptime(record: dict, now: float) -> float | None:
    started = record.get("started_at")
    if record.get("state") in LIVE_STATES and started:
        return max(now - started, 0.0)
    return None


def status_text(record: dict) -> Any:
    return record.get("status") or record.get("status_text")


CELL_WIDTH = 40          # any other column of the narrow table
WIDE_CELL_WIDTH = 80     # any column of ``-o wide`` (COMMAND, REASON included)


def list_rows(records: list[dict], now: float, *, wide: bool = False,
              command_width: int | None = COMMAND_WIDTH) -> tuple[list[list[str]], list[list]]:
    """Table rows: every cell escaped (``\\n``) and cut to its column's width, so no
    value (a multi-line script, a long reason) can break the table."""
    rows, tints = [], []
    width = WIDE_CELL_WIDTH if wide else CELL_WIDTH
    for rec in records:
        command = cell(command_line(rec), WIDE_CELL_WIDTH if wide else command_width)
        row = [text(rec.get("name")), text(rec.get("id")), text(rec.get("pid")),
               text(rec.get("state")), text(rec.get("health")), text(rec.get("runs")),
               human_duration(uptime(rec, now)), command]
        tint = [None, "dim", None, STATE_COLOURS.get(rec.get("state")),
                STATE_COLOURS.get(rec.get("health")), None, None, None]
        if wide:
            row += [text(rec.get("restarts")), exit_text(rec), text(group_of(rec)),
                    local_timestamp(rec.get("created_at")),
                    local_timestamp(rec.get("started_at")),
                    local_timestamp(rec.get("ended_at")), text(status_text(rec)),
                    text(rec.get("reason"))]
            tint += [None] * 8
        rows.append([cell(value, width) if i != 7 else value for i, value in enumerate(row)])
        tints.append(tint)
    return rows, tints


def group_of(record: dict) -> Any:
    """The supervision group a record belongs to (``group`` as the CLI adds it)."""
    group = record.get("group")
    return group.get("name") if isinstance(group, dict) else group


def render_list(records: list[dict], now: float, *, wide: bool = False,
                colour: bool = False) -> str:
    """The ``list`` table; an empty manager prints a hint instead of a bare header."""
    if not records:
        return "No processes. Create one with: dd-procmgr create NAME COMMAND [ARGS...]"
    rows, tints = list_rows(records, now, wide=wide)
    header = WIDE_COLUMNS if wide else LIST_COLUMNS
    return render_table(header, rows, colours=tints, colour=colour)


# -- describe --------------------------------------------------------------------------

_DESCRIBED = {"name", "id", "description", "command", "args", "state", "reason", "pid",
              "health", "runs", "restarts", "exit_code", "exit_signal", "created_at",
              "started_at", "ended_at", "next_restart_at", "process_type", "restart",
              "spec", "status", "status_text"}


def render_describe(record: dict, now: float, *, colour: bool = False) -> str:
    """Everything about one process: identity, state, lifecycle, then its configuration."""
    state = text(record.get("state"))
    state_line = paint(state, STATE_COLOURS.get(state), colour)
    if record.get("reason"):
        state_line += f" ({record['reason']})"
    pairs = [
        ("Name", text(record.get("name"))),
        ("ID", text(record.get("id"))),
        ("Description", text(record.get("description"))),
        ("Command", command_line(record)),
        ("Type", text(record.get("process_type"))),
        ("State", state_line),
        ("PID", text(record.get("pid"))),
        ("Health", paint(text(record.get("health")),
                         STATE_COLOURS.get(record.get("health")), colour)),
        ("Restart", text(record.get("restart"))),
        ("Runs", text(record.get("runs"))),
        ("Restarts", text(record.get("restarts"))),
        ("Exit", exit_text(record)),
        ("Created", local_timestamp(record.get("created_at"))),
        ("Started", local_timestamp(record.get("started_at"))),
        ("Ended", local_timestamp(record.get("ended_at"))),
    ]
    up = uptime(record, now)
    if up is not None:
        pairs.append(("Uptime", human_duration(up)))
    if record.get("next_restart_at"):
        at = record["next_restart_at"]
        pairs.append(("Next restart", f"in {human_duration(max(at - now, 0))} "
                                      f"(at {local_timestamp(at)})"))
    if status_text(record):
        pairs.append(("Status", text(status_text(record))))
    blocks = [render_pairs(pairs)]
    spec = record.get("spec")
    if isinstance(spec, dict):
        config = {k: v for k, v in spec.items() if k not in ("command", "args", "description")}
        if config:
            blocks.append("Configuration:\n" + render_mapping(config, indent=2))
    extra = {k: v for k, v in record.items() if k not in _DESCRIBED}
    if extra:
        blocks.append("Runtime:\n" + render_mapping(extra, indent=2))
    return "\n\n".join(blocks)


def render_mapping(value: Any, indent: int = 0) -> str:
    """Nested dicts/lists as indented YAML-like text (read-only display, not YAML)."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict) and item:
                lines.append(f"{pad}{key}:")
                lines.append(render_mapping(item, indent + 2))
            elif isinstance(item, list) and item and any(isinstance(i, dict) for i in item):
                lines.append(f"{pad}{key}:")
                lines.append(render_mapping(item, indent + 2))
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                inner = render_mapping(item, indent + 2).lstrip()
                lines.append(f"{pad}- {inner}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(value)}")
    return "\n".join(lines)


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else ", ".join(f"{k}={_scalar(v)}" for k, v in value.items())
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- stats -----------------------------------------------------------------------------

def _measure(stats: dict, cgroup_key: str, *fallbacks: str) -> Any:
    """A figure from the cgroup block when accounted there, else from psutil's keys."""
    cgroup = stats.get("cgroup") if isinstance(stats.get("cgroup"), dict) else {}
    if cgroup.get(cgroup_key) is not None:
        return cgroup[cgroup_key]
    for key in (cgroup_key, *fallbacks):
        if stats.get(key) is not None:
            return stats[key]
    return None


def _limit_lines(current: Any, limit: Any, fmt) -> list[str]:
    lines = [f"  Current: {fmt(current) if current is not None else DASH}"]
    if limit:
        used = percent(current, limit)
        lines.append(f"  Limit:   {fmt(limit)}" + (f" ({used} used)" if used else ""))
    else:
        lines.append("  Limit:   none")
    return lines


_STATS_SHOWN = {"name", "id", "pid", "state", "time", "cgroup", "memory_current",
                "memory_rss", "memory_limit", "cpu_user", "cpu_user_seconds", "cpu_system",
                "cpu_system_seconds", "cpu_percent", "pids_current", "pids_limit",
                "processes", "threads", "open_fds", "io_read_bytes", "io_write_bytes",
                "oom_kills"}


def render_stats(stats: dict, name: str) -> str:
    """The seed's ``stats`` layout: memory, CPU, PIDs, then the other measurements.

    cgroup figures (``stats["cgroup"]``) win over per-process psutil sums when present.
    """
    title = f"Resource Usage Statistics for '{stats.get('name') or name}'"
    if stats.get("pid"):
        title += f" (PID: {stats['pid']})"
    out = [title, "─" * max(len(title), 40), "", "Memory:"]
    out += _limit_lines(_measure(stats, "memory_current", "memory_rss"),
                        _measure(stats, "memory_limit"), human_size)
    user = _measure(stats, "cpu_user_seconds", "cpu_user")
    system = _measure(stats, "cpu_system_seconds", "cpu_system")
    total = None if user is None and system is None else (user or 0) + (system or 0)
    out += ["", "CPU:", f"  User time:   {_seconds(user)}",
            f"  System time: {_seconds(system)}", f"  Total:       {_seconds(total)}"]
    if stats.get("cpu_percent") is not None:
        out.append(f"  Usage:       {stats['cpu_percent']:.1f}%")
    out += ["", "PIDs:"]
    out += _limit_lines(_measure(stats, "pids_current", "threads"),
                        _measure(stats, "pids_limit"), str)
    other = [("Processes", text(stats.get("processes"))),
             ("Threads", text(stats.get("threads"))),
             ("Open fds", text(stats.get("open_fds"))),
             ("I/O read", human_size(stats.get("io_read_bytes"))),
             ("I/O written", human_size(stats.get("io_write_bytes"))),
             ("OOM kills", text(_measure(stats, "oom_kills")))]
    out += ["", render_pairs([(k, v) for k, v in other if v != DASH])]
    extra = {k: v for k, v in stats.items() if k not in _STATS_SHOWN}
    if extra:
        out += ["", "Other:", render_mapping(extra, indent=2)]
    return "\n".join(line for line in out).rstrip()


STATS_COLUMNS = ["NAME", "STATE", "PID", "CPU%", "MEM", "MEM LIMIT", "PIDS", "THREADS", "FDS"]


def stats_row(item: dict) -> list[str]:
    """One process's headline figures (``stats A B``, ``stats --all``, ``top``)."""
    usage = item.get("cpu_percent")
    return [cell(text(item.get("name")), 40), text(item.get("state")), text(item.get("pid")),
            DASH if usage is None else f"{float(usage):.1f}",
            human_size(_measure(item, "memory_current", "memory_rss")),
            human_size(_measure(item, "memory_limit")) if _measure(item, "memory_limit") else DASH,
            text(_measure(item, "pids_current")), text(item.get("threads")),
            text(item.get("open_fds"))]


def render_stats_table(items: list[dict]) -> str:
    if not items:
        return "No processes."
    return render_table(STATS_COLUMNS, [stats_row(item) for item in items])


def cpu_percent(previous: dict | None, current: dict) -> float | None:
    """CPU use between two samples, in percent of one core (``stats --watch``)."""
    if not previous or previous.get("time") is None or current.get("time") is None:
        return None
    def cpu(sample: dict) -> float | None:
        user = _measure(sample, "cpu_user_seconds", "cpu_user")
        system = _measure(sample, "cpu_system_seconds", "cpu_system")
        return None if user is None and system is None else (user or 0) + (system or 0)
    before, after = cpu(previous), cpu(current)
    elapsed = current["time"] - previous["time"]
    if before is None or after is None or elapsed <= 0:
        return None
    return max(after - before, 0.0) * 100.0 / elapsed


def _seconds(value: Any) -> str:
    return DASH if value is None else f"{float(value):.2f}s"


# -- update / reload -------------------------------------------------------------------

def render_update(result: dict) -> str:
    """The seed's ``update`` answer: what changed, what needs a restart, what happened."""
    dry = result.get("dry_run")
    updated = result.get("updated_fields") or []
    needs = result.get("restart_required") or []
    lines = ["[OK] Dry run - validation successful (no changes applied)" if dry
             else "[OK] Process configuration updated"]
    if updated:
        lines.append("Updated fields:")
        lines += [f"  - {name}" for name in updated]
    else:
        lines.append("No fields changed.")
    if needs:
        lines.append("The following fields require restart to take effect:")
        lines += [f"  - {name}" for name in needs]
    if result.get("restarted"):
        lines.append("✓ Process restarted successfully")
    elif needs and not dry:
        lines.append("Restart the process (or pass --restart-process) to apply them.")
    return "\n".join(lines)


def reload_errors(result: dict) -> list:
    """The reload's issues that kept a file out; warnings (an unknown ``wants``) did not."""
    return [issue for issue in result.get("errors") or ()
            if not isinstance(issue, dict) or issue.get("severity") != "warning"]


def render_reload(result: dict) -> str:
    """``reload-config``: the names added, removed, changed; unchanged as a count; or,
    when the daemon refused (atomic: one error and nothing was applied), the errors.
    Warnings (an unknown ``wants``) do not block a reload and are listed apart."""
    def names(key: str) -> str:
        items = result.get(key) or []
        return ", ".join(items) if items else DASH
    unchanged = result.get("unchanged") or []
    errors = reload_errors(result)
    warnings = [issue for issue in result.get("errors") or () if issue not in errors]
    if errors:
        lines = ["Configuration not reloaded: nothing changed. Errors:"]
        lines += ["  " + issue_line(issue) for issue in errors]
    else:
        lines = ["Configuration reloaded",
                 render_pairs([("Added", names("added")), ("Removed", names("removed")),
                               ("Changed", names("changed")),
                               ("Unchanged", f"{len(unchanged)}")])]
    if warnings:
        lines.append("Warnings:" if errors else "Warnings (applied):")
        lines += ["  " + issue_line(issue) for issue in warnings]
    return "\n".join(lines)


def issue_line(issue: Any) -> str:
    """``file:line: field 'x': message (expected ...)`` from a ConfigIssue or its dict."""
    if not isinstance(issue, dict):
        return str(issue)
    where = issue.get("file") or "<config>"
    if issue.get("line"):
        where += f":{issue['line']}"
    field = f" field '{issue['field']}':" if issue.get("field") else ""
    expected = f" (expected {issue['expected']})" if issue.get("expected") else ""
    tag = " warning:" if issue.get("severity") == "warning" else ""
    return f"{where}:{tag}{field} {issue.get('message', '')}{expected}"


# -- single-process actions, events, logs, deps ----------------------------------------

def render_action(verb: str, record: dict) -> str:
    """``started web (pid 1234, running)`` after start/stop/restart/pause/resume/delete."""
    name = record.get("name") or record.get("id") or "?"
    bits = []
    if record.get("pid"):
        bits.append(f"pid {record['pid']}")
    if record.get("state"):
        bits.append(str(record["state"]))
    return f"{verb} {name}" + (f" ({', '.join(bits)})" if bits else "")


def render_already(record: dict) -> str:
    """``web: already running (pid 1234)`` for an idempotent start/stop."""
    name = record.get("name") or record.get("id") or "?"
    pid = f" (pid {record['pid']})" if record.get("pid") else ""
    return f"{name}: {record.get('already')}{pid}"


# -- groups ----------------------------------------------------------------------------

GROUP_COLUMNS = ["GROUP", "STRATEGY", "STATE", "RESTARTS", "BUDGET", "MEMBERS"]


def _budget(group: dict) -> str:
    return f"{text(group.get('max_restarts'))} in {human_duration(group.get('max_seconds'))}"


def render_groups(groups: list[dict], *, colour: bool = False) -> str:
    """``list --groups``: one row per supervision group, members with their states."""
    if not groups:
        return "No supervision groups (declare them under groups: in a config file)."
    rows, tints = [], []
    for group in groups:
        states = group.get("member_states") or {}
        members = ", ".join(f"{m} ({states.get(m) or 'not loaded'})"
                            for m in group.get("members") or [])
        rows.append([cell(text(group.get("name")), 40), text(group.get("strategy")),
                     text(group.get("state")), text(group.get("restarts")), _budget(group),
                     members])
        tints.append([None, None, STATE_COLOURS.get(group.get("state")), None, None, None])
    return render_table(GROUP_COLUMNS, rows, colours=tints, colour=colour)


def render_group(group: dict, *, colour: bool = False) -> str:
    """``describe GROUP``: strategy, restart budget, group state, members in order."""
    states = group.get("member_states") or {}
    pairs = [("Group", text(group.get("name"))),
             ("Strategy", text(group.get("strategy"))),
             ("State", paint(text(group.get("state")), STATE_COLOURS.get(group.get("state")),
                             colour)),
             ("Restart budget", f"{_budget(group)} "
                                f"({text(group.get('restarts_in_window'))} used in the window)"),
             ("Restarts", text(group.get("restarts")))]
    lines = [render_pairs(pairs), "", "Members (start order):"]
    for index, member in enumerate(group.get("members") or [], 1):
        state = states.get(member)
        lines.append(f"  {index}. {member} ("
                     f"{paint(str(state), STATE_COLOURS.get(state), colour) if state else 'not loaded'})")
    return "\n".join(lines)


_EVENT_KEYS = ("seq", "time", "type", "process", "id")


def render_event(event: dict, *, colour: bool = False) -> str:
    """One event per line: time, process, type, then the rest as key=value."""
    rest = " ".join(f"{k}={_scalar(v)}" for k, v in event.items()
                    if k not in _EVENT_KEYS and v is not None)
    kind = str(event.get("type", "?"))
    tint = "red" if kind in ("lost", "start_limit_hit", "oom_kill") else "cyan"
    parts = [local_timestamp(event.get("time"), millis=True),
             str(event.get("process") or "-"), paint(kind, tint, colour)]
    if rest:
        parts.append(rest)
    return "  ".join(parts)


def log_text(item: dict) -> str:
    line = item.get("line", "")
    if isinstance(line, (bytes, bytearray)):
        line = bytes(line).decode("utf-8", "replace")
    return line.rstrip("\n")


def render_log(item: dict, *, timestamps: bool = False, prefix: str | None = None,
               colour: bool = False) -> str:
    """One log line; ``timestamps`` adds time and stream, ``prefix`` a process name."""
    parts = []
    if prefix is not None:
        parts.append(paint(prefix, "cyan", colour) + " |")
    if item.get("type") == "lost":
        parts.append(paint(f"[{item.get('count', '?')} lines lost]", "red", colour))
        return " ".join(parts)
    if timestamps:
        stream = str(item.get("stream") or "")
        parts.append(local_timestamp(item.get("time"), millis=True))
        parts.append(paint(stream.ljust(6), "red" if stream == "stderr" else "dim", colour))
    parts.append(log_text(item))
    return " ".join(parts)


def _state_text(state: Any, colour: bool) -> str:
    return paint(str(state), STATE_COLOURS.get(state), colour) if state else "not loaded"


def _tree_lines(node: dict, prefix: str, last: bool, colour: bool) -> list[str]:
    """One DepNode child and its subtree, drawn with box characters."""
    label = f"{node.get('name', '?')} ({_state_text(node.get('state'), colour)})"
    directives = node.get("directives") or []
    if directives:
        label += f" [{', '.join(directives)}]"
    if node.get("missing"):
        label += " (not defined)"
    elif node.get("repeated"):
        label += " (see above)"
    lines = [f"{prefix}{'└─' if last else '├─'} {label}"]
    children = node.get("children") or []
    below = prefix + ("   " if last else "│  ")
    for index, child in enumerate(children):
        lines += _tree_lines(child, below, index == len(children) - 1, colour)
    return lines


def _subtrees(node: dict | None, colour: bool) -> list[str]:
    children = (node or {}).get("children") or []
    if not children:
        return ["   (none)"]
    lines: list[str] = []
    for index, child in enumerate(children):
        lines += _tree_lines(child, "", index == len(children) - 1, colour)
    return lines


def render_deps(graph: dict, *, colour: bool = False, forward: bool = True,
                reverse: bool = True) -> str:
    """The ``deps`` RPC result: NAME (state), then what it pulls in (its requires, wants,
    binds_to, part_of, after, transitively), what depends on it, and its conflicts.

    Each node shows its live state and, in brackets, how the line above relates to it
    (``db [requires, after]`` under ``app``: app requires db and starts after it; under
    "Needed by", ``web [requires]``: web requires the line above).
    """
    lines = [f"{graph.get('name', '?')} ({_state_text(graph.get('state'), colour)})"]
    if forward:
        lines.append("Depends on:")
        lines += _subtrees(graph.get("dependencies"), colour)
    if reverse:
        lines.append("Needed by:")
        lines += _subtrees(graph.get("dependants"), colour)
    conflicts = graph.get("conflicts") or []
    if conflicts:
        lines.append("Conflicts with:")
        lines += [f"   {c.get('name', '?')} ({_state_text(c.get('state'), colour)})"
                  for c in conflicts]
    return "\n".join(lines)


def join_lines(parts: Iterable[str]) -> str:
    return "\n".join(p for p in parts if p)
