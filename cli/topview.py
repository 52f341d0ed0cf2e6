"""The model and screen layout of ``dd-procmgr top``, without curses or sockets.

``TopModel`` holds what the live view knows: the list records and stats of every
process (replaced by each ``stats_all`` batch), state changes from the event stream
applied in between, the last log lines of each process, and the operator's choices
(sort key, filter, selected process). ``screen`` lays it out as lines of text for a
given terminal size; the curses shell (``top.py``) only paints those lines and turns
keys into model calls, so everything shown can be tested as plain text.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from dd_procmgr_cli.format import cell, human_duration, human_size
from dd_procmgr_cli.selection import records_summary, sort_records
from dd_procmgr_cli.views import text, uptime

TOP_SORTS = ("name", "state", "cpu", "mem", "restarts", "uptime")
COLUMNS = (("NAME", 24), ("STATE", 16), ("PID", 8), ("CPU%", 7), ("MEM", 10),
           ("RESTARTS", 9), ("HEALTH", 10), ("UPTIME", 10))
FOOTER = "q quit  ↑↓/j k select  s sort  / filter  S start  T stop  R restart"
LOG_KEEP = 200


@dataclass
class Line:
    """One screen line and how to paint it (None, "title", "header", "selected",
    "footer", a state name for a row's colour)."""

    text: str
    style: str | None = None


@dataclass
class TopModel:
    records: dict[str, dict] = field(default_factory=dict)
    stats: dict[str, dict] = field(default_factory=dict)
    logs: dict[str, deque] = field(default_factory=dict)
    sort: str = "name"
    pattern: str = ""
    selected: str | None = None
    message: str = ""
    updated_at: float | None = None

    # -- feeding ----------------------------------------------------------------------
    def apply_batch(self, batch: dict[str, Any]) -> None:
        """A ``stats_all`` stream item: the list records and stats at one instant."""
        self.records = {r["name"]: r for r in batch.get("processes") or [] if r.get("name")}
        self.stats = {s["name"]: s for s in batch.get("stats") or [] if s.get("name")}
        self.updated_at = batch.get("time")
        self._keep_selection()

    def apply_event(self, event: dict[str, Any]) -> None:
        """State changes arrive at once, between stats batches."""
        name = event.get("process")
        if not name:
            return
        if event.get("type") == "process_deleted":
            self.records.pop(name, None)
            self._keep_selection()
        elif event.get("type") == "state_changed" and name in self.records:
            self.records[name] = dict(self.records[name], state=event.get("to"),
                                      reason=event.get("reason") or "")
        elif event.get("type") == "health_changed" and name in self.records:
            health = event.get("to") or event.get("health")
            if health:
                self.records[name] = dict(self.records[name], health=health)

    def apply_log(self, item: dict[str, Any]) -> None:
        name = item.get("process")
        if name and item.get("type") != "lost":
            self.logs.setdefault(name, deque(maxlen=LOG_KEEP)).append(item)

    # -- operator choices ---------------------------------------------------------------
    def visible(self) -> list[dict]:
        rows = [r for r in self.records.values()
                if not self.pattern or fnmatchcase(r["name"], self.pattern)
                or self.pattern in r["name"]]
        return sort_records(rows, self.sort, time.time(), self.stats)

    def next_sort(self) -> None:
        self.sort = TOP_SORTS[(TOP_SORTS.index(self.sort) + 1) % len(TOP_SORTS)]

    def move(self, delta: int) -> None:
        rows = self.visible()
        if not rows:
            self.selected = None
            return
        names = [r["name"] for r in rows]
        index = names.index(self.selected) if self.selected in names else 0
        self.selected = names[max(0, min(len(names) - 1, index + delta))]

    def set_pattern(self, pattern: str) -> None:
        self.pattern = pattern.strip()
        self._keep_selection()

    def _keep_selection(self) -> None:
        names = [r["name"] for r in self.visible()]
        if self.selected not in names:
            self.selected = names[0] if names else None

    # -- layout -------------------------------------------------------------------------
    def screen(self, width: int, height: int, *, now: float | None = None,
               prompt: str | None = None) -> list[Line]:
        """Exactly ``height`` lines of at most ``width - 1`` characters."""
        now = time.time() if now is None else now
        rows = self.visible()
        table_height = max(3, (height - 4) * 3 // 5) if height > 12 else max(1, height - 4)
        lines = [Line(self._title(now), "title"), Line(self._row(h for h, _ in COLUMNS), "header")]
        first = self._scroll(rows, table_height - 1)
        for record in rows[first:first + table_height - 1]:
            style = "selected" if record["name"] == self.selected else record.get("state")
            mark = ">" if record["name"] == self.selected else " "
            lines.append(Line(mark + self._row(self._cells(record, now))[1:], style))
        if not rows:
            lines.append(Line("  (no process matches)" if self.pattern else "  (no processes)"))
        while len(lines) < table_height + 1:
            lines.append(Line(""))
        lines += self._log_panel(width, height - len(lines) - 1)
        footer = prompt if prompt is not None else (self.message or FOOTER)
        lines.append(Line(footer, "footer"))
        return [Line(cell(line.text, max(width - 1, 1)), line.style) for line in lines[:height]]

    def snapshot(self, *, now: float | None = None) -> str:
        """The non-TTY fallback: title, header and every row once (no log panel)."""
        now = time.time() if now is None else now
        rows = self.visible()
        lines = [self._title(now), self._row(h for h, _ in COLUMNS).strip()]
        lines += [self._row(self._cells(r, now)).strip() for r in rows]
        return "\n".join(lines)

    def _title(self, now: float) -> str:
        counts = records_summary(list(self.records.values()))
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        bits = [f"dd-procmgr top — {len(self.records)} processes" + (f" ({summary})" if summary else ""),
                f"sort: {self.sort}"]
        if self.pattern:
            bits.append(f"filter: {self.pattern}")
        bits.append(time.strftime("%H:%M:%S", time.localtime(now)))
        return " — ".join(bits)

    def _scroll(self, rows: list[dict], room: int) -> int:
        names = [r["name"] for r in rows]
        index = names.index(self.selected) if self.selected in names else 0
        return max(0, index - room + 1)

    def _cells(self, record: dict, now: float) -> list[str]:
        figures = self.stats.get(record["name"], {})
        usage = figures.get("cpu_percent")
        memory = figures.get("memory_current", figures.get("memory_rss"))
        return [text(record.get("name")), text(record.get("state")), text(record.get("pid")),
                "-" if usage is None else f"{float(usage):.1f}",
                human_size(memory) if memory else "-", text(record.get("restarts")),
                text(record.get("health")), human_duration(uptime(record, now))]

    @staticmethod
    def _row(cells) -> str:
        out = ""
        for (_, width), value in zip(COLUMNS, cells):
            out += cell(str(value), width - 1).ljust(width)
        return " " + out.rstrip()

    def _log_panel(self, width: int, room: int) -> list[Line]:
        if room <= 0:
            return []
        title = f"── logs: {self.selected} " if self.selected else "── logs "
        lines = [Line(title + "─" * max(0, width - len(title) - 1), "header")]
        items = list(self.logs.get(self.selected, ()))[-(room - 1):] if room > 1 else []
        for item in items:
            lines.append(Line(str(item.get("line", "")).rstrip("\n"),
                              "stderr" if item.get("stream") == "stderr" else None))
        while len(lines) < room:
            lines.append(Line(""))
        return lines
