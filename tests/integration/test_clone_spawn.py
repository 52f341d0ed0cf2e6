"""Spawning with clone3(CLONE_INTO_CGROUP | CLONE_PIDFD) and its portable fallback.

Both paths must give the same child: born in its service cgroup, its own session, the
chosen identity, /dev/null stdin, only the fds meant for it, and the same errors.
"""

from __future__ import annotations

import os
import pwd

import pytest
import trio

from trio_procmgr import errors
from trio_procmgr.platform import clone_spawn
from tests.support import specs

pytestmark = [pytest.mark.root,
              pytest.mark.linux_only("clone3 spawns into a cgroup"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for cgroups and users")]


@pytest.fixture(params=["clone3", "portable"])
def spawn_path(request, monkeypatch):
    if request.param == "clone3":
        if not clone_spawn.available():
            pytest.fail(f"the clone3 extension must be built on this host: {clone_spawn.mechanism()}")
    else:
        monkeypatch.setenv("DD_PM_NO_CLONE3", "1")
    return request.param


async def _output_of(pm, name: str) -> str:
    with trio.fail_after(10):
        while pm.describe(name)["state"] not in ("exited", "failed"):
            await trio.sleep(0.01)
    return "\n".join(line["line"] for line in pm.logs(name))


async def test_child_is_born_in_its_cgroup_with_its_own_session(make_manager, spawn_path):
    probe = "cat /proc/self/cgroup; echo sid=$(cut -d' ' -f6 /proc/self/stat) pid=$$"
    async with make_manager(specs(p={"command": "sh", "args": ["-c", probe]})) as pm:
        await pm.start("p")
        out = await _output_of(pm, "p")
        v2 = [line for line in out.splitlines() if line.startswith("0::")]
        assert v2 and v2[0].endswith("/p.service"), out
        sid_line = [line for line in out.splitlines() if line.startswith("sid=")][0]
        sid, pid = (part.split("=")[1] for part in sid_line.split())
        assert sid == pid


async def test_child_gets_only_stdio_and_its_own_identity(make_manager, spawn_path):
    nobody = pwd.getpwnam("nobody")
    probe = "ls /proc/self/fd; id -u; id -g; readlink /proc/self/fd/0"
    async with make_manager(specs(p={"command": "sh", "args": ["-c", probe],
                                     "user": "nobody"})) as pm:
        await pm.start("p")
        lines = (await _output_of(pm, "p")).split()
    # ls itself holds one fd for the directory it reads (3); nothing else is open.
    assert set(lines[:-3]) <= {"0", "1", "2", "3"}, lines
    assert lines[-3:] == [str(nobody.pw_uid), str(nobody.pw_gid), "/dev/null"]


@pytest.mark.parametrize("raw, words", [
    ({"command": "/nonexistent/binary"}, "No such file"),
    ({"command": "true", "working_dir": "/nonexistent-dir"}, "working directory"),
])
async def test_spawn_failures_name_the_cause(make_manager, spawn_path, raw, words):
    async with make_manager(specs(broken=raw)) as pm:
        with pytest.raises(errors.ProcMgrError) as info:
            await pm.start("broken")
        assert words in info.value.message
        assert pm.describe("broken")["state"] == "failed"


async def test_exit_status_and_signal_are_reported(make_manager, spawn_path):
    cfg = specs(code={"command": "sh", "args": ["-c", "exit 7"]},
                sig={"command": "sh", "args": ["-c", "kill -USR1 $$"]})
    async with make_manager(cfg) as pm:
        await pm.start("code")
        await pm.start("sig")
        await _output_of(pm, "code")
        await _output_of(pm, "sig")
        assert pm.describe("code")["exit_code"] == 7
        assert pm.describe("sig")["exit_signal"] in ("SIGUSR1", 10)


async def test_describe_names_the_spawn_mechanism(make_manager, spawn_path):
    async with make_manager(specs(p={"command": "sleep", "args": ["60"]})) as pm:
        await pm.start("p")
        placed = pm.describe("p")["spawn_mechanism"]
    expected = "clone3(CLONE_INTO_CGROUP)" if spawn_path == "clone3" else "daemon migrates"
    assert placed.startswith(expected), placed


def test_the_start_time_a_clone_reports_is_the_one_proc_gives():
    """The spawn's own start stamp (no /proc read on the restart path) must be exactly
    what an adopting daemon reads from /proc/PID/stat, or adoption would refuse it."""
    from trio_procmgr.platform.linux import process_start_time

    if not clone_spawn.available():
        pytest.fail(f"the clone3 extension must be built on this host: {clone_spawn.mechanism()}")
    known = 0
    for _ in range(200):
        pid, pidfd, stamp = clone_spawn.spawn_into(
            None, exe="/bin/sleep", argv=["sleep", "60"], env={}, cwd=None,
            stdio=(-1, -1, -1), pass_fds=(), uid=None, gid=None, groups=None)
        try:
            if stamp is not None:
                known += 1
                assert stamp == process_start_time(pid)
        finally:
            os.kill(pid, 9)
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
            os.close(pidfd)
    assert known >= 150, f"only {known} of 200 spawns knew their start time"


def test_a_spawn_straddling_a_clock_tick_does_not_guess():
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert clone_spawn.birth_stamp(5 * tick, 6 * tick - 1) == 5
    assert clone_spawn.birth_stamp(6 * tick - 1, 6 * tick) is None


def test_a_spawn_with_thousands_of_fds_open_keeps_none_of_them_in_the_child():
    """The child copies only the low fds (close_range UNSHARE) and gets its stdio through
    reserved slots, which let go of the pipe afterwards: EOF comes when the child exits."""
    if not clone_spawn.available():
        pytest.fail(f"the clone3 extension must be built on this host: {clone_spawn.mechanism()}")
    held = [os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC) for _ in range(2000)]
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        pid, pidfd, _ = clone_spawn.spawn_into(
            None, exe="/bin/sh", argv=["sh", "-c", "ls /proc/self/fd"], env={}, cwd=None,
            stdio=(-1, write_end, write_end), pass_fds=(), uid=None, gid=None, groups=None)
        os.close(write_end)
        out = b""
        while chunk := os.read(read_end, 65536):  # EOF only once no slot holds the pipe
            out += chunk
        os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        os.close(pidfd)
    finally:
        os.close(read_end)
        for fd in held:
            os.close(fd)
    # ls holds one fd for the directory it reads (3); nothing of ours is open.
    assert sorted(int(x) for x in out.split()) == [0, 1, 2, 3]


def test_the_child_starts_with_default_handlers_and_only_the_ignores_it_should_keep():
    """Ignored signals stay ignored, as exec keeps them, except SIGPIPE and SIGXFSZ, which
    Python ignores and the child resets; no handler survives. (That handled signals are
    already default before exec, CLONE_CLEAR_SIGHAND, cannot be seen from after exec.)"""
    import signal as sig

    if not clone_spawn.available():
        pytest.fail(f"the clone3 extension must be built on this host: {clone_spawn.mechanism()}")
    saved = {s: sig.getsignal(s) for s in (sig.SIGUSR1, sig.SIGHUP, sig.SIGPIPE)}
    sig.signal(sig.SIGUSR1, lambda *_: None)
    sig.signal(sig.SIGHUP, sig.SIG_IGN)
    sig.signal(sig.SIGPIPE, sig.SIG_IGN)
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        pid, pidfd, _ = clone_spawn.spawn_into(
            None, exe="/bin/cat", argv=["cat", "/proc/self/status"],
            env={}, cwd=None, stdio=(-1, write_end, -1), pass_fds=(), uid=None, gid=None,
            groups=None)
        os.close(write_end)
        out = b""
        while chunk := os.read(read_end, 65536):
            out += chunk
        os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
        os.close(pidfd)
    finally:
        os.close(read_end)
        for s, handler in saved.items():
            sig.signal(s, handler)
    masks = {line.split(":")[0]: int(line.split()[1], 16) for line in out.decode().splitlines()
             if line.startswith(("SigIgn:", "SigCgt:"))}
    ignored = {s for s in range(1, 65) if masks["SigIgn"] >> (s - 1) & 1}
    assert masks["SigCgt"] == 0, "no handler of ours survives into the child"
    assert sig.SIGHUP in ignored
    assert not ignored & {sig.SIGPIPE, sig.SIGXFSZ}
