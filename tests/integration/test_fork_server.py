"""Streamers forked from the pre-imported fork server behave like `bin/cliraop` processes:
same arguments, stdin, `[STATUS]` lines on stderr, exit codes, signals; nothing is left over."""

from __future__ import annotations

import asyncio
import os
import signal

from airplay_provider.protocol.streamer_status import parse_status_fields as parse_status
from airplay_provider.streamer.clock import SenderClock
from airplay_provider.streamer_launcher import ForkedStreamer, ForkServer
from tests.audio import test_signal
from tests.group_helpers import alive
from tests.receivers.raop_emulator import RaopEmulator

STDERR_LIMIT = 1 << 20


async def statuses(child: ForkedStreamer) -> list[tuple[str, dict[str, str]]]:
    """Every `[STATUS]` line the child writes until it closes stderr."""
    out = []
    while line := await asyncio.wait_for(child.stderr.readline(), 20):
        parsed = parse_status(line.decode())
        if parsed is not None:
            out.append(parsed)
    return out


async def test_bad_arguments_give_the_usage_error_and_exit_code_2() -> None:
    server = ForkServer()
    server.launch()
    try:
        read_end, write_end = os.pipe()
        try:
            child = await server.spawn("cliraop", ["-port", "x"], read_end, limit=STDERR_LIMIT)
        finally:
            os.close(read_end)
            os.close(write_end)
        events = await statuses(child)
        assert await asyncio.wait_for(child.wait(), 10) == 2
        assert ("error", {"code": "usage", "message": events[-1][1]["message"]}) in events
        assert not alive(child.pid)
    finally:
        await server.close()


async def test_forked_cliraop_streams_stdin_to_a_receiver_exactly() -> None:
    pcm = test_signal(1.5, seed=91)
    server = ForkServer()
    server.launch()
    async with RaopEmulator() as emu:
        try:
            read_end, write_end = os.pipe()
            start = SenderClock().ntp() + int(2.0 * 2**32)  # room for a loaded machine
            argv = ["-ntpstart", str(start), "-port", str(emu.port), "-latency", "1000"]
            argv += ["-alac", "127.0.0.1", "-"]
            try:
                child = await server.spawn("cliraop", argv, read_end, limit=STDERR_LIMIT)
            finally:
                os.close(read_end)
            reading = asyncio.create_task(statuses(child))
            await asyncio.to_thread(os.write, write_end, pcm)
            os.close(write_end)
            assert await asyncio.wait_for(child.wait(), 20) == 0
            events = dict(await reading)
            assert events["started"]["actual_ntp"] == str(start)
            assert events["stats"]["underruns"] == "0"
            got = emu.stream.reconstructed_pcm()[3520 * 4 :]
            assert got[: len(pcm)] == pcm
        finally:
            await server.close()


async def test_a_killed_child_reports_the_signal_and_close_leaves_nothing() -> None:
    server = ForkServer()
    server.launch()
    server_pid = server.pid
    assert server_pid is not None
    read_end, write_end = os.pipe()
    try:
        # Port 9 (discard) refuses: the streamer retries nothing, but it waits on stdin first.
        child = await server.spawn(
            "cliraop", ["-port", "9", "127.0.0.1", "-"], read_end, limit=STDERR_LIMIT
        )
        child.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(child.wait(), 10) == -signal.SIGKILL
        assert not alive(child.pid)
    finally:
        os.close(read_end)
        os.close(write_end)
        await server.close()
    assert not alive(server_pid)  # the server itself was reaped
