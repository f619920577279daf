"""`host.signals`: a stop signal cancels a command, or asks an armed one to stop by itself;
either way the exit code is 128 + the signal number."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from airplay_provider.host.signals import GracefulStop, run_interruptible


def raise_soon(signum: int) -> None:
    asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signum)


def test_an_armed_command_stops_by_itself_and_exits_128_plus_n() -> None:
    stop = GracefulStop()
    seen: list[str] = []

    async def command() -> int:
        stop.armed = True
        raise_soon(signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 5)
        seen.append("finished its own way")
        return 0

    assert run_interruptible(command(), stop) == 143
    assert seen == ["finished its own way"]
    assert stop.signum == signal.SIGTERM


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_before_it_is_armed_the_command_is_cancelled(signum: int, code: int) -> None:
    stop = GracefulStop()
    cleaned: list[bool] = []

    async def command() -> int:
        raise_soon(signum)
        try:
            await asyncio.sleep(5)
        finally:
            cleaned.append(stop.is_set())
        return 0

    assert run_interruptible(command(), stop) == code
    assert cleaned == [True]
    assert signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler)  # restored


def test_the_play_help_documents_every_exit_status() -> None:
    from airplay_provider.host import cmd_play  # noqa: PLC0415 - heavy import, here only
    from airplay_provider.host.cmd_play_args import EXIT_STATUS_HELP  # noqa: PLC0415

    for code in (0, cmd_play.EXIT_FAILED, cmd_play.EXIT_USAGE, cmd_play.EXIT_PARTIAL):
        assert f"\n  {code}        " in EXIT_STATUS_HELP
    assert "128+N" in EXIT_STATUS_HELP
