"""Types of the optional C extension built from ``_clone3spawn.c`` (see its ``spawn_doc``).

``spawn`` exists only where the extension was built with its clone3 trampoline.
"""

def spawn(exe: bytes, argv: list[bytes], envp: list[bytes], cwd: bytes | None,
          stdio: tuple[int, int, int], pass_fds: list[int], uid: int, gid: int,
          groups: list[int] | None, new_session: bool, cgroup_fd: int,
          unshare_from: int = -1, /) -> tuple[int, int]:
    """vfork+exec ``exe`` with clone3 (into the cgroup ``cgroup_fd`` when >= 0);
    ``(pid, pidfd)``. Raises OSError with ``filename`` set to cwd or exe. With
    ``unshare_from >= 0`` the child copies only the fds below it (stdio must be there)."""
    ...
