"""Captured output of real children: files, rotation, following, hostile output."""

from __future__ import annotations

import os

import trio

from support import PYTHON, specs
from trio_procmgr.logfiles import RotatingLogFile
from trio_procmgr.states import State


def state_is(*states):
    wanted = {State(s) for s in states}
    return lambda sup: sup.record.state in wanted


async def wait_for_file_text(path, needle, timeout=5):
    with trio.fail_after(timeout):
        while True:
            if os.path.exists(path) and needle in open(path, "rb").read():
                return
            await trio.sleep(0.02)


async def test_a_child_writing_40mb_to_stdout_finishes(make_manager, tmp_path):
    script = ("import sys; chunk = b'x' * 1023 + b'\\n'\n"
              "for _ in range(40 * 1024): sys.stdout.buffer.write(chunk)\n"
              "sys.stdout.flush()")
    cfg = specs(loud={"command": PYTHON, "args": ["-c", script]})
    async with make_manager(cfg, log_dir=str(tmp_path / "logs")) as pm:
        await pm.start("loud")
        sup = pm.supervisor("loud")
        assert await sup.wait_until(state_is("exited", "failed"), timeout=60)
        assert sup.record.state is State.EXITED
        assert sup.ring.total == 40 * 1024
        assert len(pm.logs("loud", lines=5)) == 5
    # the log file got every line (rotated at the default 10 MiB, 3 backups kept)
    files = sorted(os.listdir(tmp_path / "logs"))
    assert files == ["loud.log", "loud.log.1", "loud.log.2", "loud.log.3"]


async def test_long_partial_binary_and_invalid_utf8_output_is_kept_and_the_daemon_lives(make_manager, tmp_path):
    script = ("import os, sys; w = sys.stdout.buffer.write\n"
              "w(b'A' * 200000 + b'\\n')\n"          # longer than a line may be: cut in pieces
              "w(b'bad \\xff\\xfe utf8\\n')\n"
              "w(os.urandom(100000))\n"              # binary, with NULs and no structure
              "w(b'\\nno newline at the end')")
    cfg = specs(odd={"command": PYTHON, "args": ["-c", script]})
    async with make_manager(cfg, log_dir=str(tmp_path)) as pm:
        await pm.start("odd")
        sup = pm.supervisor("odd")
        assert await sup.wait_until(state_is("exited"), timeout=10)
        lines = [entry["line"] for entry in pm.logs("odd")]
        assert sum(len(line) for line in lines if set(line) == {"A"}) == 200000
        assert "bad \ufffd\ufffd utf8" in lines
        assert lines[-1] == "no newline at the end"
        await wait_for_file_text(tmp_path / "odd.log", b"no newline at the end")
        assert b"stdout bad \xef\xbf\xbd\xef\xbf\xbd utf8\n" in (tmp_path / "odd.log").read_bytes()


async def test_log_file_rotation_keeps_exactly_the_configured_backups(make_manager, tmp_path):
    path = tmp_path / "svc.log"
    script = "import sys\nfor i in range(3000): print(f'line {i:05d} ' + 'y' * 90)"
    cfg = specs(svc={"command": PYTHON, "args": ["-c", script],
                     "log": {"file": str(path), "max_bytes": "20000", "backups": 2}})
    async with make_manager(cfg) as pm:
        await pm.start("svc")
        assert await pm.supervisor("svc").wait_until(state_is("exited"), timeout=10)
        await wait_for_file_text(path, b"line 02999")
    names = sorted(os.listdir(tmp_path))
    assert names == ["svc.log", "svc.log.1", "svc.log.2"]
    for name in names:
        assert os.path.getsize(tmp_path / name) <= 20000
    assert b"line 02999" in path.read_bytes()
    backup = (tmp_path / "svc.log.1").read_bytes().splitlines()
    current = path.read_bytes().splitlines()
    assert int(backup[-1].split()[3]) + 1 == int(current[0].split()[3])  # contiguous, nothing lost


async def test_rotate_logs_on_request_shifts_files(make_manager, tmp_path):
    cfg = specs(svc={"command": "sh", "args": ["-c", "echo first; sleep 60"]})
    async with make_manager(cfg, log_dir=str(tmp_path)) as pm:
        await pm.start("svc")
        await wait_for_file_text(tmp_path / "svc.log", b"first")
        assert pm.rotate_logs() == [str(tmp_path / "svc.log")]
        assert b"first" in (tmp_path / "svc.log.1").read_bytes()
        assert (tmp_path / "svc.log").read_bytes() == b""
        assert pm.describe("svc")["log_file"] == str(tmp_path / "svc.log")


def test_backups_zero_truncates_instead_of_keeping_files(tmp_path):
    path = str(tmp_path / "x.log")
    writer = RotatingLogFile(path, max_bytes=100, backups=0)
    for i in range(50):
        writer.write(f"line {i}\n".encode())
    writer.close()
    assert os.listdir(tmp_path) == ["x.log"]
    assert os.path.getsize(path) <= 100


def test_an_unwritable_log_file_is_reported_not_raised(tmp_path):
    (tmp_path / "dir").mkdir()
    writer = RotatingLogFile(str(tmp_path / "dir"), max_bytes=100, backups=1)  # a directory
    writer.write(b"hello\n")
    assert writer.error is not None


async def test_follow_logs_streams_live_lines_of_one_or_all_processes(make_manager):
    script = "import time\nfor i in range(5):\n print('NAME', i, flush=True); time.sleep(0.05)\ntime.sleep(60)"
    cfg = specs(a={"command": PYTHON, "args": ["-c", script.replace("NAME", "a")]},
                b={"command": PYTHON, "args": ["-c", script.replace("NAME", "b")]})
    async with make_manager(cfg) as pm:
        with pm.follow_logs("a") as only_a, pm.follow_logs(None) as every:
            await pm.start("a")
            await pm.start("b")
            got_a, got_all = [], []
            with trio.fail_after(10):
                while len(got_a) < 5:
                    got_a.append((await only_a.get())["line"])
                while len(got_all) < 10:
                    item = await every.get()
                    got_all.append((item["process"], item["line"]))
        assert got_a == [f"a {i}" for i in range(5)]
        assert sorted(got_all) == sorted([("a", f"a {i}") for i in range(5)]
                                         + [("b", f"b {i}") for i in range(5)])


async def test_a_slow_log_follower_is_told_what_it_lost(make_manager):
    cfg = specs(burst={"command": PYTHON, "args": ["-c", "for i in range(500): print(i)"]})
    async with make_manager(cfg) as pm:
        with pm.follow_logs("burst", stream="stdout", maxsize=10) as sub:
            await pm.start("burst")
            assert await pm.supervisor("burst").wait_until(state_is("exited"), timeout=10)
            await trio.sleep(0)
            first = await sub.get()
        assert first["type"] == "lost" and first["count"] == 490
