"""``dd-procmgr top``: the curses shell around :mod:`topview`.

Three streams feed the view, each on its own connection and thread (the blocking
client is not shared across threads): ``stats_all`` with ``follow`` (every process's
records and stats each interval, pushed by the daemon), ``watch`` (state changes at
once) and ``logs`` of every process (the selected one's tail). Threads only put items
on a queue; the curses loop alone touches the model and the screen. Start/stop/restart
run on a worker thread so a slow stop never freezes the screen. Without a terminal
(or with ``--once``) one snapshot table is printed instead.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

from dd_procmgr_cli.invocation import EXIT_OK, Invocation, UsageProblem
from dd_procmgr_cli.topview import TOP_SORTS, Line, TopModel

LOG_BACKLOG = 500
ACTIONS = {"S": "start", "T": "stop", "R": "restart"}
STYLE_COLOURS = {"running": 2, "failed": 1, "crashed": 1, "backoff": 3, "starting": 3,
                 "stopping": 3, "paused": 4, "stderr": 1}


def do_top(inv: Invocation, *, interval: float = 2.0, once: bool = False,
           sort: str = "name") -> int:
    if sort not in TOP_SORTS:
        raise UsageProblem(f"top: unknown sort {sort!r}; expected one of {', '.join(TOP_SORTS)}")
    model = TopModel(sort=sort)
    if once or inv.json or not (inv.out.isatty() and inv.err.isatty()):
        model.apply_batch({"time": time.time(), "processes": inv.call("list"),
                           "stats": inv.call("stats_all", names=None)})
        if inv.json:
            inv.emit_json({"processes": list(model.records.values()),
                           "stats": list(model.stats.values())})
        else:
            inv.echo(model.snapshot())
        return EXIT_OK
    import curses
    inv.client()  # fail fast (exit 3) before the screen is taken over
    feeds = Feeds(inv, interval)
    try:
        return curses.wrapper(lambda screen: TopScreen(screen, model, feeds).run())
    finally:
        feeds.close()


class Feeds:
    """The three streams on their own threads and connections, merged into one queue."""

    def __init__(self, inv: Invocation, interval: float) -> None:
        self.inv = inv
        self.items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.clients: list[Any] = []
        self._start("batch", "stats_all", names=None, interval=interval)
        self._start("event", "watch")
        self._start("log", "logs", name=None, lines=LOG_BACKLOG)

    def _client(self) -> Any:
        client = self.inv.open_client()
        self.clients.append(client)
        return client

    def _start(self, kind: str, method: str, **params: Any) -> None:
        def pump() -> None:
            try:
                for item in self._client().stream(method, **params):
                    self.items.put((kind, item))
            except Exception as exc:  # reported on the screen's footer, never silent
                self.items.put(("error", f"{method} stream ended: {exc}"))
        threading.Thread(target=pump, name=f"top-{kind}", daemon=True).start()

    def act(self, method: str, name: str) -> None:
        """Start/stop/restart on a worker thread; the outcome comes back as a message."""
        def work() -> None:
            try:
                record = self._client().call(method, name=name)["record"]
                self.items.put(("message", f"{method} {name}: {record.get('state')}"))
            except Exception as exc:
                code = getattr(exc, "code", type(exc).__name__)
                self.items.put(("message", f"{method} {name}: {code}: "
                                           f"{getattr(exc, 'message', exc)}"))
        threading.Thread(target=work, name=f"top-{method}", daemon=True).start()

    def close(self) -> None:
        for client in self.clients:
            try:
                client.close()
            except OSError:
                pass


class TopScreen:
    """The curses loop: keys -> model, queue -> model, model -> screen."""

    def __init__(self, screen: Any, model: TopModel, feeds: Feeds) -> None:
        import curses
        self.curses = curses
        self.screen, self.model, self.feeds = screen, model, feeds
        self.prompt: str | None = None
        self.styles = self._styles()

    def _styles(self) -> dict[str, int]:
        curses = self.curses
        curses.curs_set(0)
        styles = {"title": curses.A_BOLD, "header": curses.A_BOLD | curses.A_UNDERLINE,
                  "selected": curses.A_REVERSE, "footer": curses.A_REVERSE}
        if curses.has_colors():
            curses.use_default_colors()
            for number in set(STYLE_COLOURS.values()):
                curses.init_pair(number, number, -1)
            styles.update({k: curses.color_pair(v) for k, v in STYLE_COLOURS.items()})
        return styles

    def run(self) -> int:
        self.screen.timeout(100)
        while True:
            self._drain()
            self._paint()
            try:
                key = self.screen.get_wch()
            except self.curses.error:  # no key within the timeout
                continue
            if not self._key(key):
                return EXIT_OK

    def _drain(self) -> None:
        handlers: dict[str, Callable[[Any], None]] = {
            "batch": self.model.apply_batch, "event": self.model.apply_event,
            "log": self.model.apply_log, "message": self._message, "error": self._message}
        try:
            while True:
                kind, item = self.feeds.items.get_nowait()
                handlers[kind](item)
        except queue.Empty:
            pass

    def _message(self, text: str) -> None:
        self.model.message = text

    def _paint(self) -> None:
        height, width = self.screen.getmaxyx()
        self.screen.erase()
        for row, line in enumerate(self.model.screen(width, height, prompt=self.prompt)):
            self._line(row, line, width)
        self.screen.refresh()

    def _line(self, row: int, line: Line, width: int) -> None:
        attr = self.styles.get(line.style or "", 0)
        text = line.text.ljust(width - 1) if line.style in ("selected", "footer") else line.text
        try:
            self.screen.addstr(row, 0, text[: width - 1], attr)
        except self.curses.error:
            pass  # the bottom-right cell cannot be written; the rest is on screen

    def _key(self, key: Any) -> bool:
        """Handle one key; False quits."""
        if self.prompt is not None:
            self._prompt_key(key)
            return True
        curses = self.curses
        if key in ("q", "Q", "\x1b"):
            return False
        if key in ("j", curses.KEY_DOWN):
            self.model.move(1)
        elif key in ("k", curses.KEY_UP):
            self.model.move(-1)
        elif key == "s":
            self.model.next_sort()
        elif key == "/":
            self.prompt = "/"
        elif key in ACTIONS and self.model.selected:
            self.model.message = f"{ACTIONS[key]} {self.model.selected} …"
            self.feeds.act(ACTIONS[key], self.model.selected)
        return True

    def _prompt_key(self, key: Any) -> None:
        if key in ("\n", "\r", self.curses.KEY_ENTER):
            self.model.set_pattern(self.prompt[1:])
            self.prompt = None
        elif key == "\x1b":
            self.prompt = None
        elif key in ("\x7f", "\b", self.curses.KEY_BACKSPACE):
            self.prompt = self.prompt[:-1] or "/"
        elif isinstance(key, str) and key.isprintable():
            self.prompt += key
