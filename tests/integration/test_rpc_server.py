"""The RPC server over real sockets: robustness against hostile input, concurrency,
cancellation, access control, TCP tokens, pipelining, and one end-to-end run against the
real ProcessManager."""

from __future__ import annotations

import os
import random
import shutil
import socket
import stat
import tempfile

import pytest

from trio_procmgr.paths import read_only_socket_path
import trio

from trio_procmgr import errors
from trio_procmgr.client import AsyncClient, BlockingClient, DaemonUnreachable
from trio_procmgr.events import EventHub
from trio_procmgr.rpc import protocol as P
from trio_procmgr.rpc.framing import HEADER, NEED_DATA, FrameDecoder, encode_frame
from trio_procmgr.rpc.server import serve_rpc


class FakeManager:
    """Just enough engine for protocol-level tests; ``restart`` hangs until cancelled."""

    def __init__(self) -> None:
        self.hub = EventHub()
        self.records = {"web": {"name": "web", "id": "id-web", "state": "running", "pid": 42}}
        self.restart_entered = trio.Event()
        self.restart_cancelled = trio.Event()

    def resolve(self, ref):
        for rec in self.records.values():
            if ref in (rec["name"], rec["id"]):
                return rec["name"]
        raise errors.ProcessNotFound(f"no process named or with id {ref!r}", ref=ref)

    def list(self):
        return list(self.records.values())

    def describe(self, ref):
        return self.records[self.resolve(ref)]

    async def start(self, ref):
        rec = self.records[self.resolve(ref)]
        rec["state"] = "running"
        return rec

    async def stop(self, ref):
        rec = self.records[self.resolve(ref)]
        rec["state"] = "stopped"
        return rec

    async def restart(self, ref):
        self.restart_entered.set()
        try:
            await trio.sleep_forever()
        finally:
            self.restart_cancelled.set()


@pytest.fixture
def sock_dir():
    path = tempfile.mkdtemp(prefix="rpc-test-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def fake_server(nursery, sock_dir):
    manager = FakeManager()
    path = os.path.join(sock_dir, "pm.sock")
    await nursery.start(lambda task_status: serve_rpc(manager, socket_path=path, max_inflight=4,
                                                       task_status=task_status))
    return manager, path


async def raw_exchange(path: str, data: bytes) -> list:
    """Send ``data`` raw and half-close, then read messages until the server closes."""
    stream = await trio.open_unix_socket(path)
    decoder = FrameDecoder()
    got = []
    with trio.fail_after(5):
        try:
            await stream.send_all(data)
            await stream.send_eof()
        except trio.BrokenResourceError:
            pass
        while True:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                chunk = b""
            if not chunk:
                await stream.aclose()
                return got
            decoder.feed(chunk)
            while (value := decoder.next_frame()) is not NEED_DATA:
                got.append(P.parse_message(value))


BOOT = encode_frame([0, 0, {0: 1}])


async def test_hostile_input_is_aborted_and_other_clients_keep_being_served(fake_server):
    _, path = fake_server
    rng = random.Random(7)
    hostile = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(20)]
    hostile += [HEADER.pack(0xFFFFFFFF), BOOT + encode_frame([9, 1]), BOOT + b"\x00\x00\x00\x10abc",
                encode_frame({"not": "an array"}), BOOT + encode_frame([1, "x", 0, 0, 2, {}])]
    async with AsyncClient(path) as client:
        for blob in hostile:
            got = await raw_exchange(path, blob)
            assert all(isinstance(ev, (P.Return, P.Abort)) for ev in got)
            assert [r["name"] for r in await client.list()] == ["web"]


async def test_huge_length_prefix_gets_protocol_error_without_sending_a_body(fake_server):
    got = await raw_exchange(fake_server[1], HEADER.pack(64 * 1024 * 1024))
    assert got == [P.Abort("PROTOCOL_ERROR", got[0].message)] and "exceeds" in got[0].message


