"""Announcements over the music (issue 11): mixed once in the session's feed, so every room
gets the same samples at the same session frames. Each room's audio is compared sample by
sample with the mix computed independently (tests/announce_reference.py); the RAOP emulator
also shows when the announcement's first frame is scheduled to play."""

from __future__ import annotations

from pathlib import Path

import pytest

from airplay_provider.session import SessionError, StreamSession
from airplay_provider.session.member import MemberState
from tests.announce_reference import expected_mix, write_wav
from tests.audio import compare_audio, test_signal
from tests.group_helpers import (
    PREROLL_FRAMES,
    alive,
    flow_source,
    member_pids,
    raop_target,
    schedule_error_frames,
    when,
)
from tests.receivers.raop_emulator import RaopEmulator
from tests.receivers.shairport import StartShairport

RATE = 44100
RAMP = 3528  # the default 80 ms ramps


def delivered(emu: RaopEmulator) -> bytes:
    """What the emulator got after cliraop's pre-roll, gap-free (raises on a gap)."""
    return emu.stream.reconstructed_pcm()[PREROLL_FRAMES * 4 :]


async def test_announcement_from_a_file_is_mixed_identically_into_two_rooms(
    tmp_path: Path,
) -> None:
    music = test_signal(5.0, seed=61)
    voice = test_signal(1.2, seed=62)
    path = write_wav(tmp_path / "doorbell.wav", voice)
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        session = StreamSession(flow_source(music))
        report = await session.start([raop_target("a", emu_a.port), raop_target("b", emu_b.port)])
        assert report.failed == []
        placed = await session.announce(path, at=3.0)
        assert (placed.start, placed.frames) == (3 * RATE, len(voice) // 4)
        assert await session.wait_announced(placed, timeout=15)
        assert session.position_s >= (3 * RATE + len(voice) // 4 + RAMP) / RATE
        assert await session.wait_ended(15)
        expected = expected_mix(music, voice, 3 * RATE)
        assert expected != music
        for emu, member in zip((emu_a, emu_b), session.departed, strict=True):
            assert member.state is MemberState.FINISHED
            got = delivered(emu)
            assert got[: len(expected)] == expected, member.key  # exact, every sample
            assert not any(got[len(expected) :])  # then nothing but cliraop's closing silence
            # Its first sample is scheduled at T + start/44100 in both rooms.
            error = schedule_error_frames(emu, member, placed.start)
            assert abs(error) <= 1.0, f"{member.key}: first sample off by {error:.2f} frames"
        assert not any(alive(pid) for pid in member_pids(session))


async def test_silence_carries_an_announcement_past_the_end_of_the_music() -> None:
    music = test_signal(2.0, seed=63)
    voice = test_signal(1.5, seed=64)
    async with RaopEmulator() as emu:
        session = StreamSession(flow_source(music))
        await session.start([raop_target("a", emu.port)])
        placed = await session.announce(voice, at=1.5, duck_db=-6.0, ramp_s=0.05)
        assert placed.start == round(1.5 * RATE)
        with pytest.raises(ValueError, match="duck_db"):
            await session.announce(voice, duck_db=6.0)
        assert await session.wait_ended(15)
        (member,) = session.departed
        assert member.state is MemberState.FINISHED
        padded = music + bytes((placed.end + 2205) * 4 - len(music))  # until the ramp's end
        expected = expected_mix(padded, voice, placed.start, duck_db=-6.0, ramp=2205)
        assert delivered(emu)[: len(expected)] == expected
        assert session.silence_frames >= placed.end + 2205 - len(music) // 4
        with pytest.raises(SessionError, match="announce"):
            await session.announce(voice)


async def test_an_announcement_asked_too_early_starts_at_the_first_frame_not_yet_sent() -> None:
    music = test_signal(3.0, seed=65)
    voice = test_signal(0.3, seed=66)
    async with RaopEmulator() as emu:
        session = StreamSession(flow_source(music))
        await session.start([raop_target("a", emu.port)])
        fed = session.fed
        placed = await session.announce(voice, at=0.0)  # its audio is already in the streamer
        assert placed.start == fed + RAMP
        assert await session.wait_ended(15)
        expected = expected_mix(music, voice, placed.start)
        assert delivered(emu)[: len(expected)] == expected


async def test_a_late_joiner_gets_the_announcement_mixed_from_its_first_frame() -> None:
    music = test_signal(7.0, seed=69)
    voice = test_signal(2.0, seed=70)
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        session = StreamSession(flow_source(music))
        await session.start([raop_target("a", emu_a.port)])
        placed = await session.announce(voice, at=2.5)
        await when(session, lambda: session.position_s >= 2.0)
        join = await session.add_member(raop_target("b", emu_b.port))
        assert join.error is None
        p = join.offset
        assert placed.start < p < placed.end  # it joins in the middle of the announcement
        assert await session.wait_ended(15)
        expected = expected_mix(music, voice, placed.start)
        assert delivered(emu_a)[: len(expected)] == expected
        assert delivered(emu_b)[: len(expected) - 4 * p] == expected[4 * p :]
        a, b = session.departed
        assert abs(schedule_error_frames(emu_b, b, placed.end)) <= 1.0
        assert abs(schedule_error_frames(emu_a, a, placed.end)) <= 1.0
        assert len(emu_a.core.flushes) == 1  # only the start hold: nothing restarted


@pytest.mark.receiver
async def test_announcement_over_three_shairport_rooms_and_the_emulator(
    start_shairport: StartShairport,
) -> None:
    music = test_signal(8.0, seed=67)
    voice = test_signal(2.0, seed=68)
    receivers = [await start_shairport(f"annc{i}") for i in range(3)]
    async with RaopEmulator() as emu:
        targets = [raop_target(r.name, r.port, volume=60) for r in receivers]
        targets.append(raop_target("emulator", emu.port))
        session = StreamSession(flow_source(music))
        report = await session.start(targets)
        assert report.failed == []
        placed = await session.announce(voice, at=4.0)
        assert placed.start == 4 * RATE
        assert await session.wait_ended(30)
        assert {m.state for m in session.departed} == {MemberState.FINISHED}
        for member in session.departed:
            assert member.started is not None
            assert member.started.actual_ntp == session.start_ntp  # all on one timeline
            assert member.started.skipped_frames == 0
        emulated = next(m for m in session.departed if m.key == "emulator")
        error = schedule_error_frames(emu, emulated, placed.start)
        assert abs(error) <= 1.0, f"first sample off by {error:.2f} frames"
        expected = expected_mix(music, voice, placed.start)
        assert delivered(emu)[: len(expected)] == expected
    # One frame later would be another signal: the comparison below would see it.
    shifted = expected_mix(music, voice, placed.start + 1)
    for receiver in receivers:
        output = await receiver.settled_output()
        comparison = compare_audio(output, expected)  # ±2 LSB: shairport-sync's dither
        assert comparison.ok, (receiver.name, comparison)
        assert comparison.frames_compared == len(expected) // 4
        # The announcement's first sample is at the same frame of the music in every room.
        assert not compare_audio(output, shifted).ok
    assert not any(alive(pid) for pid in member_pids(session))
