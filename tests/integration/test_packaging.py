"""The package a host installs: unit, man pages, completions, and a real .deb.

The .deb test builds the package from this tree with ``packaging/build-deb.sh``, installs
it with ``dpkg -i``, runs the installed programs (a daemon on a temp config, driven by the
installed CLI), checks the unit with ``systemd-analyze verify`` and purges it again.
"""

from __future__ import annotations

import configparser
import gzip
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "dd-procmgrd.service"


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # unit keys are case-sensitive
    parser.read(path)
    return parser


def test_unit_declares_notify_watchdog_delegation_and_reload():
    unit = read_unit(UNIT)["Service"]
    assert unit["Type"] == "notify"
    assert int(unit["WatchdogSec"]) > 0
    assert unit["Delegate"] == "yes"
    assert unit["KillMode"] == "mixed"
    assert "-HUP" in unit["ExecReload"]
    assert unit["ExecStart"].split()[0] == "/usr/bin/dd-procmgrd"
    assert int(unit["LimitNOFILE"]) >= 4096


def test_man_pages_cover_every_command_and_render_cleanly(tmp_path):
    from dd_procmgr_cli.app import app
    from dd_procmgr_cli.manpage import write_pages

    import asyncclick as click

    cli_page, daemon_page = write_pages(str(tmp_path), version="0")
    text = Path(cli_page).read_text()
    ctx = click.Context(app, info_name="dd-procmgr")
    for name in app.list_commands(ctx):
        assert f'.SS "dd\\-procmgr {name.replace("-", chr(92) + "-")} ' in text, name
    daemon = Path(daemon_page).read_text()
    for flag in ("config\\-dir", "state\\-dir", "token\\-file", "SIGHUP"):
        assert flag in daemon
    for page in (cli_page, daemon_page):
        out = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page],
                             capture_output=True, text=True, check=True)
        assert out.stderr == "", out.stderr


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_command_prints_a_script_for_each_shell(shell):
    out = subprocess.run([sys.executable, "-m", "dd_procmgr_cli.entry", "completion", shell],
                         capture_output=True, text=True, check=True)
    assert "_DD_PROCMGR_COMPLETE" in out.stdout


def test_bash_completion_script_registers_and_completes_commands(tmp_path):
    script = subprocess.run([sys.executable, "-m", "dd_procmgr_cli.entry", "completion", "bash"],
                            capture_output=True, text=True, check=True).stdout
    (tmp_path / "dd-procmgr.bash").write_text(script)
    shim = tmp_path / "dd-procmgr"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m dd_procmgr_cli.entry \"$@\"\n")
    shim.chmod(0o755)
    probe = (f'PATH={tmp_path}:$PATH; source {tmp_path}/dd-procmgr.bash; complete -p dd-procmgr; '
             'COMP_WORDS=(dd-procmgr res); COMP_CWORD=1; _dd_procmgr_completion dd-procmgr; '
             'printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert "complete -o nosort -F _dd_procmgr_completion dd-procmgr" in out.stdout
    assert {"restart", "resume"} <= set(out.stdout.split())


def test_unknown_completion_shell_is_a_usage_error():
    out = subprocess.run([sys.executable, "-m", "dd_procmgr_cli.entry", "completion", "tcsh"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "tcsh" in out.stderr


def _installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                         capture_output=True, text=True)
    return out.returncode == 0 and "installed" in out.stdout.split()


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def built_deb(tmp_path):
    if os.geteuid() != 0 or shutil.which("dpkg-deb") is None:
        pytest.skip("building and installing a .deb needs root and dpkg (Debian-based host)")
    if _installed("dd-procmgr"):
        pytest.skip("dd-procmgr is installed on this host already; this test would remove it")
    out = subprocess.run(["bash", str(ROOT / "packaging" / "build-deb.sh")],
                         env={**os.environ, "PYTHON": sys.executable,
                              "OUT_DIR": str(tmp_path / "dist")},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    deb = Path(out.stdout.strip().splitlines()[-1])
    assert deb.is_file()
    yield deb
    subprocess.run(["dpkg", "--purge", "dd-procmgr"], capture_output=True)


@pytest.mark.root
def test_deb_installs_runs_and_purges_cleanly(built_deb, tmp_path):
    contents = subprocess.run(["dpkg-deb", "-c", str(built_deb)], capture_output=True,
                              text=True, check=True).stdout
    for path in ("./usr/bin/dd-procmgrd", "./usr/bin/dd-procmgr",
                 "./lib/systemd/system/dd-procmgrd.service", "./etc/pm/processes.d/",
                 "./usr/share/man/man1/dd-procmgr.1.gz", "./usr/share/man/man8/dd-procmgrd.8.gz",
                 "./usr/share/bash-completion/completions/dd-procmgr",
                 "./usr/share/zsh/vendor-completions/_dd-procmgr",
                 "./usr/share/fish/vendor_completions.d/dd-procmgr.fish"):
        assert path in contents, path

    subprocess.run(["dpkg", "-i", str(built_deb)], capture_output=True, text=True, check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    for prog in ("dd-procmgrd", "dd-procmgr"):
        out = subprocess.run([f"/usr/bin/{prog}", "--version"], capture_output=True,
                             text=True, env=env, check=True)
        assert out.stdout.startswith(f"{prog} ")
    verify = subprocess.run(["systemd-analyze", "verify", "/lib/systemd/system/dd-procmgrd.service"],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    with gzip.open("/usr/share/man/man8/dd-procmgrd.8.gz", "rt") as page:
        assert ".SH OPTIONS" in page.read()

    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "sleeper.yaml").write_text("command: sleep\nargs: ['1000']\nauto_start: true\n")
    sock = tmp_path / "pm.sock"
    daemon = subprocess.Popen(["/usr/bin/dd-procmgrd", "--config-dir", str(conf), "--socket",
                               str(sock), "--state-dir", str(tmp_path / "state"), "--no-cgroups"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cli = ["/usr/bin/dd-procmgr", "--socket", str(sock)]
    try:
        _wait_for(lambda: subprocess.run(cli + ["ping"], capture_output=True, env=env).returncode == 0)
        out = subprocess.run(cli + ["--json", "describe", "sleeper"], capture_output=True,
                             text=True, env=env, check=True)
        assert '"state": "running"' in out.stdout
        subprocess.run(cli + ["shutdown"], capture_output=True, env=env, check=True)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()

    subprocess.run(["dpkg", "--purge", "dd-procmgr"], capture_output=True, text=True, check=True)
    assert not _installed("dd-procmgr")
    for path in ("/usr/bin/dd-procmgrd", "/usr/bin/dd-procmgr", "/usr/lib/dd-procmgr",
                 "/lib/systemd/system/dd-procmgrd.service"):
        assert not os.path.exists(path), path
