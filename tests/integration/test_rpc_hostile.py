"""Hostile and careless RPC clients against the real daemon (SPEC §14, issue 14 items 4, 5,
7, 9): unauthenticated floods, clients that never read, error paths that used to explode,
and what a read-only local user may see."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time

import msgpack
import pytest

from rpc_daemon import TOKEN, frame, read_frame, rpc_daemon_factory, wait_until  # noqa: F401

MiB = 1024 * 1024


def bootstrap(sock: socket.socket, token: str | None = None, max_frame: int = 8 * MiB):
    params = {0: 1, 1: "hostile-test", 2: max_frame}
    if token is not None:
        params[3] = token
    sock.sendall(frame([0, 0, params]))
    return read_frame(sock)


def call(sock: socket.socket, qid: int, method: int, params: dict, target=0):
    sock.sendall(frame([1, qid, target, 0, method, params]))


def no_tracebacks(daemon) -> None:
    text = daemon.log_text()
    assert "Traceback" not in text, text[-4000:]


def peer_closed(sock: socket.socket, timeout: float) -> bool:
    """True once the daemon closed ``sock`` (EOF or reset), reading what it still sends."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return True


# -- pre-authentication limits -------------------------------------------------------------

def test_unauthenticated_clients_announcing_huge_frames_are_dropped_cheaply(rpc_daemon_factory):
    daemon = rpc_daemon_factory()
    before = daemon.rss()
    socks = [daemon.connect_tcp() for _ in range(60)]
    try:
        piece = b"\x00" * MiB
        for sock in socks:  # an 8 MiB frame announced, all but its last byte sent
            sock.settimeout(5)
            try:
                sock.sendall(struct_header(8 * MiB))
                for _ in range(7):
                    sock.sendall(piece)
                sock.sendall(piece[:-1])
            except (socket.timeout, BrokenPipeError, ConnectionResetError):
                pass
        peak, started = before, time.monotonic()
        for sock in socks:  # closed at the header, well before the 10 s auth deadline
            peak = max(peak, daemon.rss())
            left = 8 - (time.monotonic() - started)
            assert left > 0 and peer_closed(sock, left), "an 8 MiB first frame must be refused"
        grown = max(peak, daemon.rss()) - before
        assert grown < 40 * MiB, f"RSS grew by {grown / MiB:.0f} MiB for 60 hostile clients"
        with daemon.client() as client:
            assert client.call("ping")["time"] > 0
    finally:
        for sock in socks:
            sock.close()
    no_tracebacks(daemon)


def struct_header(length: int) -> bytes:
    return length.to_bytes(4, "big")


def test_idle_unauthenticated_connections_are_closed_at_the_deadline(rpc_daemon_factory):
    daemon = rpc_daemon_factory("--auth-timeout", "1")
    socks = [daemon.connect_tcp() for _ in range(5)]
    try:
        started = time.monotonic()
        assert all(peer_closed(sock, 20) for sock in socks)
        assert time.monotonic() - started < 15
    finally:
        for sock in socks:
            sock.close()
    authed, idle = daemon.connect_tcp(), daemon.connect_tcp()
    with authed, idle:  # the deadline no longer applies once the token checked out
        assert bootstrap(authed, TOKEN)[0] == 2
        assert peer_closed(idle, 20)
        call(authed, 1, 7, {})
        assert read_frame(authed)[0] == 2


def test_unauthenticated_connections_are_capped_in_number(rpc_daemon_factory):
    daemon = rpc_daemon_factory("--auth-timeout", "60")
    socks = [daemon.connect_tcp() for _ in range(64)]
    try:
        wait_until(lambda: daemon.open_fds() >= 64, 20, "the daemon to hold 64 pending clients")
        extra = [daemon.connect_tcp() for _ in range(8)]
        socks += extra
        assert all(peer_closed(sock, 10) for sock in extra), "the 65th+ must be refused at once"
        with daemon.client() as client:  # the Unix socket is not affected
            assert client.call("ping")["time"] > 0
    finally:
        for sock in socks:
            sock.close()


def test_missing_token_says_what_to_do(rpc_daemon_factory):
    daemon = rpc_daemon_factory()
    with daemon.connect_tcp() as sock:
        abort = bootstrap(sock)
    assert abort[0] == 7 and abort[1][0] == "UNAUTHENTICATED"
    assert "--token-file" in abort[1][1] and "field 3" not in abort[1][1]


def test_daemon_raises_its_descriptor_limit_to_the_hard_limit(rpc_daemon_factory):
    daemon = rpc_daemon_factory()
    with open(f"/proc/{daemon.proc.pid}/limits") as fh:
        [line] = [l for l in fh if l.startswith("Max open files")]
    soft, hard = line.split()[3:5]
    assert soft == hard


