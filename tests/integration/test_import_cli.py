"""``dd-procmgr import`` end to end: the real binary, real files, ``validate`` on its output."""

from __future__ import annotations

import json
import os
import subprocess

from cli_daemon import CLI

NGINX = "/lib/systemd/system/nginx.service"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", **(env or {})})


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_stdout_is_one_document_that_validates_and_findings_go_to_stderr(tmp_path):
    unit = write(tmp_path / "web.service", "[Unit]\nDescription=web\nAfter=network.target\n"
                 "[Service]\nExecStart=/usr/bin/python3 -m http.server\nRestart=always\n"
                 "ProtectSystem=full\n[Install]\nWantedBy=multi-user.target\n")
    done = run("import", "systemd", unit)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# converted by `dd-procmgr import systemd`")
    assert f"{unit}:3: After=network.target has no equivalent (" in done.stderr
    assert f"{unit}:7: ProtectSystem=full has no equivalent (" in done.stderr
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "imported.yaml").write_text(done.stdout)
    checked = run("validate", str(conf))
    assert checked.returncode == 0, checked.stdout


def test_output_dir_gets_one_file_per_process_and_socket(tmp_path):
    out = tmp_path / "out"
    files = [write(tmp_path / "echo.service", "[Service]\nExecStart=/bin/cat\n"),
             write(tmp_path / "echo.socket", "[Socket]\nListenStream=127.0.0.1:7007\n")]
    done = run("import", "systemd", *files, "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out)) == ["echo.socket.yaml", "echo.yaml"]
    assert f"wrote {out}/echo.yaml" in done.stderr
    assert run("validate", str(out)).returncode == 0
    again = run("import", "systemd", *files, "-o", str(out))
    assert again.returncode == 1 and "exists already (use --force" in again.stderr
    assert run("import", "systemd", *files, "-o", str(out), "--force").returncode == 0


def test_a_bad_file_is_reported_and_not_written_while_the_good_one_is(tmp_path):
    out = tmp_path / "out"
    good = write(tmp_path / "good.service", "[Service]\nExecStart=/bin/true\n")
    bad = write(tmp_path / "bad.service", "[Service]\nExecStart=/bin/true \"unclosed\n")
    missing = str(tmp_path / "missing.service")
    done = run("import", "systemd", good, bad, missing, "-o", str(out))
    assert done.returncode == 1
    assert f"{bad}:2: error: ExecStart=: unbalanced \" quote" in done.stderr
    assert f"{missing}: error: cannot read: No such file or directory" in done.stderr
    assert os.listdir(out) == ["good.yaml"]


def test_nothing_convertible_prints_nothing_and_fails(tmp_path):
    junk = write(tmp_path / "eco.json", "{not json")
    done = run("import", "pm2", junk)
    assert done.returncode == 1 and done.stdout == ""
    assert f"{junk}:1: error: not valid JSON" in done.stderr


def test_supervisord_and_pm2_files_convert_through_the_cli(tmp_path):
    conf = write(tmp_path / "app.conf", "[program:api]\ncommand=/bin/sleep %(ENV_NAP)s\n"
                                        "[program:jobs]\ncommand=/bin/sleep 100\npriority=2000\n"
                                        "[group:all]\nprograms=api,jobs\n")
    eco = write(tmp_path / "ecosystem.json", json.dumps({"apps": [{"name": "ui", "script": "/bin/sleep",
                                                                   "args": ["100"], "watch": True}]}))
    out = tmp_path / "out"
    sup = run("import", "supervisord", conf, "-o", str(out), env={"NAP": "30"})
    pm2 = run("import", "pm2", eco, "-o", str(out))
    assert (sup.returncode, pm2.returncode) == (0, 0), sup.stderr + pm2.stderr
    assert sorted(os.listdir(out)) == ["all.group.yaml", "api.yaml", "jobs.yaml", "ui.yaml"]
    assert "watch=true has no equivalent" in pm2.stderr
    checked = run("validate", str(out))
    assert checked.returncode == 0, checked.stdout


def test_unknown_source_is_a_usage_error(tmp_path):
    done = run("import", "upstart", str(tmp_path / "x.conf"))
    assert done.returncode == 2


def test_json_gives_the_converted_maps_and_every_finding(tmp_path):
    unit = write(tmp_path / "w.service", "[Service]\nExecStart=/bin/sleep 9\nNice=5\n")
    done = run("import", "systemd", unit, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is True and doc["processes"]["w"]["args"] == ["9"]
    assert doc["findings"] == [{"file": unit, "line": 3, "error": False,
                                "message": "Nice=5 has no equivalent (scheduling priority is not set; wrap the command with nice)"}]
