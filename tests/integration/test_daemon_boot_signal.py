"""SIGTERM while the daemon is still booting (a notify service has not said READY yet,
so the boot is waiting for it): the boot is cancelled, what it started is stopped and
the daemon exits — the signal is neither lost nor held until the boot is done."""

from __future__ import annotations

import signal
import subprocess

from continuity_daemon import daemon_factory, pid_alive, wait_for, write  # noqa: F401


def test_sigterm_during_a_long_boot_stops_what_was_started_and_exits(daemon_factory, tmp_path):
    d = daemon_factory()
    marker = tmp_path / "slow.pid"
    write(d.config_dir / "slow.yaml",
          "command: sh\n"
          f"args: ['-c', 'echo $$ > {marker}; exec sleep 301']\n"
          "process_type: notify\ntimeout_start_sec: 120\nauto_start: true\n")
    d.proc = subprocess.Popen(d.argv(), stdout=subprocess.DEVNULL, stderr=open(d.log, "ab"))
    pid = wait_for(lambda: marker.exists() and marker.read_text().strip()
                   and int(marker.read_text()), what="the notify service to be spawned")
    assert not d.answers()  # still booting: the boot waits for READY=1
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=30) == 0
    assert not pid_alive(pid)
    assert "stop requested during the boot" in d.log.read_text()
