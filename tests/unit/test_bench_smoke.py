"""The benchmark harness (benchmarks/): config builders, the table, the /proc child
tracker against real children, and a smoke run of ``python -m benchmarks.run`` for our
daemon only (N = 5, no peer installed) that must leave no process behind."""

from __future__ import annotations

import configparser
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.measure import percentile
from benchmarks.peers import circus_ini, ours_process_yaml, supervisord_conf
from benchmarks.procfs import ChildTracker, is_sleep_child, read_argv, read_stat
from benchmarks.report import METRICS, ratio, scaling, table
from trio_procmgr.config.loader import load_config_dir

REPO = Path(__file__).resolve().parents[2]


def test_our_process_file_restarts_at_once_without_start_limit(tmp_path):
    (tmp_path / "p0000.yaml").write_text(ours_process_yaml())
    config = load_config_dir(tmp_path)
    assert not config.issues
    spec = config.processes["p0000"]
    assert (spec.command, list(spec.args), spec.auto_start, spec.restart) == (
        "/bin/sleep", ["3600"], True, "always")
    assert spec.restart_sec == 0 and spec.start_limit_interval == 0


def test_supervisord_conf_has_one_immediately_restarting_program_per_process(tmp_path):
    parser = configparser.RawConfigParser()
    parser.read_string(supervisord_conf(tmp_path, 3))
    programs = [s for s in parser.sections() if s.startswith("program:")]
    assert programs == ["program:p0000", "program:p0001", "program:p0002"]
    assert parser["program:p0001"]["startsecs"] == "0"
    assert parser["program:p0001"]["autorestart"] == "true"
    assert parser["supervisorctl"]["serverurl"] == f"unix://{tmp_path}/supervisor.sock"


def test_circus_ini_uses_ipc_endpoints_and_starts_no_stats_process(tmp_path):
    parser = configparser.RawConfigParser()
    parser.read_string(circus_ini(tmp_path, 2, 0.1))
    circus = parser["circus"]
    assert circus["endpoint"].startswith("ipc://") and circus["pubsub_endpoint"].startswith("ipc://")
    assert "stats_endpoint" not in circus  # circus starts circusd-stats when it is set
    assert [s for s in parser.sections() if s.startswith("watcher:")] == ["watcher:p0000", "watcher:p0001"]


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0
    assert percentile(values, 90) == 18.0
    assert percentile([3.0], 90) == 3.0


def _results(ours: dict, peers: dict[str, dict], floor: float = 1.0) -> dict:
    return {"peers": ["dd-procmgrd", *peers], "runs": {"1000": {
        "floor": {"bringup_s": floor}, "peers": {"dd-procmgrd": ours, **peers}}}}


def test_ratio_divides_ours_by_the_best_peer_in_the_right_direction():
    row = _results({"status_s": 0.05, "rpc_per_s": 100.0},
                   {"supervisord": {"status_s": 0.2, "rpc_per_s": 50.0},
                    "circus": {"status_s": 0.1, "rpc_per_s": 80.0}})["runs"]["1000"]
    by_key = {m.key: m for m in METRICS}
    assert ratio(row, by_key["status_s"]) == pytest.approx(0.5)
    assert ratio(row, by_key["rpc_per_s"]) == pytest.approx(100 / 80)


def test_table_marks_missed_targets_at_n_1000():
    text = table(_results({"bringup_s": 3.0, "status_s": 0.01},
                          {"supervisord": {"bringup_s": 5.0, "status_s": 0.1}}, floor=1.0))
    bringup = next(line for line in text.splitlines() if line.startswith("| bring-up"))
    status = next(line for line in text.splitlines() if line.startswith("| status/list"))
    assert "MISSED" in bringup and "0.60" in bringup
    assert "met" in status and "0.10" in status  # 10 ms <= 60 ms


