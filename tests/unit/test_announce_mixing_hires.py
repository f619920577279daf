"""session/mixing.py in a hi-res session's format (s24le stereo, 48 kHz frames), sans-I/O:
the same ducking and Q15 formula as at 16 bits, saturating at 24 bits, with ramps and
placement counted at 48 kHz; checked against the independent reference
(tests/announce_reference.py) and through `StreamSession._distribute`."""

from __future__ import annotations

import asyncio
import random
from array import array
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.pcm_convert import flow_to_s24
from airplay_provider.session import StreamSession
from airplay_provider.session.announcing import (
    CONVERT_PIECE_S,
    collect_announcement,
    decode_announcement,
)
from airplay_provider.session.mixing import (
    Announcement,
    AnnouncementMixer,
    announcement_at,
    duck_gain_q15,
)
from airplay_provider.session.pcm_format import CD_FORMAT, HIRES_FORMAT
from tests.announce_reference import expected_mix, write_wav

TOP, BOTTOM = 2**23 - 1, -(2**23)


def s24(*values: int) -> bytes:
    return b"".join(v.to_bytes(3, "little", signed=True) for v in values)


def values_of(pcm: bytes) -> list[int]:
    return [int.from_bytes(pcm[i : i + 3], "little", signed=True) for i in range(0, len(pcm), 3)]


def flow_of_s24(values: list[int]) -> bytes:
    """f32le whose s24 conversion is exactly `values` (24-bit values are exact in a float)."""
    return array("f", (v / 2**23 for v in values)).tobytes()


def test_the_24_bit_mix_formula_saturates_at_24_bits() -> None:
    mixer = AnnouncementMixer(HIRES_FORMAT)
    voice = s24(1000, -1000, 8_000_000, -8_000_000)
    mixer.add(Announcement(0, voice, duck_q15=16384, ramp_frames=0, pcm_format=HIRES_FORMAT))
    music = s24(3, -3, 2_000_000, -2_000_000, 70000, -70000)
    out = values_of(mixer.mix(0, music))
    # (m·16384 + 16384) >> 15: 3 → 2, −3 → −1; 8e6 + 1e6 is past 2^23 − 1: saturated.
    assert out == [1002, -1001, TOP, BOTTOM, 70000, -70000]
    assert mixer.scheduled == []


def test_formats_do_not_mix() -> None:
    with pytest.raises(ValueError, match="whole 6-byte frames"):
        Announcement(0, bytes(4), duck_q15=0, ramp_frames=0, pcm_format=HIRES_FORMAT)
    mixer = AnnouncementMixer(HIRES_FORMAT)
    with pytest.raises(ValueError, match="cannot be mixed into 24-bit/48 kHz"):
        mixer.add(Announcement(0, bytes(4), duck_q15=0, ramp_frames=0))
    assert mixer.scheduled == []


def test_ramps_and_placement_count_48k_frames() -> None:
    voice = s24(1, 1)
    placed = announcement_at(voice, None, earliest_frame=1000, pcm_format=HIRES_FORMAT)
    assert (placed.ramp_frames, placed.start) == (3840, 1000 + 3840)  # 80 ms at 48 kHz
    asked = announcement_at(voice, 96000, earliest_frame=0, pcm_format=HIRES_FORMAT)
    assert (asked.start_s, asked.frames, asked.duck_end) == (2.0, 1, 96001 + 3840)


