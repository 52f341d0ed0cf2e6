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

    def __init__(self, message: str, /, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ProcessNotFound(ProcMgrError):
    """No process has that name or id (check `list`)."""

    code = "PROCESS_NOT_FOUND"


class AlreadyExists(ProcMgrError):
    """A process with that name already exists; names are unique."""

    code = "ALREADY_EXISTS"


class AlreadyRunning(ProcMgrError):
    """The process (or another daemon on the socket) is already running."""

    code = "ALREADY_RUNNING"


class NotRunning(ProcMgrError):
    """The call needs a running process and this one is not running."""

    code = "NOT_RUNNING"


class InvalidState(ProcMgrError):
    """The process's current state does not allow the operation."""

    code = "INVALID_STATE"


class InvalidArgument(ProcMgrError):
    """The caller sent a bad value; the message names the field."""

    code = "INVALID_ARGUMENT"


class ConfigError(ProcMgrError):
    """A configuration file or value is invalid; details name the file and field."""

    code = "CONFIG_ERROR"


class DependencyFailed(ProcMgrError):
    """A required dependency could not be started or failed."""

    code = "DEPENDENCY_FAILED"


class ConflictStopFailed(ProcMgrError):
    """A conflicting process could not be stopped first."""

    code = "CONFLICT_STOP_FAILED"


class ConditionFailed(ProcMgrError):
    """A start condition was false, so the process was not started."""

    code = "CONDITION_FAILED"


class SpawnFailed(ProcMgrError):
    """The operating system refused to start the command."""

    code = "SPAWN_FAILED"


class TerminateFailed(ProcMgrError):
    """The process did not go away even after SIGKILL."""

    code = "TERMINATE_FAILED"


class Timeout(ProcMgrError):
    """The operation did not finish within its deadline."""

    code = "TIMEOUT"


class PermissionDenied(ProcMgrError):
    """The caller's tier (read-only peer) may not do this."""

    code = "PERMISSION_DENIED"


class PlatformNotSupported(ProcMgrError):
    """This host lacks the mechanism the feature needs."""

    code = "PLATFORM_NOT_SUPPORTED"


class Unauthenticated(ProcMgrError):
    """The listener needs a bearer token and none (or a wrong one) was sent."""

    code = "UNAUTHENTICATED"


class ProtocolError(ProcMgrError):
    """The peer broke the wire protocol (RPC.md); the connection is aborted."""

    code = "PROTOCOL_ERROR"


class ResourceExhausted(ProcMgrError):
    """A per-connection or daemon limit was hit; retry later or ask for less."""

    code = "RESOURCE_EXHAUSTED"


class Internal(ProcMgrError):
    """A bug in the daemon; the daemon log has the traceback."""

    code = "INTERNAL"


class Cancelled(ProcMgrError):
    """The caller finished (cancelled) the question before it was answered."""

    code = "CANCELLED"


class Unimplemented(ProcMgrError):
    """This daemon does not know the method (an older or newer schema)."""

    code = "UNIMPLEMENTED"


#: The codes, in the schema's order; tests/unit/test_rpc_errors.py checks they are exactly
#: rpc_schema/schema.yaml's ``error_codes`` (the one declaration both sides share).
ERROR_CODES: tuple[str, ...] = tuple(cls.code for cls in ProcMgrError.__subclasses__())

_BY_CODE = {cls.code: cls for cls in ProcMgrError.__subclasses__()}


def error_for_code(code: str, message: str, details: dict[str, Any] | None = None) -> ProcMgrError:
    """Rebuild the typed error a peer reported (client side of the RPC)."""
    cls = _BY_CODE.get(code, Internal)
    err = cls(message, **(details or {}))
    if cls is Internal and code != "INTERNAL":
        err.code = code
    return err