# -- clients that never read ------------------------------------------------------------------

def test_logs_follow_clients_that_never_read_cost_a_bounded_amount(rpc_daemon_factory):
    daemon = rpc_daemon_factory("--client-send-timeout", "3")
    with daemon.client() as client:
        client.call("create", name="chatty", config={
            "command": "/bin/sh", "args": ["-c", "yes $(head -c 2000 /dev/zero | tr '\\0' x)"]},
            start=True)
    before = daemon.rss()
    stuck = []
    for _ in range(3):
        sock = daemon.connect_unix()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert bootstrap(sock)[0] == 2
        call(sock, 1, 19, {0: "chatty", 3: True})  # logs chatty --follow, then never read
        stuck.append(sock)
    try:
        peak = before
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            peak = max(peak, daemon.rss())
            time.sleep(0.2)
        grown = peak - before
        assert grown < 3 * 4 * MiB + 16 * MiB, f"3 stuck followers grew RSS by {grown / MiB:.1f} MiB"
        wait_until(lambda: daemon.log_text().count("read nothing for") >= 3, 30,
                   "the daemon to drop the 3 stuck followers")
        with daemon.client() as client:
            assert client.call("ping")["time"] > 0
    finally:
        for sock in stuck:
            sock.close()


# -- error paths -----------------------------------------------------------------------------

def test_describe_with_an_8_mib_name_gets_a_short_invalid_argument(rpc_daemon_factory):
    daemon = rpc_daemon_factory()
    with daemon.connect_unix() as sock:
        assert bootstrap(sock)[0] == 2
        call(sock, 1, 13, {0: "n" * (8 * MiB - 100)})
        sock.settimeout(30)
        head = sock.recv(4, socket.MSG_WAITALL)
        length = int.from_bytes(head, "big")
        assert length <= 2048, f"a {length}-byte error answer"
        answer = msgpack.unpackb(sock.recv(length, socket.MSG_WAITALL), strict_map_key=False)
    assert answer[0] == 3 and answer[2][0] == "INVALID_ARGUMENT"
    assert "name" in answer[2][1]
    assert os.path.getsize(daemon.log) < 64 * 1024
    no_tracebacks(daemon)


def test_bootstrap_announcing_max_frame_1_gets_a_clean_abort(rpc_daemon_factory):
    daemon = rpc_daemon_factory()
    with daemon.connect_unix() as sock:
        abort = bootstrap(sock, max_frame=1)
        assert abort[0] == 7 and abort[1][0] == "PROTOCOL_ERROR"
        assert peer_closed(sock, 10)
    no_tracebacks(daemon)


def test_a_call_pipelined_on_its_own_promise_is_refused(rpc_daemon_factory):
    daemon = rpc_daemon_factory()
    with daemon.connect_unix() as sock:
        assert bootstrap(sock)[0] == 2
        call(sock, 4, 13, {}, target=[2, 4, [0]])
        answer = read_frame(sock)
        assert answer[0] == 3 and answer[1] == 4 and answer[2][0] == "INVALID_ARGUMENT"
        call(sock, 5, 7, {})  # the connection still serves
        assert read_frame(sock)[0] == 2
    no_tracebacks(daemon)


def test_unreleased_capabilities_are_capped_per_connection(rpc_daemon_factory):
    daemon = rpc_daemon_factory()
    with daemon.client() as client:
        client.call("create", name="target", config={"command": "/bin/sleep", "args": ["60"]})
    with daemon.connect_unix() as sock:
        assert bootstrap(sock)[0] == 2
        codes = {}
        batch = 50  # within the in-flight limit; FINISH after the answers, caps kept
        for start in range(1, 10_601, batch):
            qids = range(start, start + batch)
            sock.sendall(b"".join(frame([1, q, 0, 0, 1, {0: "target"}]) for q in qids))
            for _ in qids:
                answer = read_frame(sock)
                code = "ok" if answer[0] == 2 else answer[2][0]
                codes[code] = codes.get(code, 0) + 1
            sock.sendall(b"".join(frame([5, q]) for q in qids))
    assert codes == {"ok": 10_000, "RESOURCE_EXHAUSTED": 600}
    with daemon.client() as client:  # a new connection starts with none
        assert client.call("get", name="target")


# -- access tiers ---------------------------------------------------------------------------

