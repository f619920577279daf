"""Announcements in a hi-res group (GroupPlayback → StreamSession → cliap2 → the AirPlay 2
emulator), the provider's Music Assistant path (`GroupPlayback.announce`): the announcement is
asked for at 48 kHz, mixed once in s24le on the session's 48 kHz frames; the hi-res member
receives the independent reference mix (tests/announce_reference.py) bit for bit, and the
16-bit member, fed by the group's resampling branch, hears it at the same instant (± 1 frame).
A listen-along listener (real ffmpeg, RTP/L24/48000/2) hears the same mix bit for bit.
"""

from __future__ import annotations

import asyncio
import random
from array import array
from collections.abc import AsyncIterator

from music_assistant_models.player import PlayerMedia

from airplay_provider.listen_along import ListenAlongServer
from airplay_provider.pcm_convert import flow_to_s24
from airplay_provider.protocol.timing import ntp_add_frames, unix_ns_from_ntp
from airplay_provider.session import GroupPlayback
from airplay_provider.session.pcm_format import CD_FORMAT, HIRES_FORMAT
from tests.announce_reference import expected_mix
from tests.integration.test_group_hires import (
    BUFFERED,
    HIRES,
    NOT_APPLE,
    PLAIN,
    _impulse_ns,
    _locate_s24,
    _player,
    flow_24,
)
from tests.integration.test_listen_along import ffmpeg_record
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_sender import NO_PTP_FEATURES

MUSIC_URI = "test://music"
VOICE_URI = "test://doorbell"
IMPULSE_AT = 24000  # the voice's loudest sample: 0.5 s into it
RAMP_48K = 3840  # the default 80 ms ramps at 48 kHz


class Sources:
    """Flow PCM by URI, as Music Assistant's stream controller would serve it; records the
    rate each stream was asked for."""

    def __init__(self, flows: dict[str, bytes]) -> None:
        self.flows = flows
        self.asked: list[tuple[str, int]] = []

    def __call__(
        self, player_id: str, media: PlayerMedia, sample_rate: int = 44100
    ) -> AsyncIterator[bytes]:
        self.asked.append((media.uri, sample_rate))
        return self._chunks(self.flows[media.uri], sample_rate * 8)

    async def _chunks(self, flow: bytes, step: int) -> AsyncIterator[bytes]:
        for offset in range(0, len(flow), step):
            yield flow[offset : offset + step]


def _quiet_music(seconds: float, seed: int) -> bytes:
    floats = array("f")
    floats.frombytes(flow_24(seconds, seed=seed))
    return array("f", (v / 64 for v in floats)).tobytes()


def _voice(seconds: float, seed: int) -> bytes:
    """f32le at 48 kHz of 24-bit values (exact through s24): quiet noise, one loud sample."""
    rng = random.Random(seed)
    values = [rng.randint(-(2**14), 2**14) for _ in range(round(seconds * 48000) * 2)]
    values[2 * IMPULSE_AT] = values[2 * IMPULSE_AT + 1] = 7_500_000
    return array("f", (v / 2**23 for v in values)).tobytes()


