"""Hi-res through the Music Assistant adapter: a hi-res group asks Music Assistant's stream
controller for 48 kHz f32le flow PCM; a player with hi-res on that cannot take it (RAOP) is
streamed 16-bit/44.1 kHz from a 44.1 kHz flow stream, with the reason kept for status lines."""

from __future__ import annotations

from music_assistant_models.enums import ContentType
from zeroconf import ServiceStateChange

from airplay_provider.mass.player import MassAirPlayPlayer
from airplay_provider.session.pcm_format import CD_FORMAT
from tests.adapter.mass_fixtures import loaded_provider, raop_service
from tests.adapter.test_mass_playback import WAIT_S, delivered, queue_media
from tests.audio import test_signal
from tests.group_helpers import s16_to_f32
from tests.receivers.raop_emulator import RaopEmulator

MAC = "0A0B0C0D0E31"
PLAYER_ID = f"ap{MAC.lower()}"


async def test_a_hires_stream_is_asked_for_48k_f32_flow_pcm() -> None:
    async with loaded_provider() as provider:
        mass = provider.mass
        flow = bytes(range(256)) * 3  # 96 stereo f32 frames (the stand-in serves it as is)
        mass.streams.sources["item1"] = flow
        media = queue_media("item1", PLAYER_ID, "Hi", 1)
        chunks = [c async for c in provider.core.host.flow_audio_source(PLAYER_ID, media, 48000)]
        assert b"".join(chunks) == flow
        (request,) = mass.streams.requests
        pcm_format = request[1]
        assert pcm_format.content_type is ContentType.PCM_F32LE
        assert (pcm_format.sample_rate, pcm_format.bit_depth, pcm_format.channels) == (48000, 32, 2)
        assert request[2] == PLAYER_ID


async def test_a_raop_player_with_hires_on_plays_44k_and_says_why() -> None:
    signal = test_signal(1.0, seed=45)
    async with loaded_provider() as provider, RaopEmulator() as emu:
        mass = provider.mass
        info = raop_service(MAC, "Attic", emu.port)
        await provider.on_mdns_service_state_change(info.name, ServiceStateChange.Added, info)
        player = mass.players.get_player(PLAYER_ID)
        assert isinstance(player, MassAirPlayPlayer)
        assert player.extra_attributes["audio_format"] == "16-bit/44.1 kHz"
        assert "audio_format_note" not in player.extra_attributes  # hi-res is off
        await mass.config.save_player_config(PLAYER_ID, {"hires_audio": True})
        core = provider.core.get_player(PLAYER_ID)
        assert core is not None
        assert core.settings.hires_audio
        assert player.extra_attributes["audio_format"] == "16-bit/44.1 kHz"
        assert "Classic AirPlay" in player.extra_attributes["audio_format_note"]
        mass.streams.sources["item1"] = s16_to_f32(signal)
        await player.play_media(queue_media("item1", PLAYER_ID, "Tone", 1))
        (request,) = mass.streams.requests
        assert request[1].sample_rate == 44100  # no 48 kHz decode for a 16-bit stream
        session = provider.core.playback.sessions[PLAYER_ID]
        assert session.pcm_format == CD_FORMAT
        assert "Classic AirPlay" in session.format_notes[PLAYER_ID]
        assert player.extra_attributes["audio_format_note"] == session.format_notes[PLAYER_ID]
        assert await session.wait_ended(WAIT_S)
        assert delivered(emu)[: len(signal)] == signal
