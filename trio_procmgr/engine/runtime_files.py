"""Files a service owns on the host while it runs: its pidfile and runtime directories."""

from __future__ import annotations

import os
import shutil

from trio_procmgr.platform.posix import resolve_credentials
from trio_procmgr.spec import ProcessSpec


def default_runtime_root() -> str:
    """/run as root (like systemd's RuntimeDirectory=), else the user's runtime dir."""
    if os.geteuid() == 0:
        return "/run"
    return os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/dd-procmgr-{os.getuid()}/run"


def write_pidfile(spec: ProcessSpec, pid: int) -> None:
    if spec.pidfile is None or spec.process_type == "forking":
        return  # a forking service writes its own pidfile; we read it
    tmp = f"{spec.pidfile}.tmp"
    os.makedirs(os.path.dirname(spec.pidfile) or ".", exist_ok=True)
    with open(tmp, "w") as f:
        f.write(f"{pid}\n")
    os.replace(tmp, spec.pidfile)


def remove_pidfile(spec: ProcessSpec) -> None:
    if spec.pidfile is not None:
        try:
            os.unlink(spec.pidfile)
        except FileNotFoundError:
            pass


def runtime_dir_paths(spec: ProcessSpec, root: str) -> list[str]:
    return [os.path.join(root, rel) for rel in spec.runtime_directory]


def create_runtime_dirs(spec: ProcessSpec, root: str) -> dict[str, str]:
    """Create each runtime directory 0755, owned by the service's user/group.

    Returns the environment systemd gives for it (RUNTIME_DIRECTORY, colon-joined).
    Raises OSError/LookupError, which the caller reports as a failed start.
    """
    paths = runtime_dir_paths(spec, root)
    if not paths:
        return {}
    creds = resolve_credentials(spec.user, spec.group)
    for path in paths:
        os.makedirs(path, mode=0o755, exist_ok=True)
        os.chmod(path, 0o755)
        if creds is not None:
            os.chown(path, creds.uid, creds.gid)
    return {"RUNTIME_DIRECTORY": ":".join(paths)}


def remove_runtime_dirs(spec: ProcessSpec, root: str) -> None:
    for path in runtime_dir_paths(spec, root):
        shutil.rmtree(path, ignore_errors=True)