async def test_an_announcement_is_mixed_into_a_mixed_hires_group_and_heard_together() -> None:
    music, voice = _quiet_music(6.0, seed=91), _voice(1.0, seed=92)
    sources = Sources({MUSIC_URI: music, VOICE_URI: voice})
    async with (
        Ap2Receiver(features=BUFFERED, model=NOT_APPLE) as den,
        Ap2Receiver(features=NO_PTP_FEATURES, model=NOT_APPLE) as attic,  # realtime: 16-bit
    ):
        players = [
            _player("Den", "AA:BB:CC:00:09:01", den.port, BUFFERED, HIRES),
            _player("Attic", "AA:BB:CC:00:09:02", attic.port, NO_PTP_FEATURES, PLAIN),
        ]
        den_id, attic_id = (p.player_id for p in players)
        by_id = {p.player_id: p for p in players}
        playback = GroupPlayback(by_id.get, sources, lambda _: None)
        try:
            session = await playback.play(players[0], players[1:], PlayerMedia(uri=MUSIC_URI))
            assert session is not None
            assert session.pcm_format == HIRES_FORMAT
            assert list(session.branches) == [CD_FORMAT]
            # Asked through Attic (the 16-bit member): one announcement for the whole group.
            assert await playback.announce(attic_id, PlayerMedia(uri=VOICE_URI), "doorbell")
            ((start, frames),) = session.mixer.placed
            assert session.position_s * 48000 >= start + frames + RAMP_48K  # returned when heard
            assert await session.wait_ended(20)
        finally:
            await playback.close()
        assert sources.asked == [(MUSIC_URI, 48000), (VOICE_URI, 48000)]
        assert frames == len(voice) // 8
        members = {m.key: m for m in session.departed}
        assert (members[den_id].target.bits, members[attic_id].target.bits) == (24, 16)
        expected = expected_mix(
            flow_to_s24(music), flow_to_s24(voice), start, ramp=RAMP_48K, bits=24
        )
        assert expected != flow_to_s24(music)
        emulated = den.session
        assert emulated is not None
        assert emulated.errors == []
        segment = emulated.segments[-1]
        offset = _locate_s24(segment.pcm(), expected)  # every sample, all 24 bits: 0 LSB
        assert segment.first_rtp is not None
        # the announcement's first frame, session frame `start`, plays at T + start/48000
        rtp = (segment.first_rtp + offset + start) & 0xFFFFFFFF
        wanted = unix_ns_from_ntp(ntp_add_frames(members[den_id].start_ntp, start, 48000))
        error = (segment.scheduled_ns(rtp) - wanted) * 48000 / 1e9
        assert abs(error) <= 1.0, error
        # The voice's loud sample, heard on both at T + (start + 24000)/48000 (± 1 frame).
        at = unix_ns_from_ntp(ntp_add_frames(session.start_ntp, start + IMPULSE_AT, 48000))
        den_ns, attic_ns = _impulse_ns(den, 24), _impulse_ns(attic, 16)
        gap = (attic_ns - den_ns) * 44100 / 1e9
        assert abs(gap) <= 1.0, gap
        for ns in (den_ns, attic_ns):
            assert abs(ns - at) * 44100 / 1e9 <= 1.0, (ns - at) * 44100 / 1e9


async def test_a_listener_of_a_hires_group_hears_the_announcement_mix_bit_for_bit() -> None:
    music, voice = _quiet_music(5.0, seed=93), _voice(0.6, seed=94)
    sources = Sources({MUSIC_URI: music})
    async with Ap2Receiver(features=BUFFERED, model=NOT_APPLE) as den:
        player = _player("Den", "AA:BB:CC:00:09:03", den.port, BUFFERED, HIRES)
        playback = GroupPlayback({player.player_id: player}.get, sources, lambda _: None)
        server = ListenAlongServer("127.0.0.1", 0)
        await server.start()
        try:
            session = await playback.play(player, [], PlayerMedia(uri=MUSIC_URI))
            assert session is not None
            server.add("/den", session)
            recording = asyncio.create_task(
                ffmpeg_record(server.url("/den"), None, bits=24, wait_s=40)
            )
            placed = await session.announce(flow_to_s24(voice), pcm_format=HIRES_FORMAT)
            assert await session.wait_ended(20)
            heard = await recording
        finally:
            await playback.close()
            await server.close()
    expected = expected_mix(
        flow_to_s24(music), flow_to_s24(voice), placed.start, ramp=RAMP_48K, bits=24
    )
    first = _locate_s24(expected, heard)  # a contiguous, exact part of the mix ...
    assert first + len(heard) // 6 == len(expected) // 6  # ... to the end of the music
    assert first <= placed.duck_start  # ... with all of the announcement
    emulated = den.session
    assert emulated is not None
    _locate_s24(emulated.segments[-1].pcm(), expected)  # and the room got the same mix
