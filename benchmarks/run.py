"""``python -m benchmarks.run``: dd-procmgrd vs supervisord vs circus, one table.

    python -m benchmarks.run                   # N = 100, 1000 and 5000, every peer
    python -m benchmarks.run --quick           # N = 5, short idle window
    python -m benchmarks.run --peers dd-procmgrd --quick   # ours only, no peer install

Peers come from PyPI into their own venv (``--venv``, default ``.bench-venv``), pinned in
``benchmarks/requirements.txt``; ours is this tree installed with ``pip install .`` into
``<venv>-ours`` (``--ours-from tree``: the one next to this interpreter). This
process makes itself a child subreaper, so whatever happens, every daemon and child it
started is killed and reaped before it exits.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import measure
from benchmarks.measure import fork_exec_floor, measure_peer
from benchmarks.peers import PEER_NAMES, Peer
from benchmarks.procfs import become_subreaper, kill_descendants
from benchmarks.report import scaling, table

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--n", default="100,1000,5000",
                   help="comma-separated process counts (default 100,1000,5000)")
    p.add_argument("--quick", action="store_true", help="N = 5, 2 s idle window, fewer samples")
    p.add_argument("--peers", default=",".join(PEER_NAMES),
                   help=f"comma-separated subset of {', '.join(PEER_NAMES)}")
    p.add_argument("--skip-peers", action="store_true", help="only dd-procmgrd (installs nothing)")
    p.add_argument("--venv", default=str(REPO / ".bench-venv"), help="venv for the peers")
    p.add_argument("--ours-from", choices=("installed", "tree"), default="installed",
                   help="run our daemon and CLI from a copy installed with `pip install .` "
                   "into VENV-ours, as a user runs them (default), or from this tree's "
                   "editable .venv (no install; what the smoke test uses)")
    p.add_argument("--idle-sec", type=float, default=None, help="idle CPU window (default 10)")
    p.add_argument("--restarts", type=int, default=None, help="restart samples (default 20)")
    p.add_argument("--events", type=int, default=None, help="event latency samples (default 100)")
    p.add_argument("--rpc-sec", type=float, default=None, help="RPC rate window (default 3 s)")
    p.add_argument("--circus-check-delay", type=float, default=0.1,
                   help="circus arbiter check_delay, its restart delay (default 0.1 s)")
    p.add_argument("--overload", action="store_true",
                   help="also measure the overload rows (dd-procmgrd only): RPC p50 with a "
                   "`yes` child, events lost by a watcher at 500 restarting")
    p.add_argument("--phase-timeout", type=float, default=None, metavar="SECONDS",
                   help="a peer taking longer than this over one phase (bring-up, stop all...) "
                   "is reported as failing it, not waited on (default $BENCH_PHASE_TIMEOUT or 600)")
    p.add_argument("--output", default="bench-results.json", help="JSON results file")
    args = p.parse_args(argv)
    if args.quick:
        args.n = "5"
    args.ns = [int(x) for x in args.n.split(",") if x.strip()]
    args.peer_list = ["dd-procmgrd"] if args.skip_peers else [
        x.strip() for x in args.peers.split(",") if x.strip()]
    unknown = set(args.peer_list) - set(PEER_NAMES)
    if unknown:
        p.error(f"unknown peer(s): {', '.join(sorted(unknown))}")
    args.idle_sec = args.idle_sec if args.idle_sec is not None else (2.0 if args.quick else 10.0)
    args.restarts = args.restarts or (5 if args.quick else 20)
    args.events = args.events or (10 if args.quick else 100)
    args.rpc_sec = args.rpc_sec if args.rpc_sec is not None else (1.0 if args.quick else 3.0)
    return args


def ensure_peer_venv(venv: Path) -> Path:
    """Create ``venv`` and install the pinned peers once (a stamp holds the pins' hash)."""
    pins = REQUIREMENTS.read_bytes()
    stamp = venv / ".bench-installed"
    digest = hashlib.sha256(pins).hexdigest()
    if not (stamp.exists() and stamp.read_text() == digest):
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "-r",
                        str(REQUIREMENTS)], check=True)
        stamp.write_text(digest)
    return venv / "bin"


