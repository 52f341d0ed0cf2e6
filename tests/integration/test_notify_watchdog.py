"""notify services and the watchdog against the real engine (real children, real sockets)."""

from __future__ import annotations

import os
import signal
import socket
import sys

import pytest
import trio

from support import pid_alive, specs
from trio_procmgr import errors

SEND = ("import os,socket,sys\n"
        "a=os.environ['NOTIFY_SOCKET'];a='\\0'+a[1:] if a[0]=='@' else a\n"
        "s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM);s.connect(a)\n"
        "[s.send(m.encode('utf-8','surrogateescape').replace(b'|',b'\\n')) for m in sys.argv[1:]]\n")


def notify_cmd(script: str) -> dict:
    """A notify service running ``script`` in sh; ``send A B`` sends datagrams A, B."""
    prelude = f'send() {{ "{sys.executable}" -S -c "$SEND" "$@"; }}; '
    return {"command": "sh", "args": ["-c", prelude + script], "env": {"SEND": SEND},
            "process_type": "notify", "timeout_stop_sec": 5}


async def until(sup, pred, timeout=10.0):
    assert await sup.wait_until(pred, timeout=timeout), sup.record.to_dict()


async def test_notify_service_is_starting_until_ready_then_shows_status(make_manager):
    cfg = specs(n=notify_cmd("sleep 0.3; send 'STATUS=warming up'; sleep 0.2; "
                             "send 'READY=1|STATUS=serving'; exec sleep 100"))
    async with make_manager(cfg) as pm:
        sup = pm.supervisor("n")
        await pm.start("n")
        assert sup.record.state.value == "running"
        assert sup.record.status_text == "serving"
        d = pm.describe("n")
        assert d["status_text"] == "serving" and d["notify"]["accepted"] == 2
        assert d["reason"] == "ready (READY=1)"


async def test_garbage_and_foreign_datagrams_are_dropped_and_counted(make_manager):
    cfg = specs(n=notify_cmd("send 'not a notification' \"$(printf 'READY=1\\001\\377')\" "
                             "'READY=1' && exec sleep 100"))
    async with make_manager(cfg) as pm:
        await pm.start("n")
        sup = pm.supervisor("n")
        address = pm.describe("n")["notify"]["socket"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect("\0" + address[1:])
            s.send(b"STATUS=from a stranger")
        await until(sup, lambda s: s.extras["notify"]["dropped"] >= 3)
        notify = pm.describe("n")["notify"]
        assert notify["dropped_by_reason"] == {"garbage": 2, "foreign_sender": 1}
        assert sup.record.status_text == "" and sup.record.state.value == "running"


async def test_not_ready_in_time_fails_with_start_timeout(make_manager):
    cfg = specs(n={**notify_cmd("exec sleep 100"), "timeout_start_sec": 0.5})
    async with make_manager(cfg) as pm:
        sup = pm.supervisor("n")
        with pytest.raises(errors.SpawnFailed, match="start timeout"):
            await pm.start("n")
        await until(sup, lambda s: s.record.state.value == "failed")
        assert sup.record.reason.startswith("start timeout")


async def test_extend_timeout_usec_moves_the_start_deadline(make_manager):
    cfg = specs(n={**notify_cmd("send EXTEND_TIMEOUT_USEC=3000000; sleep 1; send READY=1; "
                                "exec sleep 100"), "timeout_start_sec": 0.5})
    async with make_manager(cfg) as pm:
        await pm.start("n")
        assert pm.supervisor("n").record.state.value == "running"


@pytest.mark.linux_only("MAINPID= needs a pidfd on a pid the daemon did not spawn")
async def test_mainpid_switches_the_watched_process(make_manager):
    cfg = specs(n=notify_cmd('sleep 100 & send "MAINPID=$!|READY=1"; wait'))
    async with make_manager(cfg) as pm:
        await pm.start("n")
        sup = pm.supervisor("n")
        main = sup.record.pid
        assert main != sup.instance.child.pid
        with open(f"/proc/{main}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0] == b"sleep"
        shell = sup.instance.child.pid
        os.kill(main, signal.SIGKILL)
        await until(sup, lambda s: s.record.state.value == "failed")
        # the sleep is the shell's child, not ours: the shell reaps it, its status is unknown
        assert "not a child of the daemon" in sup.record.reason
        assert not pid_alive(shell)  # the rest of the service was ended


async def test_missed_watchdog_aborts_and_restarts(make_manager):
    cfg = specs(w={"command": "sleep", "args": ["100"], "watchdog_sec": 0.3,
                   "restart": "on-failure", "restart_sec": 0.3})
    async with make_manager(cfg) as pm:
        await pm.start("w")
        sup = pm.supervisor("w")
        await until(sup, lambda s: s.record.state.value == "backoff")
        assert sup.record.exit_signal == signal.SIGABRT
        assert sup.record.reason.startswith("watchdog")
        await until(sup, lambda s: s.record.runs >= 2 and s.record.state.value == "running")
        assert pm.describe("w")["watchdog"]["fired_by"] == "missed ping"


PINGER = ("import os,socket,sys,time\n"
          "assert os.environ['WATCHDOG_PID']==str(os.getpid()), 'WATCHDOG_PID is not mine'\n"
          "assert os.environ['WATCHDOG_USEC']=='500000'\n"
          "a=os.environ['NOTIFY_SOCKET'];s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\n"
          "s.connect('\\0'+a[1:])\n"
          "while True: s.send(b'WATCHDOG=1'); time.sleep(0.05)\n")


async def test_pinging_service_keeps_running_and_gets_its_own_pid(make_manager):
    cfg = specs(w={"command": sys.executable, "args": ["-c", PINGER], "watchdog_sec": 0.5})
    async with make_manager(cfg) as pm:
        await pm.start("w")
        sup = pm.supervisor("w")

        def pings() -> int:
            return pm.describe("w").get("watchdog", {}).get("pings") or 0

        with trio.fail_after(30):  # 32 pings, 0.05 s apart: over three watchdog periods
            while pings() < 32 and sup.record.state.value == "running" and sup.record.runs == 1:
                await trio.sleep(0.05)
        assert sup.record.state.value == "running" and sup.record.runs == 1, sup.record.reason


async def test_watchdog_trigger_fails_the_service_at_once(make_manager):
    cfg = specs(w={**notify_cmd("send READY=1; sleep 0.2; send WATCHDOG=trigger; exec sleep 100"),
                   "watchdog_sec": 30})
    async with make_manager(cfg) as pm:
        await pm.start("w")
        sup = pm.supervisor("w")
        await until(sup, lambda s: s.record.state.value == "failed", timeout=5)
        assert sup.record.reason == "watchdog" and sup.record.exit_signal == signal.SIGABRT


async def test_a_sender_that_already_exited_counts_only_with_the_services_uid(make_manager):
    """The short-lived-sender race: its PID is gone before the datagram is read."""
    import subprocess
    from types import SimpleNamespace

    from trio_procmgr.engine.notify import _sender_accepted

    dead = subprocess.Popen(["true"])
    dead.wait()
    async with make_manager(specs(n=notify_cmd("send READY=1; exec sleep 100"))) as pm:
        await pm.start("n")
        sup = pm.supervisor("n")
        inst = sup.instance
        assert _sender_accepted(sup, inst, SimpleNamespace(pid=dead.pid, uid=os.geteuid()))
        assert not _sender_accepted(sup, inst, SimpleNamespace(pid=dead.pid, uid=65534))
        assert not _sender_accepted(sup, inst, SimpleNamespace(pid=os.getpid(), uid=os.geteuid()))
