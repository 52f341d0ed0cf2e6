"""One run of ``dd-procmgr``: global options, the daemon connection, and output.

The connection is opened on first use, so offline commands (validate, schema) and
usage errors never touch the socket, and the client library (msgpack, sockets) is
imported only when a command needs the daemon. Exit codes are decided in one place,
``entry.run_guarded``, from the exceptions raised here and by the client.
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any, Iterator, Mapping, TextIO

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

DEFAULT_TIMEOUT = 10.0

# Methods whose results struct holds one meaningful field (rpc_schema/schema.yaml).
RESULT_FIELD = {
    "list": "processes", "create": "record", "start": "record", "stop": "record",
    "restart": "record", "describe": "record", "delete": "record", "pause": "record",
    "resume": "record", "stats": "stats", "logs": "lines", "deps": "graph",
    "kill": "record", "reload": "record", "groups": "groups", "stats_all": "stats",
}


class ExitWith(Exception):
    """End the run with ``code``; the command has already printed what it had to say."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class UsageProblem(Exception):
    """The command line cannot be carried out as written (exit 2)."""


def json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def to_json(doc: Any, *, indent: int | None = 2) -> str:
    import json
    return json.dumps(doc, indent=indent, default=json_default, ensure_ascii=False)


class Invocation:
    """Global options plus lazily opened connection; ``close`` releases it.

    A plain class rather than a dataclass: ``dataclasses`` pulls in ``inspect``,
    about 10 ms of every ``dd-procmgr list``.
    """

    def __init__(self, socket: str | None = None, json: bool = False,
                 timeout: float = DEFAULT_TIMEOUT, tcp: str | None = None,
                 token_file: str | None = None, out: TextIO | None = None,
                 err: TextIO | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.socket = socket
        self.json = json
        self.timeout = timeout
        self.tcp = tcp
        self.token_file = token_file
        self.out = sys.stdout if out is None else out
        self.err = sys.stderr if err is None else err
        self.environ = os.environ if environ is None else environ
        self._client: Any = None

    @property
    def colour(self) -> bool:
        from dd_procmgr_cli.format import colour_allowed
        return not self.json and colour_allowed(self.out, self.environ)

    # -- daemon ---------------------------------------------------------------

    def client(self, *, timeout: float | None = None) -> Any:
        """The BlockingClient for this run (connects on first use)."""
        if self._client is None:
            self._client = self.open_client(timeout=timeout)
        return self._client

    def open_client(self, *, timeout: float | None = None) -> Any:
        """A new connection with this run's options, owned (and closed) by the caller:
        for commands that need several at once on different threads (``top``)."""
        from trio_procmgr.client import BlockingClient
        kwargs: dict[str, Any] = {"timeout": self.timeout if timeout is None else timeout}
        if self.tcp:
            kwargs["tcp"] = self.tcp
            kwargs["token"] = self._read_token()
        return BlockingClient(self.socket, **kwargs)

    def _read_token(self) -> str | None:
        if not self.token_file:
            return self.environ.get("DD_PM_TOKEN")
        try:
            with open(self.token_file, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise UsageProblem(f"cannot read token file {self.token_file}: "
                               f"{exc.strerror or exc}") from None

    def call(self, method: str, **params: Any) -> Any:
        """Call a root RPC method; single-field results come back unwrapped (the record,
        the list of records, ...), which is also what ``--json`` prints (SPEC §11)."""
        result = self.client().call(method, **params)
        key = RESULT_FIELD.get(method)
        if key is not None and isinstance(result, dict) and key in result:
            return result[key]
        return result

    def call_many(self, method: str, params_list: list[dict[str, Any]]) -> list[Any]:
        """The same call for many params at once (pipelined on one connection); each
        entry is the unwrapped result or the error that call raised."""
        key = RESULT_FIELD.get(method)
        return [r[key] if key is not None and isinstance(r, dict) and key in r else r
                for r in self.client().call_many(method, params_list)]

    def stream(self, method: str, **params: Any) -> Iterator[Any]:
        return self.client().stream(method, **params)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except OSError:
                pass  # closing a socket the daemon already dropped: it is gone either way

    # -- output ---------------------------------------------------------------

    def echo(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")

    def emit_json(self, doc: Any) -> None:
        """The single JSON document of a ``--json`` run."""
        self.out.write(to_json(doc) + "\n")

    def emit_json_line(self, doc: Any) -> None:
        """One line of a JSON-lines stream (events, logs -f), flushed at once."""
        self.out.write(to_json(doc, indent=None) + "\n")
        self.out.flush()

    def flush(self) -> None:
        try:
            self.out.flush()
        except (BrokenPipeError, ValueError):
            pass
