"""A real shairport-sync receiver killed (SIGKILL) mid-group: its member is FAILED with
`receiver gone` within a second; the other member keeps every frame (issue 14)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from airplay_provider.protocol.streamer_status import ErrorCode
from airplay_provider.session import StreamSession
from airplay_provider.session.member import MemberState, SessionMember
from tests.audio import test_signal
from tests.group_helpers import PREROLL_FRAMES, alive, flow_source, member_pids, raop_target, when
from tests.receivers.raop_emulator import RaopEmulator
from tests.receivers.shairport import StartShairport

pytestmark = pytest.mark.receiver


async def test_killed_shairport_is_seen_within_a_second(start_shairport: StartShairport) -> None:
    signal_pcm = test_signal(6.0, seed=71)
    loop = asyncio.get_running_loop()
    receiver = await start_shairport("doomed")
    async with RaopEmulator() as emu:
        session = StreamSession(flow_source(signal_pcm), rejoin_delays_s=())
        report = await session.start(
            [raop_target("emulator", emu.port), raop_target(receiver.name, receiver.port)]
        )
        assert report.failed == []
        await asyncio.sleep(1.5)

        def dead_member() -> SessionMember | None:
            found = [m for m in session.departed if m.key == receiver.name]
            return found[0] if found and found[0].state is MemberState.FAILED else None

        gone = when(session, lambda: dead_member() is not None)
        killed = loop.time()
        os.kill(receiver.pid, signal.SIGKILL)
        await asyncio.wait_for(gone, 5.0)
        dead = dead_member()
        assert dead is not None
        noticed_s = loop.time() - killed
        assert noticed_s < 1.0, f"noticed after {noticed_s:.2f} s"
        assert dead.error_code == ErrorCode.RECEIVER_GONE, dead.error
        assert session.rejoins == {} or not session.rejoins[receiver.name].active
        assert await session.wait_ended(20)
        (survivor,) = [m for m in session.departed if m.key == "emulator"]
        assert survivor.state is MemberState.FINISHED
        got = emu.stream.reconstructed_pcm()[PREROLL_FRAMES * 4 :]
        assert got[: len(signal_pcm)] == signal_pcm
    assert not any(alive(pid) for pid in member_pids(session))
