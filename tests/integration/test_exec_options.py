"""Exec options with real children: env, env files, users, pidfile, conditions, runtime dirs."""

from __future__ import annotations

import json
import os
import pwd
import shutil

import pytest
import trio

from support import SYSTEM_PYTHON, specs

DUMP = ("import json, os, sys\n"
        "print(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd(), 'uid': os.getuid(),"
        " 'gid': os.getgid(), 'groups': sorted(os.getgroups())}), flush=True)\n")


async def run_dump(pm, name):
    """Start a oneshot that prints what it sees, return that as a dict."""
    rec = await pm.start(name)
    assert rec["state"] == "exited", rec
    lines = pm.logs(name, stream="stdout")
    return json.loads(lines[-1]["line"])


async def test_env_is_clean_base_plus_env_file_plus_env(make_manager, tmp_path, monkeypatch):
    monkeypatch.setenv("DAEMON_SECRET", "must-not-leak")
    env_file = tmp_path / "app.env"
    env_file.write_text('# comment\nFROM_FILE=1\nOVERRIDE=file\nQUOTED="a b"\n')
    cfg = specs(dump={"command": SYSTEM_PYTHON, "args": ["-c", DUMP], "process_type": "oneshot",
                      "environment_file": [str(env_file), "-/nonexistent/optional.env"],
                      "env": {"OVERRIDE": "env", "EXTRA": "x"}, "working_dir": str(tmp_path)})
    async with make_manager(cfg, daemon_env=dict(os.environ)) as pm:
        seen = await run_dump(pm, "dump")
    env = seen["env"]
    assert "DAEMON_SECRET" not in env
    assert env["FROM_FILE"] == "1" and env["QUOTED"] == "a b"
    assert env["OVERRIDE"] == "env" and env["EXTRA"] == "x"
    assert "PATH" in env
    assert seen["cwd"] == str(tmp_path)


async def test_missing_required_env_file_fails_the_start(make_manager, tmp_path):
    cfg = specs(p={"command": "true", "environment_file": str(tmp_path / "missing.env")})
    async with make_manager(cfg) as pm:
        with pytest.raises(Exception):
            await pm.start("p")
        rec = pm.describe("p")
        assert rec["state"] == "failed" and "environment_file" in rec["reason"]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_user_switch_sets_uid_gid_and_supplementary_groups(make_manager, tmp_path):
    nobody = pwd.getpwnam("nobody")
    os.chmod(tmp_path, 0o755)
    cfg = specs(dump={"command": SYSTEM_PYTHON, "args": ["-c", DUMP], "process_type": "oneshot",
                      "user": "nobody", "working_dir": "/"})
    async with make_manager(cfg) as pm:
        seen = await run_dump(pm, "dump")
    assert seen["uid"] == nobody.pw_uid and seen["gid"] == nobody.pw_gid
    assert seen["groups"] == sorted(set(os.getgrouplist("nobody", nobody.pw_gid)))
    assert seen["env"]["USER"] == "nobody" and seen["env"]["HOME"] == nobody.pw_dir


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_user_and_group_override(make_manager):
    cfg = specs(dump={"command": SYSTEM_PYTHON, "args": ["-c", DUMP], "process_type": "oneshot",
                      "user": "nobody", "group": "daemon", "working_dir": "/"})
    async with make_manager(cfg) as pm:
        seen = await run_dump(pm, "dump")
    import grp
    assert seen["gid"] == grp.getgrnam("daemon").gr_gid


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="ambient capabilities need root and util-linux setpriv")
async def test_ambient_capability_lets_nobody_bind_a_low_port(make_manager):
    bind = ("import socket; s = socket.socket(); "
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            "s.bind(('127.0.0.1', 981)); print('bound', flush=True)")
    cfg = specs(
        capable={"command": SYSTEM_PYTHON, "args": ["-c", bind], "process_type": "oneshot",
                 "user": "nobody", "working_dir": "/",
                 "ambient_capabilities": ["CAP_NET_BIND_SERVICE"]},
        plain={"command": SYSTEM_PYTHON, "args": ["-c", bind], "process_type": "oneshot",
               "user": "nobody", "working_dir": "/"},
    )
    async with make_manager(cfg) as pm:
        rec = await pm.start("capable")
        assert rec["state"] == "exited", pm.logs("capable")
        with pytest.raises(Exception):
            await pm.start("plain")
        assert pm.describe("plain")["state"] == "failed"


