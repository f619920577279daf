"""`cliap2`: stream stdin PCM to one AirPlay 2 receiver (the contract of ARCHITECTURE §3)."""

from __future__ import annotations

import asyncio
import signal
import sys

from airplay_provider.streamer.airplay2 import Airplay2Streamer
from airplay_provider.streamer.airplay2_options import parse_options
from airplay_provider.streamer.clock import SenderClock
from airplay_provider.streamer.commands import CommandFifo
from airplay_provider.streamer.raop_options import UsageError
from airplay_provider.streamer.status import StatusWriter


async def _run(argv: list[str], status: StatusWriter) -> int:
    options = parse_options(argv)
    status.debug_level = options.common.debug
    streamer = Airplay2Streamer(options, status)
    fifo: CommandFifo | None = None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, streamer.stop)
    try:
        if options.common.cmdpipe:
            fifo = CommandFifo(options.common.cmdpipe, streamer.commands.handle)
            fifo.open()
        return await streamer.run()
    finally:
        if fifo is not None:
            fifo.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `bin/cliap2` and the `cliap2` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--testrun" in args:
        print("cliap2 check")
        return 0
    if "--ntp" in args:
        print(SenderClock().ntp())
        return 0
    status = StatusWriter(name="cliap2")
    try:
        return asyncio.run(_run(args, status))
    except UsageError as exc:
        status.log(f"usage error: {exc}", level=0)
        status.status("error", code="usage", message=str(exc))
        return 2
    except OSError as exc:
        status.status("error", code="os_error", message=str(exc))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
