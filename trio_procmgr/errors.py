"""Errors as values with stable codes.

Every class maps 1:1 to an RPC error code (SPEC §10). Raise them at a boundary with a
sentence a user can act on, plus machine-readable ``details`` (file, line, field,
culprit). The RPC server turns them into EXCEPTION messages; the CLI prints
``error: CODE: message``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~3 ms of every CLI run; annotations only
if TYPE_CHECKING:
    from typing import Any


class ProcMgrError(Exception):
    """Base of every error the engine reports to a caller."""

    code = "INTERNAL"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


def _error(code: str) -> type[ProcMgrError]:
    name = "".join(part.capitalize() for part in code.split("_")) + "Error"
    return type(name, (ProcMgrError,), {"code": code, "__doc__": f"RPC error {code}."})


ProcessNotFound = _error("PROCESS_NOT_FOUND")
AlreadyExists = _error("ALREADY_EXISTS")
AlreadyRunning = _error("ALREADY_RUNNING")
NotRunning = _error("NOT_RUNNING")
InvalidState = _error("INVALID_STATE")
InvalidArgument = _error("INVALID_ARGUMENT")
ConfigError = _error("CONFIG_ERROR")
DependencyFailed = _error("DEPENDENCY_FAILED")
ConflictStopFailed = _error("CONFLICT_STOP_FAILED")
ConditionFailed = _error("CONDITION_FAILED")
SpawnFailed = _error("SPAWN_FAILED")
TerminateFailed = _error("TERMINATE_FAILED")
Timeout = _error("TIMEOUT")
PermissionDenied = _error("PERMISSION_DENIED")
PlatformNotSupported = _error("PLATFORM_NOT_SUPPORTED")
Unauthenticated = _error("UNAUTHENTICATED")
ProtocolError = _error("PROTOCOL_ERROR")
ResourceExhausted = _error("RESOURCE_EXHAUSTED")
Internal = _error("INTERNAL")
Cancelled = _error("CANCELLED")
Unimplemented = _error("UNIMPLEMENTED")

ERROR_CODES: tuple[str, ...] = (
    "PROCESS_NOT_FOUND", "ALREADY_EXISTS", "ALREADY_RUNNING", "NOT_RUNNING",
    "INVALID_STATE", "INVALID_ARGUMENT", "CONFIG_ERROR", "DEPENDENCY_FAILED",
    "CONFLICT_STOP_FAILED", "CONDITION_FAILED", "SPAWN_FAILED", "TERMINATE_FAILED",
    "TIMEOUT", "PERMISSION_DENIED", "PLATFORM_NOT_SUPPORTED", "UNAUTHENTICATED",
    "PROTOCOL_ERROR", "RESOURCE_EXHAUSTED", "INTERNAL", "CANCELLED", "UNIMPLEMENTED",
)

_BY_CODE = {cls.code: cls for cls in ProcMgrError.__subclasses__()}


def error_for_code(code: str, message: str, details: dict[str, Any] | None = None) -> ProcMgrError:
    """Rebuild the typed error a peer reported (client side of the RPC)."""
    cls = _BY_CODE.get(code, Internal)
    err = cls(message, **(details or {}))
    if cls is Internal and code != "INTERNAL":
        err.code = code
    return err
