"""The runtime override layer: ``update`` of a file-defined process (SPEC §15, issue 11.5).

Like systemd's runtime drop-ins (``systemctl set-property --runtime``), a change made at
run time to a process defined in a config file is kept as a layer *over* that file, not
as a new definition: every ``reload-config`` and every daemon start applies the file and
then the layer, so ``update web --restart-sec 9`` survives both; ``describe`` shows the
layer (``overrides``) and where each part comes from (``sources``). A process that is no
longer in any file loses its layer.

Kept in ``<state-dir>/overrides.json`` ({name: {field: value}}), written atomically;
without a state dir the layer lives in memory only. A write that fails (full or read-only
state dir) goes through the state store's accounting: counted, logged once per episode,
retried with the next state write; the layer still applies meanwhile.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from typing import Any, Callable, Mapping

from trio_procmgr.config.yamldoc import LineMap, merge_over
from trio_procmgr.engine.state_store import atomic_write_json
from trio_procmgr.spec import ProcessSpec

log = logging.getLogger("trio_procmgr.overrides")

FILE_NAME = "overrides.json"


class OverrideLayer:
    """Per-process field overrides on top of the config files, persisted."""

    def __init__(self, state_dir: str | None, store: Any = None) -> None:
        self.path = os.path.join(state_dir, FILE_NAME) if state_dir else None
        #: The ``StateStore`` whose ``write`` counts and retries failures (None: log only).
        self.store = store
        self._layers: dict[str, dict[str, Any]] = self._load()

    def _load(self) -> dict[str, dict[str, Any]]:
        if self.path is None:
            return {}
        try:
            with open(self.path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("%s: cannot read the runtime overrides (%s); starting without them",
                      self.path, exc)
            return {}
        if not isinstance(data, dict):
            log.error("%s: not a mapping of process name to fields; ignored", self.path)
            return {}
        return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}

    def get(self, name: str) -> dict[str, Any]:
        return dict(self._layers.get(name, {}))

    def add(self, name: str, changes: Mapping[str, Any]) -> None:
        """Merge ``changes`` into the layer of ``name`` (maps key by key) and persist."""
        merged, _ = merge_over(self._layers.get(name, {}), LineMap(), dict(changes), LineMap())
        self._layers[name] = merged
        self._save()

    def forget(self, name: str) -> None:
        """Drop the layer of a deleted process (the file, if any, alone comes back)."""
        if self._layers.pop(name, None) is not None:
            self._save()

    def forget_except(self, names: set[str]) -> None:
        """Drop the layers of processes no longer defined by any file."""
        gone = set(self._layers) - names
        for name in gone:
            del self._layers[name]
        if gone:
            self._save()

    def apply(self, spec: ProcessSpec, to_raw: Callable[[ProcessSpec], dict[str, Any]],
              parse: Callable[[str, dict[str, Any]], ProcessSpec]) -> ProcessSpec:
        """``spec`` (from a file) with its layer on top; the file's source is kept.

        Raises what ``parse`` raises (ConfigError) when the layer no longer fits the file.
        """
        layer = self._layers.get(spec.name)
        if not layer:
            return spec
        raw, _ = merge_over(to_raw(spec), LineMap(), layer, LineMap())
        return replace(parse(spec.name, raw), source=spec.source)

    def _save(self) -> None:
        if self.path is None:
            return
        if self.store is not None:
            self.store.write(self.path, dict(self._layers))
            return
        try:
            atomic_write_json(self.path, self._layers)
        except OSError as exc:  # degrade: the layer still applies until the daemon stops
            log.error("%s: cannot save the runtime overrides: %s", self.path, exc)
