"""A crashed daemon on the portable adapter: its services cannot be re-adopted (no pidfd
for a process the new daemon did not start), so the next daemon stops each one still
running before its restart policy applies — never two copies of one service."""

from __future__ import annotations

import os

from continuity_daemon import daemon_factory, pid_alive, wait_for, write  # noqa: F401


def test_a_service_left_running_by_a_crashed_portable_daemon_is_stopped_not_doubled(
        daemon_factory):
    d = daemon_factory(extra=["--platform", "portable"])
    write(d.config_dir / "s.yaml",
          "command: sleep\nargs: ['300']\nauto_start: true\nrestart: always\n")
    d.start()
    old = wait_for(lambda: d.records()["s"]["pid"], what="s to run")
    old_pgid = os.getpgid(old)
    d.crash()
    assert pid_alive(old)  # the crash left it running, unwatched
    d.start()
    record = wait_for(lambda: (r := d.records()["s"])["state"] == "running" and r["pid"] != old
                      and r, what="s to run again under the new daemon")
    wait_for(lambda: not pid_alive(old), timeout=10, what="the old copy to be gone")
    members = [p for p in map(int, filter(str.isdigit, os.listdir("/proc")))
               if _pgid(p) == old_pgid and pid_alive(p)]
    assert members == []
    assert record["pid"] != old and pid_alive(record["pid"])
    assert d.stop() == 0


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
