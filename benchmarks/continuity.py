"""Continuity figures for docs/daemon.md: re-exec and crash-adoption time with N services.

    python -m benchmarks.continuity [--services 1000]

Starts a real dd-procmgrd on a temp config dir of N ``sleep`` services, then measures
(a) ``daemon_reexec``: from the call until the new image answers with every service
adopted (same PIDs), and (b) SIGKILL of the daemon, then a new daemon on the same state
dir: from its start until it answers with every service adopted. Cleans up after itself.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from trio_procmgr.client import BlockingClient

DAEMON = [sys.executable, "-m", "trio_procmgr.daemon.main"]


def _pids(sock: str) -> dict[str, int] | None:
    try:
        with BlockingClient(sock, timeout=30) as c:
            return {r["name"]: r["pid"] for r in c.call("list")["processes"]}
    except OSError:
        return None


def _answers(client: BlockingClient) -> bool:
    try:
        client.call("ping")
        return True
    except OSError:
        return False


def _wait(pred, timeout: float = 600.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.01)
    raise SystemExit("timed out")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    n = ap.parse_args().services
    tmp = Path(tempfile.mkdtemp(prefix="dd-continuity-"))
    cfg = tmp / "cfg"
    cfg.mkdir()
    for i in range(n):
        (cfg / f"s{i}.yaml").write_text("command: sleep\nargs: ['3600']\nauto_start: true\n")
    sock, instance = str(tmp / "d.sock"), f"bench-{uuid.uuid4().hex[:8]}"
    argv = DAEMON + ["--config-dir", str(cfg), "--socket", sock, "--state-dir", str(tmp / "state"),
                     "--instance", instance, "--log-level", os.environ.get("BENCH_LOG_LEVEL", "warning")]
    log = open(tmp / "daemon.log", "ab")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
    results: dict[str, float] = {"services": n}
    try:
        t0 = time.monotonic()
        before = _wait(lambda: (p := _pids(sock)) and len(p) == n and all(p.values()) and p)
        results["boot_s"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        with BlockingClient(sock, timeout=120) as c:
            c.call("daemon_reexec")
            _wait(lambda: not _answers(c))  # the old image closed it: exec'd
        _wait(lambda: _pids(sock) == before)
        results["reexec_s"] = round(time.monotonic() - t0, 2)
        proc.kill()
        proc.wait()
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
        _wait(lambda: _pids(sock) == before)
        results["crash_adoption_s"] = round(time.monotonic() - t0, 2)
        alive = sum(os.path.exists(f"/proc/{p}") for p in before.values())
        results["services_kept"] = alive
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(300)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(json.dumps(results))
    print(f"daemon log: {tmp}/daemon.log", file=sys.stderr)


if __name__ == "__main__":
    main()
