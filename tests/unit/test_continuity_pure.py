"""The pure parts of continuity: the spawn journal's fold, the adoption decision and the
re-exec snapshot's validation (no processes)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_procmgr.daemon import handover
from trio_procmgr.engine import output_fifo
from trio_procmgr.engine.adoption import decide
from trio_procmgr.engine.spawn_journal import SpawnJournal, exit_line, fold, spawn_line


def test_fold_keeps_the_last_spawn_of_each_name_until_its_own_exit():
    lines = [spawn_line(name="a", pid=10, start_time=1), spawn_line(name="b", pid=20, start_time=2),
             exit_line("a", 10), spawn_line(name="a", pid=11, start_time=3),
             exit_line("b", 99)]  # an exit of another pid does not end b
    assert {n: e["pid"] for n, e in fold(lines).items()} == {"a": 11, "b": 20}


def test_fold_skips_torn_and_foreign_lines():
    lines = [spawn_line(name="a", pid=10, start_time=1), b'{"op": "spawn", "name": "b", "pi',
             b"[1, 2]", b'{"op": "spawn", "pid": 5}', b""]
    assert list(fold(lines)) == ["a"]


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 5), st.booleans()), max_size=40))
def test_fold_agrees_with_replaying_the_events(events):
    live: dict[str, int] = {}
    lines = []
    for name, pid, is_exit in events:
        if is_exit:
            lines.append(exit_line(name, pid))
            if live.get(name) == pid:
                del live[name]
        else:
            lines.append(spawn_line(name=name, pid=pid, start_time=0))
            live[name] = pid
    assert {n: e["pid"] for n, e in fold(lines).items()} == live


def test_journal_compacts_to_its_live_entries(tmp_path, monkeypatch):
    monkeypatch.setattr("trio_procmgr.engine.spawn_journal.COMPACT_SLACK", 5)
    j = SpawnJournal(str(tmp_path))
    for pid in range(1, 20):
        j.record_spawn({"name": "a", "pid": pid, "start_time": pid})
        j.record_exit("a", pid)
    j.record_spawn({"name": "b", "pid": 100, "start_time": 7})
    j.close()
    assert len((tmp_path / "spawns.journal").read_bytes().splitlines()) < 10
    assert SpawnJournal(str(tmp_path)).load() == {"b": {"op": "spawn", "name": "b", "pid": 100,
                                                        "start_time": 7}}


def test_decide_adopts_configured_restarts_changed_and_stops_unconfigured():
    live = {"same": {"fingerprint": "x"}, "changed": {"fingerprint": "old"},
            "gone": {"fingerprint": "y"}, "legacy": {}}
    d = decide(live, {"same": "x", "changed": "new", "legacy": "z"})
    assert d.adopt == ["changed", "legacy", "same"]
    assert d.restart == ["changed"]
    assert d.stop == ["gone"]


def test_a_snapshot_of_another_version_is_refused():
    with pytest.raises(ValueError, match="version"):
        handover.validate({"version": 99})
    with pytest.raises(ValueError, match="readers"):
        handover.validate({"version": handover.VERSION, "records": {}, "listeners": {}})


def test_take_reads_the_memfd_and_hides_it_from_children():
    snap = {"version": handover.VERSION, "at": 1.0, "records": {}, "readers": {},
            "listeners": {}}
    fd = handover.write_memfd(snap)
    env = {handover.ENV: str(fd)}
    assert handover.take(env) == snap
    assert handover.ENV not in env
    with pytest.raises(OSError):
        os.fstat(fd)  # closed once read


def test_an_unreadable_snapshot_falls_back_to_the_journal():
    assert handover.take({handover.ENV: "not-a-fd"}) is None


def test_output_fifo_never_gives_the_writer_epipe_and_holds_a_megabyte(tmp_path):
    (cout, cerr), (rout, rerr), paths = output_fifo.create(str(tmp_path), "k.1")
    os.close(rout)  # no reader at all: the writer end is itself a reader
    assert output_fifo.pipe_size(cout) >= 64 * 1024
    os.write(cout, b"x" * 60000)  # no EPIPE, no SIGPIPE
    again = output_fifo.open_reader(paths[0])
    assert len(os.read(again, 100000)) == 60000  # what was written meanwhile waits
    for fd in (cout, cerr, rerr, again):
        os.close(fd)
    output_fifo.remove(paths)
    assert not any(os.path.exists(p) for p in paths)
