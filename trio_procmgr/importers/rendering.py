"""Converted entries as our YAML: one map document for stdout, or one file per entry.

stdout gets a single document with ``processes:``/``sockets:``/``groups:`` maps, which
``dd-procmgr validate`` reads as one map file. ``-o DIR`` gets ``NAME.yaml`` per process
(a template ``NAME@`` becomes ``NAME@.yaml``), ``NAME.socket.yaml`` per socket and
``NAME.group.yaml`` per group, each a file the loader accepts on its own.
"""

from __future__ import annotations

from typing import Any

import yaml

from .result import Conversion, FileConversion

MAP_KEYS = (("processes", "process"), ("sockets", "socket"), ("groups", "group"))


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def header(source: str, origin: str) -> str:
    return f"# converted by `dd-procmgr import {source}` from {origin}\n"


def render_document(conversion: Conversion, source: str) -> str:
    """Every usable entry of the import as one map document ('' when there is none)."""
    doc = {key: conversion.merged(kind) for key, kind in MAP_KEYS if conversion.merged(kind)}
    if not doc:
        return ""
    origins = ", ".join(f.source for f in conversion.usable_files())
    return header(source, origins) + dump(doc)


def render_files(converted: FileConversion, source: str) -> dict[str, str]:
    """File name -> text for one input file's entries (see module doc)."""
    top = header(source, converted.source)
    out = {f"{name}.yaml": top + dump(fields) for name, fields in converted.processes.items()}
    for key, kind in MAP_KEYS[1:]:
        for name, fields in converted.entries(kind).items():
            out[f"{name}.{kind}.yaml"] = top + dump({key: {name: fields}})
    return out
