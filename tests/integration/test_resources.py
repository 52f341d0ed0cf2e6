"""Resource limits enforced for real, through the ProcessManager (SPEC §8, §6.3 group limits).

Runs as root on a host with cgroup v2 tracking and memory/cpu/pids controllers (v2 or v1).
Every test stops what it started (the manager's ``async with``) and checks nothing is left.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time

import pytest
import trio

from support import PYTHON, pid_alive, specs
from trio_procmgr.config.loader import load_config_dir
from trio_procmgr.engine import resources as resources_feature
from trio_procmgr.states import State

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to manage cgroups"),
]

HOG = "chunks = []\nwhile True: chunks.append(b'x' * (10 << 20))\n"
GROWER = textwrap.dedent("""
    import time
    chunks = []
    for _ in range(400):
        chunks.append(b'x' * (2 << 20))
        time.sleep(0.02)
    time.sleep(600)
""")
FORK_BOMB = textwrap.dedent("""
    import os, time
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.05)
""")
FORK_UNTIL_REFUSED = textwrap.dedent("""
    import os, time
    while True:
        try:
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
        except OSError:
            time.sleep(0.05)
""")


def py(code: str, **fields):
    return {"command": PYTHON, "args": ["-c", code], **fields}


def limits(**values):
    return {"resources": {"limits": values}}


async def wait_for(predicate, timeout=15.0, what="condition"):
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.02)


async def next_event(sub, pred, timeout=30.0):
    with trio.fail_after(timeout):
        async for ev in sub:
            if pred(ev):
                return ev


def cgroup_file(sup, controller: str, name: str) -> str:
    where = sup.cgroup._dir(controller)
    with open(os.path.join(where[1], name)) as f:
        return f.read().strip()


def refused_forks(cg) -> int:
    with open(os.path.join(cg._dir("pids")[1], "pids.events")) as f:
        words = f.read().split()
    return int(words[words.index("max") + 1])


def require_controllers(pm, *names):
    missing = [n for n in names if pm.cgroups is None or pm.cgroups.roles.get(n) is None]
    if missing:
        pytest.skip(f"no {', '.join(missing)} controller on this host")


@pytest.mark.linux_only('OOM kills are counted by the cgroup memory controller (memory.events)')
async def test_memory_hog_is_oom_killed_with_reason_and_event(make_manager):
    async with make_manager(specs(hog=py(HOG, **limits(memory="50M")))) as pm:
        require_controllers(pm, "memory")
        with pm.hub.subscribe(processes={"hog"}) as sub:
            await pm.start("hog")
            oom = await next_event(sub, lambda e: e["type"] == "oom_kill")
            exited = await next_event(sub, lambda e: e["type"] == "process_exited")
        sup = pm.supervisor("hog")
        assert await sup.wait_until(lambda s: s.record.state is State.FAILED, timeout=10)
        assert oom["kills"] >= 1 and oom["main_process"] is True
        assert oom["memory_limit"] == 50_000_000
        assert exited["reason"] == "oom-kill" and exited["exit_signal"] == signal.SIGKILL
        assert sup.record.reason == "oom-kill"
        assert pm.stats("hog")["oom_kills"] >= 1


@pytest.mark.linux_only('a per-service task limit is the cgroup pids controller (RLIMIT_NPROC counts per user)')
async def test_fork_bomb_under_pids_limit_stays_at_limit_and_stop_cleans_up(make_manager):
    async with make_manager(specs(bomb=py(FORK_BOMB, **limits(pids=20)))) as pm:
        require_controllers(pm, "pids")
        await pm.start("bomb")
        sup = pm.supervisor("bomb")
        await wait_for(lambda: refused_forks(sup.cgroup) > 0, what="the kernel to refuse a fork")
        await wait_for(lambda: pm.stats("bomb")["pids_current"] == 20, what="20 tasks")
        for _ in range(20):
            assert len(sup.cgroup.procs()) <= 20
            await trio.sleep(0.01)
        stats = pm.stats("bomb")
        assert stats["pids_limit"] == 20 and stats["processes"] <= 20
        pids = sup.cgroup.procs()
        record = await pm.stop("bomb")
        assert record["state"] == "stopped"
        assert sup.cgroup.is_empty()
        assert not any(pid_alive(pid) for pid in pids)


@pytest.mark.linux_only('CPU quotas need the cgroup cpu controller')
async def test_busy_loop_under_quarter_core_gets_about_a_quarter(make_manager):
    async with make_manager(specs(spin=py("while True: pass", **limits(cpu="250m")))) as pm:
        require_controllers(pm, "cpu")
        await pm.start("spin")
        await wait_for(lambda: pm.stats("spin")["cpu_user_seconds"] > 0.05, what="some CPU use")
        before = pm.stats("spin")
        await trio.sleep(3.0)  # measuring a rate over an interval, not waiting for an event
        after = pm.stats("spin")
        used = (after["cpu_user_seconds"] + after["cpu_system_seconds"]
                - before["cpu_user_seconds"] - before["cpu_system_seconds"])
        rate = used / (after["time"] - before["time"])
        assert 0.15 < rate < 0.35, rate
        assert after["cpu_percent"] == pytest.approx(rate * 100, abs=1.0)
        assert after["cpu_percent_window"] == pytest.approx(3.0, abs=0.5)
        assert after["cpu_limit"] == 0.25


@pytest.mark.linux_only("a hot memory limit change is written to the running service's cgroup")
async def test_hot_lowered_memory_limit_kills_a_growing_process_without_restart(make_manager):
    async with make_manager(specs(grow=py(GROWER, **limits(memory="2G")))) as pm:
        require_controllers(pm, "memory")
        rec = await pm.start("grow")
        await wait_for(lambda: pm.stats("grow")["memory_current"] > 40_000_000, what="growth")
        with pm.hub.subscribe(processes={"grow"}, types={"oom_kill", "process_exited"}) as sub:
            result = await pm.update("grow", limits(memory="120M"))
            assert result["updated_fields"] == ["resources"]
            assert result["restart_required"] == [] and result["restarted"] is False
            described = pm.describe("grow")
            assert described["pid"] == rec["pid"] and described["runs"] == 1
            assert described["limits"]["limits.memory"]["value"] == 120_000_000
            assert described["limits"]["limits.memory"]["enforced"] is True
            assert pm.stats("grow")["memory_limit"] <= 120_000_000
            oom = await next_event(sub, lambda e: e["type"] == "oom_kill")
            exited = await next_event(sub, lambda e: e["type"] == "process_exited")
        assert oom["memory_limit"] == 120_000_000
        assert exited["reason"] == "oom-kill"


@pytest.mark.linux_only("hot cpu and pids limits are written to the running service's cgroup")
async def test_hot_update_rewrites_cpu_and_pids_limits_of_the_running_process(make_manager):
    async with make_manager(specs(idle={"command": "sleep", "args": ["60"],
                                        **limits(cpu=1, pids=50)})) as pm:
        require_controllers(pm, "cpu", "pids")
        rec = await pm.start("idle")
        sup = pm.supervisor("idle")
        await pm.update("idle", {"resources": {"limits": {"cpu": "500m", "pids": 7},
                                               "requests": {"cpu": "250m"}}})
        assert pm.describe("idle")["pid"] == rec["pid"]
        assert pm.stats("idle")["pids_limit"] == 7
        if sup.cgroup._dir("cpu")[0].version == 1:
            assert cgroup_file(sup, "cpu", "cpu.cfs_quota_us") == "50000"
            assert cgroup_file(sup, "cpu", "cpu.shares") == "256"
        else:
            assert cgroup_file(sup, "cpu", "cpu.max") == "50000 100000"
        await pm.update("idle", {"resources": None})
        assert pm.stats("idle")["pids_limit"] is None
        assert pm.describe("idle")["limits"] == {}


@pytest.mark.linux_only("the memory limit and usage are read from the service cgroup")
async def test_stats_agree_with_proc(make_manager):
    code = textwrap.dedent("""
        import socket, threading, time
        data = bytearray(64 << 20)
        for i in range(0, len(data), 4096):
            data[i] = 1
        tcp = socket.socket(); tcp.bind(("127.0.0.1", 0)); tcp.listen()
        udp = socket.socket(type=socket.SOCK_DGRAM); udp.bind(("127.0.0.1", 0))
        for _ in range(3):
            threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
        print("ready", tcp.getsockname()[1], udp.getsockname()[1], flush=True)
        time.sleep(600)
    """)
    async with make_manager(specs(probe=py(code, **limits(memory="512M", pids=100)))) as pm:
        rec = await pm.start("probe")
        sup = pm.supervisor("probe")
        await wait_for(lambda: any(e["line"].startswith("ready") for e in sup.ring.tail(None, None)),
                       what="the ready line")
        ready = next(e["line"] for e in sup.ring.tail(None, None) if e["line"].startswith("ready"))
        tcp_port, udp_port = (int(p) for p in ready.split()[1:])
        stats = pm.stats("probe")
        pid = rec["pid"]
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())
        rss = int(status["VmRSS"].split()[0]) * 1024
        assert stats["processes"] == 1
        assert stats["threads"] == int(status["Threads"]) == 4
        assert stats["memory_rss"] == pytest.approx(rss, rel=0.05)
        assert stats["memory_rss"] > 64 << 20
        assert stats["open_fds"] == len(os.listdir(f"/proc/{pid}/fd"))
        assert stats["pids_current"] == 4  # the pids controller counts threads
        assert stats["memory_current"] >= 64 << 20
        assert stats["memory_percent"] == pytest.approx(
            stats["memory_current"] * 100 / stats["memory_limit"], abs=0.01)
        assert stats["tcp_sockets"] == 1 and stats["udp_sockets"] == 1
        locals_ = {(s["proto"], s["local"], s["state"]) for s in stats["sockets"]}
        assert ("tcp", f"127.0.0.1:{tcp_port}", "LISTEN") in locals_
        assert ("udp", f"127.0.0.1:{udp_port}", "LISTEN") in locals_
        assert stats["sources"] == {"memory": "cgroup", "cpu": "cgroup", "pids": "cgroup"}


@pytest.mark.linux_only("a group's shared limits are a parent cgroup (slice) over its members")
async def test_group_limits_bound_two_members_together(make_manager, tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "pool.yaml").write_text(textwrap.dedent(f"""
        processes:
          left:
            command: {PYTHON}
            args: ["-c", {json.dumps(FORK_UNTIL_REFUSED)}]
          right:
            command: {PYTHON}
            args: ["-c", {json.dumps(FORK_UNTIL_REFUSED)}]
        groups:
          pool:
            members: [left, right]
            resources:
              limits: {{pids: 10}}
    """))
    config = load_config_dir(str(tmp_path / "conf"))
    assert config.ok, config.issues
    async with make_manager(config) as pm:
        require_controllers(pm, "pids")
        left, right = pm.supervisor("left"), pm.supervisor("right")
        slice_ = pm.cgroups.group("pool")
        assert os.path.dirname(left.cgroup.v2_path) == slice_.v2_path
        assert os.path.dirname(right.cgroup.v2_path) == slice_.v2_path
        await pm.start("left")
        await pm.start("right")
        both = lambda: pm.stats("left")["pids_current"] + pm.stats("right")["pids_current"]
        await wait_for(lambda: both() == 10, what="the group to reach its limit")
        await wait_for(lambda: refused_forks(slice_) + refused_forks(left.cgroup)
                       + refused_forks(right.cgroup) > 0, what="the kernel to refuse a fork")
        assert pm.stats("left")["pids_current"] > 0 and pm.stats("right")["pids_current"] > 0
        for _ in range(10):
            assert both() <= 10
            await trio.sleep(0.01)
        group_limits = pm.describe("left")["group_limits"]
        assert group_limits["group"] == "pool"
        assert group_limits["limits"]["limits.pids"]["enforced"] is True
        assert group_limits["limits"]["limits.pids"]["scope"] == "group"
        await pm.stop("left")
        await pm.stop("right")
        assert slice_.is_empty()


async def test_without_cgroups_memory_falls_back_to_rlimit_as_set_before_exec(make_manager):
    cfg = specs(plain={"command": "sleep", "args": ["60"],
                       **limits(memory="300M", pids=40, cpu=1)})
    async with make_manager(cfg, use_cgroups=False) as pm:
        rec = await pm.start("plain")
        await wait_for(lambda: open(f"/proc/{rec['pid']}/comm").read().strip() == "sleep",
                       what="prlimit to exec the command")
        assert rlimit_of(rec["pid"], "Max address space") == "300000000"
        report = pm.describe("plain")["limits"]
        memory = report["limits.memory"]
        assert memory["enforced"] is True and memory["scope"] == "process"
        assert memory["mechanism"] == "rlimit RLIMIT_AS (set by prlimit(1) before exec)"
        assert report["limits.pids"]["enforced"] is False  # root ignores RLIMIT_NPROC
        assert "ignored for root" in report["limits.pids"]["warning"]
        assert report["limits.cpu"] == {"value": 1.0, "enforced": False, "mechanism": "none",
                                        "scope": "service",
                                        "warning": "no cpu controller: not enforced"}
        assert pm.describe("plain")["limits_not_enforced"] == ["limits.cpu", "limits.pids"]
        await pm.update("plain", limits(memory="100M"))
        assert rlimit_of(rec["pid"], "Max address space") == "100000000"
        stats = pm.stats("plain")
        assert stats["sources"]["memory"] == "procfs" and stats["processes"] == 1


async def test_without_prlimit_binary_rlimits_are_set_right_after_spawn(make_manager, monkeypatch):
    monkeypatch.setattr(resources_feature, "PRLIMIT", None)
    cfg = specs(plain={"command": "sleep", "args": ["60"], **limits(memory="300M")})
    async with make_manager(cfg, use_cgroups=False) as pm:
        rec = await pm.start("plain")
        await wait_for(lambda: rlimit_of(rec["pid"], "Max address space") == "300000000",
                       what="the rlimit")
        assert "just after the spawn" in pm.describe("plain")["limits"]["limits.memory"]["mechanism"]


def rlimit_of(pid: int, name: str) -> str:
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith(name):
            return line[len(name):].split()[0]
    raise AssertionError(f"{name} not in /proc/{pid}/limits")


@pytest.mark.linux_only("without cgroups each service's processes are found by scanning the process table")
async def test_stats_of_a_thousand_services_stay_cheap(make_manager):
    """1000 services (one sleeping process each): one stats round stays well under 1 s."""
    cfg = specs(**{f"s{i}": {"command": "sleep", "args": ["600"], **limits(memory="64M")}
                   for i in range(1000)})
    async with make_manager(cfg) as pm:
        async with trio.open_nursery() as nursery:
            for i in range(1000):
                nursery.start_soon(pm.start, f"s{i}")
        start = time.perf_counter()
        figures = [pm.stats(f"s{i}") for i in range(1000)]
        elapsed = time.perf_counter() - start
        assert all(f["processes"] == 1 for f in figures)
        print(f"stats for 1000 services: {elapsed * 1000:.0f} ms")
        assert elapsed < 2.0, elapsed


@pytest.mark.linux_only("checks cgroup placement")
async def test_a_service_without_limits_lives_in_v2_only_and_joins_v1_when_limited(make_manager):
    """No limit: one hierarchy to move through per spawn. A hot-added limit moves the
    running service into that controller's hierarchy and bounds it there."""
    async with make_manager(specs(free=py("import time; time.sleep(600)"))) as pm:
        rec = await pm.start("free")
        cgroups = open(f"/proc/{rec['pid']}/cgroup").read()
        inst = pm.instance
        assert f"{inst}/free.service" in cgroups.split("0::", 1)[1]
        assert not any(f"{inst}/free.service" in line for line in cgroups.splitlines()
                       if ":memory:" in line or ":pids:" in line)
        await pm.update("free", {"resources": {"limits": {"pids": 50}}})
        cgroups = open(f"/proc/{rec['pid']}/cgroup").read()
        pids_line = next(line for line in cgroups.splitlines() if ":pids:" in line)
        assert f"{inst}/free.service" in pids_line
        assert pm.stats("free")["pids_limit"] == 50