READ_ONLY_CLIENT = textwrap.dedent('''
    import json, socket, struct, sys
    import msgpack

    def send(sock, value):
        body = msgpack.packb(value, use_bin_type=True)
        sock.sendall(struct.pack(">I", len(body)) + body)

    def recv(sock):
        def exact(n):
            data = b""
            while len(data) < n:
                chunk = sock.recv(n - len(data))
                if not chunk:
                    raise SystemExit("daemon closed the connection")
                data += chunk
            return data
        (n,) = struct.unpack(">I", exact(4))
        return msgpack.unpackb(exact(n), raw=False, strict_map_key=False)

    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.connect(sys.argv[1])
        print("main socket accepted a non-root user", file=sys.stderr)
        raise SystemExit(3)
    except PermissionError:  # 0660: the read-only companion is for everybody else
        sock.connect(sys.argv[1][:-len(".sock")] + ".ro.sock")
    send(sock, [0, 0, {0: 1, 1: "read-only"}])
    recv(sock)
    send(sock, [1, 1, 0, 0, 13, {0: "secretive"}])
    describe = recv(sock)
    send(sock, [1, 2, 0, 0, 11, {0: "secretive"}])
    stop = recv(sock)
    print(json.dumps({"describe": describe[2], "stop": stop[2]}, default=str))
''')


def test_a_local_non_root_user_reads_redacted_answers_and_cannot_mutate(rpc_daemon_factory, tmp_path):
    daemon = rpc_daemon_factory()
    with daemon.client() as client:
        client.call("create", name="secretive", config={
            "command": "/bin/sleep", "args": ["60"],
            "env": {"DB_PASSWORD": "hunter2", "API_TOKEN": "tok-123"}})
    scratch = tempfile.mkdtemp(prefix="rpc-ro-", dir="/tmp")
    try:
        os.chmod(scratch, 0o755)
        shutil.copytree(os.path.dirname(msgpack.__file__), os.path.join(scratch, "msgpack"))
        script = os.path.join(scratch, "client.py")
        with open(script, "w") as fh:
            fh.write(READ_ONLY_CLIENT)
        for dirpath, dirs, files in os.walk(scratch):
            for name in dirs + files:
                os.chmod(os.path.join(dirpath, name), 0o755)
        done = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             "/usr/bin/python3", script, daemon.socket],
            capture_output=True, text=True, timeout=60, cwd=scratch,
            env={"PYTHONPATH": scratch, "PATH": "/usr/bin:/bin"})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    import json
    answer = json.loads(done.stdout)
    text = json.dumps(answer["describe"])
    assert "hunter2" not in text and "tok-123" not in text
    assert "DB_PASSWORD" in text and "<redacted>" in text
    assert answer["stop"]["0"] == "PERMISSION_DENIED"
    with daemon.client() as client:  # root still sees the values
        spec = client.call("describe", name="secretive")["record"]["spec"]
    assert spec["env"]["DB_PASSWORD"] == "hunter2"


# -- polish ------------------------------------------------------------------------------------

def test_an_unknown_user_is_reported_as_the_user_field(rpc_daemon_factory):
    from trio_procmgr import errors

    daemon = rpc_daemon_factory()
    with daemon.client() as client:
        client.call("create", name="nouser", config={"command": "/bin/sleep", "args": ["60"],
                                                     "user": "no-such-user-xyz",
                                                     "runtime_directory": ["nouser"]})
        with pytest.raises(errors.ProcMgrError) as info:
            client.call("start", name="nouser")
    assert "user: unknown user 'no-such-user-xyz'" in info.value.message
    assert "runtime_directory" not in info.value.message


def test_events_carry_count_only_when_they_are_lost_notices(rpc_daemon_factory):
    import threading

    daemon = rpc_daemon_factory()
    got_one = threading.Event()

    def make_events():  # until the watcher (subscribed on its first next()) sees one
        with daemon.client() as client:
            n = 0
            while not got_one.is_set() and n < 200:
                client.call("create", name=f"quiet{n}", config={"command": "/bin/true"})
                n += 1
                got_one.wait(0.1)

    maker = threading.Thread(target=make_events)
    with daemon.client() as watcher:
        events = watcher.stream("watch")
        maker.start()
        try:
            event = next(events)
        finally:
            got_one.set()
            maker.join(30)
            events.close()
    assert event["type"] == "process_created" and "count" not in event


def test_every_followed_log_line_names_its_process_backlog_included(rpc_daemon_factory):
    daemon = rpc_daemon_factory()
    with daemon.client() as client:
        client.call("create", name="talker", config={
            "command": "/bin/sh", "args": ["-c", "echo one; echo two; exec sleep 60"]}, start=True)
        wait_until(lambda: len(client.call("logs", name="talker", lines=5)["lines"]) >= 2, 20,
                   "the two lines")
    with daemon.client() as client:
        lines = client.stream("logs", name="talker", lines=2)
        try:
            backlog = [next(lines), next(lines)]
        finally:
            lines.close()
    assert [(item["line"], item["process"]) for item in backlog] == [("one", "talker"), ("two", "talker")]
