"""Socket activation edge cases against the real daemon (SPEC §2.4, §15; issue 11.8).

A socket-activated service whose binary is missing fails to start like any other
(SPAWN_FAILED, no "started"); traffic does not burn its start limit in a second; an
``update`` re-arms a held listener and the connection queued meanwhile is served.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import textwrap
from pathlib import Path

import pytest

from cli_daemon import CliDaemon

SERVER = textwrap.dedent("""\
    #!/usr/bin/python3
    import socket
    listener = socket.socket(fileno=3)
    while True:
        conn, _ = listener.accept()
        conn.recv(100)
        conn.sendall(b"served")
        conn.close()
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def activated():
    """A daemon whose config has socket ``apm`` for service ``agent``, whose binary
    (``agent.bin`` in the test's dir) does not exist yet."""
    root = Path(tempfile.mkdtemp(prefix="pmsock-"))
    daemon = CliDaemon(root)
    daemon.port = free_port()
    daemon.binary = root / "agent.bin"
    daemon.write_config("agent", textwrap.dedent(f"""
        sockets:
          apm:
            listen_stream: "127.0.0.1:{daemon.port}"
            service: agent
        processes:
          agent:
            command: {daemon.binary}
            restart: never
            restart_sec: 0.2
            start_limit_burst: 3
            start_limit_interval: 60
    """))
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def trigger_note(daemon: CliDaemon) -> str:
    return daemon.record("agent")["sockets"][0].get("trigger") or ""


def test_missing_binary_is_spawn_failed_not_started(activated):
    d = activated
    result = d.cli("start", "agent")
    assert result.code == 1, result
    assert "SPAWN_FAILED" in result.err and "No such file or directory" in result.err
    assert "started" not in result.out
    record = d.record("agent")
    assert record["state"] == "failed"
    assert str(d.binary) in record["reason"] and "No such file or directory" in record["reason"]


def test_traffic_backs_off_then_an_update_rearms_and_the_queued_connection_is_served(activated):
    d = activated
    client = socket.create_connection(("127.0.0.1", d.port), timeout=60)
    client.sendall(b"hi")
    d.wait_for("activation to hold back", lambda: "not activating" in trigger_note(d))
    held = d.record("agent")
    assert held["start_limit"]["recent_starts"] < 3 or "start limit" in trigger_note(d)
    d.wait_for("the start limit to hold activation",
               lambda: "start limit" in trigger_note(d), timeout=30)
    assert d.record("agent")["runs"] == 3  # never more than the limit allows

    d.binary.write_text(SERVER)
    d.binary.chmod(0o755)
    assert d.cli("update", "agent", "--start-limit-interval", "0").code == 0

    assert client.recv(100) == b"served"
    client.close()
    assert d.wait_state("agent", "running")["runs"] == 4
    assert d.cli("stop", "agent").code == 0
