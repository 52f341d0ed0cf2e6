"""A seeded, bounded RPC fuzzer against the real daemon (issue 13.7, SPEC §14).

Many connections send random bytes, random msgpack, mutated valid calls, huge declared
lengths, deep nesting and truncated frames, over the Unix socket (as root: every method
reachable) and unauthenticated TCP, while an honest client keeps calling. The daemon must
never answer INTERNAL, never log a traceback, stay alive, and the honest client must get
every answer. Reproduce a run with ``DD_PM_FUZZ_SEED=<seed>``; ``DD_PM_FUZZ_SECONDS``
sets the budget (default 12 s, at most 45).
"""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time

import msgpack
import pytest

from rpc_daemon import frame, rpc_daemon_factory  # noqa: F401

SEED = int(os.environ.get("DD_PM_FUZZ_SEED", "20261201"))
SECONDS = min(45.0, float(os.environ.get("DD_PM_FUZZ_SECONDS", "12")))

#: Root-interface methods a fuzzed call must not reach: they would end or replace the
#: daemon under test (shutdown, daemon_reexec), reload its config, or spawn arbitrary
#: commands (create) — legitimate effects, not robustness failures.
UNSAFE_ROOT_METHODS = {0, 4, 8, 9}

VALID = [
    [1, 1, 0, 0, 2, {}],                                   # list
    [1, 2, 0, 0, 13, {0: "fuzz-target"}],                  # describe
    [1, 3, 0, 0, 1, {0: "fuzz-target"}],                   # get
    [1, 4, [2, 3, [0]], 1, 0, {}],                         # pipelined describe on get
    [1, 5, 0, 0, 3, {0: ["fuzz-target"], 2: 5}],           # watch
    [1, 6, 0, 0, 19, {0: "fuzz-target", 1: 5}],            # logs
    [1, 7, 0, 0, 15, {0: "fuzz-target", 1: {"restart_sec": 2}, 2: True}],  # update dry run
    [5, 5],                                                # finish
    [6, 1, 1],                                             # release
    [1, 8, [1, 1], 1, 7, {}],                              # stats on a cap
]


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(10 if depth < 4 else 6)
    if kind == 0:
        return rng.randrange(-2**63, 2**64)
    if kind == 1:
        return rng.choice([0, 1, 2, 7, 255, 2**32, -1])
    if kind == 2:
        return "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(12)))
    if kind == 3:
        return rng.randbytes(rng.randrange(16))
    if kind == 4:
        return rng.choice([None, True, False, 1.5, float("nan")])
    if kind == 5:
        return "x" * rng.choice([0, 1, 300, 70_000])
    if kind in (6, 7):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(7))]
    return {random_value(rng, 99) if rng.random() < 0.3 else rng.randrange(8):
            random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def mutate(rng: random.Random, message: list):
    message = list(message)
    op = rng.randrange(4)
    if op == 0 and message:
        message[rng.randrange(len(message))] = random_value(rng)
    elif op == 1 and message:
        del message[rng.randrange(len(message))]
    elif op == 2:
        message.append(random_value(rng))
    elif len(message) > 5 and isinstance(message[5], dict):
        params = dict(message[5])
        params[rng.randrange(6)] = random_value(rng)
        message[5] = params
    return message


def is_unsafe(body: bytes) -> bool:
    """Whether this frame body would be a CALL to a method the fuzzer must not reach."""
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception:
        return False
    return (isinstance(value, list) and len(value) == 6 and value[0] == 1
            and value[3] == 0 and isinstance(value[4], int) and value[4] in UNSAFE_ROOT_METHODS)


def deep(depth: int) -> bytes:
    return b"\x91" * depth + b"\xc0"  # [[[...[nil]...]]]


def attack(rng: random.Random) -> list[bytes]:
    """The frames of one hostile connection (after an optional valid BOOTSTRAP)."""
    kind = rng.randrange(7)
    if kind == 0:
        return [rng.randbytes(rng.randrange(1, 300))]
    if kind == 1:
        body = msgpack.packb(random_value(rng), use_bin_type=True)
        return [struct.pack(">I", len(body)) + body]
    if kind == 2:
        return [frame(mutate(rng, rng.choice(VALID))) for _ in range(rng.randrange(1, 6))]
    if kind == 3:
        return [struct.pack(">I", rng.choice([2**32 - 1, 8 * 2**20 + 1, 64 * 2**10 + 1]))
                + rng.randbytes(rng.randrange(100))]
    if kind == 4:
        body = deep(rng.choice([100, 1000, 5000, 100_000]))
        return [struct.pack(">I", len(body)) + body]
    if kind == 5:
        whole = frame(rng.choice(VALID))
        return [whole[:rng.randrange(1, len(whole))]]
    return [frame(message) for message in rng.sample(VALID, rng.randrange(1, len(VALID)))]


def read_answers(sock: socket.socket, budget: float) -> list:
    """Decode whatever frames arrive within ``budget`` seconds (until EOF)."""
    sock.settimeout(budget)
    data = bytearray()
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    answers, pos = [], 0
    while pos + 4 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        if pos + 4 + length > len(data):
            break
        answers.append(msgpack.unpackb(bytes(data[pos + 4:pos + 4 + length]), raw=False,
                                       strict_map_key=False))
        pos += 4 + length
    return answers


def codes_of(answers: list) -> list[str]:
    out = []
    for answer in answers:
        if isinstance(answer, list) and answer and answer[0] == 3:
            out.append(answer[2].get(0))
        elif isinstance(answer, list) and answer and answer[0] == 7:
            out.append(answer[1].get(0))
    return out


class HonestClient(threading.Thread):
    def __init__(self, daemon) -> None:
        super().__init__(daemon=True)
        self.rpc = daemon
        self.stop = threading.Event()
        self.calls = 0
        self.failures: list[str] = []

    def run(self) -> None:
        try:
            with self.rpc.client(timeout=15) as client:
                while not self.stop.is_set():
                    assert client.call("ping")["time"] > 0
                    assert client.call("describe", name="fuzz-target")["record"]["name"] == "fuzz-target"
                    self.calls += 2
        except Exception as exc:  # reported by the test, not swallowed
            self.failures.append(f"{type(exc).__name__}: {exc}")


@pytest.mark.fuzz
def test_fuzzed_connections_never_disturb_the_daemon_or_an_honest_client(rpc_daemon_factory):
    daemon = rpc_daemon_factory("--auth-timeout", "2", "--log-level", "info")
    with daemon.client() as client:
        client.call("create", name="fuzz-target", config={"command": "/bin/sleep", "args": ["600"]},
                    start=True)
    rng = random.Random(SEED)
    honest = HonestClient(daemon)
    honest.start()
    connections = frames = 0
    seen: dict[str, int] = {}
    deadline = time.monotonic() + SECONDS
    try:
        while time.monotonic() < deadline:
            tcp = rng.random() < 0.2
            try:
                sock = daemon.connect_tcp() if tcp else daemon.connect_unix()
            except OSError as exc:
                pytest.fail(f"seed {SEED}: cannot connect after {connections} connections: {exc}")
            with sock:
                payload = attack(rng)
                if rng.random() < 0.7:
                    payload.insert(0, frame([0, 0, {0: 1, 1: "fuzz"}]))
                payload = [p for p in payload if not is_unsafe(p[4:])]
                try:
                    sock.sendall(b"".join(payload))
                except (BrokenPipeError, ConnectionResetError):
                    pass
                for code in codes_of(read_answers(sock, 0.05)):
                    seen[code] = seen.get(code, 0) + 1
            connections += 1
            frames += len(payload)
    finally:
        honest.stop.set()
        honest.join(30)
    assert daemon.proc.poll() is None, f"seed {SEED}: the daemon died"
    assert "INTERNAL" not in seen, f"seed {SEED}: INTERNAL answers: {seen}"
    log = daemon.log_text()
    assert "Traceback" not in log, f"seed {SEED}: traceback in the daemon log:\n{log[-3000:]}"
    assert not honest.failures and honest.calls > 0, f"seed {SEED}: {honest.failures}"
    assert connections > 100, f"only {connections} connections in {SECONDS} s"
    print(f"fuzz seed {SEED}: {connections} connections, {frames} frames, codes {seen}, "
          f"honest calls {honest.calls}")
