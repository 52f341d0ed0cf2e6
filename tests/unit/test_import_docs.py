"""docs/migrating.md reproduces the converters' mapping tables exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from trio_procmgr.importers import pm2, supervisord, systemd

DOC = (Path(__file__).parents[2] / "docs" / "migrating.md").read_text()


@pytest.mark.parametrize("table", [systemd.UNIT_MAP, systemd.SERVICE_MAP, systemd.INSTALL_MAP,
                                   systemd.SOCKET_MAP, supervisord.PROGRAM_MAP, pm2.APP_MAP],
                         ids=["unit", "service", "install", "socket", "supervisord", "pm2"])
def test_every_mapped_directive_has_its_row(table):
    missing = [key for key, (what, _) in table.items() if f"| `{key}` | {what} |" not in DOC]
    assert missing == []


@pytest.mark.parametrize("reasons", [systemd.NO_EQUIVALENT, supervisord.NO_EQUIVALENT, pm2.NO_EQUIVALENT],
                         ids=["systemd", "supervisord", "pm2"])
def test_every_directive_without_equivalent_is_listed_with_its_reason(reasons):
    missing = [key for key, why in reasons.items() if f"| `{key}` | {why} |" not in DOC]
    assert missing == []
