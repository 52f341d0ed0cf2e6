"""The orphan reaper: untracked dead children are reaped, tracked ones are left to their
pidfd waiter. Run in a child interpreter, since being a subreaper is process-wide."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import os, subprocess, sys, time
    from trio_procmgr.platform.linux import Reaper, children_of_self, set_child_subreaper

    assert set_child_subreaper()
    reaper = Reaper()
    tracked = subprocess.Popen(["/bin/true"])
    reaper.tracked.add(tracked.pid)
    # An orphan: sh starts a background sleep 0 and exits; the sleep is reparented here.
    subprocess.run(["/bin/sh", "-c", "/bin/sleep 0 & echo $! > orphan.pid"], check=True)
    orphan = int(open("orphan.pid").read())

    def zombie(pid):
        try:
            return open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] == "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 30
    while not (zombie(orphan) and zombie(tracked.pid)):
        assert time.monotonic() < deadline, "children did not exit"
        time.sleep(0.01)
    reaper.reap_untracked()
    assert orphan not in children_of_self(), "the orphan was not reaped"
    assert zombie(tracked.pid), "a tracked child was reaped behind its waiter's back"
    assert reaper.reaped == 1
    tracked.wait()
    reaper.reap_untracked()  # nothing dead: a no-op
    assert reaper.reaped == 1
    print("ok")
""")


@pytest.mark.linux_only("drives the linux adapter's subreaper Reaper directly (the portable one "
                        "has no subreaper and reaps no orphan)")
def test_untracked_orphans_are_reaped_and_tracked_children_left_alone(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
