"""Shared fixtures: every test gets its own temp dir, runtime root and cgroup instance.

The platform switch: ``DD_PM_TEST_PLATFORM=portable`` (or ``linux``; default ``auto``)
runs the suite on that adapter. Managers built by ``make_manager`` get it as their
``platform=``, and every daemon a test starts gets it through ``DD_PM_PLATFORM`` (the
default of ``dd-procmgrd --platform``), so helpers need no flag of their own. Tests
marked ``linux_only("why")`` are skipped on the portable adapter, with that reason.
"""

from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest

from trio_procmgr.spec import ConfigSet

TEST_PLATFORM = os.environ.get("DD_PM_TEST_PLATFORM", "auto")
os.environ["DD_PM_PLATFORM"] = TEST_PLATFORM


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    if TEST_PLATFORM != "portable":
        return
    for item in items:
        marker = item.get_closest_marker("linux_only")
        if marker is not None:
            why = marker.args[0] if marker.args else "needs the linux adapter"
            item.add_marker(pytest.mark.skip(reason=f"portable platform: {why}"))


@pytest.fixture
def instance_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_manager(tmp_path, instance_name):
    """``async with make_manager(config, **kw) as pm`` — a ProcessManager for one test,
    on the adapter ``DD_PM_TEST_PLATFORM`` names."""
    from trio_procmgr.engine.manager import ProcessManager
    from trio_procmgr.platform.choice import choose_platform

    @asynccontextmanager
    async def factory(config: ConfigSet | None = None, **kw: Any) -> AsyncIterator[Any]:
        kw.setdefault("instance", instance_name)
        kw.setdefault("runtime_root", str(tmp_path / "run"))
        kw.setdefault("platform", choose_platform(TEST_PLATFORM))
        async with ProcessManager(config, **kw) as pm:
            yield pm

    return factory
