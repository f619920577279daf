"""A receiver that dies mid-group: seen within 1 s (its streamer reports `receiver_gone`), the
member is FAILED and dropped, the others keep every frame; when the receiver comes back on the
same port the member rejoins by itself, in sync (issue 14)."""

from __future__ import annotations

import asyncio

from airplay_provider.protocol.streamer_status import ErrorCode
from airplay_provider.session import StreamSession
from airplay_provider.session.member import MemberState, SessionMember
from airplay_provider.session.rejoin import RejoinState
from tests.audio import test_signal
from tests.group_helpers import (
    PREROLL_FRAMES,
    alive,
    flow_source,
    member_pids,
    play_ntp,
    raop_target,
    schedule_error_frames,
    when,
)
from tests.receivers.raop_emulator import RaopEmulator

RATE = 44100
LADDER_S = (0.3, 0.3, 0.5, 1.0)  # the real ladder (5/15/30/60/120 s), shrunk


def delivered(emu: RaopEmulator) -> bytes:
    """What the emulator got after the pre-roll, gap-free (raises on a gap)."""
    return emu.stream.reconstructed_pcm()[PREROLL_FRAMES * 4 :]


def failed(session: StreamSession, key: str) -> SessionMember | None:
    """The member `key` once it is FAILED."""
    for member in (*session.members.values(), *session.departed):
        if member.key == key and member.state is MemberState.FAILED:
            return member
    return None


async def test_killed_receiver_fails_in_a_second_and_rejoins_in_sync() -> None:
    signal_pcm = test_signal(9.0, seed=51)
    loop = asyncio.get_running_loop()
    # b is killed and closed midway; leaving its block still checks what it recorded.
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        port_b = emu_b.port
        session = StreamSession(flow_source(signal_pcm), rejoin_delays_s=LADDER_S)
        report = await session.start([raop_target("a", emu_a.port), raop_target("b", port_b)])
        assert report.failed == []
        await asyncio.sleep(1.5)
        gone = when(session, lambda: failed(session, "b") is not None)
        killed = loop.time()
        emu_b.kill()
        await asyncio.wait_for(gone, 5.0)
        dead = failed(session, "b")
        assert dead is not None
        noticed_s = loop.time() - killed
        await emu_b.close()
        assert noticed_s < 1.0, f"noticed after {noticed_s:.2f} s"
        assert dead.error_code == ErrorCode.RECEIVER_GONE
        assert (dead.error or "").startswith("receiver gone")
        assert "b" not in session.members or session.members["b"] is not dead
        # Nobody answers on port_b for a while: at least one attempt fails, then it is back.
        rejoin = session.rejoins["b"]
        await asyncio.sleep(0.8)
        assert rejoin.state in (RejoinState.WAITING, RejoinState.TRYING)
        assert rejoin.attempts >= 1
        async with RaopEmulator(port=port_b) as emu_b2:
            await asyncio.wait_for(when(session, lambda: rejoin.state is RejoinState.REJOINED), 5)
            back = session.members["b"]
            assert back is not dead
            assert await session.wait_ended(20)
            a = next(m for m in session.departed if m.key == "a")
            assert a.state is MemberState.FINISHED
            assert back.state is MemberState.FINISHED
            # The survivor kept every frame, with no restart.
            assert delivered(emu_a)[: len(signal_pcm)] == signal_pcm
            # The rejoined member plays in sync, from its join frame p on, bit-exact.
            p = back.offset
            assert 0 < p < len(signal_pcm) // 4 - RATE
            for frame in (p, p + RATE // 2, len(signal_pcm) // 4 - 1):
                assert abs(schedule_error_frames(emu_b2, back, frame)) <= 1.0
                gap = (play_ntp(emu_b2, back, frame) - play_ntp(emu_a, a, frame)) * RATE / 2**32
                assert abs(gap) <= 1.0, f"frame {frame}: {gap:.2f} frames from the survivor"
            assert delivered(emu_b2)[: len(signal_pcm) - 4 * p] == signal_pcm[4 * p :]
    assert not any(alive(pid) for pid in member_pids(session))


async def test_a_member_removed_on_purpose_stops_rejoining() -> None:
    signal_pcm = test_signal(6.0, seed=52)
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        session = StreamSession(flow_source(signal_pcm), rejoin_delays_s=(0.5, 0.5, 0.5))
        await session.start([raop_target("a", emu_a.port), raop_target("b", emu_b.port)])
        await asyncio.sleep(1.0)
        gone = when(session, lambda: failed(session, "b") is not None)
        emu_b.kill()
        await asyncio.wait_for(gone, 5.0)
        rejoin = session.rejoins["b"]
        assert rejoin.active
        await session.remove_member("b")  # the user ungroups it meanwhile
        assert rejoin.state is RejoinState.HALTED or rejoin.halt.is_set()
        await asyncio.sleep(1.2)
        assert rejoin.state is RejoinState.HALTED
        assert rejoin.attempts == 0
        assert "b" not in session.members
        await session.stop()
    assert not any(alive(pid) for pid in member_pids(session))


async def test_a_member_removed_while_it_rejoins_does_not_come_back() -> None:
    signal_pcm = test_signal(6.0, seed=53)
    # b is killed and closed midway; leaving its block still checks what it recorded.
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        session = StreamSession(flow_source(signal_pcm), rejoin_delays_s=(0.3,))
        await session.start([raop_target("a", emu_a.port), raop_target("b", emu_b.port)])
        await asyncio.sleep(1.0)
        gone = when(session, lambda: failed(session, "b") is not None)
        emu_b.kill()
        await asyncio.wait_for(gone, 5.0)
        await emu_b.close()
        rejoin = session.rejoins["b"]
        async with RaopEmulator(port=emu_b.port) as emu_b2:
            await asyncio.wait_for(when(session, lambda: rejoin.state is RejoinState.TRYING), 5)
            await session.remove_member("b")  # while it connects
            await asyncio.wait_for(when(session, lambda: not rejoin.active), 10)
            assert rejoin.state is RejoinState.HALTED
            assert "b" not in session.members
            await emu_b2.wait_for(lambda core: core.teardown_at is not None, 5)
        assert session.members.keys() == {"a"}
        await session.stop()
    assert not any(alive(pid) for pid in member_pids(session))