@given(
    music=st.lists(st.integers(BOTTOM, TOP), min_size=2, max_size=300).filter(
        lambda v: len(v) % 2 == 0
    ),
    voice=st.lists(st.integers(BOTTOM, TOP), min_size=2, max_size=80).filter(
        lambda v: len(v) % 2 == 0
    ),
    start=st.integers(-30, 160),
    duck_db=st.floats(-60.0, 0.0),
    ramp=st.integers(0, 40),
    chunk=st.integers(1, 64),
)
def test_the_24_bit_mix_matches_the_reference(
    music: list[int], voice: list[int], start: int, duck_db: float, ramp: int, chunk: int
) -> None:
    data, voice_pcm = s24(*music), s24(*voice)
    mixer = AnnouncementMixer(HIRES_FORMAT)
    mixer.add(Announcement(start, voice_pcm, duck_gain_q15(duck_db), ramp, pcm_format=HIRES_FORMAT))
    step = chunk * 6
    mixed = b"".join(mixer.mix(o // 6, data[o : o + step]) for o in range(0, len(data), step))
    assert mixed == expected_mix(data, voice_pcm, start, duck_db=duck_db, ramp=ramp, bits=24)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


async def test_a_hires_session_mixes_on_its_frames_before_the_taps_and_branches() -> None:
    rng = random.Random(5)
    music = [rng.randint(-(2**21), 2**21) for _ in range(2 * 9600)]  # 0.2 s at 48 kHz
    voice = [rng.randint(-(2**20), 2**20) for _ in range(2 * 2400)]
    session = StreamSession(_nothing(), pcm_format=HIRES_FORMAT, ring_seconds=1.0)
    tapped: list[bytes] = []
    session.pcm_taps.append(lambda first, pcm: tapped.append(pcm))
    with pytest.raises(ValueError, match=r"announcement PCM is 16-bit/44\.1 kHz"):
        await session.announce(bytes(400))  # s16 44.1 kHz is not the session's format
    placed = await session.announce(s24(*voice), at=0.1, pcm_format=HIRES_FORMAT, ramp_s=0.01)
    assert (placed.start, placed.ramp_frames, placed.frames) == (4800, 480, 2400)
    flow = flow_of_s24(music)
    for offset in range(0, len(flow), 1000 * 8):  # chunks that do not fall on the ramps
        session._distribute(flow[offset : offset + 1000 * 8])
    expected = expected_mix(s24(*music), s24(*voice), 4800, ramp=480, bits=24)
    assert expected != s24(*music)
    assert b"".join(tapped) == expected
    assert b"".join(session.ring.since(0)) == expected  # late joiners get the mix too
    await session.stop()


async def _chunks(flow: bytes, size: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(flow), size):
        yield flow[offset : offset + size]


async def test_collect_converts_the_announcement_like_the_music() -> None:
    values = [random.Random(6).randint(BOTTOM, TOP) for _ in range(2 * 500)]
    flow = flow_of_s24(values)
    got = await collect_announcement(_chunks(flow, 1001), "voice", pcm_format=HIRES_FORMAT)
    assert got == flow_to_s24(flow) == s24(*values)
    cd = await collect_announcement(_chunks(flow, 1001), "voice", pcm_format=CD_FORMAT)
    assert len(cd) == len(values) * 2  # (the 16-bit default, unchanged)


async def test_one_long_chunk_is_converted_a_piece_per_loop_pass() -> None:
    """A host may hand the whole announcement over at once (Music Assistant did: 0.16 s of its
    loop): the conversion yields every `CONVERT_PIECE_S`, and the result is the same."""
    values = [random.Random(8).randint(BOTTOM, TOP) for _ in range(2 * 48000 * 3)]  # 3 s
    flow = flow_of_s24(values)
    passes = 0
    done = False

    async def count_passes() -> None:
        nonlocal passes
        while not done:
            passes += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(count_passes())
    await asyncio.sleep(0)
    start = passes
    got = await collect_announcement(_chunks(flow, len(flow)), "voice", pcm_format=HIRES_FORMAT)
    done = True
    await ticker
    assert got == flow_to_s24(flow)
    assert passes - start >= 3.0 / CONVERT_PIECE_S  # the loop ran between the pieces


async def test_a_24_bit_48k_file_decodes_to_its_exact_samples(tmp_path: Path) -> None:
    values = [random.Random(7).randint(BOTTOM, TOP) for _ in range(2 * 4800)]
    path = write_wav(tmp_path / "bell.wav", s24(*values), bits=24, rate=48000)
    assert await decode_announcement(path, pcm_format=HIRES_FORMAT) == s24(*values)
