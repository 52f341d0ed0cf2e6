"""The runtime override layer on its own: merge, persistence, fit to the file."""

from __future__ import annotations

import pytest

from trio_procmgr import errors
from trio_procmgr.config.loader import parse_process, spec_to_raw
from trio_procmgr.engine.overrides import OverrideLayer
from trio_procmgr.spec import SourceRef


def file_spec(**raw):
    return parse_process("web", {"command": "sleep", "args": ["1"], **raw},
                         SourceRef(file="/etc/pm/web.yaml", line=1))


def test_layers_merge_maps_key_by_key_and_persist(tmp_path):
    layer = OverrideLayer(str(tmp_path))
    layer.add("web", {"env": {"A": "1"}, "restart_sec": 9})
    layer.add("web", {"env": {"B": "2"}})
    again = OverrideLayer(str(tmp_path))
    assert again.get("web") == {"env": {"A": "1", "B": "2"}, "restart_sec": 9}


def test_apply_puts_the_layer_over_the_file_and_keeps_its_source(tmp_path):
    layer = OverrideLayer(str(tmp_path))
    layer.add("web", {"restart_sec": 9})
    spec = layer.apply(file_spec(restart_sec=3, description="x"), spec_to_raw, parse_process)
    assert (spec.restart_sec, spec.description) == (9.0, "x")
    assert spec.source.file == "/etc/pm/web.yaml"


def test_a_layer_that_no_longer_fits_raises_a_config_error(tmp_path):
    layer = OverrideLayer(None)
    layer.add("web", {"restart_sec": "not a duration"})
    with pytest.raises(errors.ConfigError):
        layer.apply(file_spec(), spec_to_raw, parse_process)


def test_forget_drops_processes_no_file_defines(tmp_path):
    layer = OverrideLayer(str(tmp_path))
    layer.add("web", {"restart_sec": 9})
    layer.add("gone", {"restart_sec": 9})
    layer.forget_except({"web"})
    assert OverrideLayer(str(tmp_path)).get("gone") == {}


def test_an_unreadable_file_starts_empty(tmp_path):
    (tmp_path / "overrides.json").write_text("{not json")
    assert OverrideLayer(str(tmp_path)).get("web") == {}
