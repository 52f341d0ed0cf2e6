"""``python -m benchmarks.memprofile --n 1000``: where the daemon's memory goes.

Starts our daemon (the bench config: N ``sleep 3600``), waits for every child, then prints
``/proc/PID/smaps_rollup`` and, with ``--tracemalloc``, the top allocation sites of a
tracemalloc snapshot grouped by file (and by line with ``--by line``). tracemalloc itself
inflates RSS, so read the RSS of a run without it. The snapshot is taken by the daemon
process on SIGRTMIN+1 (a handler this wrapper installs before the daemon's ``main``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

from benchmarks.peers import Peer
from benchmarks.procfs import ChildTracker, become_subreaper, kill_descendants

WRAPPER = """
import signal, sys, tracemalloc
tracemalloc.start({frames})
def dump(signum, frame):
    tracemalloc.take_snapshot().dump({out!r} + ".tmp")
    with open({out!r} + ".modules", "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
    import os
    os.rename({out!r} + ".tmp", {out!r})
signal.signal(signal.SIGRTMIN + 1, dump)  # SIGUSR2 is the daemon's re-exec
from trio_procmgr.daemon.main import main
sys.exit(main({argv!r}))
"""


def smaps_rollup(pid: int) -> str:
    """The kernel's summary of the process's memory (Rss, Pss, Anonymous...)."""
    return Path(f"/proc/{pid}/smaps_rollup").read_text()


def print_top(snapshot_path: Path, key: str, limit: int) -> None:
    snapshot = tracemalloc.Snapshot.load(str(snapshot_path))
    stats = snapshot.statistics(key)
    total = sum(s.size for s in stats)
    print(f"tracemalloc total {total / 2**20:.1f} MiB in {sum(s.count for s in stats)} blocks")
    for stat in stats[:limit]:
        frame = stat.traceback[0]
        where = frame.filename if key == "filename" else f"{frame.filename}:{frame.lineno}"
        print(f"{stat.size / 2**10:10.1f} KiB {stat.count:8d}  {where}")


def run(n: int, trace: bool, key: str, limit: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="memprof-"))
    peer = Peer("dd-procmgrd", Path(sys.executable).parent)
    peer.write_config(root, n)
    argv = peer.daemon_argv(root, f"memprof-{uuid.uuid4().hex[:8]}")[1:]
    snap = root / "snapshot.tm"
    code = WRAPPER.format(frames=1, out=str(snap), argv=argv)
    cmd = [sys.executable, "-c", code] if trace else [peer.bin_dir / "dd-procmgrd", *argv]
    tracker = ChildTracker()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True, cwd=root)
    tracker.set_root(proc.pid)
    try:
        seen = tracker.wait_for(f"{n} children", lambda: len(tracker.alive) >= n, 600, 0.01)
        print(f"bring-up {seen - t0:.3f} s")
        time.sleep(1.0)
        print(smaps_rollup(proc.pid))
        if trace:
            os.kill(proc.pid, signal.SIGRTMIN + 1)
            deadline = time.monotonic() + 120
            while not snap.exists():
                if time.monotonic() > deadline:
                    raise TimeoutError("no snapshot from the daemon")
                time.sleep(0.2)
            print_top(snap, key, limit)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        tracker.close()
        kill_descendants()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.memprofile", description=__doc__)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--tracemalloc", action="store_true")
    p.add_argument("--by", choices=("filename", "lineno"), default="filename")
    p.add_argument("--limit", type=int, default=30)
    args = p.parse_args()
    become_subreaper()
    run(args.n, args.tracemalloc, args.by, args.limit)


if __name__ == "__main__":
    main()
