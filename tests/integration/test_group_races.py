"""A stop (or a newer play) that overtakes a start: nothing plays afterwards, no error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from music_assistant_models.enums import MediaType, PlaybackState
from music_assistant_models.player import PlayerMedia

from airplay_provider.host.standalone import StandaloneHost, manual_device
from airplay_provider.player import AirPlayPlayer
from airplay_provider.provider import AirPlayProvider
from airplay_provider.session import SessionState
from tests.audio import test_signal
from tests.group_helpers import alive, flow_source, member_pids
from tests.receivers.raop_emulator import RaopEmulator

WAIT_S = 10.0


def _source(player_id: str, media: PlayerMedia, sample_rate: int = 44100) -> AsyncIterator[bytes]:
    return flow_source(test_signal(8.0, seed=7))


async def _setup(emu: RaopEmulator) -> tuple[AirPlayProvider, AirPlayPlayer]:
    host = StandaloneHost()
    provider = AirPlayProvider(host, browse=False)
    host.provider = provider
    provider.playback._source = _source
    device = manual_device("127.0.0.1", emu.port, name="room")
    await provider.device_added(device)
    return provider, host.players[device.player_id]


async def _wait_for(predicate: object) -> None:
    async with asyncio.timeout(WAIT_S):
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110 (state owned elsewhere)
            await asyncio.sleep(0.02)


async def test_stop_while_the_members_connect_cancels_the_start_quietly() -> None:
    media = PlayerMedia(uri="tone", media_type=MediaType.TRACK, title="Tone")
    async with RaopEmulator() as emu:
        provider, player = await _setup(emu)
        try:
            play = asyncio.create_task(provider.play_media(player.player_id, media))
            await _wait_for(lambda: player.player_id in provider.playback.sessions)
            session = provider.playback.sessions[player.player_id]
            assert session.state is SessionState.STARTING
            await provider.cmd_stop(player.player_id)
            await asyncio.wait_for(play, WAIT_S)  # returns, no PlaybackError
            assert session.state is SessionState.ENDED
            assert provider.playback.sessions == {}
            assert player.state.playback_state is PlaybackState.IDLE
            assert not any(alive(pid) for pid in member_pids(session))
        finally:
            await provider.unload()


async def test_stop_while_the_old_session_stops_wins_over_the_new_play() -> None:
    first = PlayerMedia(uri="one", media_type=MediaType.TRACK, title="One")
    second = PlayerMedia(uri="two", media_type=MediaType.TRACK, title="Two")
    async with RaopEmulator() as emu:
        provider, player = await _setup(emu)
        try:
            await provider.play_media(player.player_id, first)
            old = provider.playback.sessions[player.player_id]
            play = asyncio.create_task(provider.play_media(player.player_id, second))
            # The gap (old session popped, still stopping) may last only a few loop steps:
            # look at every step, not every 20 ms.
            async with asyncio.timeout(WAIT_S):
                while player.player_id in provider.playback.sessions:  # noqa: ASYNC110
                    await asyncio.sleep(0)
            await provider.cmd_stop(player.player_id)  # the old one is still stopping
            await asyncio.wait_for(play, WAIT_S)
            assert old.state is SessionState.ENDED
            assert provider.playback.sessions == {}  # the new play gave up
            assert player.state.playback_state is PlaybackState.IDLE
            assert not any(alive(pid) for pid in member_pids(old))
        finally:
            await provider.unload()
