"""Error codes and event types are declared once, in rpc_schema/schema.yaml, and the code
agrees with that declaration both ways."""

from __future__ import annotations

import pathlib
import pickle
import re

import pytest

from dd_procmgr_rpc_schema import loader
from trio_procmgr import errors, events

ROOT = pathlib.Path(__file__).resolve().parents[2]

#: Declared for branches being merged now; each publishes it there. Once merged the type is
#: published here too and test_pending_types_are_not_yet_published forces its removal.
PENDING_PUBLISHERS: set[str] = set()

_PUBLISH = re.compile(r"""\bpublish\(\s*["']([a-z_]+)["']""")
_EVENT_BODY = re.compile(r"""["']type["']\s*:\s*["']([a-z_]+)["']""")
#: Modules that build event bodies as dict literals and hand them to the hub.
EVENT_BODY_MODULES = ("states.py", "events.py")


def published_types() -> set[str]:
    """Every event type a ``publish("x", ...)`` call names, plus the ``"type": "x"`` bodies
    of the modules that build events as dicts."""
    found: set[str] = set()
    for path in (ROOT / "trio_procmgr").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        found.update(m.group(1) for m in _PUBLISH.finditer(text))
        if path.name in EVENT_BODY_MODULES:
            found.update(m.group(1) for m in _EVENT_BODY.finditer(text))
    return found


@pytest.fixture(scope="module")
def doc():
    return loader.load_schema()


def test_error_classes_are_exactly_the_schema_codes(doc):
    assert errors.ERROR_CODES == tuple(doc["error_codes"])
    assert {cls.code for cls in errors.ProcMgrError.__subclasses__()} == set(doc["error_codes"])


@pytest.mark.parametrize("cls", errors.ProcMgrError.__subclasses__(), ids=lambda c: c.__name__)
def test_error_classes_are_named_documented_and_pickle(cls):
    assert not cls.__name__.endswith("ErrorError") and cls.__module__ == "trio_procmgr.errors"
    assert cls.__doc__ and not cls.__doc__.startswith("RPC error")
    err = pickle.loads(pickle.dumps(cls("what went wrong", field="name")))
    assert type(err) is cls and err.message == "what went wrong"
    assert err.details == {"field": "name"} and err.code == cls.code


def test_error_for_code_accepts_details_that_shadow_the_message():
    err = errors.error_for_code("INVALID_ARGUMENT", "bad", {"message": "x"})
    assert isinstance(err, errors.InvalidArgument) and err.details == {"message": "x"}


def test_every_published_event_type_is_declared():
    undeclared = published_types() - events.EVENT_TYPES
    assert not undeclared, f"add {sorted(undeclared)} to EventType in rpc_schema/schema.yaml"


def test_every_declared_event_type_is_published():
    unpublished = events.EVENT_TYPES - published_types() - PENDING_PUBLISHERS
    assert not unpublished, f"{sorted(unpublished)} are declared but nothing publishes them"


def test_pending_types_are_not_yet_published():
    assert not PENDING_PUBLISHERS & published_types(), "published now: drop from PENDING_PUBLISHERS"


def test_event_types_come_from_the_schema(doc):
    assert events.EVENT_TYPES == set(doc["enums"]["EventType"]["values"])
