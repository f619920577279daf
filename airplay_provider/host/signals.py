"""Ending a command cleanly on SIGINT, SIGTERM or SIGHUP.

The command's coroutine is cancelled, so its ``finally`` blocks and context managers run:
streamers and receivers are stopped, FIFOs and temporary directories removed. The exit code
then tells which signal ended it, as a shell would: 128 + the signal number (130 for Ctrl-C,
143 for SIGTERM, 129 for SIGHUP). A second signal during that clean-up is ignored; the
clean-up steps are bounded in time themselves.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, Final

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_interruptible(main: Coroutine[Any, Any, int]) -> int:
    """`asyncio.run(main)`; a stop signal cancels it and returns 128 + the signal number."""
    return asyncio.run(_guarded(main))


async def _guarded(main: Coroutine[Any, Any, int]) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(main)
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if not received:
            received.append(signum)
            task.cancel()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await task
    except asyncio.CancelledError:
        if received:
            return 128 + received[0]
        raise
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
