"""The platform seam: the engine reaches the OS only through the ports, and both adapters
implement every port member."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trio_procmgr.platform import ports
from trio_procmgr.platform.choice import choose_platform
from trio_procmgr.platform.linux import LinuxCgroups, LinuxProcessControl
from trio_procmgr.platform.portable import NoCgroups, PortableProcessControl
from trio_procmgr.platform.wallclock import WallClock

ENGINE = Path(__file__).resolve().parents[2] / "trio_procmgr" / "engine"
LINUX_ONLY = re.compile(
    r"(from|import)\s+trio_procmgr\.platform(\.|\s+import\s+)"
    r"(linux|cgroups|cgroup_v1|cgroup_v2|clone_spawn|_clone3spawn)\b"
    r"|os\.pidfd_open|os\.P_PIDFD|prctl|[\"']/proc/")


def _members(protocol: type) -> set[str]:
    return {name for name, value in vars(protocol).items()
            if not name.startswith("_") and (callable(value) or isinstance(value, property))}


def test_no_engine_module_touches_linux_directly():
    offenders = []
    for path in sorted(ENGINE.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if LINUX_ONLY.search(code) and not code.lstrip().startswith(('"', "'")):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    # Child.returncode reaps a pidfd the adapter handed out (os.waitid P_PIDFD) -- the
    # one place the engine interprets a watch handle; listed so a new one stands out.
    assert offenders == ["spawner.py:187: info = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)"]


def test_the_grep_catches_a_linux_import():
    assert LINUX_ONLY.search("from trio_procmgr.platform.linux import pidfd_open")
    assert LINUX_ONLY.search("from trio_procmgr.platform import clone_spawn")
    assert LINUX_ONLY.search('open(f"/proc/{pid}/stat")')
    assert not LINUX_ONLY.search("from trio_procmgr.platform.posix import ExitStatus")


@pytest.mark.parametrize("protocol,adapter", [
    (ports.ProcessControl, LinuxProcessControl),
    (ports.ProcessControl, PortableProcessControl),
    (ports.CgroupPort, LinuxCgroups),
    (ports.CgroupPort, NoCgroups),
    (ports.Clock, WallClock),
])
def test_each_adapter_implements_every_port_member_with_its_parameters(protocol, adapter):
    for name in _members(protocol):
        assert hasattr(adapter, name), f"{adapter.__name__} lacks {name}"
        wanted = list(inspect.signature(getattr(protocol, name)).parameters)
        got = list(inspect.signature(getattr(adapter, name)).parameters)
        assert got == wanted, f"{adapter.__name__}.{name}{got} != {wanted}"


def test_the_wall_clock_is_a_clock():
    assert isinstance(WallClock(), ports.Clock)
    assert WallClock().now() > 1.7e9


@pytest.mark.parametrize("name", ["linux", "portable"])
def test_mechanisms_name_every_aspect_describe_shows(name):
    platform = choose_platform(name)
    assert platform.name == name
    for in_use in (True, False):
        found = platform.mechanisms(cgroups_in_use=in_use)
        assert {"spawn_placement", "exit_detection", "kill", "pause", "limits"} <= set(found)
    assert "cgroup" not in platform.mechanisms(cgroups_in_use=False)["kill"]


def test_portable_has_no_cgroups_pidfd_or_subreaper():
    platform = choose_platform("portable")
    assert platform.cgroups.open("x") == (None, "the portable platform has no cgroups")
    assert platform.process.watch(1) is None
    assert platform.process.become_subreaper() is False
    assert platform.process.can_spawn_natively() is False
    with pytest.raises(ports.NativeSpawnUnsupported):
        platform.process.native_spawn(None, exe="/bin/true", argv=["true"], env={}, cwd=None,
                                      stdio=(-1, -1, -1), pass_fds=(), uid=None, gid=None,
                                      groups=None)


def test_an_unknown_platform_name_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown platform 'windows'.*linux, portable, auto"):
        choose_platform("windows")


@pytest.mark.parametrize("order", [("main", "web"), ("web", "main")])
def test_daemon_main_and_web_import_in_either_order(order):
    """The listener rule lives in listener_policy.py: no main <-> web import cycle."""
    code = "; ".join(f"import trio_procmgr.daemon.{m}" for m in order)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_listener_rule_is_written_once():
    """Only listener_policy.py decides that a listener needs a token (--token-file)."""
    root = ENGINE.parent
    rule = re.compile(r"needs --token-file|\.loopback\b")
    holders = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                     if rule.search(p.read_text()))
    assert holders == ["listener_policy.py"]
