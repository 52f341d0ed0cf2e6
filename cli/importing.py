"""``dd-procmgr import systemd|supervisord|pm2 FILE... [-o DIR]`` (SPEC §17).

The shell around ``trio_procmgr.importers``: reads the files, prints every finding on
stderr as ``FILE:LINE: ...``, and prints the YAML or writes one file per entry. Exit 0
when every file converted, 1 when any could not (nothing is written for that file; the
others still are). No daemon is involved.
"""

from __future__ import annotations

import os

from dd_procmgr_cli.invocation import EXIT_OK, EXIT_REFUSED, Invocation

SOURCES = ("systemd", "supervisord", "pm2")


def do_import(inv: Invocation, source: str, paths: list[str], out_dir: str | None, *,
              force: bool = False) -> int:
    from trio_procmgr.importers import CONVERTERS
    from trio_procmgr.importers.rendering import render_document, render_files

    sources, ok = read_sources(inv, paths)
    conversion = CONVERTERS[source](sources, dict(inv.environ))
    for finding in conversion.findings:
        inv.warn(str(finding))
    ok = ok and conversion.ok
    written: list[str] = []
    if out_dir is None and not inv.json:
        text = render_document(conversion, source)
        if text:
            inv.out.write(text)
    elif out_dir is not None:
        for converted in conversion.usable_files():
            ok = write_files(inv, out_dir, render_files(converted, source), force=force,
                             written=written) and ok
    if not conversion.usable_files():
        inv.warn("import: nothing could be converted")
    if inv.json:
        inv.emit_json(json_result(conversion, ok, written))
    return EXIT_OK if ok else EXIT_REFUSED


def json_result(conversion, ok: bool, written: list[str]) -> dict:
    """The ``--json`` document: the converted maps, every finding, the files written."""
    return {
        "ok": ok,
        "processes": conversion.merged("process"), "sockets": conversion.merged("socket"),
        "groups": conversion.merged("group"),
        "findings": [{"file": f.file, "line": f.line, "message": f.message, "error": f.error}
                     for f in conversion.findings],
        "written": written,
    }


def read_sources(inv: Invocation, paths: list[str]) -> tuple[list, bool]:
    """The readable files as ``SourceFile`` values; an error line for each other one."""
    from trio_procmgr.importers import SourceFile

    out, ok = [], True
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                out.append(SourceFile(path, handle.read()))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason})"
            inv.warn(f"{path}: error: cannot read: {reason}")
            ok = False
    return out, ok


def write_files(inv: Invocation, out_dir: str, files: dict[str, str], *, force: bool,
                written: list[str]) -> bool:
    """Write one input file's outputs, all or none: an existing file is kept unless --force."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        inv.warn(f"{out_dir}: error: cannot create the output directory: {exc.strerror}")
        return False
    clashes = [name for name in files if os.path.exists(os.path.join(out_dir, name))]
    if clashes and not force:
        for name in clashes:
            inv.warn(f"{os.path.join(out_dir, name)}: error: exists already (use --force to replace it)")
        return False
    for name, text in files.items():
        try:
            _write_atomically(os.path.join(out_dir, name), text)
        except OSError as exc:
            inv.warn(f"{os.path.join(out_dir, name)}: error: cannot write: {exc.strerror}")
            return False
        written.append(os.path.join(out_dir, name))
        inv.warn(f"wrote {written[-1]}")
    return True


def _write_atomically(path: str, text: str) -> None:
    import tempfile  # only here: the CLI's start-up stays light

    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".import-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