async def test_wrong_param_type_is_invalid_argument_naming_the_field(fake_server):
    got = await raw_exchange(fake_server[1], BOOT + encode_frame([1, 1, 0, 0, 10, {0: 5}]))
    failure = got[1]
    assert failure.code == "INVALID_ARGUMENT" and failure.details["field"] == "name"


async def test_unknown_method_ordinal_is_unimplemented(fake_server):
    got = await raw_exchange(fake_server[1], BOOT + encode_frame([1, 1, 0, 0, 999, {}]))
    assert got[1].code == "UNIMPLEMENTED"


async def test_engine_errors_arrive_as_typed_exceptions(fake_server):
    async with AsyncClient(fake_server[1]) as client:
        with pytest.raises(errors.ProcessNotFound) as info:
            await client.describe("nope")
    assert info.value.details == {"ref": "nope"}


async def test_fifty_concurrent_clients_are_all_answered(fake_server):
    answers = []

    async def one():
        async with AsyncClient(fake_server[1]) as client:
            answers.append((await client.describe("web"))["pid"])

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(one)
    assert answers == [42] * 50


async def test_cancelling_a_call_sends_finish_which_cancels_it_in_the_daemon(fake_server):
    manager, path = fake_server
    async with AsyncClient(path) as client:
        with trio.move_on_after(5) as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.restart, "web")
                await manager.restart_entered.wait()
                nursery.cancel_scope.cancel()
        assert not scope.cancelled_caught
        with trio.fail_after(5):
            await manager.restart_cancelled.wait()
        assert (await client.describe("web"))["name"] == "web"


async def test_calls_beyond_the_inflight_limit_get_resource_exhausted(fake_server):
    manager, path = fake_server
    calls = b"".join(encode_frame([1, q, 0, 0, 12, {0: "web"}]) for q in range(1, 6))
    stream = await trio.open_unix_socket(path)
    decoder = FrameDecoder()
    await stream.send_all(BOOT + calls)
    failures = []
    with trio.fail_after(5):
        while not failures:
            decoder.feed(await stream.receive_some(65536))
            while (value := decoder.next_frame()) is not NEED_DATA:
                if value[0] == P.Kind.EXCEPTION:
                    failures.append(P.parse_message(value))
    assert failures[0].code == "RESOURCE_EXHAUSTED" and failures[0].qid == 5
    await stream.aclose()


async def test_pipelined_get_then_start_is_one_round_trip(fake_server):
    manager, path = fake_server
    manager.records["web"]["state"] = "stopped"
    stream = await trio.open_unix_socket(path)
    client = P.Connection("client")
    boot_qid, boot = client.bootstrap({0: 1})
    get_qid, get = client.call(P.ROOT, 0, 1, {0: "web"})
    start_qid, start = client.call(P.PromiseTarget(get_qid, (0,)), 1, 1, {})
    await stream.send_all(boot + get + start)  # one write, before any answer
    answers = {}
    with trio.fail_after(5):
        while start_qid not in answers:
            client.receive_data(await stream.receive_some(65536))
            while (ev := client.next_event()) is not P.NEED_DATA:
                answers[ev.qid] = ev
    assert answers[get_qid].results[0] == {"$cap": 1}
    assert answers[start_qid].results[0][2] == "running"
    await stream.aclose()


async def test_process_handle_from_get_pipelines_and_releases(fake_server):
    manager, path = fake_server
    async with AsyncClient(path) as client:
        async with await client.get("web") as proc:
            assert (await proc.stop())["state"] == "stopped"
            assert (await proc.describe())["state"] == "stopped"
        with pytest.raises(errors.ProcessNotFound):
            async with await client.get("ghost") as ghost:
                await ghost.start()


async def test_watch_streams_only_matching_events(fake_server, nursery):
    manager, path = fake_server

    async def publish_once_subscribed():
        while not manager.hub._subs:
            await trio.sleep(0.01)
        manager.hub.publish("state_changed", "db", to="running")
        manager.hub.publish("process_started", "web")
        manager.hub.publish("state_changed", "web", to="stopped")

    async with AsyncClient(path) as client:
        nursery.start_soon(publish_once_subscribed)
        with trio.fail_after(5):
            async for event in client.watch(processes=["web"], types=["state_changed"]):
                break
    assert (event["type"], event["process"], event["to"]) == ("state_changed", "web", "stopped")
    assert event["seq"] == 3