def test_tracker_counts_real_children_and_notices_a_kill():
    tracker = ChildTracker()
    tracker.set_root(os.getpid())
    children = [subprocess.Popen(["/bin/sleep", "3600"]) for _ in range(3)]
    other = subprocess.Popen(["/bin/sleep", "3599"])
    try:
        tracker.wait_for("3 children", lambda: len(tracker.alive) == 3, timeout=5)
        assert sorted(tracker.alive) == sorted(c.pid for c in children)
        children[0].kill()
        children[0].wait()
        tracker.wait_for("one child gone", lambda: len(tracker.alive) == 2, timeout=5)
        tracker.new_children.clear()
        children.append(subprocess.Popen(["/bin/sleep", "3600"]))
        pid, _ = tracker.wait_new_child(timeout=5)
        assert pid == children[-1].pid
    finally:
        for child in children + [other]:
            child.kill()
            child.wait()
        tracker.close()


def test_only_sleep_3600_counts_as_a_child():
    assert is_sleep_child(["/bin/sleep", "3600"]) and is_sleep_child(["sleep", "3600"])
    assert not is_sleep_child(["/bin/sleep", "36"]) and not is_sleep_child(["python", "x"])


def _alive_as_sleep(pid: int) -> bool:
    stat = read_stat(pid)
    return stat is not None and stat[0] != "Z" and is_sleep_child(read_argv(pid) or [])


def test_smoke_run_for_our_daemon_only_reports_every_metric_and_leaves_nothing(tmp_path):
    out = tmp_path / "bench-results.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--skip-peers", "--ours-from", "tree",
         "--idle-sec", "0.3",
         "--restarts", "3", "--events", "3", "--rpc-sec", "0.3", "--output", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    ours = results["runs"]["5"]["peers"]["dd-procmgrd"]
    for key in ("bringup_s", "rss_mib", "idle_cpu_pct", "status_s", "restart_median_ms",
                "stop_all_s", "shutdown_s", "rpc_per_s", "event_median_ms"):
        assert ours[key] >= 0, key
    assert results["runs"]["5"]["floor"]["bringup_s"] > 0
    assert "| bring-up (all N alive) | 5 |" in done.stdout
    pids = results["runs"]["5"]["pids"]["dd-procmgrd"]
    assert len(pids["children"]) >= 5
    assert read_stat(pids["daemon"]) is None
    assert not [p for p in pids["children"] if _alive_as_sleep(p)]


def test_harness_killed_midway_leaves_no_process_behind(tmp_path):
    """SIGTERM to the harness during its run: it kills and reaps every daemon and child."""
    out = tmp_path / "r.json"
    harness = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--skip-peers", "--ours-from", "tree",
         "--idle-sec", "30",
         "--output", str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 30
        while "bring-up" not in line and time.monotonic() < deadline:
            line = harness.stdout.readline()
        assert "bring-up" in line
        children = _descendants(harness.pid)
        assert len([p for p in children if _alive_as_sleep(p)]) == 5
        harness.send_signal(signal.SIGTERM)
        harness.wait(30)
        assert not [p for p in children if read_stat(p) is not None]
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()


def _descendants(root: int) -> list[int]:
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := read_stat(int(entry))) is not None:
            parent[int(entry)] = stat[1]
    found, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return sorted(found)


def test_scaling_divides_by_n_and_compares_to_n_1000():
    results = {"peers": ["dd-procmgrd"], "runs": {
        "1000": {"floor": {}, "peers": {"dd-procmgrd": {"bringup_s": 1.0, "rss_mib": 40.0}}},
        "5000": {"floor": {}, "peers": {"dd-procmgrd": {"bringup_s": 10.0, "rss_mib": 200.0}}}}}
    text = scaling(results)
    bringup = next(line for line in text.splitlines() if line.startswith("| bring-up"))
    rss = next(line for line in text.splitlines() if line.startswith("| daemon RSS"))
    assert "| 1 | 2 | 2.00 |" in bringup  # 1 ms per process, then 2: not linear
    assert rss.endswith("| 1.00 |")


def test_supervisord_minfds_never_exceeds_the_hard_fd_limit():
    import resource

    from benchmarks.peers import supervisord_minfds

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert supervisord_minfds(100) == 1024
    assert supervisord_minfds(10**6) <= hard or hard == resource.RLIM_INFINITY
