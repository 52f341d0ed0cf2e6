"""A real ``dd-procmgrd`` serving ``--ws`` (the dashboard) for the dashboard tests.

``web_daemon(token, config)`` starts one on a temp config dir with ``--ws 127.0.0.1:0``
(and ``--token-file`` when ``token`` is given); ``daemon.origin`` is the
``http://127.0.0.1:PORT`` it serves, learnt from its log. A restart keeps the port.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cli_daemon import DAEMON, CliDaemon


class WebDaemon(CliDaemon):
    """A CliDaemon that also serves ``--ws 127.0.0.1:0`` (and ``--token-file`` if given)."""

    def __init__(self, root: Path, token: str | None) -> None:
        super().__init__(root)
        self.token = token
        self.origin = ""
        self.ws = "127.0.0.1:0"  # the port found on the first start is kept for restarts

    def start(self) -> None:
        argv = [DAEMON, "--config-dir", str(self.config_dir), "--socket", self.socket,
                "--state-dir", str(self.state_dir), "--instance", self.instance,
                "--ws", self.ws]
        if self.token is not None:
            token_file = self.root / "token"
            token_file.write_text(self.token + "\n")
            argv += ["--token-file", str(token_file)]
        self.log_file = open(self.log, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=self.env(), start_new_session=True)

        def serving() -> str | None:
            if self.proc.poll() is not None:
                pytest.fail(f"dd-procmgrd exited with {self.proc.returncode}:\n{self.log_text()}")
            found = re.search(r"serving the dashboard.* on ([\d.]+):(\d+)", self.log.read_text())
            return f"http://{found[1]}:{found[2]}" if found and \
                self.cli("ping", timeout=10).code == 0 else None
        self.origin = self.wait_for("the daemon to serve the dashboard", serving, timeout=30)
        self.ws = urlsplit(self.origin).netloc


def web_daemon(token: str | None, config: str) -> WebDaemon:
    """A started WebDaemon with ``config`` as demo.yaml; the caller stops it."""
    root = Path(tempfile.mkdtemp(prefix="pmweb-"))
    daemon = WebDaemon(root, token)
    daemon.write_config("demo", config)
    daemon.start()
    return daemon
