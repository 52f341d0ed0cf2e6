"""The real redis-server unit Debian ships, converted, runs under the real daemon (SPEC §17).

The conversion is the real file's, unchanged. Only what would clash with the host goes in a
test drop-in (``redis-server.yaml.d/``): redis's port, data dir, log and pid file move to a
temp dir, the runtime directory gets a unique name, and the converted ``args`` are kept
with those overrides appended (redis lets later options win).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import yaml

from cli_daemon import CLI, CliDaemon
from support import pid_alive

UNIT = "/lib/systemd/system/redis-server.service"

pytestmark = [
    pytest.mark.interop, pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="running redis as user redis needs root"),
    pytest.mark.skipif(not os.path.exists(UNIT) or shutil.which("redis-cli") is None,
                       reason="redis-server is not installed (packaging/install-test-deps.sh installs it)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_home():
    """A temp dir user redis can reach (pytest's tmp_path sits under a 0700 directory)."""
    root = Path(tempfile.mkdtemp(prefix="pm-redis-"))
    root.chmod(0o755)
    data = root / "data"
    data.mkdir()
    account = pwd.getpwnam("redis")
    os.chown(data, account.pw_uid, account.pw_gid)
    try:
        yield data
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_converted_redis_unit_runs_as_redis_with_notify_readiness_and_answers_ping(redis_home):
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="pmimp-"))
    daemon = CliDaemon(root)
    try:
        converted = subprocess.run([CLI, "import", "systemd", UNIT, "-o", str(daemon.config_dir)],
                                   capture_output=True, text=True, timeout=60)
        assert converted.returncode == 0, converted.stderr
        spec = yaml.safe_load((daemon.config_dir / "redis-server.yaml").read_text())
        assert (spec["process_type"], spec["user"]) == ("notify", "redis")
        write_test_dropin(daemon.config_dir, spec, redis_home, port)
        daemon.start()
        record = daemon.wait_state("redis-server", "running", "failed", "crashed", timeout=60)
        assert record["state"] == "running", (record, daemon.log_text())
        assert "Ready to accept connections" in (record.get("status_text") or ""), record
        assert owner_of(record["pid"]) == pwd.getpwnam("redis").pw_uid
        pong = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "PING"],
                              capture_output=True, text=True, timeout=30)
        assert pong.stdout.strip() == "PONG", pong
        assert daemon.cli("stop", "redis-server", timeout=90).code == 0
        assert not pid_alive(record["pid"])
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def write_test_dropin(config_dir: Path, spec: dict, home: Path, port: int) -> None:
    """Move redis's files and port into ``home``: the only changes to the converted unit."""
    overrides = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(home), "--logfile", "",
                 "--pidfile", str(home / "redis.pid"), "--save", "", "--appendonly", "no"]
    dropin = config_dir / "redis-server.yaml.d"
    dropin.mkdir()
    (dropin / "test-paths.yaml").write_text(yaml.safe_dump({
        "args": spec["args"] + overrides,
        "pidfile": str(home / "pm.pid"),
        "runtime_directory": [f"pm-test-redis-{uuid.uuid4().hex[:8]}"],
        "timeout_start_sec": "60s",
    }))


def owner_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")