def install_ours(venv: Path) -> Path:
    """This tree installed like a user's copy: ``pip install .`` (not editable, so
    byte-compiled, the C extension built, no editable-import finder, which costs every
    start of the dev venv's Python ~15 ms of imports) into ``venv``; its bin dir.
    Dependencies are installed once; our package is reinstalled at every run."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                    str(REPO)], check=True)
    return venv / "bin"


def compile_our_sources() -> None:
    """Byte-compile our own packages, as an installed copy is (pip and the .deb compile at
    install). The peers come compiled by pip; a development tree run with
    ``PYTHONDONTWRITEBYTECODE=1`` (set on these machines) would otherwise compile every
    module of ours from source at each start: ~25 ms of every CLI call, ~0.15 s of boot."""
    import compileall

    for package in ("trio_procmgr", "cli", "rpc_schema"):
        compileall.compile_dir(str(REPO / package), quiet=1)


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def raise_fd_limit() -> None:
    """Every supervisor needs a few fds per child; they inherit this limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.phase_timeout is not None:
        measure.PHASE_TIMEOUT = args.phase_timeout
    ours_bin = (install_ours(Path(args.venv + "-ours")) if args.ours_from == "installed"
                else Path(sys.executable).parent)
    peer_bin = ensure_peer_venv(Path(args.venv)) if set(args.peer_list) - {"dd-procmgrd"} else None
    peers = [Peer(name, ours_bin if name == "dd-procmgrd" else peer_bin,
                  circus_check_delay=args.circus_check_delay) for name in args.peer_list]
    results: dict[str, Any] = {"machine": machine(), "peers": args.peer_list, "runs": {},
                               "settings": {"ours_from": args.ours_from,
                                            "idle_sec": args.idle_sec, "restarts": args.restarts,
                                            "events": args.events,
                                            "circus_check_delay": args.circus_check_delay}}
    for n in args.ns:
        print(f"N = {n}", flush=True)
        row: dict[str, Any] = {"floor": fork_exec_floor(n), "peers": {}, "errors": {},
                               "pids": {}}
        print(f"  fork+exec floor: {row['floor']['bringup_s']:.3f}s", flush=True)
        for peer in peers:
            try:
                measure_peer(
                    peer, n, idle_s=args.idle_sec, restarts=args.restarts, events=args.events,
                    rpc_s=args.rpc_sec, log=lambda s: print(s, flush=True),
                    pids=row["pids"].setdefault(peer.name, {}),
                    results=row["peers"].setdefault(peer.name, {}))
            except Exception as exc:  # a peer failing must not lose the others' figures
                row["errors"][peer.name] = f"{type(exc).__name__}: {exc}"
                print(f"  {peer.name} N={n} FAILED: {row['errors'][peer.name]}", flush=True)
            finally:
                left = kill_descendants()
                if left:
                    print(f"  (killed {left} leftover processes after {peer.name})", flush=True)
        results["runs"][str(n)] = row
    if args.overload:
        from benchmarks import overload

        print("overload rows (dd-procmgrd)", flush=True)
        results["overload"] = overload.measure(n=50 if args.quick else 500,
                                               storm_s=3.0 if args.quick else 10.0,
                                               pings=100 if args.quick else 500)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    become_subreaper()
    raise_fd_limit()
    compile_our_sources()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        results = run(args)
    finally:
        kill_descendants()
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    print(f"\n{m['date']}; {m['nproc']} x {m['cpu_model']}; Linux {m['kernel']}; "
          f"Python {m['python']}\n")
    print(table(results))
    per_process = scaling(results)
    if per_process:
        print("\n" + per_process)
    if "overload" in results:
        from benchmarks import overload

        print("\n" + overload.rows(results["overload"]))
    print(f"\nJSON: {args.output}")
    errors = {n: row["errors"] for n, row in results["runs"].items() if row["errors"]}
    if errors:
        print(f"errors: {json.dumps(errors, indent=2)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
