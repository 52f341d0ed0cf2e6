"""From a spec to a running child: the exec plan, then the spawn itself.

Why no ``preexec_fn``: it runs Python in the forked child of a threaded process (unsafe)
and disables vfork. Everything a child needs before exec is expressed through
``subprocess.Popen``'s own C-level options instead — ``cwd``, ``env``, ``user``,
``group``, ``extra_groups``, ``start_new_session``, ``pass_fds``, ``close_fds`` — and:

* cgroup placement: the daemon moves *itself* into the service's cgroup around the
  synchronous ``Popen`` call (``ServiceCgroup.spawn_context``), so the child is born in
  its cgroup and runs no instruction outside it; single-threaded Trio code runs nothing
  else in between;
* ambient capabilities: the command is exec'd through util-linux ``setpriv``, which
  raises the inheritable and ambient sets and switches user in C before exec'ing the
  service (the PID stays the same across that exec);
* own PID and fds 3, 4, ... (``LISTEN_PID``, ``WATCHDOG_PID``, socket activation): the
  plan's argv is wrapped by ``engine.exec_shim`` (an ``exec_plan_hook``) in a shim that
  sets the variables to ``$$``, dup2s the passed fds to 3.. and execs the command, same
  PID: ``/bin/sh`` (+4 ms) when every fd is a single digit, else ``python -I -S``
  (+32 ms); measured and argued in that module and docs/readiness-and-sockets.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Mapping

from trio_procmgr.platform.ports import NativeSpawnUnsupported, ProcessControl, ServiceCgroup
from trio_procmgr.platform.posix import Credentials, errno_reason, resolve_credentials
from trio_procmgr.spec import ProcessSpec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PASSTHROUGH = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ")


class SpawnError(Exception):
    """The child could not be started; ``reason`` is the words for the record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def base_environment(daemon_env: Mapping[str, str]) -> dict[str, str]:
    """The clean environment every child starts from (systemd-like, not the daemon's)."""
    env = {"PATH": daemon_env.get("PATH") or DEFAULT_PATH}
    for key in _PASSTHROUGH:
        if key in daemon_env:
            env[key] = daemon_env[key]
    return env


