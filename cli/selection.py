"""Which processes a command acts on and in what order: list filters, sorting, groups.

Pure: records, stats and groups in (the daemon's plain dicts), lists out. ``list``'s
``--state``/patterns/``--sort`` and the group nouns of ``start``/``stop``/``restart``
are decided here so they can be tested without a daemon.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

TYPE_CHECKING = False  # ``typing`` costs every CLI start ~4 ms: only for the type checker
if TYPE_CHECKING:
    from typing import Any, Iterable

STATES = ("created", "starting", "running", "stopping", "stopped", "exited", "failed",
          "backoff", "crashed", "paused", "condition_failed")
SORT_KEYS = ("name", "state", "uptime", "restarts", "cpu", "mem")
# ``--sort state``: the states that need attention first, then the live ones.
_STATE_ORDER = {state: i for i, state in enumerate(
    ("crashed", "failed", "backoff", "condition_failed", "starting", "stopping", "paused",
     "running", "exited", "stopped", "created"))}


class SelectionError(ValueError):
    """A filter or sort key the user typed is not one we know (names what is allowed)."""


def parse_states(values: Iterable[str]) -> set[str]:
    """``--state running,failed`` (repeatable) -> {"running", "failed"}."""
    wanted = {part.strip().lower() for value in values for part in value.split(",")
              if part.strip()}
    unknown = sorted(wanted - set(STATES))
    if unknown:
        raise SelectionError(f"--state: unknown state {', '.join(unknown)}; "
                             f"expected one of {', '.join(STATES)}")
    return wanted


def matches(record: dict, patterns: list[str]) -> bool:
    """A record matches a shell glob on its name (``'web*'``) or its exact id."""
    if not patterns:
        return True
    name = str(record.get("name") or "")
    return any(fnmatchcase(name, p) or record.get("id") == p for p in patterns)


def filter_records(records: list[dict], patterns: list[str], states: set[str]) -> list[dict]:
    return [r for r in records
            if matches(r, patterns) and (not states or r.get("state") in states)]


def sort_records(records: list[dict], key: str, now: float,
                 stats: dict[str, dict] | None = None) -> list[dict]:
    """Sorted for ``--sort KEY``: name and state ascending; uptime, restarts, cpu and
    mem largest first (what ``top`` users look for). ``stats`` maps name -> stats."""
    if key not in SORT_KEYS:
        raise SelectionError(f"--sort: unknown key {key!r}; expected one of {', '.join(SORT_KEYS)}")
    stats = stats or {}

    def number(record: dict) -> float:
        if key == "uptime":
            started = record.get("started_at")
            live = record.get("state") in ("starting", "running", "stopping", "paused")
            return (now - started) if live and started else -1.0
        if key == "restarts":
            return float(record.get("restarts") or 0)
        figure = stats.get(record.get("name"), {})
        if key == "cpu":
            return float(figure.get("cpu_percent") or 0.0)
        return float(figure.get("memory_current") or figure.get("memory_rss") or 0)

    if key == "name":
        return sorted(records, key=lambda r: str(r.get("name")))
    if key == "state":
        return sorted(records, key=lambda r: (_STATE_ORDER.get(r.get("state"), 99),
                                              str(r.get("name"))))
    return sorted(records, key=lambda r: (-number(r), str(r.get("name"))))


def expand_groups(names: list[str], process_names: set[str], groups: list[dict], *,
                  reverse: bool = False) -> list[str]:
    """Names with every supervision group (a name that is a group and not a process)
    replaced by its members in member order (``reverse``: last member first, for stop).
    Duplicates keep their first place."""
    by_name = {g.get("name"): g for g in groups}
    out: list[str] = []
    for name in names:
        group = by_name.get(name) if name not in process_names else None
        members = list(group.get("members") or []) if group else [name]
        if group and reverse:
            members.reverse()
        out += [m for m in members if m not in out]
    return out


def group_names_of(groups: list[dict]) -> dict[str, str]:
    """member name -> its group's name."""
    return {member: g["name"] for g in groups for member in g.get("members") or []}


def stats_by_name(items: list[dict]) -> dict[str, dict]:
    return {str(item.get("name")): item for item in items if isinstance(item, dict)}


def records_summary(records: list[dict]) -> dict[str, Any]:
    """Counts by state (the ``top`` header line)."""
    counts: dict[str, int] = {}
    for record in records:
        state = str(record.get("state"))
        counts[state] = counts.get(state, 0) + 1
    return counts
