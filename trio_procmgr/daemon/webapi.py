"""The dashboard's JSON API on the web listener (SPEC §18): process rows, describe, actions.

``GET /api/processes`` lists one row per process (the table's columns);
``GET /api/processes/NAME`` answers the describe record; ``POST
/api/processes/NAME/ACTION`` (start, stop, restart, pause, resume) runs the action and
answers the describe record after it. Every failure is ``{"error": {"code", "message"}}``
with an HTTP status chosen from the error code (:data:`STATUS_BY_CODE`).

Route parsing and error shaping are pure; :func:`answer` is the only part that awaits the
engine. Who may call what is decided before any of this runs (``web.access_verdict``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from trio_procmgr import errors

if TYPE_CHECKING:
    from trio_procmgr.engine.manager import ProcessManager
    from trio_procmgr.engine.supervisor import Supervisor

PREFIX = "/api/processes"
ACTIONS = ("start", "stop", "restart", "pause", "resume")
REDACTED = "<redacted>"

#: HTTP status of each error code (anything else: 500).
STATUS_BY_CODE = {
    "INVALID_ARGUMENT": 400, "PROTOCOL_ERROR": 400, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403, "PROCESS_NOT_FOUND": 404, "UNIMPLEMENTED": 404,
    "ALREADY_RUNNING": 409, "NOT_RUNNING": 409, "INVALID_STATE": 409, "ALREADY_EXISTS": 409,
    "DEPENDENCY_FAILED": 409, "CONFLICT_STOP_FAILED": 409, "CONDITION_FAILED": 409,
    "CONFIG_ERROR": 409, "RESOURCE_EXHAUSTED": 503, "TIMEOUT": 504,
}


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """What one API request asks for: ``kind`` is list, describe or action."""

    kind: str
    name: str | None = None
    action: str | None = None

    @property
    def mutates(self) -> bool:
        return self.kind == "action"


class RouteError(Exception):
    """A request the API cannot route: carries the HTTP status and the error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(code, message)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def parse_route(method: str, path: str) -> ApiRoute:
    """The route of ``method path`` below :data:`PREFIX`; RouteError when there is none."""
    rest = path[len(PREFIX):]
    if rest in ("", "/"):
        _require(method, "GET", path)
        return ApiRoute("list")
    if not rest.startswith("/"):
        raise RouteError(404, "UNIMPLEMENTED", f"no API at {path}")
    raw_name, _, action = rest[1:].partition("/")
    name = unquote(raw_name)
    if not name:
        raise RouteError(400, "INVALID_ARGUMENT", "a process name is missing in the path")
    if not action:
        _require(method, "GET", path)
        return ApiRoute("describe", name)
    if action not in ACTIONS:
        raise RouteError(404, "UNIMPLEMENTED",
                         f"unknown action '{action}'; one of {', '.join(ACTIONS)}")
    _require(method, "POST", path)
    return ApiRoute("action", name, action)


def _require(method: str, wanted: str, path: str) -> None:
    if method != wanted:
        raise RouteError(405, "INVALID_ARGUMENT", f"{path} takes {wanted}, not {method}")


def instance_of(name: str) -> str | None:
    """The instance part of a template instance or replica name (``web@2`` -> ``2``)."""
    _, at, inst = name.partition("@")
    return inst if at else None


def process_row(manager: "ProcessManager", sup: "Supervisor") -> dict[str, Any]:
    """One table row: the record's headline fields plus group and instance."""
    rec = sup.record
    from trio_procmgr.engine.groups import SupervisionGroups

    host = getattr(manager, "host", None)
    group = host.feature(SupervisionGroups).group_of(sup.name) if host is not None else None
    return {"name": sup.name, "id": rec.id, "state": rec.state.value, "pid": rec.pid,
            "runs": rec.runs, "restarts": rec.restarts, "health": rec.health,
            "started_at": rec.started_at, "ended_at": rec.ended_at, "reason": rec.reason,
            "exit_code": rec.exit_code, "exit_signal": rec.exit_signal,
            "group": group.name if group is not None else None,
            "instance": instance_of(sup.name), "description": sup.spec.description}


def redact(record: dict[str, Any]) -> dict[str, Any]:
    """A describe record fit for a read-only watcher: env values hidden (SPEC §14)."""
    out = copy.deepcopy(record)
    spec = out.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("env"), dict):
        spec["env"] = {key: REDACTED for key in spec["env"]}
    return out


async def answer(manager: "ProcessManager", route: ApiRoute, *,
                 read_only: bool) -> tuple[int, dict[str, Any]]:
    """Run ``route`` against the engine: (HTTP status, JSON body). Never raises an engine
    error: each becomes its ``{"error": ...}`` body."""
    try:
        if route.kind == "list":
            rows = [process_row(manager, sup) for sup in manager.supervisors()]
            return 200, {"processes": rows, "seq": manager.hub.last_seq}
        assert route.name is not None
        if route.kind == "action":
            await getattr(manager, str(route.action))(route.name)
        record = manager.describe(route.name)
        return 200, redact(record) if read_only else record
    except errors.ProcMgrError as exc:
        return STATUS_BY_CODE.get(exc.code, 500), error_body(exc.code, exc.message)
