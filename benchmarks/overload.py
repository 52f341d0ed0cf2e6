"""Overload rows of the benchmark (issue 14.6): dd-procmgrd only, no peers.

* **RPC p50 with a `yes` child**: ``ping`` round trips over one connection while one
  managed process floods its stdout (``yes``), against the same with no child.
* **Events lost by a keeping-up watcher at N restarting**: N processes that exit at once
  and restart (``restart: always``) for a window, while one ``watch`` subscriber reads as
  fast as it can; what it lost (``lost`` notices) against what it received.

    python -m benchmarks.overload [--n 500] [--storm-sec 10] [--pings 500]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

DAEMON = str(Path(sys.executable).parent / "dd-procmgrd")


class Daemon:
    """One dd-procmgrd in a temp dir (no cgroups: the figures are about the event loop)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-overload-"))
        self.socket = str(self.root / "pm.sock")
        (self.root / "conf").mkdir()
        argv = [DAEMON, "--socket", self.socket, "--config-dir", str(self.root / "conf"),
                "--state-dir", str(self.root / "state"), "--no-cgroups",
                "--instance", f"bench-{uuid.uuid4().hex[:10]}", "--log-level", "warning"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while not self._answers():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("dd-procmgrd did not come up")
            time.sleep(0.05)

    def _answers(self) -> bool:
        from trio_procmgr.client import BlockingClient
        try:
            with BlockingClient(self.socket, timeout=2) as client:
                client.call("ping")
            return True
        except Exception:
            return False

    def client(self) -> Any:
        from trio_procmgr.client import BlockingClient
        return BlockingClient(self.socket, timeout=60)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def ping_latencies(client: Any, count: int) -> list[float]:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        client.call("ping")
        out.append(time.perf_counter() - t0)
    return out


def rpc_p50_with_yes(pings: int = 500) -> dict[str, float]:
    """p50/p90 of ``ping`` in ms, idle and with a ``yes`` child flooding its stdout."""
    daemon = Daemon()
    try:
        with daemon.client() as client:
            idle = ping_latencies(client, pings)
            client.call("create", name="yes", config={"command": "yes"}, start=True)
            time.sleep(1.0)  # let the flood reach its steady state before measuring
            busy = ping_latencies(client, pings)
            client.call("stop", name="yes")
        return {"rpc_p50_idle_ms": statistics.median(idle) * 1000,
                "rpc_p50_yes_ms": statistics.median(busy) * 1000,
                "rpc_p90_yes_ms": sorted(busy)[int(len(busy) * 0.9)] * 1000}
    finally:
        daemon.close()


def restart_storm(n: int = 500, seconds: float = 10.0) -> dict[str, float]:
    """Events received and lost by one watcher reading as fast as it can while ``n``
    processes exit and restart for ``seconds``."""
    daemon = Daemon()
    try:
        config = {"command": "/bin/sh", "args": ["-c", "sleep 0.2"], "restart": "always",
                  "restart_sec": 0.1, "start_limit_interval": 0}
        with daemon.client() as client:
            client.call_many("create", [{"name": f"storm{i}", "config": config, "start": True}
                                        for i in range(n)])
        received = lost = 0
        with daemon.client() as watcher:
            events = watcher.stream("watch", max_queue=1000)
            t0 = time.monotonic()
            for event in events:
                if event.get("type") == "lost":
                    lost += int(event.get("count") or 0)
                else:
                    received += 1
                if time.monotonic() - t0 > seconds:
                    break
            events.close()
            elapsed = time.monotonic() - t0
        with daemon.client() as client:
            client.call_many("stop", [{"name": f"storm{i}"} for i in range(n)])
        return {"storm_events_per_s": received / elapsed, "storm_events_lost": lost,
                "storm_lost_pct": 100.0 * lost / max(1, lost + received)}
    finally:
        daemon.close()


def measure(n: int = 500, storm_s: float = 10.0, pings: int = 500) -> dict[str, float]:
    results = rpc_p50_with_yes(pings)
    results.update(restart_storm(n, storm_s))
    results["storm_n"] = n
    return results


def rows(results: dict[str, float]) -> str:
    """The two overload rows (plus context) as a Markdown table."""
    n = int(results["storm_n"])
    return "\n".join([
        "| overload (dd-procmgrd) | value |",
        "|---|---|",
        f"| RPC p50, idle | {results['rpc_p50_idle_ms']:.2f} ms |",
        f"| RPC p50 with a `yes` child | {results['rpc_p50_yes_ms']:.2f} ms "
        f"(p90 {results['rpc_p90_yes_ms']:.2f} ms) |",
        f"| events lost by a keeping-up watcher at {n} restarting | "
        f"{results['storm_events_lost']:.0f} ({results['storm_lost_pct']:.1f} %; "
        f"{results['storm_events_per_s']:.0f} events/s received) |",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.overload", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=500, help="processes in the restart storm (default 500)")
    p.add_argument("--storm-sec", type=float, default=10.0, help="watch window (default 10 s)")
    p.add_argument("--pings", type=int, default=500, help="ping samples (default 500)")
    p.add_argument("--output", default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    results = measure(args.n, args.storm_sec, args.pings)
    print(rows(results))
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
