"""``update`` of a file-defined process is a persisted layer over its file (issue 11.5).

Against the real daemon: the layer survives ``reload-config`` and a daemon restart, shows
in ``describe`` (``overrides``, ``sources``), and goes away with the file.
"""

from __future__ import annotations

from cli_daemon import own_cli_daemon  # noqa: F401  (fixture)

WEB = "command: sleep\nargs: ['1000']\nrestart_sec: 3\ndescription: {desc}\n"


def spec_of(daemon, name: str) -> dict:
    return daemon.record(name)["spec"]


def test_an_update_survives_reload_and_daemon_restart_and_shows_in_describe(own_cli_daemon):
    d = own_cli_daemon
    path = d.write_config("web", WEB.format(desc="first"))
    assert d.cli("reload-config").code == 0
    assert d.cli("update", "web", "--restart-sec", "9").code == 0

    described = d.record("web")
    assert described["overrides"] == {"restart_sec": 9.0}
    assert described["sources"] == [str(path), str(d.state_dir / "overrides.json")]
    assert spec_of(d, "web")["restart_sec"] == 9.0

    d.write_config("web", WEB.format(desc="second"))
    assert d.cli("reload-config").code == 0
    spec = spec_of(d, "web")
    assert (spec["restart_sec"], spec["description"]) == (9.0, "second")

    d.stop()
    d.start()
    assert spec_of(d, "web")["restart_sec"] == 9.0
    assert d.record("web")["sources"][0] == str(path)

    path.unlink()
    assert d.cli("reload-config").code == 0
    d.write_config("web", WEB.format(desc="third"))
    assert d.cli("reload-config").code == 0
    assert spec_of(d, "web")["restart_sec"] == 3.0 and d.record("web")["overrides"] == {}


def test_a_runtime_created_process_has_no_layer_and_says_so(own_cli_daemon):
    d = own_cli_daemon
    assert d.cli("create", "adhoc", "sleep", "1000").code == 0
    assert d.cli("update", "adhoc", "--restart-sec", "7").code == 0
    described = d.record("adhoc")
    assert described["overrides"] == {} and described["sources"] == ["runtime"]
    assert described["spec"]["restart_sec"] == 7.0
    assert not (d.state_dir / "overrides.json").exists()


def test_deleting_a_file_defined_process_drops_its_layer(own_cli_daemon):
    d = own_cli_daemon
    d.write_config("web", WEB.format(desc="first"))
    assert d.cli("reload-config").code == 0
    assert d.cli("update", "web", "--restart-sec", "9").code == 0
    assert d.cli("delete", "web").code == 0
    assert d.cli("reload-config").code == 0  # the file brings it back, without the layer
    assert spec_of(d, "web")["restart_sec"] == 3.0 and d.record("web")["overrides"] == {}
