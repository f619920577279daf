"""A group start at scale: eight RAOP emulators, one session, every frame from the first.

Eight streamers and eight ffmpeg start at once on a small machine, so the members' input
pipelines are still cold when the last one connects; the session must not choose T before its
members hold audio. Each emulator's received PCM is compared with the signal frame by frame,
and each streamer's own counters must show no underrun and no skipped (late) input.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from airplay_provider.protocol.streamer_status import Stats
from airplay_provider.session import StreamSession
from airplay_provider.session.member import MemberState, SessionMember
from airplay_provider.streamer_launcher import ForkServer
from tests.audio import test_signal
from tests.group_helpers import (
    FRAME_NTP,
    PREROLL_FRAMES,
    alive,
    flow_source,
    member_pids,
    play_ntp,
    raop_target,
)
from tests.receivers.raop_emulator import RaopEmulator

RATE = 44100
MEMBERS = 8


def final_stats(member: SessionMember) -> Stats:
    """The streamer's last `[STATUS] stats` (written at its clean exit)."""
    stats = member.streamer.last(Stats)
    assert stats is not None, f"{member.key} reported no stats"
    return stats


def assert_exact(emu: RaopEmulator, member: SessionMember, sent: bytes) -> None:
    """The receiver got every frame of `sent` from the member's first, gap-free, nothing lost."""
    assert emu.stream.missing_frames() == []
    got = emu.stream.reconstructed_pcm()[PREROLL_FRAMES * 4 :]
    assert got[: len(sent)] == sent, f"{member.key}: received audio differs from the signal"
    stats = final_stats(member)
    assert stats.underruns == 0, f"{member.key} underran: {stats}"
    assert stats.late == 0, f"{member.key} skipped late input: {stats}"
    assert member.state is MemberState.FINISHED
    assert not member.misaligned


@pytest.mark.parametrize("forked", [False, True], ids=["bin-cliraop", "fork-server"])
async def test_eight_members_start_together_and_every_receiver_gets_every_frame(
    forked: bool,
) -> None:
    signal_pcm = test_signal(5.0, seed=81)
    launcher = ForkServer() if forked else None
    # (the stack exits every emulator, each checking its errors, even when one of them fails)
    async with contextlib.AsyncExitStack() as stack:
        emus = [await stack.enter_async_context(RaopEmulator()) for _ in range(MEMBERS)]
        try:
            session = StreamSession(flow_source(signal_pcm, chunk_seconds=0.25), launcher=launcher)
            report = await session.start(
                [raop_target(f"m{i}", emu.port) for i, emu in enumerate(emus)]
            )
            assert report.failed == []
            assert await session.wait_ended(40)
            members = sorted(session.departed, key=lambda m: int(m.key[1:]))
            assert [m.key for m in members] == [f"m{i}" for i in range(MEMBERS)]
            for emu, member in zip(emus, members, strict=True):
                assert member.started is not None
                assert member.started.skipped_frames == 0
                assert_exact(emu, member, signal_pcm)
            # One timeline: every receiver schedules the same session frame within one frame.
            for frame in (0, RATE, 4 * RATE):
                times = [play_ntp(e, m, frame) for e, m in zip(emus, members, strict=True)]
                assert (max(times) - min(times)) / FRAME_NTP <= 1.0
            assert not any(alive(pid) for pid in member_pids(session))
        finally:
            if launcher is not None:
                await launcher.close()


async def test_late_joiner_into_a_group_of_eight_gets_every_frame_from_its_first() -> None:
    signal_pcm = test_signal(7.0, seed=82)
    async with contextlib.AsyncExitStack() as stack:
        emus = [await stack.enter_async_context(RaopEmulator()) for _ in range(MEMBERS + 1)]
        session = StreamSession(flow_source(signal_pcm, chunk_seconds=0.25))
        await session.start([raop_target(f"m{i}", e.port) for i, e in enumerate(emus[:MEMBERS])])
        await asyncio.sleep(1.5)
        join = await session.add_member(raop_target("late", emus[-1].port))
        assert join.error is None
        assert await session.wait_ended(40)
        late = next(m for m in session.departed if m.key == "late")
        assert late.started is not None
        assert late.started.first_sample == 0  # its first frame p was still playable
        assert_exact(emus[-1], late, signal_pcm[4 * join.offset :])
        first = next(m for m in session.departed if m.key == "m0")
        for frame in (join.offset, join.offset + RATE):
            gap = (play_ntp(emus[-1], late, frame) - play_ntp(emus[0], first, frame)) / FRAME_NTP
            assert abs(gap) <= 1.0
