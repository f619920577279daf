"""No secret on a streamer's command line: the password and the Active-Remote token reach
`cliraop` through an inherited pipe, and it still authenticates and announces the token."""

from __future__ import annotations

from pathlib import Path

import pytest

from airplay_provider.session import StreamSession
from airplay_provider.streamer_launcher import ForkServer
from tests.audio import test_signal
from tests.group_helpers import flow_source, raop_target
from tests.receivers.raop_emulator import RaopEmulator

PASSWORD = "correct horse battery"
TOKEN = 3141592653


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.mark.parametrize("forked", [False, True], ids=["bin-cliraop", "fork-server"])
async def test_password_and_token_never_appear_in_the_streamers_cmdline(forked: bool) -> None:
    launcher = ForkServer() if forked else None
    async with RaopEmulator(password=PASSWORD) as emu:
        session = StreamSession(flow_source(test_signal(1.5, seed=5)), launcher=launcher)
        target = raop_target("locked", emu.port, password=PASSWORD, active_remote=TOKEN)
        report = await session.start([target])
        assert report.failed == []
        try:
            (member,) = session.members.values()
            assert member.streamer.pid is not None
            seen = cmdline(member.streamer.pid)
            # A forked streamer shows its parent's command line (the fork server's).
            assert ("-secretsfd" in seen) is not forked
            assert PASSWORD not in seen
            assert str(TOKEN) not in seen
            assert await session.wait_ended(15)
        finally:
            await session.stop()
        announced = [r for r in emu.core.requests if r.method == "ANNOUNCE"]
        assert announced
        assert announced[-1].status == 200  # the Digest answer used the password from the pipe
        assert {r.headers.get("active-remote") for r in emu.core.requests} == {str(TOKEN)}
    if launcher is not None:
        await launcher.close()
