"""session/mixing.py: the ducking envelope and the s16 mix, checked exactly (sans-I/O); and
the checks of `StreamSession.announce`."""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.session import SessionError, StreamSession
from airplay_provider.session.mixing import (
    Q15,
    Announcement,
    AnnouncementMixer,
    announcement_at,
    duck_gain_q15,
    ramp_down_q15,
)
from tests.announce_reference import expected_mix


def pcm(*frames: tuple[int, int]) -> bytes:
    return b"".join(struct.pack("<hh", left, right) for left, right in frames)


def samples(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def test_duck_gain_is_the_q15_of_the_level() -> None:
    assert duck_gain_q15(0.0) == Q15
    assert duck_gain_q15(-18.0) == 4125  # 32768 · 10^(−0.9) = 4125.3
    assert duck_gain_q15(-6.0) == 16423  # 32768 · 0.50119 = 16422.9
    with pytest.raises(ValueError, match="duck_db"):
        duck_gain_q15(3.0)
    with pytest.raises(ValueError, match="duck_db"):
        duck_gain_q15(-120.0)


def test_ramp_is_a_raised_cosine_strictly_between_full_and_ducked() -> None:
    # 3 steps: fractions (1 − cos(kπ/4))/2 for k = 1, 2, 3 = 0.1464, 0.5, 0.8536 of the depth
    # 28643 (the middle one is 0.5 − 6e−17 in floating point: 14321.49.. rounds to 14321).
    assert ramp_down_q15(4125, 3) == [28573, 18447, 8320]
    ramp = ramp_down_q15(4125, 3528)
    assert all(Q15 >= g >= 4125 for g in ramp)
    assert ramp[0] > ramp[-1]
    assert all(a >= b for a, b in itertools.pairwise(ramp))
    depth = Q15 - 4125  # symmetric around the middle: g(i) − duck = full − g(R−1−i)
    assert all(abs((g - 4125) - (Q15 - h)) <= 1 for g, h in zip(ramp, reversed(ramp), strict=True))
    assert depth == 28643


def test_envelope_down_hold_up_around_the_announcement() -> None:
    voice = pcm(*[(0, 0)] * 4)
    a = Announcement(start=10, pcm=voice, duck_q15=4125, ramp_frames=3)
    assert (a.duck_start, a.start, a.end, a.duck_end) == (7, 10, 14, 17)
    assert a.gains(5, 14) == [
        Q15, Q15,  # 5, 6: before
        28573, 18447, 8320,  # 7..9: down
        4125, 4125, 4125, 4125,  # 10..13: the announcement
        8320, 18447, 28573,  # 14..16: up (the ramp down mirrored)
        Q15, Q15,  # 17, 18: after
    ]  # fmt: skip


def test_mix_formula_with_saturation() -> None:
    a = Announcement(
        start=0, pcm=pcm((1000, -1000), (30000, -30000)), duck_q15=16384, ramp_frames=0
    )
    mixer = AnnouncementMixer()
    mixer.add(a)
    music = pcm((3, -3), (20000, -20000), (7, 8))
    out = samples(mixer.mix(0, music))
    # (m·16384 + 16384) >> 15: 3 → 2 (1.5 rounds up), −3 → −1 (−1.5 rounds up), 20000 → 10000.
    assert out == [1002, -1001, 32767, -32768, 7, 8]
    assert mixer.scheduled == []  # played out: dropped


def test_mix_across_chunks_equals_mix_at_once() -> None:
    voice = pcm(*[(i * 100, -i * 100) for i in range(1, 21)])
    music_frames = [(1000 + i, -1000 - i) for i in range(60)]
    whole = AnnouncementMixer()
    whole.add(Announcement(start=25, pcm=voice, duck_q15=4125, ramp_frames=5))
    at_once = whole.mix(0, pcm(*music_frames))
    split = AnnouncementMixer()
    split.add(Announcement(start=25, pcm=voice, duck_q15=4125, ramp_frames=5))
    pieces = [split.mix(f, pcm(*music_frames[f : f + 7])) for f in range(0, 60, 7)]
    assert b"".join(pieces) == at_once
    left = samples(at_once)[0::2]
    assert left[19] == 1019  # before the ramp: untouched
    assert left[25] == ((1025 * 4125 + 16384) >> 15) + 100  # its first sample on frame 25
    assert left[44] == ((1044 * 4125 + 16384) >> 15) + 2000
    assert left[50] == 1050  # after the ramp up


def test_chunks_outside_announcements_pass_through_unchanged() -> None:
    mixer = AnnouncementMixer()
    mixer.add(Announcement(start=100, pcm=pcm((5, 5)), duck_q15=0, ramp_frames=10))
    music = pcm(*[(9, 9)] * 90)
    assert mixer.mix(0, music) is music
    assert mixer.busy_after(90)
    assert not mixer.busy_after(111)


def test_overlapping_announcements_add_and_duck_once() -> None:
    mixer = AnnouncementMixer()
    mixer.add(Announcement(start=0, pcm=pcm((100, 100), (100, 100)), duck_q15=16384, ramp_frames=0))
    mixer.add(Announcement(start=1, pcm=pcm((10, 10), (10, 10)), duck_q15=8192, ramp_frames=0))
    out = samples(mixer.mix(0, pcm((1000, 1000), (1000, 1000), (1000, 1000))))
    assert out == [600, 600, 360, 360, 260, 260]  # 500+100 | 250+100+10 | 250+10


def test_placement_never_before_what_was_fed() -> None:
    voice = pcm((1, 1))
    assert announcement_at(voice, None, earliest_frame=1000, ramp_s=0.08).start == 1000 + 3528
    asked = announcement_at(voice, 441000, earliest_frame=1000)
    assert (asked.start, asked.duck_start) == (441000, 441000 - 3528)
    late = announcement_at(voice, 2000, earliest_frame=1000, ramp_s=0.05)
    assert late.start == 1000 + 2205
    with pytest.raises(ValueError, match="ramp_s"):
        announcement_at(voice, None, earliest_frame=0, ramp_s=2.0)
    with pytest.raises(ValueError, match="whole"):
        Announcement(start=0, pcm=b"\x00\x00", duck_q15=0, ramp_frames=0)


@given(
    music=st.lists(st.integers(-32768, 32767), min_size=2, max_size=400).filter(
        lambda v: len(v) % 2 == 0
    ),
    voice=st.lists(st.integers(-32768, 32767), min_size=2, max_size=100).filter(
        lambda v: len(v) % 2 == 0
    ),
    start=st.integers(-30, 220),
    duck_db=st.floats(-60.0, 0.0),
    ramp=st.integers(0, 40),
    chunk=st.integers(1, 64),
)
def test_mix_matches_the_reference_formula(
    music: list[int], voice: list[int], start: int, duck_db: float, ramp: int, chunk: int
) -> None:
    data = struct.pack(f"<{len(music)}h", *music)
    mixer = AnnouncementMixer()
    mixer.add(
        Announcement(
            start=start,
            pcm=struct.pack(f"<{len(voice)}h", *voice),
            duck_q15=duck_gain_q15(duck_db),
            ramp_frames=ramp,
        )
    )
    step = chunk * 4
    mixed = b"".join(mixer.mix(o // 4, data[o : o + step]) for o in range(0, len(data), step))
    voice_pcm = struct.pack(f"<{len(voice)}h", *voice)
    assert mixed == expected_mix(data, voice_pcm, start, duck_db=duck_db, ramp=ramp)


async def _no_audio() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing


async def test_session_announce_checks_its_arguments_and_state() -> None:
    session = StreamSession(_no_audio())
    voice = pcm((1, 1))
    for at in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="at must be"):
            await session.announce(voice, at=at)
    with pytest.raises(ValueError, match="duck_db"):
        await session.announce(voice, duck_db=1.0)
    placed = await session.announce(voice, at=2.0)
    assert (placed.start, placed.start_s) == (88200, 2.0)
    assert list(session.mixer.placed) == [(88200, 1)]
    await session.stop()
    with pytest.raises(SessionError, match="announce"):
        await session.announce(voice)
