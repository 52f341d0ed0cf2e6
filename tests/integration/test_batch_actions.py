"""start/stop/restart of many names: one call, one transaction, one outcome per name."""

from __future__ import annotations

from cli_daemon import cli_daemon, shared_cli_daemon  # noqa: F401  (fixtures)


def _sleepers(d, names, **extra):
    for name in names:
        fields = {"command": "sleep", "args": ["600"], **extra.get(name, {})}
        d.cli("--json", "create", name, *_flags(fields))


def _flags(fields):
    out = []
    for key, value in fields.items():
        if key in ("command", "args"):
            continue
        for item in value if isinstance(value, list) else [value]:
            out += [f"--{key.replace('_', '-')}", str(item)]
    return out + [fields["command"], *fields["args"]]


def test_stop_all_is_one_call_and_stops_dependants_first(cli_daemon):
    d = cli_daemon
    _sleepers(d, ["db", "api", "web"], api={"requires": ["db"], "after": ["db"]},
              web={"requires": ["api"], "after": ["api"]})
    assert d.cli("start", "web").code == 0
    for name in ("db", "api", "web"):
        d.wait_state(name, "running")
    res = d.cli("--json", "stop", "--all")
    assert res.code == 0, res.err
    records = {r["name"]: r for r in res.json}
    assert {n: r["state"] for n, r in records.items()} == {
        "db": "stopped", "api": "stopped", "web": "stopped"}
    assert records["web"]["ended_at"] <= records["api"]["ended_at"] <= records["db"]["ended_at"]


def test_each_name_gets_its_own_outcome(cli_daemon):
    d = cli_daemon
    _sleepers(d, ["a", "b"])
    res = d.cli("start", "a", "b", "nope")
    assert res.code == 1
    assert "nope" in res.err
    assert d.record("a")["state"] == "running" and d.record("b")["state"] == "running"
    again = d.cli("start", "a", "b")
    assert again.code == 0, again.err
    assert "already running" in again.out


def test_restart_of_many_keeps_ids_and_counts_one_run_each(cli_daemon):
    d = cli_daemon
    _sleepers(d, ["x", "y"])
    d.cli("start", "x", "y")
    before = {n: d.record(n) for n in ("x", "y")}
    res = d.cli("--json", "restart", "x", "y")
    assert res.code == 0, res.err
    after = {r["name"]: r for r in res.json}
    for name in ("x", "y"):
        assert after[name]["id"] == before[name]["id"]
        assert after[name]["runs"] == before[name]["runs"] + 1
        assert after[name]["pid"] != before[name]["pid"]
        assert after[name]["state"] == "running"
