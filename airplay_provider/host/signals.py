"""Ending a command cleanly on SIGINT, SIGTERM or SIGHUP.

The command's coroutine is cancelled, so its ``finally`` blocks and context managers run:
streamers and receivers are stopped, FIFOs and temporary directories removed. The exit code
then tells which signal ended it, as a shell would: 128 + the signal number (130 for Ctrl-C,
143 for SIGTERM, 129 for SIGHUP). A second signal during that clean-up is ignored; the
clean-up steps are bounded in time themselves.

A command that can stop more gently than by cancellation (``play`` hangs up on its receivers
and reports where it stopped) passes a `GracefulStop`: while it is armed, a signal only sets
its event and the command ends by itself; the exit code is still 128 + the signal number.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any, Final

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class GracefulStop:
    """A stop request the command watches for itself while `armed`."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.armed = False
        self.signum: int | None = None

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self.event.is_set()

    async def wait(self) -> None:
        """Until a stop is asked for."""
        await self.event.wait()


def run_interruptible(main: Coroutine[Any, Any, int], stop: GracefulStop | None = None) -> int:
    """`asyncio.run(main)`; a stop signal cancels it (or sets `stop` while armed) and
    returns 128 + the signal number."""
    return asyncio.run(_guarded(main, stop))


async def _guarded(main: Coroutine[Any, Any, int], stop: GracefulStop | None) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(main)
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if received:
            return
        received.append(signum)
        if stop is not None:
            stop.signum = signum
            stop.event.set()
            if stop.armed:
                return
        task.cancel()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        code = await task
    except asyncio.CancelledError:
        if received:
            return 128 + received[0]
        raise
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
    return 128 + received[0] if received else code
