"""The measurements, run against one supervisor at a time (and the bare fork+exec floor).

Times are ``time.monotonic()`` differences taken in this process: the start is just
before the action (Popen of the daemon, ``kill``, Popen of the CLI), the end is when
:class:`~benchmarks.procfs.ChildTracker` first sees the outcome in /proc.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.peers import SLEEP, Peer, process_name
from benchmarks.procfs import ChildTracker, cpu_seconds, rss_bytes

PHASE_TIMEOUT = float(os.environ.get("BENCH_PHASE_TIMEOUT", "600"))
RESTART_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 120.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def fork_exec_floor(n: int) -> dict[str, float]:
    """Spawn N ``/bin/sleep 3600`` from a bare Python loop (subprocess.Popen, which uses
    posix_spawn here: it returns once the child has exec'd), then kill and reap them."""
    children: list[subprocess.Popen] = []
    start = time.monotonic()
    try:
        for _ in range(n):
            children.append(subprocess.Popen([SLEEP, "3600"], close_fds=False))
        spawn_s = time.monotonic() - start
    finally:
        for child in children:
            child.kill()
        for child in children:
            child.wait()
    return {"bringup_s": spawn_s}


class PeerRun:
    """One supervisor daemon in its own temp dir, with N children; owns the daemon
    process and the tracker. :meth:`close` stops whatever is left (SIGTERM, then SIGKILL
    of the daemon's session) — the caller's subreaper cleanup catches the rest."""

    def __init__(self, peer: Peer, n: int, profile_dir: Path | None = None) -> None:
        self.peer = peer
        self.n = n
        self.root = Path(tempfile.mkdtemp(prefix=f"bench-{peer.name[:4]}-"))
        self.instance = f"bench-{uuid.uuid4().hex[:10]}"
        self.proc: subprocess.Popen | None = None
        self.tracker: ChildTracker | None = None
        self.profile_dir = profile_dir
        self.daemon_pid: int | None = None

    def start(self) -> float:
        """Start the daemon; seconds until all N children are alive."""
        self.peer.write_config(self.root, self.n)
        log = open(self.root / "daemon.out", "wb")
        argv = self.peer.daemon_argv(self.root, self.instance)
        self.tracker = ChildTracker()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     cwd=self.root)
        log.close()
        self.daemon_pid = self.proc.pid
        self.tracker.set_root(self.proc.pid)
        seen = self.tracker.wait_for(f"{self.n} children of {self.peer.name}",
                                     self._all_alive, PHASE_TIMEOUT, 0.001)
        return seen - t0

    def _all_alive(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.peer.name} exited with {self.proc.returncode}: "
                               f"{self.log_tail()}")
        return len(self.tracker.alive) >= self.n

    def log_tail(self) -> str:
        try:
            return (self.root / "daemon.out").read_text(errors="replace")[-2000:]
        except OSError:
            return "<no output>"

    def cli(self, argv: list[str], min_lines: int = 0) -> float:
        """Run a CLI command to completion; its wall time. Fails unless it printed at
        least ``min_lines`` lines (a status that lists every process)."""
        t0 = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PHASE_TIMEOUT)
        took = time.monotonic() - t0
        if done.returncode not in (0, 3) or len(done.stdout.splitlines()) < min_lines:
            raise RuntimeError(f"{' '.join(argv[:1] + argv[-2:])} exited {done.returncode}: "
                               f"{done.stderr[-500:]}")
        return took

    def wait_control(self, timeout: float | None = None) -> None:
        """The control endpoint answers (it may come up after the children; at N=5000 on
        a loaded box that took more than a minute, so the phase timeout applies)."""
        deadline = time.monotonic() + (PHASE_TIMEOUT if timeout is None else timeout)
        while True:
            try:
                self.cli(self.peer.status_argv(self.root))
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def resources(self, idle_s: float) -> dict[str, float]:
        """RSS with every child running, and CPU % over ``idle_s`` seconds of nothing."""
        time.sleep(1.0)
        pid = self.daemon_pid
        rss = rss_bytes(pid)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(idle_s)
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        return {"rss_mib": rss / 2**20, "idle_cpu_pct": 100.0 * (cpu1 - cpu0) / (t1 - t0)}

    def status(self, repeat: int = 5) -> dict[str, float]:
        argv = self.peer.status_argv(self.root)
        times = [self.cli(argv, min_lines=self.n) for _ in range(repeat)]
        return {"status_s": statistics.median(times)}

    def restart_latency(self, samples: int = 20) -> dict[str, float]:
        """SIGKILL one child; time until its replacement has exec'd ``sleep``."""
        tracker = self.tracker
        latencies: list[float] = []
        for i in range(samples):
            tracker.refresh()
            victims = sorted(tracker.alive)
            victim = victims[(i * 7919) % len(victims)]
            tracker.new_children.clear()
            t0 = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            try:
                _, seen = tracker.wait_new_child(timeout=RESTART_TIMEOUT)
                latencies.append(seen - t0)
                tracker.wait_for("the killed child gone", lambda: victim not in tracker.alive
                                 and len(tracker.alive) >= self.n, RESTART_TIMEOUT)
            except TimeoutError:
                # A peer that did not restart a child: say so, keep the other metrics.
                return {"restart_not_restarted": float(samples - len(latencies)),
                        **self._latency_stats(latencies)}
            time.sleep(0.02)
        return self._latency_stats(latencies)

    @staticmethod
    def _latency_stats(latencies: list[float]) -> dict[str, float]:
        if not latencies:
            return {}
        return {"restart_median_ms": statistics.median(latencies) * 1000,
                "restart_p90_ms": percentile(latencies, 90) * 1000}

    def stop_all(self) -> dict[str, float]:
        """Stop every process through the CLI while the daemon keeps running."""
        t0 = time.monotonic()
        cli = subprocess.Popen(self.peer.stop_all_argv(self.root), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
        try:
            seen = self.tracker.wait_for("every child stopped", lambda: not self.tracker.alive,
                                         PHASE_TIMEOUT, 0.001)
            cli.wait(PHASE_TIMEOUT)
            cli_done = time.monotonic()
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
        return {"stop_all_s": seen - t0, "stop_all_cli_s": cli_done - t0}

    def start_all(self) -> dict[str, float]:
        t0 = time.monotonic()
        cli = subprocess.Popen(self.peer.start_all_argv(self.root), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
        try:
            seen = self.tracker.wait_for("every child started again", self._all_alive,
                                         PHASE_TIMEOUT, 0.001)
            cli.wait(PHASE_TIMEOUT)
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
        return {"start_all_s": seen - t0}

    def shutdown(self) -> dict[str, float]:
        """SIGTERM the daemon with N children running; until it and they are gone."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            seen = self.tracker.wait_for(
                "the daemon and its children gone",
                lambda: self.proc.poll() is not None and not self.tracker.alive,
                SHUTDOWN_TIMEOUT, 0.001)
        except TimeoutError:  # reported; close() then kills what is left
            return {"shutdown_timed_out": 1.0}
        return {"shutdown_s": seen - t0}

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        if self.tracker is not None:
            for pid in self.tracker.alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.tracker.close()


def rpc_rate(socket_path: Path, name: str, seconds: float) -> dict[str, float]:
    """``describe`` calls per second over one BlockingClient connection."""
    from trio_procmgr.client import BlockingClient

    with BlockingClient(str(socket_path)) as client:
        calls, t0 = 0, time.monotonic()
        while (elapsed := time.monotonic() - t0) < seconds:
            client.call("describe", name=name)
            calls += 1
    return {"rpc_per_s": calls / elapsed}


def event_latency(socket_path: Path, name: str, samples: int) -> dict[str, float]:
    """From SIGKILL of a child to its ``process_exited`` event at a ``watch`` subscriber;
    waits for ``process_started`` (the restart) before the next kill."""
    import trio

    from trio_procmgr.client import AsyncClient

    async def main() -> list[float]:
        latencies: list[float] = []
        async with AsyncClient(str(socket_path)) as client:
            pid = (await client.describe(name))["pid"]
            events = client.watch(processes=[name], types=["process_exited", "process_started"])
            async with trio.open_nursery() as nursery:
                queue_send, queue = trio.open_memory_channel[tuple[float, dict[str, Any]]](1000)

                async def pump() -> None:
                    async for event in events:
                        await queue_send.send((time.monotonic(), event))
                nursery.start_soon(pump)
                await trio.sleep(0.2)
                for _ in range(samples):
                    t0 = time.monotonic()
                    os.kill(pid, signal.SIGKILL)
                    with trio.fail_after(30):
                        while True:
                            when, event = await queue.receive()
                            if event["type"] == "process_exited":
                                latencies.append(when - t0)
                                break
                        while True:
                            _, event = await queue.receive()
                            if event["type"] == "process_started":
                                pid = event["pid"]
                                break
                nursery.cancel_scope.cancel()
        return latencies

    latencies = trio.run(main)
    return {"event_median_ms": statistics.median(latencies) * 1000,
            "event_p90_ms": percentile(latencies, 90) * 1000}


def measure_peer(peer: Peer, n: int, *, idle_s: float, restarts: int, events: int,
                 rpc_s: float, log: Any = print, pids: dict[str, Any] | None = None,
                 results: dict[str, float] | None = None) -> dict[str, float]:
    """Every metric for one supervisor at N; the daemon and its children are gone after.
    ``pids`` receives the daemon's PID and every child PID seen (to check for leftovers);
    ``results`` receives each figure as it is measured, so a peer failing a later phase
    (circus not stopping 5000 within the phase timeout) keeps the figures it did get."""
    run = PeerRun(peer, n)
    results = {} if results is None else results
    try:
        try:
            results["bringup_s"] = run.start()
        finally:
            if pids is not None:
                pids["daemon"] = run.daemon_pid
                pids["children"] = run.tracker.seen if run.tracker else []
        log(f"  {peer.name} N={n}: bring-up {results['bringup_s']:.3f}s")
        run.wait_control()
        results.update(run.resources(idle_s))
        results.update(run.status())
        results.update(run.restart_latency(restarts))
        if peer.name == "dd-procmgrd":
            results.update(rpc_rate(peer.socket_path(run.root), process_name(0), rpc_s))
            results.update(event_latency(peer.socket_path(run.root), process_name(n - 1), events))
        results.update(run.stop_all())
        results.update(run.start_all())
        results.update(run.shutdown())
        log(f"  {peer.name} N={n}: " + ", ".join(f"{k}={v:.4g}" for k, v in results.items()))
        return results
    finally:
        run.close()
