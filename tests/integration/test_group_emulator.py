"""StreamSession with RAOP emulators as members: the exact schedule of every member, late join,
sync_adjust, pause/resume, a killed member, a stalled source. The emulator shares no code with
the sender, and its sync packets say exactly when each RTP frame would be played."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from airplay_provider.protocol.streamer_status import Playing
from airplay_provider.protocol.timing import ntp_add_frames, ntp_add_ns
from airplay_provider.session import SessionError, SessionState, StreamSession
from airplay_provider.session.member import MemberState
from tests.audio import test_signal
from tests.group_helpers import (
    FRAME_NTP,
    PREROLL_FRAMES,
    alive,
    flow_source,
    member_pids,
    play_ntp,
    raop_target,
    schedule_error_frames,
)
from tests.receivers.raop_emulator import RaopEmulator

RATE = 44100


def audio_segments(emu: RaopEmulator) -> int:
    """Stretches of audio between flushes (the start hold flushes before any audio)."""
    return sum(1 for segment in emu.stream.segments if segment.first_audio is not None)


def delivered(emu: RaopEmulator) -> bytes:
    """What the emulator got after the pre-roll, gap-free (raises on a gap)."""
    return emu.stream.reconstructed_pcm()[PREROLL_FRAMES * 4 :]


async def test_two_members_share_one_timeline_and_sync_adjust_shifts_one() -> None:
    signal_pcm = test_signal(3.0, seed=31)
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        session = StreamSession(flow_source(signal_pcm))
        report = await session.start(
            [raop_target("a", emu_a.port), raop_target("b", emu_b.port, sync_adjust_ms=20)]
        )
        assert report.failed == []
        assert await session.wait_ended(15)
        a, b = session.departed
        assert (a.key, b.key) == ("a", "b")
        assert a.state is MemberState.FINISHED
        assert b.state is MemberState.FINISHED
        assert a.start_ntp == session.start_ntp == report.start_ntp
        assert not a.misaligned
        assert not b.misaligned
        assert b.start_ntp == ntp_add_ns(session.start_ntp, 20_000_000)
        for emu, member in ((emu_a, a), (emu_b, b)):
            for frame in (0, 1, 352, RATE, 3 * RATE - 1):
                error = schedule_error_frames(emu, member, frame)
                assert abs(error) <= 1.0, f"{member.key} frame {frame} off by {error:.2f}"
            assert member.started is not None
            assert member.started.skipped_frames == 0, (member.started, report)
            assert delivered(emu)[: len(signal_pcm)] == signal_pcm  # bit-exact through ffmpeg
        # The same session frame plays exactly 20 ms (882 frames) later on b.
        for frame in (0, RATE, 2 * RATE):
            shift = (play_ntp(emu_b, b, frame) - play_ntp(emu_a, a, frame)) / FRAME_NTP
            assert abs(shift - 882) <= 1.0
        assert not any(alive(pid) for pid in member_pids(session))


async def test_late_join_starts_at_t_plus_p_and_nobody_else_restarts() -> None:
    signal_pcm = test_signal(6.0, seed=32)
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        session = StreamSession(flow_source(signal_pcm))
        await session.start([raop_target("a", emu_a.port)])
        await asyncio.sleep(2.0)
        join = await session.add_member(raop_target("b", emu_b.port))
        assert join.error is None
        p = join.offset
        assert 2 * RATE < p < 4 * RATE
        assert join.start_ntp == ntp_add_frames(session.start_ntp, p)
        assert await session.wait_ended(15)
        a, b = session.departed
        started = b.started
        assert started is not None
        assert started.first_sample == 0  # nothing skipped: p was chosen playable
        # The joiner's first sample is scheduled at T + p/44100 (± 1 frame) at its receiver.
        first = (play_ntp(emu_b, b, p) - (session.start_ntp + p * FRAME_NTP)) / FRAME_NTP
        assert abs(first) <= 1.0
        for frame in (p, p + RATE, len(signal_pcm) // 4 - 1):
            assert abs(schedule_error_frames(emu_b, b, frame)) <= 1.0
            gap = (play_ntp(emu_b, b, frame) - play_ntp(emu_a, a, frame)) / FRAME_NTP
            assert abs(gap) <= 1.0
        assert delivered(emu_b)[: len(signal_pcm) - 4 * p] == signal_pcm[4 * p :]
        # The first member saw no gap, no flush, no second segment.
        assert delivered(emu_a)[: len(signal_pcm)] == signal_pcm
        assert audio_segments(emu_a) == 1
        assert len(emu_a.core.flushes) == 1  # only the start hold: no restart


async def test_killed_member_is_removed_and_the_other_plays_on() -> None:
    signal_pcm = test_signal(4.0, seed=33)
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        session = StreamSession(flow_source(signal_pcm))
        await session.start([raop_target("a", emu_a.port), raop_target("b", emu_b.port)])
        await asyncio.sleep(1.5)
        victim = session.members["b"]
        pid = victim.streamer.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert await session.wait_ended(15)
        a, b = sorted(session.departed, key=lambda m: m.key)
        assert b.state is MemberState.FAILED
        assert "exited" in (b.error or "")
        assert a.state is MemberState.FINISHED
        assert delivered(emu_a)[: len(signal_pcm)] == signal_pcm
        assert not any(alive(p) for p in member_pids(session))  # no zombies either


async def test_stalled_source_gets_silence_not_a_teardown() -> None:
    signal_pcm = test_signal(3.0, seed=34)
    async with RaopEmulator() as emu:
        source = flow_source(signal_pcm, chunk_seconds=0.5, stall_after_s=1.0, stall_s=4.0)
        session = StreamSession(source)
        await session.start([raop_target("a", emu.port)])
        assert await session.wait_ended(20)
        (member,) = session.departed
        assert member.state is MemberState.FINISHED
        assert session.silence_frames >= 2 * RATE  # the stall was bridged with silence
        got = delivered(emu)
        head, tail = signal_pcm[: 4 * RATE], signal_pcm[4 * RATE :]
        assert got.startswith(head)
        gap = got.find(tail)
        assert gap > len(head)
        assert set(got[len(head) : gap]) == {0}  # silence in between, then the rest, intact
        assert audio_segments(emu) == 1


async def test_group_pause_and_resume_keep_members_aligned() -> None:
    signal_pcm = test_signal(5.0, seed=35)
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        session = StreamSession(flow_source(signal_pcm))
        await session.start([raop_target("a", emu_a.port), raop_target("b", emu_b.port)])
        await asyncio.sleep(1.6)
        await session.pause()
        assert session.state is SessionState.PAUSED
        a, b = session.members["a"], session.members["b"]
        assert a.paused_frame is not None
        assert b.paused_frame is not None
        await asyncio.sleep(0.8)
        await session.resume()
        assert await session.wait_ended(20)
        assert a.state is MemberState.FINISHED
        assert b.state is MemberState.FINISHED
        assert not a.misaligned  # both took the resume instant they were given
        assert not b.misaligned
        after = max(a.paused_frame, b.paused_frame)
        for frame in (after, after + RATE, len(signal_pcm) // 4 - 1):
            gap = (play_ntp(emu_b, b, frame) - play_ntp(emu_a, a, frame)) / FRAME_NTP
            assert abs(gap) <= 1.0, f"members {gap:.2f} frames apart at {frame}"
            # ... and both on the session's new timeline.
            assert abs(schedule_error_at(session.start_ntp, emu_a, a, frame)) <= 1.0
        for emu, member in ((emu_a, a), (emu_b, b)):
            assert len(emu.core.flushes) == 2  # the start hold, then the pause
            resumed = member.streamer.last(Playing)
            assert resumed is not None
            assert resumed.first_sample == member.paused_frame
            tail = signal_pcm[4 * member.paused_frame :]
            assert tail in emu.stream.reconstructed_pcm()


def schedule_error_at(start_ntp: int, emu: RaopEmulator, member: object, frame: int) -> float:
    """Play instant of session `frame` minus `start_ntp + frame/44100`, in frames."""
    return (play_ntp(emu, member, frame) - (start_ntp + frame * FRAME_NTP)) / FRAME_NTP  # type: ignore[arg-type]


async def test_no_member_connects_is_a_clear_error_and_nothing_is_left() -> None:
    session = StreamSession(flow_source(test_signal(1.0)))
    with pytest.raises(SessionError, match="no member could start"):
        await session.start([raop_target("nobody", 9)])  # discard port: refused
    assert session.state is SessionState.ENDED
    assert not any(alive(p) for p in member_pids(session))


async def test_removing_a_member_leaves_the_other_untouched() -> None:
    signal_pcm = test_signal(3.0, seed=36)
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        session = StreamSession(flow_source(signal_pcm))
        await session.start([raop_target("a", emu_a.port), raop_target("b", emu_b.port)])
        await asyncio.sleep(1.2)
        await session.remove_member("b")
        assert "b" not in session.members
        assert emu_b.core.teardown_at is not None
        assert await session.wait_ended(15)
        assert delivered(emu_a)[: len(signal_pcm)] == signal_pcm
        assert audio_segments(emu_a) == 1
        assert not any(alive(p) for p in member_pids(session))


async def test_member_that_stops_reading_is_dropped_without_disturbing_the_other() -> None:
    signal_pcm = test_signal(9.0, seed=37)
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        session = StreamSession(flow_source(signal_pcm))
        await session.start([raop_target("a", emu_a.port), raop_target("b", emu_b.port)])
        await asyncio.sleep(1.0)
        stuck = session.members["b"]
        pid = stuck.streamer.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # alive, but it reads nothing any more
        try:
            assert await session.wait_ended(25)
        finally:
            if alive(pid):
                os.kill(pid, signal.SIGCONT)
        a, b = sorted(session.departed, key=lambda m: m.key)
        assert b.state is MemberState.FAILED
        assert "stopped reading" in (b.error or "")
        assert a.state is MemberState.FINISHED
        assert delivered(emu_a)[: len(signal_pcm)] == signal_pcm  # no gap for the other one
        assert audio_segments(emu_a) == 1
        assert not any(alive(p) for p in member_pids(session))


async def test_start_instant_waits_for_the_sources_first_audio() -> None:
    """A source slower than the members' connect (Music Assistant's first chunk): T is chosen
    once audio is there, so the receiver gets the signal from its first frame — no silence
    stuffed in front, nothing skipped as late (AirPlay 2's 250 ms latency lost ~0.12 s)."""
    signal_pcm = test_signal(2.0, seed=33)

    async def slow_first_chunk() -> AsyncIterator[bytes]:
        await asyncio.sleep(0.8)  # the source's own delay, not a test wait
        async for chunk in flow_source(signal_pcm):
            yield chunk

    async with RaopEmulator() as emu:
        session = StreamSession(slow_first_chunk())
        try:
            report = await session.start([raop_target("a", emu.port)])
            assert report.failed == []
            assert session.silence_frames == 0
            assert await session.wait_ended(15)
        finally:
            await session.stop()
        assert delivered(emu)[: len(signal_pcm)] == signal_pcm
