"""Converters from other supervisors' configuration to ours (SPEC §17).

Pure: each converter is given a file's name and text and returns a ``FileConversion``
(the processes, sockets and groups it defines, plus a finding for every directive that has
no exact equivalent). Nothing here reads the disk or needs a daemon; ``dd-procmgr import``
is the thin shell that reads files, prints findings and writes the YAML.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from . import pm2, supervisord, systemd
from .result import Conversion, FileConversion, Finding, SourceFile

CONVERTERS: dict[str, Callable[[Sequence[SourceFile], Mapping[str, str] | None], Conversion]] = {
    "systemd": systemd.convert_units,
    "supervisord": supervisord.convert_files,
    "pm2": pm2.convert_files,
}

__all__ = ["CONVERTERS", "Conversion", "FileConversion", "Finding", "SourceFile"]
