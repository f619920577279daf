"""PLAY_ANNOUNCEMENT through Music Assistant's (stand-in) `players.play_announcement` on a
player with hi-res on, playing 24-bit/48 kHz (the AirPlay 2 emulator, buffered): the
announcement stream is asked for at 48 kHz f32le, like the music, and mixed in s24le on the
session's 48 kHz frames; the receiver gets the independent reference mix bit for bit."""

from __future__ import annotations

import asyncio
import random
import socket
from array import array

from music_assistant_models.enums import ContentType
from zeroconf import ServiceStateChange
from zeroconf.asyncio import AsyncServiceInfo

from airplay_provider.mass.player import MassAirPlayPlayer
from airplay_provider.pcm_convert import flow_to_s24
from airplay_provider.session.pcm_format import HIRES_FORMAT
from tests.adapter.mass_fixtures import loaded_provider
from tests.adapter.test_mass_playback import WAIT_S, queue_media
from tests.announce_reference import expected_mix
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_sender import NO_PTP_FEATURES

BUFFERED = NO_PTP_FEATURES | (1 << 40)
DEVICE_ID = "0A:0B:0C:0D:0E:41"
PLAYER_ID = f"ap{DEVICE_ID.replace(':', '').lower()}"
TTS_URL = "http://127.0.0.1:8097/tts/doorbell.mp3"  # a key of the stand-in's sources


def airplay_service(name: str, port: int) -> AsyncServiceInfo:
    """An `_airplay._tcp` record of an AirPlay 2 speaker with buffered audio on loopback."""
    return AsyncServiceInfo(
        "_airplay._tcp.local.",
        f"{name}._airplay._tcp.local.",
        port=port,
        properties={
            "deviceid": DEVICE_ID,
            "features": f"0x{BUFFERED & 0xFFFFFFFF:X},0x{BUFFERED >> 32:X}",
            "flags": "0x4",
            "model": "Speaker1,1",
        },
        server=f"{name.lower()}.local.",
        addresses=[socket.inet_aton("127.0.0.1")],
    )


def flow_48k(seconds: float, seed: int, level: int) -> bytes:
    """f32le stereo of 24-bit values within ±`level` (exact through s24)."""
    rng = random.Random(seed)
    count = round(seconds * 48000) * 2
    return array("f", (rng.randint(-level, level) / 2**23 for _ in range(count))).tobytes()


async def test_an_announcement_is_mixed_into_a_hires_stream() -> None:
    music, voice = flow_48k(6.0, 101, 2**21), flow_48k(0.8, 102, 2**20)
    async with (
        loaded_provider() as provider,
        Ap2Receiver(features=BUFFERED, model="Speaker1,1", device_id=DEVICE_ID) as den,
    ):
        mass = provider.mass
        info = airplay_service("Den", den.port)
        await provider.on_mdns_service_state_change(info.name, ServiceStateChange.Added, info)
        player = mass.players.get_player(PLAYER_ID)
        assert isinstance(player, MassAirPlayPlayer)
        await mass.config.save_player_config(PLAYER_ID, {"hires_audio": True})
        mass.streams.sources["item1"] = music
        mass.streams.sources[TTS_URL] = voice
        await player.play_media(queue_media("item1", PLAYER_ID, "Tone", 6))
        session = provider.core.playback.sessions[PLAYER_ID]
        assert session.pcm_format == HIRES_FORMAT
        await asyncio.wait_for(mass.players.play_announcement(PLAYER_ID, TTS_URL), WAIT_S)
        ((start, frames),) = session.mixer.placed
        assert frames == len(voice) // 8
        assert session.position_s * 48000 >= start + frames  # returned once it was heard
        assert await session.wait_ended(WAIT_S)
        formats = [(r[1].content_type, r[1].sample_rate) for r in mass.streams.requests]
        assert formats == [(ContentType.PCM_F32LE, 48000)] * 2  # the music, the announcement
        expected = expected_mix(flow_to_s24(music), flow_to_s24(voice), start, ramp=3840, bits=24)
        emulated = den.session
        assert emulated is not None
        assert emulated.errors == []
        received = emulated.segments[-1].pcm()
        at = received.find(expected[: 352 * 6])
        while at >= 0 and at % 6:
            at = received.find(expected[: 352 * 6], at + 1)
        assert at >= 0
        assert received[at : at + len(expected)] == expected  # 0 LSB, every sample
