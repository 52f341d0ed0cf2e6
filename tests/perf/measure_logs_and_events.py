"""Measurements for docs/health-logs-events.md (not a test; run by hand).

1. CPU of the manager process per MB of child output: a child writes 50 MB to stdout as
   fast as it can (1 KiB lines, and separately 64 KiB binary chunks without newlines);
   process CPU time (user+system of this process only, children excluded) before/after.
2. Latency from a child's exit to the websocket event: 100 SIGKILLs of a `restart:
   always` service, measured from the kill to the arrival of `process_exited`.

    .venv/bin/python tests/perf/measure_logs_and_events.py [--log-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid

import trio
import trio_websocket

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from support import PYTHON, specs  # noqa: E402
from trio_procmgr.daemon import web  # noqa: E402
from trio_procmgr.engine.manager import ProcessManager  # noqa: E402

MB = 50
TEXT = ("import sys\nchunk = b'x' * 1023 + b'\\n'\nw = sys.stdout.buffer.write\n"
        f"for _ in range({MB} * 1024): w(chunk)\n")
BINARY = ("import sys, os\nchunk = os.urandom(65536).replace(b'\\n', b' ')\nw = sys.stdout.buffer.write\n"
          f"for _ in range({MB} * 16): w(chunk)\n")


def cpu() -> float:
    t = os.times()
    return t.user + t.system


async def output_cost(log_dir: str | None) -> dict[str, float]:
    out = {}
    for label, script in (("text_1k_lines", TEXT), ("binary_64k_chunks", BINARY)):
        cfg = specs(loud={"command": PYTHON, "args": ["-c", script]})
        async with ProcessManager(cfg, instance=f"perf-{uuid.uuid4().hex[:8]}",
                                  log_dir=log_dir) as pm:
            sup = pm.supervisor("loud")
            before, wall = cpu(), time.perf_counter()
            await pm.start("loud")
            await sup.wait_until(lambda s: s.record.state.value in ("exited", "failed"), timeout=300)
            used, wall = cpu() - before, time.perf_counter() - wall
        out[label] = {"cpu_ms_per_mb": round(used / MB * 1000, 2), "wall_s": round(wall, 2)}
    return out


async def exit_to_event_latency(n: int = 100) -> dict[str, float]:
    cfg = specs(svc={"command": "sleep", "args": ["600"], "restart": "always",
                     "restart_sec": 0.01, "backoff": "fixed", "start_limit_interval": 0})
    lat = []
    async with ProcessManager(cfg, instance=f"perf-{uuid.uuid4().hex[:8]}") as pm:
        async with trio.open_nursery() as nursery:
            info = await nursery.start(lambda task_status: web.serve_web(
                pm, ws="127.0.0.1:0", metrics=None, token_file=None, task_status=task_status))
            host, port = info.ws_address
            sup = pm.supervisor("svc")
            await pm.start("svc")
            async with trio_websocket.open_websocket_url(
                    f"ws://{host}:{port}/events?process=svc&type=process_exited&type=state_changed") as ws:
                await trio.sleep(0.1)
                pid = None
                for _ in range(n):
                    old = pid
                    ok = await sup.wait_until(lambda s: s.record.state.value == "running"
                                              and s.record.pid not in (None, old), timeout=10)
                    assert ok, (len(lat), sup.record.to_dict())
                    pid = sup.record.pid
                    t0 = time.perf_counter()
                    os.kill(pid, signal.SIGKILL)
                    while True:
                        ev = json.loads(await ws.get_message())
                        if ev["type"] == "process_exited":
                            lat.append(time.perf_counter() - t0)
                            break
            nursery.cancel_scope.cancel()
    lat.sort()
    return {"n": len(lat), "median_ms": round(statistics.median(lat) * 1000, 2),
            "p90_ms": round(lat[int(len(lat) * 0.9)] * 1000, 2),
            "max_ms": round(lat[-1] * 1000, 2)}


async def main(args: argparse.Namespace) -> None:
    print("output, no log file:", await output_cost(None))
    with tempfile.TemporaryDirectory() as d:
        print("output, with log file:", await output_cost(args.log_dir or d))
    print("exit -> websocket event:", await exit_to_event_latency())


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--log-dir")
    trio.run(main, p.parse_args())
