"""The adapter playing Music Assistant's (stand-in) flow stream to RAOP emulators on loopback:
audio compared sample by sample, group commands, DACP buttons → Music Assistant commands."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from music_assistant_models.enums import ContentType, MediaType, PlaybackState
from music_assistant_models.errors import PlayerCommandFailed
from music_assistant_models.player import PlayerMedia
from zeroconf import ServiceStateChange

from airplay_provider.mass.player import MassAirPlayPlayer
from airplay_provider.mass.provider import MassAirPlayProvider
from airplay_provider.protocol.timing import volume_to_db
from airplay_provider.session import SessionState
from tests.adapter.mass_fixtures import HOST, loaded_provider, raop_service
from tests.audio import test_signal
from tests.group_helpers import PREROLL_FRAMES, s16_to_f32
from tests.receivers.raop_emulator import RaopEmulator

MACS = ("0A0B0C0D0E21", "0A0B0C0D0E22", "0A0B0C0D0E23")
IDS = tuple(f"ap{mac.lower()}" for mac in MACS)
WAIT_S = 20.0


def delivered(emu: RaopEmulator) -> bytes:
    """What the emulator received after the streamer's silent pre-roll, gap-free."""
    return emu.stream.reconstructed_pcm()[PREROLL_FRAMES * 4 :]


async def add_receivers(
    provider: MassAirPlayProvider, emus: tuple[RaopEmulator, ...]
) -> list[MassAirPlayPlayer]:
    players = []
    for index, emu in enumerate(emus):
        info = raop_service(MACS[index], f"Room {index}", emu.port)
        await provider.on_mdns_service_state_change(info.name, ServiceStateChange.Added, info)
        player = provider.mass.players.get_player(IDS[index])
        assert isinstance(player, MassAirPlayPlayer)
        players.append(player)
    return players


def queue_media(item: str, leader: str, title: str, seconds: int) -> PlayerMedia:
    return PlayerMedia(
        uri=f"mass://queue/{item}",
        media_type=MediaType.TRACK,
        title=title,
        artist="Artist",
        album="Album",
        duration=seconds,
        queue_item_id=item,
        source_id=leader,
    )


async def dacp(provider: MassAirPlayProvider, command: str, token: str) -> int:
    remote = provider.core.remote_control
    assert remote is not None
    url = f"http://{HOST}:{remote.port}/ctrl-int/1/{command}"
    timeout = aiohttp.ClientTimeout(total=5)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers={"Active-Remote": token}) as response,
    ):
        await response.read()
        return response.status


