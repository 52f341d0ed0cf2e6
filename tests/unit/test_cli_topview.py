"""What dd-procmgr top shows, laid out as text without curses."""

from __future__ import annotations

from dd_procmgr_cli.topview import FOOTER, TopModel

BATCH = {
    "time": 1000.0,
    "processes": [
        {"name": "api", "state": "running", "pid": 10, "restarts": 2, "health": "healthy",
         "started_at": 900.0},
        {"name": "worker", "state": "failed", "pid": None, "restarts": 7, "health": "none"},
    ],
    "stats": [{"name": "api", "cpu_percent": 12.5, "memory_current": 50 * 1024 * 1024},
              {"name": "worker", "cpu_percent": None, "memory_current": 0}],
}


def model() -> TopModel:
    m = TopModel()
    m.apply_batch(BATCH)
    return m


def test_rows_show_state_cpu_memory_restarts_and_health():
    lines = [line.text for line in model().screen(120, 20, now=1000.0)]
    api = next(line for line in lines if "api" in line)
    assert "running" in api and "12.5" in api and "50 MiB" in api and "healthy" in api
    assert api.startswith(">")  # the first row is selected
    assert lines[-1] == FOOTER and len(lines) == 20


def test_events_change_a_state_before_the_next_batch():
    m = model()
    m.apply_event({"type": "state_changed", "process": "worker", "to": "backoff"})
    assert any("backoff" in line.text for line in m.screen(120, 20, now=1000.0))


def test_moving_sorting_and_filtering():
    m = model()
    m.move(1)
    assert m.selected == "worker"
    m.sort = "restarts"
    assert [r["name"] for r in m.visible()] == ["worker", "api"]
    m.set_pattern("ap*")
    assert [r["name"] for r in m.visible()] == ["api"] and m.selected == "api"


def test_the_selected_process_log_tail_is_shown_escaped():
    m = model()
    m.apply_log({"process": "api", "line": "hello\tworld", "stream": "stdout"})
    m.apply_log({"process": "worker", "line": "not this one", "stream": "stdout"})
    texts = [line.text for line in m.screen(120, 20, now=1000.0)]
    assert "── logs: api" in "\n".join(texts) and "hello\\tworld" in texts
    assert "not this one" not in texts


def test_snapshot_is_the_plain_table():
    text = model().snapshot(now=1000.0)
    assert text.splitlines()[1].split()[:3] == ["NAME", "STATE", "PID"]
    assert "worker" in text and "api" in text
