"""Chaos (SPEC §15, issue 13 item 7): ~100 mixed services, seeded random SIGKILLs of
children and of the daemon itself (restarted on the same state dir), then invariants from
/proc and the RPC. Bounded: a few rounds, well under a minute. Select with ``-m chaos``;
``CHAOS_SEED`` replays a run."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from continuity_daemon import daemon_factory, pid_alive, wait_for, write  # noqa: F401

SEED = int(os.environ.get("CHAOS_SEED", "20261201"))
POLICIES = ["always"] * 40 + ["on-failure"] * 30 + ["never"] * 20 + ["oneshot"] * 10
RUNTIME = 5  # created over the RPC, restart always: must survive every daemon crash


def spec(policy: str) -> str:
    if policy == "oneshot":
        return "command: 'true'\nprocess_type: oneshot\nauto_start: true\n"
    return (f"command: sleep\nargs: ['3600']\nauto_start: true\nrestart: {policy}\n"
            "restart_sec: 0.1\nstart_limit_burst: 1000\n")


def main_pids_of_cgroups(d) -> dict[str, list[int]]:
    from trio_procmgr.platform.cgroups import CgroupManager

    cg = CgroupManager.detect(d.instance)
    return {name: cg.members(f"{name}.service") or [] for name in d.records()}


def zombies() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    data = f.read()
            except OSError:
                continue
            if data[data.rindex(")") + 2] == "Z":
                found.append(int(entry))
    return found


def mismatches(recs: dict, kills: dict[str, int], policy: dict[str, str]) -> dict[str, dict]:
    """Services not (yet) where their policy and the kills say."""
    wrong = {}
    for name, pol in policy.items():
        r = recs[name]
        if pol == "oneshot":
            ok = r["state"] == "exited"
        elif pol == "never" and kills[name]:
            ok = r["state"] == "failed"
        else:
            ok = r["state"] == "running" and r["restarts"] == (kills[name] if pol != "never" else 0)
        if not ok:
            wrong[name] = {**r, "kills": kills[name]}
    return wrong


def settled(d, kills: dict[str, int], policy: dict[str, str]):
    """Every record, once every service is where its policy and the kills say; else None."""
    recs = d.records()
    return None if mismatches(recs, kills, policy) else recs


def wait_settled(d, kills, policy, what: str) -> dict:
    try:
        return wait_for(lambda: settled(d, kills, policy), timeout=40, what=what)
    except AssertionError:
        wrong = mismatches(d.records(), kills, policy)
        raise AssertionError(f"{what} (seed {SEED}): {list(wrong.values())[:3]}") from None


@pytest.mark.chaos
@pytest.mark.linux_only("each daemon crash must be followed by adoption of the running services, "
                        "which needs a pidfd on a pid the daemon did not spawn; the no-duplicate "
                        "invariant is read from the service cgroups")
def test_random_kills_of_children_and_of_the_daemon_keep_every_invariant(daemon_factory):
    rng = random.Random(SEED)
    d = daemon_factory()
    policy = {f"s{i:03d}-{p}": p for i, p in enumerate(POLICIES)}
    for name, pol in policy.items():
        write(d.config_dir / f"{name}.yaml", spec(pol))
    d.start()
    for i in range(RUNTIME):
        name = f"rt{i}"
        d.call("create", name=name, config={"command": "sleep", "args": ["3600"],
                                             "restart": "always", "restart_sec": 0.1}, start=True)
        policy[name] = "always"
    kills = dict.fromkeys(policy, 0)
    began = time.monotonic()
    wait_settled(d, kills, policy, "boot")
    crashes = 0
    for round_no in range(10):
        recs = d.records()
        running = sorted(n for n, r in recs.items() if r["state"] == "running"
                         and policy[n] != "oneshot")
        for name in rng.sample(running, k=min(12, len(running))):
            os.kill(recs[name]["pid"], signal.SIGKILL)
            kills[name] += 1
        mode = rng.choice(["settle", "crash-now", "crash-settled", "reexec"])
        if mode == "crash-now":  # the daemon dies amid the exits and restarts it caused
            d.crash()
            crashes += 1
            for name in rng.sample(running, k=4):  # and some die while no daemon runs
                pid = recs[name]["pid"]
                if policy[name] != "never" or not kills[name]:
                    if _kill_if_same(pid, recs[name]):
                        kills[name] += 1
            d.start()
        wait_settled(d, kills, policy, f"round {round_no} ({mode}): every restart per policy")
        if mode in ("crash-settled", "reexec"):
            before = {n: (r["pid"], r["id"], r["runs"], r["restarts"], r["state"])
                      for n, r in d.records().items()}
            if mode == "reexec":
                reexecs = d.log.read_text().count("re-executed in place")
                d.call("daemon_reexec")
                wait_for(lambda: d.log.read_text().count("re-executed in place") > reexecs,
                         timeout=60, what="the re-exec")
                wait_for(d.answers)
            else:
                d.crash()
                crashes += 1
                d.start()
            after = {n: (r["pid"], r["id"], r["runs"], r["restarts"], r["state"])
                     for n, r in d.records().items()}
            assert after == before, f"a daemon {mode} changed nothing (seed {SEED})"
    assert crashes >= 1, f"seed {SEED} never crashed the daemon: pick another"
    recs = settled(d, kills, policy)
    assert recs is not None
    for name, pol in policy.items():
        expected_runs = 1 + (kills[name] if pol in ("always", "on-failure") else 0)
        assert recs[name]["runs"] == expected_runs, (name, recs[name], kills[name], SEED)
    live = [r["pid"] for r in recs.values() if r["pid"]]
    members = main_pids_of_cgroups(d)
    assert all(len(members[n]) == (1 if recs[n]["pid"] else 0) for n in recs), "no duplicate"
    assert all(members[n] == [recs[n]["pid"]] for n in recs if recs[n]["pid"])
    assert not set(zombies()) & set(live)
    assert not [z for z in zombies() if _parent(z) == d.proc.pid], "no zombie"
    assert d.stop() == 0
    assert not [p for p in live if pid_alive(p)], "no orphan after shutdown"
    assert time.monotonic() - began < 60
    print(f"chaos seed {SEED}: {len(policy)} services, {sum(kills.values())} child kills, "
          f"{crashes} daemon crashes, {d.log.read_text().count('re-executed in place')} "
          f"re-execs, {time.monotonic() - began:.1f} s")


def _kill_if_same(pid: int | None, rec: dict) -> bool:
    """SIGKILL ``pid`` if it is still the run ``rec`` describes (it may have been
    restarted meanwhile: then the kill would not be the one counted)."""
    if not pid or not pid_alive(pid):
        return False
    os.kill(pid, signal.SIGKILL)
    return True


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(")") + 2:].split()[1])
