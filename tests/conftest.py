"""Shared fixtures: every test gets its own temp dir, runtime root and cgroup instance."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest

from trio_procmgr.spec import ConfigSet


@pytest.fixture
def instance_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_manager(tmp_path, instance_name):
    """``async with make_manager(config, **kw) as pm`` — a ProcessManager for one test."""
    from trio_procmgr.engine.manager import ProcessManager

    @asynccontextmanager
    async def factory(config: ConfigSet | None = None, **kw: Any) -> AsyncIterator[Any]:
        kw.setdefault("instance", instance_name)
        kw.setdefault("runtime_root", str(tmp_path / "run"))
        async with ProcessManager(config, **kw) as pm:
            yield pm

    return factory
