"""What a read-only peer may see (SPEC §14): no environment values, no secrets.

A local user who is neither root nor in the admin group may watch and describe, but a
service's ``env`` often holds passwords and API tokens. :func:`redact` returns a copy of
an answer (record, list, event) with the value of every ``env``/``environment`` map
replaced by :data:`REDACTED` (the variable names stay visible: they help debugging) and
every value whose key names a secret (token, password, secret, credential, api_key)
replaced too. ``environment_file`` is a list of paths: the daemon never reads the files'
contents into an answer. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
ENV_KEYS = frozenset({"env", "environment"})
SECRET_WORDS = ("token", "password", "passwd", "secret", "credential", "api_key", "apikey")


def is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and any(word in key.lower() for word in SECRET_WORDS)


def redact(value: Any) -> Any:
    """A copy of ``value`` safe to show a read-only peer."""
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if key in ENV_KEYS and isinstance(item, Mapping):
                out[key] = {name: REDACTED for name in item}
            elif is_secret_key(key) and item not in (None, "", {}, []):
                out[key] = REDACTED
            else:
                out[key] = redact(item)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    return value
