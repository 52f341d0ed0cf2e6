"""The cgroup adapter against the real kernel (root, cgroup v2 + v1 controllers or pure v2).

Every test uses its own instance name, and the fixture kills whatever is left in the
instance's subtree and removes its directories, so nothing outlives a test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from trio_procmgr.errors import TerminateFailed
from trio_procmgr.platform.cgroups import CgroupManager
from trio_procmgr.spec import Quantities, ResourcesSpec

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to manage cgroups"),
    pytest.mark.linux_only("drives the linux adapter's cgroup module directly"),
]

PYTHON = sys.executable


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def instance():
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def manager(instance):
    mgr = CgroupManager.detect(instance)
    if mgr is None:
        pytest.skip("no usable cgroup v2 hierarchy on this host")
    children: list[subprocess.Popen] = []
    mgr.test_children = children
    yield mgr
    CgroupManager.detect(instance).kill_leftovers()
    for child in children:
        child.wait(timeout=10)
    mgr.cleanup()


def spawn(mgr, cg, argv, **kw):
    with cg.spawn_context():
        child = subprocess.Popen(argv, **kw)
    mgr.test_children.append(child)
    return child


def cgroup_paths(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        out[ctrls or "unified"] = path
    return out


def test_child_is_in_service_cgroup_from_first_instruction_and_daemon_returns(manager):
    before = open("/proc/self/cgroup").read()
    cg = manager.service("web")
    manager.service("web").apply(ResourcesSpec(limits=Quantities(memory=64 << 20)))
    child = spawn(manager, cg, ["cat", "/proc/self/cgroup"], stdout=subprocess.PIPE, text=True)
    seen = cgroup_paths(child.communicate(timeout=10)[0])
    assert seen["unified"].endswith(f"/{manager.instance}/web.service")
    memory_home = manager.roles["memory"]
    if memory_home is not None and memory_home.version == 1:
        assert seen["memory"].endswith(f"/{manager.instance}/web.service")
    assert open("/proc/self/cgroup").read() == before


def test_daemon_returns_home_when_the_spawn_raises(manager):
    before = open("/proc/self/cgroup").read()
    cg = manager.service("broken")
    with pytest.raises(FileNotFoundError):
        with cg.spawn_context():
            assert open("/proc/self/cgroup").read() != before
            subprocess.Popen(["/nonexistent/program"])
    assert open("/proc/self/cgroup").read() == before
    assert cg.is_empty()


def test_memory_limit_oom_kills_a_hog_and_counts_it(manager):
    cg = manager.service("hog")
    report = cg.apply(ResourcesSpec(limits=Quantities(memory=50 * 1024 * 1024)))
    assert report["memory.max"]["enforced"] is True
    hog = spawn(manager, cg, [PYTHON, "-c",
                              "chunks = []\n"
                              "for _ in range(40): chunks.append(b\"x\" * (10 << 20))\n"])
    assert hog.wait(timeout=30) == -signal.SIGKILL
    assert cg.oom_kills() > 0
    assert cg.stats()["oom_kills"] > 0


def test_pids_limit_bounds_a_fork_bomb_and_kill_empties_it(manager):
    cg = manager.service("bomb")
    assert cg.apply(ResourcesSpec(limits=Quantities(pids=20)))["pids.max"]["enforced"]
    bomb = spawn(manager, cg, ["sh", "-c", "for i in $(seq 60); do sleep 60 & done; wait"],
                 stderr=subprocess.DEVNULL)
    wait_for(lambda: refused_forks(cg) > 0, what="the kernel to refuse a fork")
    assert 0 < len(cg.procs()) <= 20
    peak = os.path.join(cg._dir("pids")[1], "pids.peak")
    if os.path.exists(peak):
        assert int(open(peak).read()) <= 20
    cg.kill()
    wait_for(cg.is_empty, what="the cgroup to empty after cgroup.kill")
    assert bomb.wait(timeout=10) in (-signal.SIGKILL, 2)  # sh exits 2 when fork fails


def refused_forks(cg) -> int:
    events = open(os.path.join(cg._dir("pids")[1], "pids.events")).read().split()
    return int(events[events.index("max") + 1])


def busy_child(manager, cg):
    return spawn(manager, cg, [PYTHON, "-c", "while True: pass"])


def cpu_seconds(cg) -> float:
    stats = cg.stats()
    return stats["cpu_user_seconds"] + stats["cpu_system_seconds"]


def cpu_rate(cg, interval: float) -> float:
    start_cpu, start = cpu_seconds(cg), time.monotonic()
    time.sleep(interval)  # measuring a rate over an interval, not waiting for an event
    return (cpu_seconds(cg) - start_cpu) / (time.monotonic() - start)


def test_cpu_limit_gives_about_a_quarter_core(manager):
    cg = manager.service("spin")
    assert cg.apply(ResourcesSpec(limits=Quantities(cpu=0.25)))["cpu.max"]["enforced"]
    busy_child(manager, cg)
    wait_for(lambda: cpu_seconds(cg) > 0.05, what="the child to use some CPU")
    rate = cpu_rate(cg, 2.0)
    assert 0.12 < rate < 0.40, rate


def test_freeze_stops_cpu_use_and_thaw_resumes_it(manager):
    cg = manager.service("ice")
    busy_child(manager, cg)
    wait_for(lambda: cpu_seconds(cg) > 0.05, what="the child to use some CPU")
    assert cg.freeze() in ("cgroup-v2 cgroup.freeze", "cgroup-v1 freezer.state")
    wait_for(cg.is_frozen, what="the freeze to complete")
    assert cpu_rate(cg, 0.5) < 0.02
    cg.thaw()
    wait_for(lambda: not cg.is_frozen(), what="the thaw to complete")
    assert cpu_rate(cg, 0.5) > 0.05  # resumed (frozen: < 0.02); a loaded box gives less than a core


def test_signal_reaches_every_process_of_the_service(manager):
    cg = manager.service("family")
    parent = spawn(manager, cg, ["sh", "-c", "sleep 60 & sleep 60 & wait"])
    wait_for(lambda: len(cg.procs()) == 3, what="the three processes")
    cg.signal(signal.SIGTERM)
    wait_for(cg.is_empty, what="every process to exit on SIGTERM")
    parent.wait(timeout=10)


def test_leftovers_of_a_crashed_instance_are_found_and_killed(manager, instance):
    old = manager.service("old")
    child = spawn(manager, old, ["sleep", "60"])
    wait_for(lambda: old.procs() == [child.pid], what="the child in its cgroup")

    successor = CgroupManager.detect(instance)
    assert successor.leftovers() == {"old": [child.pid]}
    successor.kill_leftovers()
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert successor.leftovers() == {}
    assert not os.path.exists(old.v2_path)
    for path in old._dirs.values():
        assert not os.path.exists(path)


def test_kill_leftovers_reports_failure_when_time_runs_out(manager, instance):
    old = manager.service("stuck")
    spawn(manager, old, ["sleep", "60"])
    wait_for(lambda: len(old.procs()) == 1, what="the child in its cgroup")
    old.freeze()  # SIGKILL still works on frozen tasks, so only a zero timeout can fail
    with pytest.raises(TerminateFailed):
        CgroupManager.detect(instance).kill_leftovers(timeout=0)
    old.thaw()


def test_group_slice_bounds_its_members_and_nests_them(manager):
    slice_ = manager.group("pool")
    report = slice_.apply(ResourcesSpec(limits=Quantities(memory=80 << 20, pids=10)))
    assert report["memory.max"]["enforced"] and report["pids.max"]["enforced"]
    member = manager.service("worker", parent=slice_)
    assert member.v2_path == os.path.join(slice_.v2_path, "worker.service")
    spawn(manager, member, ["sh", "-c", "for i in $(seq 30); do sleep 60 & done; wait"],
          stderr=subprocess.DEVNULL)
    wait_for(lambda: refused_forks(slice_) + refused_forks(member) > 0,
             what="the slice limit to refuse a fork")
    assert 0 < len(member.procs()) <= 10
    assert slice_.stats()["pids_current"] <= 10
    member.kill()
    wait_for(member.is_empty, what="the member to empty")


def test_cleanup_removes_every_directory_it_created(manager):
    cg = manager.service("tmp")
    manager.service("member", parent=manager.group("grp"))
    dirs = list(cg._dirs.values())
    subtree = os.path.dirname(cg.v2_path)
    manager.cleanup()
    assert not any(os.path.exists(d) for d in dirs)
    assert not os.path.exists(subtree)


def test_remove_refuses_while_processes_remain(manager):
    from trio_procmgr.errors import InvalidState

    cg = manager.service("busy")
    spawn(manager, cg, ["sleep", "60"])
    with pytest.raises(InvalidState):
        cg.remove()
    cg.kill()
    wait_for(cg.is_empty, what="the cgroup to empty")
    cg.remove()
    assert not any(os.path.exists(d) for d in cg._dirs.values())


async def test_placement_also_holds_when_trio_spawns_from_a_worker_thread(manager):
    import trio

    cg = manager.service("threaded")
    with cg.spawn_context():
        proc = await trio.lowlevel.open_process(["cat", "/proc/self/cgroup"],
                                                stdout=subprocess.PIPE)
    chunks = []
    while chunk := await proc.stdout.receive_some(65536):
        chunks.append(chunk)
    await proc.wait()
    await proc.stdout.aclose()
    placed = cgroup_paths(b"".join(chunks).decode())["unified"]
    assert placed.endswith(f"/{manager.instance}/threaded.service")
