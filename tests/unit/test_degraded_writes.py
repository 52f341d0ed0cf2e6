"""Writers of the log and state dirs under failing disks: counted, logged once per episode,
retried (SPEC §15). Real files and real errors (/dev/full, a directory in a file's place),
no processes; the daemon-level behaviour is in tests/integration/test_degraded.py."""

from __future__ import annotations

import logging
import os
import shutil

import pytest

from trio_procmgr import logfiles
from trio_procmgr.engine.spawn_journal import SpawnJournal, fold
from trio_procmgr.engine.state_store import StateStore
from trio_procmgr.logfiles import BUFFER, RotatingLogFile


def test_a_full_disk_drops_and_counts_lines_with_one_warning(caplog):
    writer = RotatingLogFile("/dev/full", max_bytes=0, backups=0)  # every write: ENOSPC
    line = b"x" * 99 + b"\n"
    with caplog.at_level(logging.WARNING, logger="trio_procmgr.logfiles"):
        for _ in range(2 * BUFFER // len(line)):
            writer.write(line)
        writer.flush()
    assert "No space left" in writer.error
    assert writer.write_errors >= 1
    assert writer.lines_dropped >= BUFFER // len(line) - 1, "what does not fit is dropped"
    assert len([r for r in caplog.records if "/dev/full" in r.getMessage()]) == 1
    writer.close()


def test_lines_accepted_during_an_episode_are_written_once_the_disk_is_back(tmp_path, monkeypatch):
    monkeypatch.setattr(logfiles, "RETRY_INTERVAL", 0.0)
    blocker = tmp_path / "logs"
    blocker.write_text("not a directory")  # the log dir cannot be made: ENOTDIR/EEXIST
    writer = RotatingLogFile(str(blocker / "svc.log"), max_bytes=0, backups=0)
    writer.write(b"during 1\n")
    writer.write(b"during 2\n")
    writer.flush()
    assert writer.error is not None and writer.write_errors >= 1 and writer.dirty
    blocker.unlink()
    writer.write(b"after\n")
    writer.flush()
    assert writer.error is None and writer.lines_dropped == 0
    assert (blocker / "svc.log").read_bytes() == b"during 1\nduring 2\nafter\n"
    writer.close()


def test_a_failed_state_write_is_counted_once_logged_and_retried_with_the_next(tmp_path, caplog):
    store = StateStore(str(tmp_path))
    (tmp_path / "ids.json").mkdir()  # a rename onto a non-empty directory fails
    (tmp_path / "ids.json" / "x").write_text("")
    with caplog.at_level(logging.WARNING, logger="trio_procmgr.state"):
        assert store.save_ids({"a": "id-a"}) is False
        assert store.save_processes({}) is False  # blocked behind ids.json, retried first
        assert store.write_errors == 2 and "ids.json" in store.error
        shutil.rmtree(tmp_path / "ids.json")
        assert store.save_processes({"p": {"id": "id-p"}}) is True
    assert store.error is None and store.load_ids() == {"a": "id-a"}
    assert "p" in (tmp_path / "processes.json").read_text()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "cannot write" in m]) == 1, "one error per episode"
    assert any("writing again" in m for m in messages)
    assert not [n for n in os.listdir(tmp_path) if ".tmp." in n], "no temp file left"


def test_a_journal_that_missed_a_line_is_rewritten_whole_by_the_next_change(tmp_path):
    journal = SpawnJournal(str(tmp_path))
    os.mkdir(journal.path)  # appending fails (EISDIR)
    journal.record_spawn({"name": "a", "pid": 101, "start_time": 1})
    assert journal.write_errors == 1 and journal.error is not None
    os.rmdir(journal.path)
    journal.record_spawn({"name": "b", "pid": 102, "start_time": 2})
    assert journal.error is None
    with open(journal.path, "rb") as f:
        assert {n: e["pid"] for n, e in fold(f).items()} == {"a": 101, "b": 102}
    journal.close()


@pytest.mark.parametrize("backups", [0, 2])
def test_rotation_keeps_files_within_max_bytes_with_the_own_buffer(tmp_path, backups):
    path = tmp_path / "x.log"
    writer = RotatingLogFile(str(path), max_bytes=200, backups=backups)
    for i in range(300):
        writer.write(f"line {i:04d}\n".encode())
    writer.close()
    assert path.stat().st_size <= 200
    assert sorted(os.listdir(tmp_path)) == ["x.log"] + [f"x.log.{n}" for n in range(1, backups + 1)]
    assert path.read_bytes().endswith(b"line 0299\n")
