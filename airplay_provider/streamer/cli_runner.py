"""The process frame shared by `cliraop` and `cliap2`: signals, command FIFO, exit codes."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Protocol

from airplay_provider.protocol.streamer_status import Error, ErrorCode
from airplay_provider.streamer.clock import SenderClock
from airplay_provider.streamer.commands import CommandFifo
from airplay_provider.streamer.raop_options import UsageError
from airplay_provider.streamer.status import StatusWriter


class Streamer(Protocol):
    """What the runner needs from a streamer engine."""

    def stop(self) -> None: ...

    def handle_command(self, key: str, value: str) -> None: ...

    async def run(self) -> int: ...


#: Builds the engine from argv (raises UsageError); returns it and its FIFO path (if any).
StreamerFactory = Callable[[list[str], StatusWriter], tuple[Streamer, str | None]]


async def _serve(streamer: Streamer, cmdpipe: str | None) -> int:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, streamer.stop)
    fifo: CommandFifo | None = None
    try:
        if cmdpipe:
            fifo = CommandFifo(cmdpipe, streamer.handle_command)
            fifo.open()
        return await streamer.run()
    finally:
        if fifo is not None:
            fifo.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def run_cli(
    args: list[str],
    *,
    name: str,
    check_flag: str,
    ntp_flag: str,
    factory: StreamerFactory,
) -> int:
    """Run one streamer process to completion; returns its exit code (0, 1, 2 usage)."""
    if check_flag in args:
        print(f"{name} check")
        return 0
    if ntp_flag in args:
        print(SenderClock().ntp())
        return 0
    status = StatusWriter(name=name)

    async def main() -> int:
        streamer, cmdpipe = factory(args, status)
        return await _serve(streamer, cmdpipe)

    try:
        return asyncio.run(main())
    except UsageError as exc:
        status.log(f"usage error: {exc}", level=0)
        status.emit(Error(ErrorCode.USAGE, str(exc)))
        return 2
    except OSError as exc:
        status.emit(Error(ErrorCode.OS_ERROR, str(exc)))
        return 1
    except KeyboardInterrupt:
        return 130
