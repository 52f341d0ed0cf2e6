"""Without cgroups (SPEC §15, issue 14 item 8): a stop also ends what left the service's
process group — a TERM-ignoring grandchild that called setsid — and says so."""

from __future__ import annotations

import json
import os
import signal

import pytest

from continuity_daemon import daemon_factory, pid_alive, wait_for, write  # noqa: F401


@pytest.mark.linux_only("a setsid grandchild is found through the process tree under a subreaper")
def test_a_setsid_grandchild_that_ignores_term_is_killed_and_reported(daemon_factory):
    d = daemon_factory(extra=["--no-cgroups"])
    marker = d.tmp / "escapee.pid"
    inner = f"trap '' TERM; echo \\$\\$ > {marker}; exec sleep 300"  # the escapee's own pid
    script = f'setsid sh -c "{inner}" & exec sleep 300'
    write(d.config_dir / "svc.yaml", f"command: sh\nargs: ['-c', {json.dumps(script)}]\n"
          "auto_start: true\ntimeout_stop_sec: 1\n")
    d.start()
    escapee = int(wait_for(lambda: marker.exists() and marker.read_text().strip()))
    try:
        assert pid_alive(escapee)
        d.call("stop", name="svc")
        assert not pid_alive(escapee), "the escapee does not outlive the stop"
        report = d.call("describe", name="svc")["record"]
        assert escapee in report["stop_survivors"]["pids"]
        assert "left the service's process group" in report["stop_survivors"]["note"]
        assert "left the service's process group" in d.log.read_text()
    finally:  # this test leaves nothing behind, even when the feature is broken
        if pid_alive(escapee):
            os.kill(escapee, signal.SIGKILL)