async def test_pidfile_written_on_start_and_removed_on_stop(make_manager, tmp_path):
    pidfile = tmp_path / "svc.pid"
    cfg = specs(svc={"command": "sleep", "args": ["60"], "pidfile": str(pidfile)})
    async with make_manager(cfg) as pm:
        rec = await pm.start("svc")
        assert int(pidfile.read_text()) == rec["pid"]
        await pm.stop("svc")
        assert not pidfile.exists()


async def test_success_exit_status_makes_exit_code_a_success(make_manager):
    cfg = specs(job={"command": "sh", "args": ["-c", "exit 42"], "process_type": "oneshot",
                     "success_exit_status": [0, 42]})
    async with make_manager(cfg) as pm:
        rec = await pm.start("job")
        assert rec["state"] == "exited" and rec["exit_code"] == 42


@pytest.mark.parametrize("conds,holds", [
    (["{here}"], True),
    (["{missing}"], False),
    (["!{missing}"], True),
    (["!{here}"], False),
    (["|{missing}", "|{here}"], True),
    (["|{missing}", "|{missing}2"], False),
    (["{here}", "|{missing}", "|{here}"], True),
])
async def test_condition_path_exists_and_or_not(make_manager, tmp_path, conds, holds):
    here = tmp_path / "here"
    here.write_text("")
    paths = [c.format(here=here, missing=tmp_path / "missing") for c in conds]
    cfg = specs(c={"command": "sleep", "args": ["60"], "condition_path_exists": paths})
    async with make_manager(cfg) as pm:
        if holds:
            assert (await pm.start("c"))["state"] == "running"
        else:
            with pytest.raises(Exception) as info:
                await pm.start("c")
            assert info.value.code == "CONDITION_FAILED"
            rec = pm.describe("c")
            assert rec["state"] == "condition_failed" and rec["runs"] == 0


async def test_runtime_directory_created_owned_and_removed(make_manager, tmp_path):
    owner = "nobody" if os.geteuid() == 0 else None
    raw = {"command": "sleep", "args": ["60"], "runtime_directory": ["myapp", "myapp/sub"]}
    if owner:
        raw.update(user=owner, working_dir="/")
    async with make_manager(specs(r=raw)) as pm:
        await pm.start("r")
        root = tmp_path / "run"
        st = os.stat(root / "myapp")
        assert oct(st.st_mode & 0o777) == "0o755"
        if owner:
            assert st.st_uid == pwd.getpwnam(owner).pw_uid
        assert (root / "myapp" / "sub").is_dir()
        await pm.stop("r")
        assert not (root / "myapp").exists()


async def test_long_and_binary_output_is_drained_without_blocking(make_manager):
    # 8 MB on stdout (far beyond a pipe buffer), binary bytes and a 200 KB line.
    script = ("import sys; w = sys.stdout.buffer; w.write(b'x' * 200000 + b'\\n'); "
              "w.write(bytes(range(256)) + b'\\n'); "
              "[w.write(b'line %d\\n' % i) for i in range(800000)]; w.write(b'partial')")
    cfg = specs(noisy={"command": SYSTEM_PYTHON, "args": ["-c", script], "process_type": "oneshot",
                       "timeout_start_sec": 60})
    async with make_manager(cfg) as pm:
        with trio.fail_after(60):
            rec = await pm.start("noisy")
        assert rec["state"] == "exited"
        tail = pm.logs("noisy", lines=2)
        assert tail[-1]["line"] == "partial"
        assert tail[-2]["line"] == "line 799999"
