"""SPEC §15 crash adoption, stable IDs and "what was running stays running", against the
real daemon: SIGKILL it, start the next one on the same state dir, check /proc and RPC."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from continuity_daemon import daemon_factory, pid_alive, wait_for, write  # noqa: F401
from trio_procmgr.engine import output_fifo
from trio_procmgr.engine.spawn_journal import fold

pytestmark = pytest.mark.linux_only("adopting a crashed daemon's services needs a pidfd on a pid the daemon did not spawn")

COUNTER = ("import itertools, time\n"
           "for i in itertools.count():\n"
           "    print(i, flush=True)\n"
           "    time.sleep(0.02)\n")


def syscw(pid: int) -> int:
    with open(f"/proc/{pid}/io") as f:
        return int(next(line for line in f if line.startswith("syscw")).split()[1])


def counter_yaml() -> str:
    return ("command: /usr/bin/python3\nargs: ['-u', '-c', " + json.dumps(COUNTER) + "]\n"
            "auto_start: true\nrestart: always\n")


def numbers(d, name: str) -> list[int]:
    return [int(item["line"]) for item in d.call("logs", name=name, lines=100000)["lines"]]


@pytest.mark.parametrize("flags", [[], ["--no-cgroups"]], ids=["cgroups", "no-cgroups"])
def test_a_crashed_daemon_s_successor_adopts_services_and_loses_no_output(daemon_factory, flags):
    d = daemon_factory(extra=flags)
    write(d.config_dir / "counter.yaml", counter_yaml())
    write(d.config_dir / "sleeper.yaml", "command: sleep\nargs: ['300']\nauto_start: true\n")
    d.start()
    rec = wait_for(lambda: (r := d.records())["counter"]["pid"] and len(numbers(d, "counter")) > 5 and r)
    before = {n: (r["pid"], r["id"], r["runs"], r["started_at"]) for n, r in rec.items()}
    d.crash()
    pid = before["counter"][0]
    written = syscw(pid)
    wait_for(lambda: syscw(pid) >= written + 50, what="the service to write 50 lines with no daemon")
    assert pid_alive(pid) and pid_alive(before["sleeper"][0])
    d.start()
    after = {n: (r["pid"], r["id"], r["runs"], r["started_at"]) for n, r in d.records().items()}
    assert after == before, "same PID, ID, runs and started_at: adopted, not restarted"
    assert all(r["state"] == "running" and r["restarts"] == 0 for r in d.records().values())
    seen = wait_for(lambda: (n := numbers(d, "counter")) and n[-1] > 60 and n)
    assert seen == list(range(seen[0], seen[-1] + 1)), "no line lost across the crash"
    # The adopted service is still supervised: a kill is a restart by policy.
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (r := d.records()["counter"])["pid"] not in (None, pid) and r["restarts"] == 1)
    assert d.stop() == 0
    assert not pid_alive(before["sleeper"][0])


def blocked_writing(pid: int) -> bool:
    with open(f"/proc/{pid}/wchan") as f:
        return "pipe_write" in f.read() or "pipe_wait" in f.read()


def test_output_written_while_no_daemon_runs_waits_in_the_fifo_and_a_flood_blocks(daemon_factory):
    d = daemon_factory()
    go = d.tmp / "go"
    # 400 lines of 8 KiB (3.2 MB) once `go` exists: more than the FIFO holds, so with no
    # daemon reading, the service must block in write(2) — not die of SIGPIPE.
    flood = (f"import os, sys, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
             "for i in range(400):\n    sys.stdout.write(f'{i:06d}' + 'x' * 8185 + '\\n')\n"
             "sys.stdout.flush()\ntime.sleep(300)\n")
    write(d.config_dir / "flood.yaml", "command: /usr/bin/python3\nargs: ['-c', " + json.dumps(flood)
          + "]\nauto_start: true\nlog:\n  ring_bytes: 8388608\n  ring_lines: 10000\n")
    d.start()
    pid = wait_for(lambda: d.records()["flood"]["pid"])
    d.crash()
    go.touch()
    wait_for(lambda: blocked_writing(pid), what="the service to block on its full output FIFO")
    assert pid_alive(pid)
    d.start()
    lines = wait_for(lambda: len(got := d.call("logs", name="flood", lines=100000)["lines"]) >= 400
                     and got, what="every line after the adoption")
    idx = [int(item["line"][:6]) for item in lines if item["line"][6:7] == "x"]
    assert idx == list(range(400)), "nothing lost, in order"
    assert d.records()["flood"]["pid"] == pid


def test_config_changed_while_down_restarts_once_and_unconfigured_is_stopped(daemon_factory):
    d = daemon_factory()
    write(d.config_dir / "same.yaml", "command: sleep\nargs: ['300']\nauto_start: true\n")
    write(d.config_dir / "changed.yaml", "command: sleep\nargs: ['300']\nauto_start: true\n")
    write(d.config_dir / "gone.yaml", "command: sleep\nargs: ['300']\nauto_start: true\n")
    d.start()
    old = wait_for(lambda: (r := d.records()) and all(x["pid"] for x in r.values()) and r)
    d.crash()
    write(d.config_dir / "changed.yaml", "command: sleep\nargs: ['301']\nauto_start: true\n")
    os.unlink(d.config_dir / "gone.yaml")
    d.start()
    new = wait_for(lambda: (r := d.records())["changed"]["state"] == "running" and r)
    assert set(new) == {"same", "changed"}
    assert new["same"]["pid"] == old["same"]["pid"] and new["same"]["runs"] == 1
    assert new["changed"]["pid"] != old["changed"]["pid"] and new["changed"]["runs"] == 2
    assert new["changed"]["id"] == old["changed"]["id"]
    assert not pid_alive(old["changed"]["pid"]) and not pid_alive(old["gone"]["pid"])


def test_what_was_running_runs_again_after_a_clean_restart_and_ids_are_stable(daemon_factory):
    d = daemon_factory()
    write(d.config_dir / "manual.yaml", "command: sleep\nargs: ['300']\n")
    write(d.config_dir / "idle.yaml", "command: sleep\nargs: ['300']\n")
    d.start()
    ids = {n: r["id"] for n, r in d.records().items()}
    d.call("start", name="manual")
    assert d.stop() == 0
    d.start()
    recs = wait_for(lambda: (r := d.records())["manual"]["state"] == "running" and r)
    assert recs["idle"]["state"] == "created", "only what was running comes back"
    assert {n: r["id"] for n, r in recs.items()} == ids
    d.call("stop", name="manual")
    write(d.config_dir / "new.yaml", "command: sleep\nargs: ['300']\n")
    d.call("reload_config")
    assert d.records()["manual"]["id"] == ids["manual"]
    new_id = d.records()["new"]["id"]
    assert d.stop() == 0
    d.start()
    recs = d.records()
    assert recs["manual"]["state"] == "created", "stopped before the shutdown: stays stopped"
    assert recs["new"]["id"] == new_id and recs["idle"]["id"] == ids["idle"]


def test_every_spawn_is_journalled_before_it_is_reported(daemon_factory):
    d = daemon_factory(extra=["--no-cgroups"])
    write(d.config_dir / "s.yaml", "command: sleep\nargs: ['300']\nrestart: always\n"
          "restart_sec: 0\nstart_limit_burst: 1000\nauto_start: true\n")
    d.start()
    pids = set()
    for _ in range(10):
        pid = wait_for(lambda: (r := d.records()["s"])["state"] == "running" and r["pid"])
        pids.add(pid)
        live = fold(open(d.state_dir / "spawns.journal", "rb"))
        assert live["s"]["pid"] == pid, "the running pid is in the journal as soon as it is reported"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: d.records()["s"]["pid"] != pid)
    d.crash()
    d.start()
    running = [p for p in pids | {d.records()["s"]["pid"]} if pid_alive(p)]
    assert running == [d.records()["s"]["pid"]], "exactly one copy runs after the crash"


def test_after_a_crash_the_activation_socket_is_taken_back_from_the_running_service(daemon_factory):
    from test_continuity_reexec import ECHO, ask, free_port, listening_inode

    port = free_port()
    d = daemon_factory()
    write(d.config_dir / "echo.yaml", f"sockets:\n  echo-tcp:\n    listen_stream: '127.0.0.1:{port}'\n"
          "    service: echo\nprocesses:\n  echo:\n    command: /usr/bin/python3\n"
          f"    args: ['-c', {json.dumps(ECHO)}]\n")
    d.start()
    first = ask(port)
    inode = listening_inode(port)
    d.crash()
    assert ask(port) == first, "the service serves on while no daemon runs"
    d.start()
    assert d.records()["echo"]["pid"] == int(first)
    sockets = d.call("describe", name="echo")["record"]["sockets"]
    assert sockets[0]["state"] == "listening", sockets
    assert listening_inode(port) == inode
    os.kill(int(first), signal.SIGKILL)  # the next connection activates it again
    wait_for(lambda: d.records()["echo"]["state"] != "running")
    assert ask(port) not in ("", first)


PINGER = ("import os, socket, time\n"
          "addr = os.environ['NOTIFY_SOCKET'].replace('@', '\\0', 1)\n"
          "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
          "while True:\n"
          "    try:\n"
          "        s.sendto(b'WATCHDOG=1', addr)\n"
          "    except OSError:\n"
          "        pass  # no daemon right now: like sd_notify, try again later\n"
          "    time.sleep(0.1)\n")


@pytest.mark.parametrize("how", ["crash", "reexec"])
def test_an_adopted_watchdog_service_keeps_its_notify_socket(daemon_factory, how):
    d = daemon_factory()
    write(d.config_dir / "wd.yaml", "command: /usr/bin/python3\nargs: ['-c', "
          + json.dumps(PINGER) + "]\nauto_start: true\nwatchdog_sec: 1\nrestart: always\n")
    d.start()
    pid = wait_for(lambda: d.records()["wd"]["pid"])
    if how == "crash":
        d.crash()
        d.start()
    else:
        d.call("daemon_reexec")
        wait_for(lambda: "re-executed in place" in d.log.read_text())
        wait_for(d.answers)

    def pings() -> int:
        return (d.call("describe", name="wd")["record"].get("watchdog") or {}).get("pings") or 0

    wait_for(lambda: pings() >= 20, what="20 pings (2 s: two watchdog periods) to the new daemon")
    rec = d.records()["wd"]
    assert (rec["pid"], rec["restarts"], rec["state"]) == (pid, 0, "running")


def test_stale_output_fifos_are_removed_and_live_ones_kept(daemon_factory):
    d = daemon_factory()
    write(d.config_dir / "s.yaml", "command: sleep\nargs: ['300']\nauto_start: true\n")
    d.start()
    wait_for(lambda: d.records()["s"]["pid"])
    d.crash()
    out = Path(output_fifo.choose_dir(str(d.state_dir)))
    live = sorted(p.name for p in out.iterdir())
    assert len(live) == 2  # stdout and stderr of the running service
    os.mkfifo(out / "stale.1.stdout")  # a crash between mkfifo and the journal line
    d.start()
    assert sorted(p.name for p in out.iterdir()) == live
