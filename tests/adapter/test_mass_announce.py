"""PLAY_ANNOUNCEMENT through Music Assistant's (stand-in) `players.play_announcement`: mixed
over a playing group's music once, whoever of the group is asked; played alone, at the
announcement volume, on an idle player, and at once on a paused one. Audio compared sample by
sample (RAOP emulators)."""

from __future__ import annotations

import asyncio

import pytest
from music_assistant_models.enums import PlaybackState, PlayerFeature
from music_assistant_models.errors import PlayerCommandFailed

from airplay_provider.protocol.timing import volume_to_db
from airplay_provider.session.group import SessionState
from tests.adapter.mass_fixtures import loaded_provider
from tests.adapter.test_mass_playback import (
    WAIT_S,
    add_receivers,
    delivered,
    queue_media,
    wait_until,
)
from tests.announce_reference import expected_mix
from tests.audio import test_signal
from tests.group_helpers import s16_to_f32, schedule_error_frames
from tests.receivers.raop_emulator import RaopEmulator

TTS_URL = "http://127.0.0.1:8097/tts/hello.mp3"  # a key of the stand-in's sources: never fetched
CHIME_URL = "http://127.0.0.1:8097/chime.mp3"


async def test_announcement_is_mixed_once_into_a_playing_group() -> None:
    music = test_signal(7.0, seed=81)
    chime, voice = test_signal(0.3, seed=82), test_signal(0.8, seed=83)
    async with (
        loaded_provider() as provider,
        RaopEmulator() as emu_a,
        RaopEmulator() as emu_b,
    ):
        mass = provider.mass
        leader, member = await add_receivers(provider, (emu_a, emu_b))
        assert PlayerFeature.PLAY_ANNOUNCEMENT in leader.state.supported_features
        assert PlayerFeature.PLAY_ANNOUNCEMENT in member.state.supported_features
        await mass.players.cmd_set_members(leader.player_id, [member.player_id])
        mass.streams.sources["item1"] = s16_to_f32(music)
        mass.streams.sources[CHIME_URL] = s16_to_f32(chime)
        mass.streams.sources[TTS_URL] = s16_to_f32(voice)
        await leader.play_media(queue_media("item1", leader.player_id, "Tone", 7))
        session = provider.core.playback.sessions[leader.player_id]
        # Both players of the group asked at once (as Music Assistant does for a group
        # player's members): one announcement, mixed once.
        asked = [
            mass.players.play_announcement(
                p.player_id, TTS_URL, pre_announce=True, pre_announce_url=CHIME_URL
            )
            for p in (leader, member)
        ]
        await asyncio.wait_for(asyncio.gather(*asked), WAIT_S)
        ((start, frames),) = session.mixer.placed
        assert frames == (len(chime) + len(voice)) // 4  # the chime, then the announcement
        assert session.position_s * 44100 >= start + frames  # returned once it was heard
        assert session.state.value == "playing"  # the music goes on, no restart
        assert await session.wait_ended(WAIT_S)
        await wait_until(lambda: leader.state.playback_state is PlaybackState.IDLE)
        expected = expected_mix(music, chime + voice, start)
        for emu, key in ((emu_a, leader.player_id), (emu_b, member.player_id)):
            assert delivered(emu)[: len(expected)] == expected
            departed = next(m for m in session.departed if m.key == key)
            error = schedule_error_frames(emu, departed, start)
            assert abs(error) <= 1.0, f"{key}: first sample off by {error:.2f} frames"
        assert len(emu_a.core.volumes) == 1  # the music's volume was left alone


async def test_idle_player_plays_the_announcement_alone_at_its_volume() -> None:
    voice = test_signal(1.0, seed=84)
    async with loaded_provider() as provider, RaopEmulator() as emu:
        mass = provider.mass
        (player,) = await add_receivers(provider, (emu,))
        await mass.players.cmd_volume_set(player.player_id, 25)
        mass.streams.sources[TTS_URL] = s16_to_f32(voice)
        await asyncio.wait_for(
            mass.players.play_announcement(player.player_id, TTS_URL, volume_level=60), WAIT_S
        )
        assert delivered(emu)[: len(voice)] == voice
        assert emu.core.volumes[0] == pytest.approx(volume_to_db(60), abs=1e-3)
        assert player.state.volume_level == 25  # restored
        await wait_until(lambda: player.state.playback_state is PlaybackState.IDLE)
        with pytest.raises(PlayerCommandFailed, match="URL"):  # the server's own check
            await mass.players.play_announcement(player.player_id, "/tmp/local.mp3")


async def test_paused_player_hears_the_announcement_now_alone() -> None:
    music, voice = test_signal(8.0, seed=85), test_signal(1.0, seed=86)
    async with loaded_provider() as provider, RaopEmulator() as emu:
        mass = provider.mass
        (player,) = await add_receivers(provider, (emu,))
        mass.streams.sources["item1"] = s16_to_f32(music)
        mass.streams.sources[TTS_URL] = s16_to_f32(voice)
        await player.play_media(queue_media("item1", player.player_id, "Tone", 8))
        paused = provider.core.playback.sessions[player.player_id]
        music_stream = emu.stream
        await wait_until(lambda: len(music_stream.reconstructed_pcm()) > 44100 * 4)
        await player.pause()
        assert paused.state is SessionState.PAUSED
        await asyncio.wait_for(mass.players.play_announcement(player.player_id, TTS_URL), WAIT_S)
        # Not mixed into the paused music (it would only be heard at a resume): the paused
        # session stopped, the announcement was heard on its own stream before the call returned.
        assert not paused.mixer.placed
        assert paused.state is SessionState.ENDED
        assert emu.stream is not music_stream
        assert delivered(emu)[: len(voice)] == voice
        await wait_until(lambda: player.state.playback_state is PlaybackState.IDLE)