@dataclass(slots=True)
class ShimRequest:
    """Fds to move to 3, 4, ... and variables to set to the child's PID (``exec_shim``)."""

    fds: list[int] = field(default_factory=list)
    pid_vars: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ExecPlan:
    """What to run. ``argv[0]`` is the command as written (execvp semantics: ``sleep``
    shows as ``sleep`` in ps and /proc/PID/cmdline); ``executable`` is the file it was
    resolved to, for that argv."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    creds: Credentials | None
    pass_fds: tuple[int, ...] = ()
    use_setpriv: bool = False
    executable: str | None = None
    word: str | None = None
    #: What features asked of the exec shim for this spawn (``engine.exec_shim``).
    shim: ShimRequest | None = None

    def program(self) -> str:
        """The file to exec: ``executable`` while argv still starts with the command as
        written. A wrapper put in front later (prlimit, the exec shim) makes argv[0] its
        own absolute path and execs the command word itself, with the same PATH and
        working directory, so it finds the same file."""
        if self.executable is not None and self.argv[0] == self.word:
            return self.executable
        return self.argv[0]


def _lookup(command: str, path: str, cwd: str | None) -> str:
    """The file ``command`` names; SpawnError saying where it looked when there is none."""
    if "/" in command:
        if os.path.isabs(command):
            full, where = command, ""
        else:
            base = cwd if cwd is not None else os.getcwd()
            full = os.path.normpath(os.path.join(base, command))
            where = f" (relative to {'working_dir' if cwd is not None else 'the daemon directory'} '{base}')"
        if not os.path.exists(full):
            raise SpawnError(f"command not found: '{full}'{where}: No such file or directory")
        return full
    found = shutil.which(command, path=path)
    if found is None:
        raise SpawnError(f"command not found: '{command}' (searched PATH={path})")
    return found


def build_exec_plan(spec: ProcessSpec, *, base_env: Mapping[str, str],
                    file_env: Mapping[str, str], extra_env: Mapping[str, str] | None = None,
                    pass_fds: tuple[int, ...] = ()) -> ExecPlan:
    """Resolve identity, environment and the executable; raise SpawnError with the reason."""
    try:
        creds = resolve_credentials(spec.user, spec.group)
    except LookupError as exc:
        raise SpawnError(str(exc)) from None
    env = dict(base_env)
    if creds is not None:
        env.update(HOME=creds.home, USER=creds.user, LOGNAME=creds.user, SHELL=creds.shell)
    env.update(file_env)
    env.update(spec.env)
    if extra_env:
        env.update(extra_env)
    cwd = spec.working_dir
    exe = _lookup(spec.command, env.get("PATH", DEFAULT_PATH), cwd)
    argv = [spec.command, *spec.args]
    use_setpriv = bool(spec.ambient_capabilities)
    if use_setpriv:
        argv = _setpriv_argv(spec, creds) + argv
    return ExecPlan(argv=argv, env=env, cwd=cwd, creds=creds, pass_fds=pass_fds,
                    use_setpriv=use_setpriv, executable=exe, word=spec.command)


def _setpriv_argv(spec: ProcessSpec, creds: Credentials | None) -> list[str]:
    setpriv = shutil.which("setpriv", path=DEFAULT_PATH)
    if setpriv is None:
        raise SpawnError("ambient_capabilities need util-linux 'setpriv', which is not installed")
    caps = ",".join("+" + c.lower().removeprefix("cap_") for c in spec.ambient_capabilities)
    argv = [setpriv, f"--inh-caps={caps}", f"--ambient-caps={caps}"]
    if creds is not None:
        argv += [f"--reuid={creds.uid}", f"--regid={creds.gid}"]
        argv += [f"--groups={','.join(map(str, creds.groups))}"] if creds.groups else ["--clear-groups"]
    argv.append("--")
    return argv


def check_executable(plan: ExecPlan) -> None:
    """Fail as a direct exec would (SpawnError, same words) for a command that is exec'd
    through a wrapper — the exec shim — whose own start would otherwise hide the failure
    and report the service started."""
    exe = plan.executable if plan.executable is not None else plan.argv[0]
    if plan.cwd is not None and not os.path.isabs(exe):
        exe = os.path.join(plan.cwd, exe)
    if not os.path.exists(exe):
        raise SpawnError(f"cannot execute '{exe}': No such file or directory (ENOENT)")
    if os.path.isdir(exe) or not os.access(exe, os.X_OK):
        raise SpawnError(f"cannot execute '{exe}': Permission denied (EACCES)")


@dataclass(slots=True)
class Child:
    """A spawned main process: its Popen (None when cloned natively), its pidfd, and the
    read ends of its pipes."""

    popen: subprocess.Popen[bytes] | None
    pid: int
    pidfd: int | None
    stdout_fd: int | None
    stderr_fd: int | None
    extra: dict[str, Any] = field(default_factory=dict)
    #: How the child was placed in its cgroup, in words for ``describe``.
    placement: str = "fork+exec"
    #: Its kernel start time when the spawn knew it (``ProcessControl.native_spawn``).
    start_time: int | None = None

    def close_pidfd(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def returncode(self) -> int:
        """The exit status as Popen's returncode (-N for signal N), once the pidfd is
        readable (the child has exited); reaps it."""
        if self.popen is not None:
            return self.popen.wait()
        assert self.pidfd is not None
        info = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)
        assert info is not None
        if info.si_code == os.CLD_EXITED:
            return info.si_status
        return -info.si_status


def _stdio(mode: str) -> tuple[Any, Any, int | None, int | None]:
    if mode == "capture":
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        try:
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
        except OSError:
            os.close(out_r)
            os.close(out_w)
            raise
        return out_w, err_w, out_r, err_r
    if mode == "inherit":
        return None, None, None, None
    return subprocess.DEVNULL, subprocess.DEVNULL, None, None


def spawn(plan: ExecPlan, *, log_mode: str, cgroup: ServiceCgroup | None,
          process: ProcessControl, output: tuple[int, int, int, int] | None = None) -> Child:
    """Start the child synchronously (fork/vfork + exec, about a millisecond).

    Runs inside ``cgroup.spawn_context()`` so the child is born in its cgroup. The child
    gets its own session and process group, /dev/null as stdin, pipes (or the chosen
    sink) as stdout/stderr, and no fd of ours except ``plan.pass_fds``.
    ``output`` (child stdout, child stderr, read stdout, read stderr) replaces the pipes
    of capture mode (output FIFOs that survive the daemon); the child ends are closed here.
    ``process`` is the platform's port: its native spawn (clone3 into the cgroup) is
    tried first, ``Popen`` is the fallback, and the pidfd (if any) comes from it too.
    Raises SpawnError with the OS reason (missing binary, bad working dir, ...).
    """
    try:
        out_w, err_w, out_r, err_r = output if output is not None else _stdio(log_mode)
    except OSError as exc:  # EMFILE/ENFILE/ENOMEM before the fork: the same failure path
        raise SpawnError(f"cannot create the output pipes: {_errno_words(exc)}") from None
    if process.can_spawn_natively():
        try:
            target = cgroup.clone_target() if cgroup is not None else None
        except OSError as exc:  # the cgroup could not be made (EMFILE, ENOSPC ...)
            _close_fds(out_r, err_r, out_w, err_w)
            raise SpawnError(f"cannot set up the cgroup: {_errno_words(exc)}") from None
        if cgroup is None or target is not None:
            try:
                return _clone(process, plan, target, out_w, err_w, out_r, err_r)
            except NativeSpawnUnsupported:
                pass  # the Popen path below places the child the same way
    creds = plan.creds
    kwargs: dict[str, Any] = {}
    if creds is not None and not plan.use_setpriv:
        kwargs.update(user=creds.uid, group=creds.gid, extra_groups=list(creds.groups))
    try:
        with cgroup.spawn_context() if cgroup is not None else nullcontext():
            popen = subprocess.Popen(
                plan.argv, executable=plan.program(), stdin=subprocess.DEVNULL, stdout=out_w,
                stderr=err_w, cwd=plan.cwd, env=plan.env, close_fds=True,
                pass_fds=plan.pass_fds, start_new_session=True, **kwargs)
    except OSError as exc:
        for fd in (out_r, err_r):
            if fd is not None:
                os.close(fd)
        raise SpawnError(_spawn_reason(exc, plan)) from None
    except (ValueError, subprocess.SubprocessError) as exc:
        for fd in (out_r, err_r):
            if fd is not None:
                os.close(fd)
        raise SpawnError(str(exc)) from None
    finally:
        for fd in (out_w, err_w):
            if isinstance(fd, int) and fd >= 0:
                os.close(fd)
    placement = "fork+exec" if cgroup is None else "daemon migrates into the cgroup around fork"
    return Child(popen=popen, pid=popen.pid, pidfd=_pidfd_or_none(process, popen.pid),
                 stdout_fd=out_r, stderr_fd=err_r, placement=placement)


def _clone(process: ProcessControl, plan: ExecPlan, cgroup_dir: str | None, out_w: Any, err_w: Any,
           out_r: int | None, err_r: int | None) -> Child:
    """:func:`spawn` through clone3: born in ``cgroup_dir``, pidfd from the same call.

    Owns the pipe ends once it returns or raises SpawnError; on NotSupported it leaves
    them open for the Popen path.
    """
    try:
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:  # EMFILE: a spawn failure like any other
        _close_fds(out_r, err_r, out_w, err_w)
        raise SpawnError(f"cannot open /dev/null for the child: {_errno_words(exc)}") from None
    stdio = (devnull, _fd_of(out_w, devnull), _fd_of(err_w, devnull))
    creds = plan.creds if not plan.use_setpriv else None
    try:
        pid, pidfd, start_time = process.native_spawn(
            cgroup_dir, exe=plan.program(), argv=plan.argv, env=plan.env, cwd=plan.cwd,
            stdio=stdio, pass_fds=plan.pass_fds,
            uid=creds.uid if creds else None, gid=creds.gid if creds else None,
            groups=list(creds.groups) if creds else None)
    except NativeSpawnUnsupported:
        os.close(devnull)
        raise
    except OSError as exc:
        _close_fds(out_r, err_r, out_w, err_w, devnull)
        raise SpawnError(_spawn_reason(exc, plan)) from None
    _close_fds(out_w, err_w, devnull)
    return Child(popen=None, pid=pid, pidfd=pidfd, stdout_fd=out_r, stderr_fd=err_r,
                 placement=process.native_placement(), start_time=start_time)


def _close_fds(*fds: Any) -> None:
    for fd in fds:
        if isinstance(fd, int) and fd >= 0:
            os.close(fd)


def _fd_of(sink: Any, devnull: int) -> int:
    """An fd for the child's stdout/stderr: our pipe's write end, /dev/null, or -1 to
    keep the daemon's own (log mode ``inherit``)."""
    if sink is None:
        return -1
    if sink == subprocess.DEVNULL:
        return devnull
    return int(sink)


def _pidfd_or_none(process: ProcessControl, pid: int) -> int | None:
    """The child's pidfd; None when none can be had now (EMFILE right after the spawn):
    the supervisor then waits for the child in a thread instead of failing a running
    service."""
    try:
        return process.watch(pid)
    except OSError:
        return None


def _errno_words(exc: OSError) -> str:
    return errno_reason(exc)


def _spawn_reason(exc: OSError, plan: ExecPlan) -> str:
    what = errno_reason(exc)
    if plan.cwd is not None and exc.filename == plan.cwd:
        return f"working directory '{plan.cwd}': {what}"
    target = exc.filename or plan.argv[0]
    return f"cannot execute '{target}': {what}"
