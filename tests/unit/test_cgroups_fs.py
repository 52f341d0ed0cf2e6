"""The cgroup adapter's file writes, against a temporary directory laid out as cgroupfs.

This is a fake: plain files stand in for the kernel's interface files, so these tests
check *which* files get *what* text (hybrid and pure-v2 layouts, delegation below the
daemon's own cgroup, fallbacks), not enforcement. Enforcement is tested against the
real kernel in tests/integration/test_cgroups_real.py.
"""

from __future__ import annotations

import os
import resource

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_procmgr.errors import InvalidArgument, PlatformNotSupported, TerminateFailed
from trio_procmgr.platform import cgroup_v1, cgroup_v2
from trio_procmgr.platform.cgroups import CgroupManager, parse_mountinfo, parse_proc_cgroup
from trio_procmgr.spec import Quantities, ResourcesSpec

PID = str(os.getpid())
FULL = ResourcesSpec(
    requests=Quantities(cpu=0.5, memory=32 << 20),
    limits=Quantities(cpu=0.25, memory=50 << 20, pids=20),
)


class FakeHost:
    """A cgroupfs-shaped tree plus the /proc/self files describing the daemon's place in it."""

    def __init__(self, tmp_path, v2_own="/", v2_controllers="", v1=None, v2=True):
        self.root = tmp_path / "sys/fs/cgroup"
        self.mounts: list[str] = []
        self.cgroup_lines: list[str] = []
        self.homes: dict[str, str] = {}
        if v2:
            mount = self.root if v1 is None else self.root / "unified"
            self._mount(mount, "cgroup2", "rw", "unified", v2_own)
            self.cgroup_lines.append(f"0::{v2_own}")
            (self._home("unified") / "cgroup.controllers").write_text(v2_controllers + "\n")
        for i, (ctrls, own) in enumerate((v1 or {}).items(), start=1):
            self._mount(self.root / ctrls, "cgroup", f"rw,{ctrls}", ctrls, own)
            self.cgroup_lines.append(f"{i}:{ctrls}:{own}")
        self.proc_cgroup = tmp_path / "proc_self_cgroup"
        self.proc_cgroup.write_text("\n".join(self.cgroup_lines) + "\n")
        self.mountinfo = tmp_path / "mountinfo"
        self.mountinfo.write_text("\n".join(self.mounts) + "\n")

    def _mount(self, mount, fstype, opts, key, own):
        home = mount / own.lstrip("/")
        home.mkdir(parents=True, exist_ok=True)
        (home / "cgroup.procs").write_text("")
        self.homes[key] = str(home)
        n = len(self.mounts) + 30
        self.mounts.append(f"{n} 23 0:{n} / {mount} rw,relatime - {fstype} cgroup {opts}")

    def _home(self, key):
        from pathlib import Path
        return Path(self.homes[key])

    def detect(self, instance="inst"):
        return CgroupManager.detect(instance, proc_self_cgroup=str(self.proc_cgroup),
                                    mounts=str(self.mountinfo), root=str(self.root))

    def read(self, key, *parts):
        return open(os.path.join(self.homes[key], "inst", *parts)).read()

    def snapshot(self):
        out = {}
        for dirpath, dirnames, files in os.walk(self.root):
            out[dirpath] = None
            for f in files:
                out[os.path.join(dirpath, f)] = open(os.path.join(dirpath, f)).read()
        return out


HYBRID_V1 = {"memory": "/process_api/abc", "cpu": "/", "cpuacct": "/", "pids": "/",
             "freezer": "/"}


@pytest.fixture
def hybrid(tmp_path):
    host = FakeHost(tmp_path / "hybrid", v1=HYBRID_V1)
    sibling = host.root / "memory/process_api/other"
    sibling.mkdir()
    (sibling / "memory.limit_in_bytes").write_text("123\n")
    return host


@pytest.fixture
def pure_v2(tmp_path):
    return FakeHost(tmp_path / "pure-v2", v2_controllers="cpuset cpu io memory pids")


