"""Is a directory in memory (tmpfs, ramfs)? And a private directory in a shared one.

Why it matters: creating a FIFO is a metadata write, and on a journalled disk filesystem
that costs 0.3-0.6 ms here (ext4), against ~5 us on tmpfs. The daemon makes two per run
of every captured service, so where they live decides a good part of the spawn's cost
(see ``engine.output_fifo.choose_dir``).
"""

from __future__ import annotations

import os
import stat

from trio_procmgr.platform.cgroups import unescape_mount_field

MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


def parse_filesystems(text: str) -> list[tuple[str, str]]:
    """``(mount point, filesystem type)`` of each line of a mountinfo file, in order."""
    found = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if sep and len(fields) >= 5 and tail:
            found.append((unescape_mount_field(fields[4]), tail[0]))
    return found


def filesystem_of(path: str, mounts: list[tuple[str, str]]) -> str | None:
    """The type of the filesystem holding ``path`` (absolute, symlinks resolved): that of
    the longest mount point above it; of two mounts on one point, the later one."""
    best: tuple[int, str] | None = None
    for point, fstype in mounts:
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), fstype)
    return best[1] if best else None


def in_memory(path: str, mountinfo: str = "/proc/self/mountinfo") -> bool:
    """True when ``path`` (existing or not) is on tmpfs or ramfs; False when unknown."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            mounts = parse_filesystems(f.read())
    except OSError:
        return False
    return filesystem_of(os.path.realpath(path), mounts) in MEMORY_FILESYSTEMS


def private_dir(path: str) -> bool:
    """Make ``path`` (mode 0700) in a shared, sticky directory such as /dev/shm, or find it
    there; True only when it is a real directory (not a symlink), owned by us and closed to
    everyone else, so nobody else can have made it or can change what is in it."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            and stat.S_IMODE(st.st_mode) & 0o077 == 0)
