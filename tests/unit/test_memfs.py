"""Where output FIFOs live: in memory, in a private directory (platform.memfs,
engine.output_fifo.choose_dir)."""

from __future__ import annotations

import os

import pytest

from trio_procmgr.engine import output_fifo
from trio_procmgr.platform import memfs

MOUNTINFO = """\
22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
25 22 0:21 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw
26 22 0:22 / /srv/my\\040state rw - tmpfs tmpfs rw
27 22 254:1 / /srv rw - xfs /dev/vdb rw
28 27 0:23 / /srv rw - ramfs none rw
"""


def test_the_longest_mount_point_above_a_path_gives_its_filesystem():
    mounts = memfs.parse_filesystems(MOUNTINFO)
    assert ("/srv/my state", "tmpfs") in mounts
    assert memfs.filesystem_of("/var/lib/dd-procmgr", mounts) == "ext4"
    assert memfs.filesystem_of("/dev/shm/x/y", mounts) == "tmpfs"
    assert memfs.filesystem_of("/dev/shmx", mounts) == "ext4"
    assert memfs.filesystem_of("/srv/my state/output", mounts) == "tmpfs"
    assert memfs.filesystem_of("/srv/other", mounts) == "ramfs", "the later mount on /srv"
    assert memfs.filesystem_of("/", mounts) == "ext4"
    assert memfs.filesystem_of("relative", []) is None


def test_this_machine_has_dev_shm_in_memory(tmp_path):
    assert memfs.in_memory("/dev/shm")
    assert not memfs.in_memory(str(tmp_path), mountinfo=str(tmp_path / "missing"))


def test_a_private_dir_is_ours_only(tmp_path):
    mine = str(tmp_path / "mine")
    assert memfs.private_dir(mine) and memfs.private_dir(mine), "made, then found again"
    assert os.stat(mine).st_mode & 0o777 == 0o700
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o1777)
    assert not memfs.private_dir(str(open_dir))
    (tmp_path / "link").symlink_to(mine)
    assert not memfs.private_dir(str(tmp_path / "link")), "a symlink someone planted"
    (tmp_path / "file").write_text("")
    assert not memfs.private_dir(str(tmp_path / "file"))
    assert not memfs.private_dir(str(tmp_path / "no" / "parent"))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_dir_someone_else_made_is_not_private(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    assert not memfs.private_dir(str(theirs))


@pytest.fixture
def shared(tmp_path, monkeypatch):
    """A stand-in for /dev/shm; ``in_memory`` answers from the set ``memory``."""
    memory: set[str] = set()
    monkeypatch.setattr(memfs, "in_memory", lambda path: path in memory)
    base = tmp_path / "shm"
    base.mkdir(mode=0o1777)
    memory.add(str(base))
    return base, memory


def test_fifos_go_to_a_private_dir_in_memory_named_after_the_state_dir(tmp_path, shared):
    base, _ = shared
    one = output_fifo.choose_dir(str(tmp_path / "state-a"), shared=str(base))
    assert os.path.dirname(one) == str(base / f"dd-procmgr-{os.geteuid()}")
    assert output_fifo.choose_dir(str(tmp_path / "state-a"), shared=str(base)) == one
    assert output_fifo.choose_dir(str(tmp_path / "state-b"), shared=str(base)) != one
    (cout, cerr), (rout, rerr), paths = output_fifo.create(one, "id.1")
    assert all(p.startswith(one + "/") for p in paths)
    for fd in (cout, cerr, rout, rerr):
        os.close(fd)
    output_fifo.remove(paths)


def test_fifos_stay_in_the_state_dir_when_it_is_in_memory_or_memory_is_unsafe(tmp_path, shared):
    base, memory = shared
    state = str(tmp_path / "state")
    memory.add(state)
    assert output_fifo.choose_dir(state, shared=str(base)) == os.path.join(state, "output")
    memory.discard(state)
    memory.discard(str(base))
    assert output_fifo.choose_dir(state, shared=str(base)) == os.path.join(state, "output")
    memory.add(str(base))
    (base / f"dd-procmgr-{os.geteuid()}").mkdir(mode=0o755)  # not ours alone
    os.chmod(base / f"dd-procmgr-{os.geteuid()}", 0o755)
    assert output_fifo.choose_dir(state, shared=str(base)) == os.path.join(state, "output")
