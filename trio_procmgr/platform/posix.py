"""POSIX process primitives shared by every adapter: exit statuses, signals, users.

Nothing here needs Linux: these are what the portable adapter is built from, and the
Linux adapter uses them as they are.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExitStatus:
    code: int | None
    signal: int | None

    @classmethod
    def from_returncode(cls, rc: int) -> "ExitStatus":
        return cls(None, -rc) if rc < 0 else cls(rc, None)

    @classmethod
    def from_siginfo(cls, info: os.waitid_result) -> "ExitStatus":
        if info.si_code == os.CLD_EXITED:
            return cls(info.si_status, None)
        return cls(None, info.si_status)


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True, slots=True)
class Credentials:
    uid: int
    gid: int
    groups: tuple[int, ...]
    user: str
    home: str
    shell: str


def resolve_credentials(user: str | None, group: str | None) -> Credentials | None:
    """Look up the identity a child runs as; None means "the daemon's own".

    Raises LookupError naming the unknown user or group.
    """
    if user is None and group is None:
        return None
    if user is not None:
        try:
            pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise LookupError(f"unknown user '{user}'") from None
        uid, gid, name, home, shell = pw.pw_uid, pw.pw_gid, pw.pw_name, pw.pw_dir, pw.pw_shell
    else:
        uid = os.getuid()
        pw = pwd.getpwuid(uid)
        gid, name, home, shell = os.getgid(), pw.pw_name, pw.pw_dir, pw.pw_shell
    if group is not None:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise LookupError(f"unknown group '{group}'") from None
    groups = tuple(os.getgrouplist(name, gid)) if user is not None else ()
    return Credentials(uid, gid, groups, name, home, shell)


def errno_reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or str(exc)
    return f"{text} ({name})" if name else text