async def wait_until(predicate: object, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def test_flow_stream_of_the_queue_reaches_a_group_bit_exact() -> None:
    signal = test_signal(3.0, seed=41)
    async with (
        loaded_provider() as provider,
        RaopEmulator() as emu_a,
        RaopEmulator() as emu_b,
    ):
        mass = provider.mass
        leader, member = await add_receivers(provider, (emu_a, emu_b))
        await mass.players.cmd_set_members(leader.player_id, [member.player_id])
        assert leader.state.group_members == [leader.player_id, member.player_id]
        assert member.state.synced_to == leader.player_id
        mass.streams.sources["item1"] = s16_to_f32(signal)
        media = queue_media("item1", leader.player_id, "Tone", 3)
        started = time.time()
        await leader.play_media(media)
        (request,) = mass.streams.requests
        assert request[0] == "item1"
        assert request[1].content_type is ContentType.PCM_F32LE
        assert (request[1].sample_rate, request[1].channels) == (44100, 2)
        assert request[2] == leader.player_id
        assert leader.state.playback_state is PlaybackState.PLAYING
        assert member.state.playback_state is PlaybackState.PLAYING
        # Reported before the first frame is audible: negative, so Music Assistant's own
        # extrapolation (elapsed + time since the report) reaches 0 when the audio does.
        assert leader.state.elapsed_time is not None
        assert leader.state.elapsed_time < 0
        assert leader.state.current_media is not None
        assert leader.state.current_media.title == "Tone"
        session = provider.core.playback.sessions[leader.player_id]
        assert set(session.members) == {leader.player_id, member.player_id}
        assert await session.wait_ended(WAIT_S)
        await wait_until(lambda: leader.state.playback_state is PlaybackState.IDLE)
        for emu in (emu_a, emu_b):
            assert delivered(emu)[: len(signal)] == signal  # bit-exact through ffmpeg
            assert emu.core.metadata[0].text("minm") == "Tone"
            assert emu.core.metadata[0].text("asar") == "Artist"
        elapsed = [
            change["elapsed_time"][1]
            for pid, change in mass.players.state_updates
            if pid == leader.player_id and "elapsed_time" in change
        ]
        assert any(e is not None and e > 0 for e in elapsed)  # reported back while playing
        assert time.time() - started < WAIT_S


async def test_group_commands_dacp_and_settings_through_music_assistant() -> None:
    signal = test_signal(12.0, seed=42)
    async with (
        loaded_provider() as provider,
        RaopEmulator() as emu_a,
        RaopEmulator() as emu_b,
        RaopEmulator(password="s3cret") as emu_c,
    ):
        mass = provider.mass
        leader, second, third = await add_receivers(provider, (emu_a, emu_b, emu_c))
        # The password lives in Music Assistant's settings (encrypted) and applies on join.
        await mass.config.save_player_config(third.player_id, {"password": "s3cret"})
        mass.streams.sources["item1"] = s16_to_f32(signal)
        await leader.play_media(queue_media("item1", leader.player_id, "First", 6))
        session = provider.core.playback.sessions[leader.player_id]

        await asyncio.sleep(1.0)
        await mass.players.cmd_set_members(leader.player_id, [second.player_id, third.player_id])
        assert set(session.members) == {leader.player_id, second.player_id, third.player_id}
        assert third.state.synced_to == leader.player_id
        # The late joiner (password from the settings) connected and got the track's text.
        await wait_until(lambda: bool(emu_c.core.metadata))
        assert emu_c.core.metadata[-1].text("minm") == "First"

        await mass.players.cmd_volume_set(second.player_id, 35)
        await wait_until(lambda: emu_b.core.volumes[-1:] == [volume_to_db(35)])
        assert second.state.volume_level == 35

        # Music Assistant moves on to the next track of the same flow stream.
        leader.state.current_media = queue_media("item2", leader.player_id, "Second", 6)
        leader.state.current_media.elapsed_time = 0
        leader.state.current_media.elapsed_time_last_updated = time.time()
        leader._on_player_media_updated()
        await mass.wait_tasks()
        await wait_until(lambda: emu_a.core.metadata[-1].text("minm") == "Second")

        await leader.pause()
        assert session.state is SessionState.PAUSED
        assert {p.state.playback_state for p in (leader, second, third)} == {PlaybackState.PAUSED}
        await leader.play()
        assert session.state is SessionState.PLAYING

        # Receiver buttons become Music Assistant commands (next acts on MA's queue).
        token = emu_a.core.requests[-1].headers["active-remote"]  # this stream's own token
        assert await dacp(provider, "nextitem", token) == 204
        assert await dacp(provider, "previtem", token) == 204
        assert ("next", leader.player_id, None) in mass.players.calls
        assert ("previous", leader.player_id, None) in mass.players.calls
        assert await dacp(provider, "setproperty?dmcp.volume=60", token) == 204
        assert ("volume_set", leader.player_id, 60) in mass.players.calls
        await wait_until(lambda: emu_a.core.volumes[-1:] == [volume_to_db(60)])

        # A member leaves: the others play on, nothing restarts.
        await mass.players.cmd_set_members(leader.player_id, None, [second.player_id])
        assert second.player_id not in session.members
        assert second.state.synced_to is None
        assert second.state.playback_state is PlaybackState.IDLE
        assert emu_b.core.teardown_at is not None
        assert emu_a.core.teardown_at is None
        assert emu_c.core.teardown_at is None

        # The device starts playing something else: Music Assistant is told to stop.
        assert await dacp(provider, "setproperty?dmcp.device-prevent-playback=1", token) == 204
        await wait_until(lambda: ("stop", leader.player_id, None) in mass.players.calls)
        await wait_until(lambda: session.state is SessionState.ENDED)
        assert leader.state.playback_state is PlaybackState.IDLE
    assert mass.players.get_player(leader.player_id) is None  # unloaded with the provider


async def test_missing_password_fails_with_a_hint_for_the_settings() -> None:
    async with loaded_provider() as provider, RaopEmulator(password="s3cret") as emu:
        (player,) = await add_receivers(provider, (emu,))
        provider.mass.streams.sources["item1"] = s16_to_f32(test_signal(1.0, seed=43))
        with pytest.raises(PlayerCommandFailed, match="'Device password' in this player's"):
            await player.play_media(queue_media("item1", player.player_id, "Tone", 1))
        assert player.state.playback_state is PlaybackState.IDLE


async def test_prevent_playback_applies_to_each_new_stream() -> None:
    async with loaded_provider() as provider, RaopEmulator() as emu:
        mass = provider.mass
        (player,) = await add_receivers(provider, (emu,))
        mass.streams.sources["item1"] = s16_to_f32(test_signal(10.0, seed=44))
        for attempt in (1, 2):
            await player.play_media(queue_media("item1", player.player_id, "Tone", 10))
            session = provider.core.playback.sessions[player.player_id]
            token = emu.core.requests[-1].headers["active-remote"]  # each stream has its own
            status = await dacp(provider, "setproperty?dmcp.device-prevent-playback=1", token)
            assert status == 204
            await wait_until(lambda s=session: s.state is SessionState.ENDED)
            stops = [c for c in mass.players.calls if c == ("stop", player.player_id, None)]
            assert len(stops) == attempt
        assert player.state.playback_state is PlaybackState.IDLE