def test_hybrid_host_tracks_in_v2_and_enforces_with_each_v1_controller(hybrid):
    mgr = hybrid.detect()
    assert mgr.mechanisms() == {"memory": "cgroup-v1", "cpu": "cgroup-v1", "pids": "cgroup-v1",
                                "cpuacct": "cgroup-v1", "freezer": "cgroup-v1"}
    assert mgr.warnings == []
    cg = mgr.service("web")
    assert cg.v2_path == os.path.join(hybrid.homes["unified"], "inst", "web.service")
    report = cg.apply(FULL)
    assert hybrid.read("memory", "web.service", "memory.limit_in_bytes") == str(50 << 20)
    assert hybrid.read("memory", "web.service", "memory.soft_limit_in_bytes") == str(32 << 20)
    assert hybrid.read("cpu", "web.service", "cpu.cfs_quota_us") == "25000"
    assert hybrid.read("cpu", "web.service", "cpu.cfs_period_us") == "100000"
    assert hybrid.read("cpu", "web.service", "cpu.shares") == "512"
    assert hybrid.read("pids", "web.service", "pids.max") == "20"
    assert report["memory.max"] == {"value": 50 << 20, "enforced": True,
                                    "mechanism": "cgroup-v1 memory.limit_in_bytes"}
    assert report["cpu.max"]["mechanism"] == "cgroup-v1 cpu.cfs_quota_us"
    assert cg.rlimits(FULL) == []


def test_pure_v2_host_writes_v2_files_and_enables_controllers_down_the_path(pure_v2):
    mgr = pure_v2.detect()
    assert set(mgr.mechanisms().values()) <= {"cgroup-v2", "none"}
    member = mgr.service("web", parent=mgr.group("pool"))
    report = member.apply(FULL)
    assert pure_v2.read("unified", "pool.slice", "web.service", "cpu.max") == "25000 100000"
    assert pure_v2.read("unified", "pool.slice", "web.service", "cpu.weight") == "50"
    assert pure_v2.read("unified", "pool.slice", "web.service", "memory.max") == str(50 << 20)
    assert pure_v2.read("unified", "pool.slice", "web.service", "memory.low") == str(32 << 20)
    assert pure_v2.read("unified", "pool.slice", "web.service", "pids.max") == "20"
    assert {e["mechanism"].split()[0] for e in report.values()} == {"cgroup-v2"}
    for level in ([], ["inst"], ["inst", "pool.slice"]):
        control = os.path.join(pure_v2.homes["unified"], *level, "cgroup.subtree_control")
        assert set(open(control).read().split()) == {"+memory", "+cpu", "+pids"}


def test_delegated_v2_cgroup_moves_the_daemon_into_a_leaf_first(tmp_path):
    host = FakeHost(tmp_path, v2_own="/system.slice/procmgr.service",
                    v2_controllers="cpu memory pids")
    mgr = host.detect()
    cg = mgr.service("web")
    scope = os.path.join(host.homes["unified"], "inst", "supervisor.scope")
    assert open(os.path.join(scope, "cgroup.procs")).read() == PID
    with cg.spawn_context():
        assert open(os.path.join(cg.v2_path, "cgroup.procs")).read() == PID
    assert open(os.path.join(scope, "cgroup.procs")).read() == PID


def test_apply_none_clears_every_limit(hybrid, pure_v2):
    for host, files in (
        (hybrid, {("memory", "memory.limit_in_bytes"): "-1", ("cpu", "cpu.cfs_quota_us"): "-1",
                  ("cpu", "cpu.shares"): "1024", ("pids", "pids.max"): "max",
                  ("memory", "memory.soft_limit_in_bytes"): "-1"}),
        (pure_v2, {("unified", "memory.max"): "max", ("unified", "cpu.max"): "max 100000",
                   ("unified", "cpu.weight"): "100", ("unified", "pids.max"): "max",
                   ("unified", "memory.low"): "0"}),
    ):
        cg = host.detect().service("web")
        cg.apply(FULL)
        assert cg.apply(None) == {}
        for (key, file), text in files.items():
            assert host.read(key, "web.service", file) == text, file


def test_without_controllers_limits_fall_back_to_rlimits_with_warnings(tmp_path):
    mgr = FakeHost(tmp_path).detect()
    assert any(w.startswith("memory limits not enforced") for w in mgr.warnings)
    assert any(w.startswith("pids limits not enforced") for w in mgr.warnings)
    assert any(w.startswith("cpu requests/limits not enforced") for w in mgr.warnings)
    cg = mgr.service("web")
    report = cg.apply(FULL)
    assert not any(entry["enforced"] for entry in report.values())
    assert report["memory.max"]["mechanism"].startswith("rlimit RLIMIT_AS")
    assert cg.rlimits(FULL) == [(resource.RLIMIT_AS, 50 << 20, 50 << 20),
                                (resource.RLIMIT_NPROC, 20, 20)]
    assert cg.stats()["memory_current"] is None


