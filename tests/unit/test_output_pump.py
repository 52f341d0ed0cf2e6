"""The lean output pumps of an instance: real pipes, no child process needed."""

from __future__ import annotations

import os

import pytest
import trio

from trio_procmgr.output_pump import start_pumps


def _fd_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


async def test_both_streams_are_drained_until_each_reaches_eof_then_done_is_set():
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    got: list[tuple[str, str]] = []
    done = trio.Event()

    async with trio.open_nursery() as nursery:
        start_pumps(nursery, [(out_r, "stdout"), (err_r, "stderr")],
                    lambda stream, line, now: got.append((stream, line)), done)
        os.write(out_w, b"out one\nout ")
        os.write(err_w, b"err one\n")
        with trio.fail_after(10):
            while ("stderr", "err one") not in got or ("stdout", "out one") not in got:
                await trio.sleep(0.01)
        os.close(err_w)  # stderr ends; stdout must still be read
        os.write(out_w, b"two\npartial")
        with trio.fail_after(10):
            while ("stdout", "out two") not in got:
                await trio.sleep(0.01)
        assert not done.is_set()  # one pipe is still open
        os.close(out_w)
        with trio.fail_after(10):
            await done.wait()
    assert [line for stream, line in got if stream == "stdout"] == ["out one", "out two", "partial"]
    assert [line for stream, line in got if stream == "stderr"] == ["err one"]
    assert _fd_closed(out_r) and _fd_closed(err_r)


async def test_no_pipes_means_output_is_done_at_once():
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        start_pumps(nursery, [], lambda *_: None, done)
    assert done.is_set()


async def test_cancelling_the_pumps_closes_the_pipes():
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    done = trio.Event()
    try:
        with trio.move_on_after(0.2):
            async with trio.open_nursery() as nursery:
                start_pumps(nursery, [(out_r, "stdout"), (err_r, "stderr")],
                            lambda *_: None, done)
        assert done.is_set()
        assert _fd_closed(out_r) and _fd_closed(err_r)
        with pytest.raises(BrokenPipeError):
            os.write(out_w, b"nobody reads this\n")
    finally:
        os.close(out_w)
        os.close(err_w)


async def test_a_flood_on_one_stream_does_not_starve_the_other():
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    os.set_blocking(out_w, False)
    seen_err = trio.Event()

    def sink(stream: str, line: str, now: float) -> None:
        if stream == "stderr" and line == "hello":
            seen_err.set()

    async with trio.open_nursery() as nursery:
        start_pumps(nursery, [(out_r, "stdout"), (err_r, "stderr")], sink, trio.Event())

        async def flood() -> None:
            chunk = b"y\n" * 4096
            while True:
                try:
                    os.write(out_w, chunk)
                except BlockingIOError:
                    pass
                await trio.sleep(0)

        nursery.start_soon(flood)
        os.write(err_w, b"hello\n")
        with trio.fail_after(10):
            await seen_err.wait()
        nursery.cancel_scope.cancel()
    os.close(out_w)
    os.close(err_w)
