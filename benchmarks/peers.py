"""The supervisors under test: how each is configured, started and driven by its own CLI.

Every peer gets N independently managed entries running ``/bin/sleep 3600``, auto-started,
restarted always with the smallest delay it offers, output not written to files, control
endpoints in the run's temp dir (Unix sockets / ``ipc://``: nothing on the network).
The config text builders are pure functions so they can be read and tested alone.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

SLEEP = "/bin/sleep"
CLI_TIMEOUT = 900


def process_name(i: int) -> str:
    return f"p{i:04d}"


def ours_process_yaml() -> str:
    """One process file: restart at once (restart_sec 0, fixed backoff) and never trip the
    start limit (interval 0 disables it), so 20 kills in a row are 20 restarts."""
    return (f"command: {SLEEP}\nargs: [\"3600\"]\nauto_start: true\nrestart: always\n"
            "restart_sec: 0\nbackoff: fixed\nstart_limit_interval: 0\n")


def supervisord_minfds(n: int) -> int:
    """supervisord refuses to start when ``minfds`` exceeds RLIMIT_NOFILE's hard limit; it
    needs ~2 fds per program here (output goes nowhere), so ask for 4 per program capped at
    what the machine allows (20,000 on the bench box: 4 * 5000 + 256 was refused)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    wanted = max(1024, 4 * n + 256)
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def supervisord_conf(root: Path, n: int) -> str:
    """startsecs=0 counts a child as running at once; autorestart=true restarts it on any
    exit; output goes nowhere (NONE), like our in-memory ring keeps no file."""
    head = f"""[unix_http_server]
file={root}/supervisor.sock

[supervisord]
nodaemon=true
user=root
logfile={root}/supervisord.log
pidfile={root}/supervisord.pid
childlogdir={root}
loglevel=warn
minfds={supervisord_minfds(n)}
minprocs={max(200, n + 100)}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{root}/supervisor.sock
"""
    programs = "".join(
        f"\n[program:{process_name(i)}]\ncommand={SLEEP} 3600\nautostart=true\n"
        "autorestart=true\nstartsecs=0\nstartretries=100000\n"
        "stdout_logfile=NONE\nstderr_logfile=NONE\n" for i in range(n))
    return head + programs


def circus_ini(root: Path, n: int, check_delay: float) -> str:
    """Circus notices dead children only on its periodic check (``check_delay``; it has no
    SIGCHLD path), so that interval is its restart delay; warmup_delay 0 starts watchers
    back to back. No stats process (a stats_endpoint would start one), ipc:// endpoints."""
    head = f"""[circus]
endpoint = ipc://{root}/circus-ctl.sock
pubsub_endpoint = ipc://{root}/circus-pub.sock
statsd = false
check_delay = {check_delay}
warmup_delay = 0
loglevel = warning
logoutput = {root}/circusd.log
"""
    watchers = "".join(
        f"\n[watcher:{process_name(i)}]\ncmd = {SLEEP}\nargs = 3600\nnumprocesses = 1\n"
        "warmup_delay = 0\nrespawn = true\n" for i in range(n))
    return head + watchers


@dataclass
class Peer:
    """One supervisor: where its programs are and how to drive it in ``root``."""

    name: str
    bin_dir: Path
    circus_check_delay: float = 0.1

    def write_config(self, root: Path, n: int) -> None:
        if self.name == "dd-procmgrd":
            conf = root / "conf"
            conf.mkdir()
            text = ours_process_yaml()
            for i in range(n):
                (conf / f"{process_name(i)}.yaml").write_text(text)
        elif self.name == "supervisord":
            (root / "supervisord.conf").write_text(supervisord_conf(root, n))
        else:
            (root / "circus.ini").write_text(circus_ini(root, n, self.circus_check_delay))

    def daemon_argv(self, root: Path, instance: str) -> list[str]:
        if self.name == "dd-procmgrd":
            return [str(self.bin_dir / "dd-procmgrd"), "--config-dir", str(root / "conf"),
                    "--socket", str(root / "pm.sock"), "--state-dir", str(root / "state"),
                    "--instance", instance, "--log-level", "warning"]
        if self.name == "supervisord":
            return [str(self.bin_dir / "supervisord"), "-c", str(root / "supervisord.conf")]
        return [str(self.bin_dir / "circusd"), str(root / "circus.ini")]

    def _cli(self, root: Path) -> list[str]:
        if self.name == "dd-procmgrd":
            return [str(self.bin_dir / "dd-procmgr"), "--socket", str(root / "pm.sock"),
                    "--timeout", str(CLI_TIMEOUT)]
        if self.name == "supervisord":
            return [str(self.bin_dir / "supervisorctl"), "-c", str(root / "supervisord.conf")]
        return [str(self.bin_dir / "circusctl"), "--endpoint", f"ipc://{root}/circus-ctl.sock",
                "--timeout", str(CLI_TIMEOUT)]

    def status_argv(self, root: Path) -> list[str]:
        return self._cli(root) + ["list" if self.name == "dd-procmgrd" else "status"]

    def stop_all_argv(self, root: Path) -> list[str]:
        return self._cli(root) + (["stop", "--all"] if self.name == "dd-procmgrd"
                                  else ["stop", "all"] if self.name == "supervisord"
                                  else ["stop"])

    def start_all_argv(self, root: Path) -> list[str]:
        return self._cli(root) + (["start", "--all"] if self.name == "dd-procmgrd"
                                  else ["start", "all"] if self.name == "supervisord"
                                  else ["start"])

    def socket_path(self, root: Path) -> Path:
        return root / "pm.sock"


PEER_NAMES = ("dd-procmgrd", "supervisord", "circus")