def test_detect_returns_none_without_a_v2_hierarchy(tmp_path):
    assert FakeHost(tmp_path, v2=False, v1=HYBRID_V1).detect() is None


def test_detect_ignores_cgroup_mounts_outside_root(hybrid):
    mgr = CgroupManager.detect("inst", proc_self_cgroup=str(hybrid.proc_cgroup),
                               mounts=str(hybrid.mountinfo), root=str(hybrid.root / "memory"))
    assert mgr is None


def test_every_write_stays_below_the_daemons_own_cgroups(hybrid):
    before = hybrid.snapshot()
    mgr = hybrid.detect()
    cg = mgr.service("web", parent=mgr.group("pool"))
    mgr.group("pool").apply(FULL)
    cg.apply(FULL)
    with cg.spawn_context():
        pass
    cg.freeze()
    after = hybrid.snapshot()
    changed = {p for p in set(before) | set(after) if before.get(p, 0) != after.get(p, 0)}
    homes_procs = {os.path.join(h, "cgroup.procs") for h in hybrid.homes.values()}
    for path in changed - homes_procs:
        assert any(path.startswith(os.path.join(h, "inst")) for h in hybrid.homes.values()), path


def test_spawn_context_puts_the_daemon_back_home_when_the_spawn_raises(hybrid):
    cg = hybrid.detect().service("web")
    cg.apply(ResourcesSpec(limits=Quantities(cpu=1.0, memory=1 << 30, pids=10)))
    with pytest.raises(RuntimeError):
        with cg.spawn_context():
            for key in ("unified", "memory", "cpu", "pids"):
                assert hybrid.read(key, "web.service", "cgroup.procs") == PID
            raise RuntimeError("spawn failed")
    for key in ("unified", "memory", "cpu", "pids", "cpuacct", "freezer"):
        assert open(os.path.join(hybrid.homes[key], "cgroup.procs")).read() == PID


def test_leftovers_lists_non_empty_service_cgroups_by_service_name(hybrid):
    inst = os.path.join(hybrid.homes["unified"], "inst")
    for rel, procs in (("old.service", "11\n12\n"), ("pool.slice/member.service", "13\n"),
                       ("empty.service", ""), ("supervisor.scope", PID)):
        os.makedirs(os.path.join(inst, rel))
        open(os.path.join(inst, rel, "cgroup.procs"), "w").write(procs)
    mgr = hybrid.detect()
    assert mgr.leftovers() == {"member": [13], "old": [11, 12]}
    open(os.path.join(inst, "old.service", "cgroup.kill"), "w").write("")
    with pytest.raises(TerminateFailed) as info:
        mgr.kill_leftovers(timeout=0)
    assert open(os.path.join(inst, "old.service", "cgroup.kill")).read() == "1"
    assert info.value.details["leftovers"] == {"member": [13], "old": [11, 12]}


def test_stats_read_v2_files(pure_v2):
    cg = pure_v2.detect().service("web")
    files = {"memory.current": "1048576\n", "memory.max": "max\n", "pids.current": "3\n",
             "pids.max": "20\n", "cpu.stat": "usage_usec 3500000\nuser_usec 3000000\n"
             "system_usec 500000\n", "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n"}
    for name, text in files.items():
        open(os.path.join(cg.v2_path, name), "w").write(text)
    assert cg.stats() == {"memory_current": 1 << 20, "memory_limit": None,
                          "cpu_user_seconds": 3.0, "cpu_system_seconds": 0.5,
                          "pids_current": 3, "pids_limit": 20, "oom_kills": 1}