async def test_blocking_client_raises_daemon_unreachable_for_a_missing_socket(sock_dir):
    path = os.path.join(sock_dir, "absent.sock")
    with pytest.raises(DaemonUnreachable) as info:
        BlockingClient(path, timeout=1)
    assert info.value.socket == path and isinstance(info.value, ConnectionError)


async def test_socket_is_0660_with_a_0666_read_only_companion_and_a_live_one_is_not_replaced(
        fake_server):
    _, path = fake_server
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660  # SPEC §14
    companion = read_only_socket_path(path)
    assert stat.S_IMODE(os.stat(companion).st_mode) == 0o666
    with pytest.raises(errors.AlreadyRunning):
        await serve_rpc(FakeManager(), socket_path=path)


async def test_stale_socket_file_is_replaced(nursery, sock_dir):
    path = os.path.join(sock_dir, "sub", "pm.sock")
    os.makedirs(os.path.dirname(path))
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()
    await nursery.start(lambda task_status: serve_rpc(FakeManager(), socket_path=path, task_status=task_status))
    ok = await trio.to_thread.run_sync(lambda: BlockingClient(path).call("ping"))
    assert isinstance(ok["time"], float)


async def test_unprivileged_user_can_list_but_not_stop(fake_server):
    _, path = fake_server
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody, then use the blocking client
        code = 1
        try:
            os.close(read_fd)
            os.setgid(65534)
            os.setuid(65534)
            with BlockingClient(path, timeout=5) as client:
                names = [r["name"] for r in client.call("list")["processes"]]
                try:
                    client.call("stop", name="web")
                    verdict = "stop allowed"
                except errors.PermissionDenied:
                    verdict = "denied"
            os.write(write_fd, f"{names}|{verdict}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    _, status = await trio.to_thread.run_sync(os.waitpid, pid, 0)
    with os.fdopen(read_fd, "rb") as fh:
        result = fh.read().decode()
    assert os.waitstatus_to_exitcode(status) == 0
    assert result == "['web']|denied"


async def test_tcp_listener_requires_the_token(nursery, sock_dir):
    token_file = os.path.join(sock_dir, "token")
    with open(token_file, "w") as fh:
        fh.write("s3cret\n")
    info = await nursery.start(lambda task_status: serve_rpc(
        FakeManager(), socket_path=None, tcp="127.0.0.1:0", token_file=token_file,
        task_status=task_status))
    address = "%s:%d" % info.tcp_address

    def attempt(token):
        with BlockingClient(tcp=address, token=token, timeout=5) as client:
            return client.call("stop", name="web")["record"]["state"]

    with pytest.raises(errors.Unauthenticated):
        await trio.to_thread.run_sync(attempt, "wrong")
    with pytest.raises(errors.Unauthenticated):
        await trio.to_thread.run_sync(attempt, None)
    assert await trio.to_thread.run_sync(attempt, "s3cret") == "stopped"


async def test_tcp_listener_without_a_token_file_refuses_to_start():
    with pytest.raises(errors.InvalidArgument, match="token"):
        await serve_rpc(FakeManager(), socket_path=None, tcp="0.0.0.0:0")


async def test_end_to_end_against_the_real_process_manager(make_manager, nursery, sock_dir, tmp_path):
    path = os.path.join(sock_dir, "pm.sock")
    async with make_manager(state_dir=str(tmp_path / "state"), log_dir=str(tmp_path / "logs")) as pm:
        async with trio.open_nursery() as inner:
            await inner.start(lambda task_status: serve_rpc(pm, socket_path=path, task_status=task_status))
            async with AsyncClient(path) as client:
                created = await client.create("napper", {"command": "/bin/sleep", "args": ["60"]})
                assert created["state"] == "created"
                async with await client.get("napper") as proc:
                    record = await proc.start()
                assert record["state"] == "running" and record["pid"] > 0

                def blocking():
                    with BlockingClient(path) as c:
                        listed = c.call("list")["processes"]
                        stopped = c.call("stop", name="napper")["record"]
                        c.call("delete", name="napper")
                        return listed, stopped

                listed, stopped = await trio.to_thread.run_sync(blocking)
                assert [(r["name"], r["state"]) for r in listed] == [("napper", "running")]
                assert stopped["state"] == "stopped"
                with pytest.raises(OSError):
                    os.kill(record["pid"], 0)
                assert await client.list() == []
            inner.cancel_scope.cancel()


async def exchange_until(path: str, data: bytes, done) -> list:
    """Send ``data`` (no half-close: the calls keep running) and read messages until
    ``done(messages)`` or the server closes."""
    stream = await trio.open_unix_socket(path)
    decoder, got = FrameDecoder(), []
    async with stream:
        with trio.fail_after(10):
            await stream.send_all(data)
            while not done(got):
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                decoder.feed(chunk)
                while (value := decoder.next_frame()) is not NEED_DATA:
                    got.append(P.parse_message(value))
    return got


async def test_an_answer_that_cannot_be_encoded_aborts_only_that_connection(fake_server, caplog):
    manager, path = fake_server
    manager.records["huge"] = {"name": "huge", "id": "id-huge", "state": "running", "pid": 2**70}
    got = await exchange_until(path, BOOT + encode_frame([1, 1, 0, 0, 13, {0: "huge"}]),
                               lambda got: any(isinstance(ev, P.Abort) for ev in got))
    assert isinstance(got[0], P.Return) and got[-1] == P.Abort("INTERNAL", got[-1].message)
    assert "Traceback" not in caplog.text and "cannot encode" in caplog.text
    async with AsyncClient(path) as client:
        assert (await client.describe("web"))["name"] == "web"


async def test_an_engine_error_with_a_huge_message_is_clipped(fake_server):
    manager, path = fake_server

    def describe(ref):
        raise errors.InvalidArgument("m" * 100_000, blob="b" * 100_000)

    manager.describe = describe
    got = await exchange_until(path, BOOT + encode_frame([1, 1, 0, 0, 13, {0: "web"}]),
                               lambda got: any(isinstance(ev, P.Failure) for ev in got))
    failure = next(ev for ev in got if isinstance(ev, P.Failure))
    assert failure.code == "INVALID_ARGUMENT" and len(failure.message) <= 1024
    assert "more characters" in failure.message and len(failure.details["blob"]) <= 256


async def test_an_overlong_name_is_refused_before_the_engine(fake_server):
    _, path = fake_server
    got = await exchange_until(path, BOOT + encode_frame([1, 1, 0, 0, 13, {0: "n" * 100_000}]),
                               lambda got: any(isinstance(ev, P.Failure) for ev in got))
    failure = next(ev for ev in got if isinstance(ev, P.Failure))
    assert failure.code == "INVALID_ARGUMENT" and "maximum of 256" in failure.message


async def test_every_call_on_the_read_only_companion_is_read_only_even_for_root(fake_server):
    _, path = fake_server
    companion = read_only_socket_path(path)

    def calls() -> tuple[dict, Exception | None]:
        with BlockingClient(companion) as client:
            listed = client.call("list")
            try:
                client.call("stop", name="web")
            except errors.ProcMgrError as exc:
                return listed, exc
            return listed, None

    listed, refused = await trio.to_thread.run_sync(calls)
    assert "processes" in listed
    assert refused is not None and refused.code == "PERMISSION_DENIED"


def test_read_only_companion_path_sits_next_to_the_socket():
    assert read_only_socket_path("/run/dd-procmgr.sock") == "/run/dd-procmgr.ro.sock"
    assert read_only_socket_path("/tmp/x/pm") == "/tmp/x/pm.ro"
