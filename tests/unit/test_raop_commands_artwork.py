"""A slow artwork host never holds up transport commands (PLAY after ARTWORK)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

from airplay_provider.streamer.raop_commands import RaopCommandHandler


class _Status:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str, level: int = 3) -> None:
        self.lines.append(message)


class _Streamer:
    """Just what the handler touches for ARTWORK and ACTION=PLAY."""

    def __init__(self) -> None:
        self.status = _Status()
        self.rtsp = None
        self.resumed = asyncio.Event()
        self.resumed_at: list[int | None] = []

    def resume(self, at_ntp: int | None) -> None:
        self.resumed_at.append(at_ntp)
        self.resumed.set()


async def test_play_is_not_queued_behind_an_artwork_fetch() -> None:
    accepted = asyncio.Event()
    release = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await release.wait()  # holds the request until the test is done
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    streamer: Any = _Streamer()
    handler = RaopCommandHandler(streamer)
    try:
        handler.handle("ARTWORK", f"http://127.0.0.1:{port}/cover.jpg")
        await asyncio.wait_for(accepted.wait(), 5)  # the fetch is under way
        handler.handle("NTPSTART", "1234")
        handler.handle("ACTION", "PLAY")
        await asyncio.wait_for(streamer.resumed.wait(), 1.0)
        assert streamer.resumed_at == [1234]
    finally:
        release.set()  # the fetch thread gets its answer (a closed connection) and ends
        handler.close()
        server.close()
        await server.wait_closed()


def test_a_hanging_artwork_fetch_does_not_hold_the_process_exit() -> None:
    """`asyncio.run` joins executor threads at exit; the artwork thread must not be one."""
    code = (
        "import asyncio, time\n"
        "from airplay_provider.streamer import raop_commands as rc\n"
        "def hang(_: str) -> bytes:\n"
        "    time.sleep(30)\n"
        "    return b''\n"
        "async def main() -> None:\n"
        "    task = asyncio.ensure_future(rc._in_daemon_thread(hang, 'x'))\n"
        "    await asyncio.sleep(0.1)\n"
        "    task.cancel()\n"
        "asyncio.run(main())\n"
    )
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=20)
    assert time.monotonic() - started < 10  # not the 30 s of the hanging fetch