def test_stats_read_v1_files(hybrid):
    cg = hybrid.detect().service("web")
    cg.apply(ResourcesSpec(limits=Quantities(memory=1 << 62, pids=10)))
    d = {key: os.path.join(hybrid.homes[key], "inst", "web.service") for key in hybrid.homes}
    for key, name, text in (
        ("memory", "memory.usage_in_bytes", "4096\n"),
        ("memory", "memory.limit_in_bytes", "9223372036854771712\n"),
        ("memory", "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
        ("cpuacct", "cpuacct.usage_user", "2000000000\n"),
        ("cpuacct", "cpuacct.usage_sys", "250000000\n"),
        ("pids", "pids.current", "5\n"), ("pids", "pids.max", "max\n"),
    ):
        open(os.path.join(d[key], name), "w").write(text)
    assert cg.stats() == {"memory_current": 4096, "memory_limit": None,
                          "cpu_user_seconds": 2.0, "cpu_system_seconds": 0.25,
                          "pids_current": 5, "pids_limit": None, "oom_kills": 2}


def test_an_unlimited_service_is_created_in_v2_only_and_spawns_through_it_alone(hybrid):
    cg = hybrid.detect().service("web")
    with cg.spawn_context():
        assert hybrid.read("unified", "web.service", "cgroup.procs") == PID
    for key in ("memory", "cpu", "pids"):
        assert not os.path.exists(os.path.join(hybrid.homes[key], "inst", "web.service"))


def test_freeze_prefers_v2_then_v1_freezer_else_refuses(hybrid, tmp_path):
    cg = hybrid.detect().service("web")
    assert cg.freeze() == "cgroup-v1 freezer.state"
    assert hybrid.read("freezer", "web.service", "freezer.state") == "FROZEN"
    open(os.path.join(cg.v2_path, "cgroup.freeze"), "w").write("0")
    assert cg.freeze() == "cgroup-v2 cgroup.freeze"
    assert hybrid.read("unified", "web.service", "cgroup.freeze") == "1"
    assert cg.thaw() == "cgroup-v2 cgroup.freeze"
    bare = FakeHost(tmp_path / "bare").detect().service("web")
    with pytest.raises(PlatformNotSupported):
        bare.freeze()


def test_cleanup_removes_created_directories_only(hybrid):
    mgr = hybrid.detect()
    mgr.service("web", parent=mgr.group("pool"))
    mgr.cleanup()
    for home in hybrid.homes.values():
        assert sorted(os.listdir(home)) == sorted(
            n for n in os.listdir(home) if n != "inst")
        assert not os.path.exists(os.path.join(home, "inst"))
    assert os.path.exists(hybrid.root / "memory/process_api/other")


@pytest.mark.parametrize("name", ["", "a/b", "..", ".hidden", "web.service", "x y"])
def test_unsafe_names_are_refused(hybrid, name):
    with pytest.raises(InvalidArgument):
        hybrid.detect().service(name)


def test_mountinfo_parsing_handles_escapes_and_co_mounted_controllers():
    text = ("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
            "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
            "33 31 0:30 /sub /my\\040mnt rw shared:5 - cgroup2 cgroup2 rw,nsdelegate\n")
    mounts = parse_mountinfo(text)
    assert [(m.version, m.root, m.mount_point, set(m.controllers)) for m in mounts] == [
        (1, "/", "/sys/fs/cgroup/cpu,cpuacct", {"cpu", "cpuacct"}),
        (2, "/sub", "/my mnt", set()),
    ]
    unified, legacy = parse_proc_cgroup("1:name=systemd:/x\n2:cpu,cpuacct:/a\n0::/b\n")
    assert unified == "/b" and legacy == {frozenset({"cpu", "cpuacct"}): "/a"}


def test_co_mounted_cpu_cpuacct_hierarchy_serves_both_roles(tmp_path):
    mgr = FakeHost(tmp_path, v1={"cpu,cpuacct": "/user.slice"}).detect()
    cg = mgr.service("web")
    assert mgr.roles["cpu"] is mgr.roles["cpuacct"]
    cg.apply(ResourcesSpec(limits=Quantities(cpu=1.5)))
    quota = tmp_path / "sys/fs/cgroup/cpu,cpuacct/user.slice/inst/web.service/cpu.cfs_quota_us"
    assert quota.read_text() == "150000"


@given(st.floats(min_value=0.001, max_value=1000, allow_nan=False))
def test_cpu_translations_stay_within_kernel_ranges(cores):
    assert 1 <= cgroup_v2.cpu_weight(cores) <= 10_000
    assert 2 <= cgroup_v1.cpu_shares(cores) <= 262_144
    quota = cgroup_v2.cpu_quota_us(cores)
    assert quota >= 1_000
    assert cgroup_v2.cpu_max(cores) == f"{quota} 100000"
    assert cgroup_v1.cfs_quota(cores) == str(quota)


@given(st.floats(min_value=0.01, max_value=100), st.floats(min_value=0.01, max_value=100))
def test_more_cores_never_means_less_cpu(a, b):
    lo, hi = sorted((a, b))
    assert cgroup_v2.cpu_weight(lo) <= cgroup_v2.cpu_weight(hi)
    assert cgroup_v1.cpu_shares(lo) <= cgroup_v1.cpu_shares(hi)
    assert cgroup_v2.cpu_quota_us(lo) <= cgroup_v2.cpu_quota_us(hi)
