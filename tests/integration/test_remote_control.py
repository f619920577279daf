"""DACP through the provider: real aiohttp server, real HTTP on loopback, a recording host."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from music_assistant_models.enums import MediaType, PlaybackState
from music_assistant_models.player import PlayerMedia
from zeroconf import ServiceInfo, ServiceStateChange
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from airplay_provider.host.standalone import manual_device
from airplay_provider.protocol.dacp import encode_volume_property
from airplay_provider.provider import AirPlayProvider
from airplay_provider.remote.control import RemoteControl
from airplay_provider.remote.server import DACP_SERVICE_TYPE, dacp_service_name
from tests.receivers.raop_emulator import RaopEmulator
from tests.recording_host import WAIT_S, RecordingHost

HOST = "127.0.0.1"
DACP_ID = "C0FFEE0123456789"
RAOP = "_raop._tcp.local."
KITCHEN = "ap0a0b0c0d0e01"  # addressed by a per-stream token
DEN = "ap0a0b0c0d0e02"  # addressed by its MAC-derived token
OFFICE = "ap0a0b0c0d0e03"  # an Apple device: its volume reports are ignored
COMMANDS: list[tuple[str, bool, tuple[str, int | None]]] = [
    ("nextitem", True, ("next", None)),
    ("previtem", True, ("previous", None)),
    ("playpause", True, ("play_pause", None)),
    ("stop", True, ("stop", None)),
    ("pause", True, ("pause", None)),
    ("play", False, ("play", None)),
    ("playresume", False, ("play", None)),
    ("volumeup", True, ("volume_set", 25)),
    ("volumedown", True, ("volume_set", 15)),
    ("setproperty?dmcp.device-volume=-15.000000", True, ("volume_set", 50)),
    ("setproperty?dmcp.volume=80", True, ("volume_set", 80)),
    ("setproperty?dmcp.device-prevent-playback=1", True, ("stop", None)),
]


def raop_info(mac: str, name: str, model: str) -> ServiceInfo:
    return ServiceInfo(
        RAOP,
        f"{mac}@{name}.{RAOP}",
        port=5000,
        properties={"am": model, "et": "0,1"},
        server=f"{name.lower()}.local.",
        addresses=[socket.inet_aton("192.0.2.50")],
    )


@pytest.fixture
async def host() -> RecordingHost:
    return RecordingHost()


@pytest.fixture
async def provider(host: RecordingHost, zeroconf: AsyncZeroconf) -> AsyncIterator[AirPlayProvider]:
    provider = AirPlayProvider(
        host, browse=False, zeroconf=zeroconf, interfaces=[HOST], dacp_id=DACP_ID
    )
    await provider.handle_async_init()
    devices = [
        ("0A0B0C0D0E01", "Kitchen", "ShairportSync"),
        ("0A0B0C0D0E02", "Den", "ShairportSync"),
        ("0A0B0C0D0E03", "Office", "AirPort10,115"),
    ]
    for mac, name, model in devices:
        info = raop_info(mac, name, model)
        provider.on_mdns_service_state_change(info.name, ServiceStateChange.Added, info)
    await provider.wait_idle()
    try:
        yield provider
    finally:
        await provider.unload()


def remote(provider: AirPlayProvider) -> RemoteControl:
    assert provider.remote_control is not None
    return provider.remote_control


async def send(provider: AirPlayProvider, command: str, token: str) -> aiohttp.ClientResponse:
    url = f"http://{HOST}:{remote(provider).port}/ctrl-int/1/{command}"
    timeout = aiohttp.ClientTimeout(total=WAIT_S)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers={"Active-Remote": token}) as response,
    ):
        await response.read()
        return response


async def test_service_is_announced_with_our_port_on_loopback(
    provider: AirPlayProvider, zeroconf: AsyncZeroconf
) -> None:
    info = AsyncServiceInfo(DACP_SERVICE_TYPE, dacp_service_name(DACP_ID))
    assert await info.async_request(zeroconf.zeroconf, 3000)
    assert info.port == remote(provider).port > 0
    assert info.parsed_addresses() == [HOST]
    assert info.properties[b"DbId"] == DACP_ID.encode()


async def test_every_command_reaches_the_right_player(
    provider: AirPlayProvider, host: RecordingHost
) -> None:
    for command, playing, (name, value) in COMMANDS:
        state = PlaybackState.PLAYING if playing else PlaybackState.PAUSED
        for player_id in (KITCHEN, DEN):
            host.registered[player_id].state.playback_state = state
        kitchen_token = remote(provider).new_stream(KITCHEN)  # a new stream per command
        den_token = remote(provider).new_stream(DEN)
        for token, player_id in ((kitchen_token, KITCHEN), (den_token, DEN)):
            response = await send(provider, command, token)
            assert response.status == 204, command
            assert await host.next_call() == (name, player_id, value), command
    assert host.calls.empty()


async def test_apple_devices_volume_reports_are_ignored(
    provider: AirPlayProvider, host: RecordingHost
) -> None:
    office = host.registered[OFFICE]
    office.state.playback_state = PlaybackState.PLAYING
    token = remote(provider).new_stream(OFFICE)
    assert (await send(provider, "setproperty?dmcp.volume=80", token)).status == 204
    assert (await send(provider, "nextitem", token)).status == 204
    assert await host.next_call() == ("next", OFFICE, None)
    assert office.state.volume_level == 20


async def test_unknown_or_ended_tokens_are_ignored(
    provider: AirPlayProvider, host: RecordingHost
) -> None:
    token = remote(provider).new_stream(KITCHEN)
    remote(provider).end_stream(KITCHEN)
    retired = remote(provider).new_stream(OFFICE)
    remote(provider).retire(retired)
    # The MAC-derived token is public (the receiver's mDNS name holds its MAC): it does nothing.
    public = str(host.registered[KITCHEN].device.active_remote)
    for stranger in (token, retired, public, "12345", "not-a-number"):
        assert (await send(provider, "nextitem", stranger)).status == 204
    den_token = remote(provider).new_stream(DEN)
    assert (await send(provider, "previtem", den_token)).status == 204
    assert await host.next_call() == ("previous", DEN, None)  # nothing was queued before it
    assert host.calls.empty()


async def test_device_volume_echo_only_updates_state(
    provider: AirPlayProvider, host: RecordingHost
) -> None:
    await provider.cmd_volume_set(KITCHEN, 42)
    token = remote(provider).new_stream(KITCHEN)
    host.updates.clear()
    assert (await send(provider, "setproperty?dmcp.volume=44", token)).status == 204
    assert (await send(provider, "nextitem", token)).status == 204  # a marker after the echo
    assert await host.next_call() == ("next", KITCHEN, None)
    assert host.registered[KITCHEN].state.volume_level == 44
    assert host.updates == [KITCHEN]


async def test_getproperty_volume_answers_with_the_player_volume(
    provider: AirPlayProvider, host: RecordingHost
) -> None:
    host.registered[DEN].state.volume_level = 42
    url = f"http://{HOST}:{remote(provider).port}/ctrl-int/1/getproperty?properties=dmcp.volume"
    token = remote(provider).new_stream(DEN)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as session,
        session.get(url, headers={"Active-Remote": token}) as response,
    ):
        assert response.status == 200
        assert await response.read() == encode_volume_property(42)


async def test_grouped_member_leaves_via_the_leader(
    provider: AirPlayProvider, host: RecordingHost
) -> None:
    member = host.registered[DEN]
    member.state.playback_state = PlaybackState.PLAYING
    member.state.synced_to = KITCHEN
    host.registered[KITCHEN].state.group_members[:] = [KITCHEN, DEN]
    token = remote(provider).new_stream(DEN)
    path = "setproperty?dmcp.device-prevent-playback=1"
    assert (await send(provider, path, token)).status == 204
    # The member leaves its leader's group (set_members); nobody is stopped.
    for _ in range(int(WAIT_S / 0.01)):  # the action runs as a task after the 204
        if member.state.synced_to is None:
            break
        await asyncio.sleep(0.01)
    assert member.state.synced_to is None
    assert DEN not in host.registered[KITCHEN].state.group_members
    assert DEN in host.updates
    assert host.calls.empty()


async def test_unload_unannounces_and_closes_the_port(
    host: RecordingHost, zeroconf: AsyncZeroconf
) -> None:
    provider = AirPlayProvider(
        host, browse=False, zeroconf=zeroconf, interfaces=[HOST], dacp_id=DACP_ID
    )
    await provider.handle_async_init()
    port = remote(provider).port
    await provider.unload()
    assert provider.remote_control is None
    with pytest.raises(OSError):
        await asyncio.open_connection(HOST, port)
    info = AsyncServiceInfo(DACP_SERVICE_TYPE, dacp_service_name(DACP_ID))
    assert not await info.async_request(zeroconf.zeroconf, 500)


async def test_without_zeroconf_or_browsing_remote_control_stays_off(host: RecordingHost) -> None:
    provider = AirPlayProvider(host, browse=False, interfaces=[HOST], dacp_id=DACP_ID)
    await provider.handle_async_init()
    try:
        assert provider.remote_control is None
        assert provider.dacp_id == DACP_ID
    finally:
        await provider.unload()


class PlayingHost(RecordingHost):
    """A recording host whose flow audio is a few seconds of silence."""

    async def _silence(self) -> AsyncIterator[bytes]:
        for _ in range(8):  # 4 s of f32le stereo, in 0.5 s chunks
            yield bytes(22050 * 8)


async def test_each_stream_gets_a_random_token_that_dies_with_it(zeroconf: AsyncZeroconf) -> None:
    host = PlayingHost()
    provider = AirPlayProvider(
        host, browse=False, zeroconf=zeroconf, interfaces=[HOST], dacp_id=DACP_ID
    )
    await provider.handle_async_init()
    try:
        async with RaopEmulator() as emu, RaopEmulator() as other_emu:
            device = manual_device(HOST, emu.port, name="Porch")
            other = manual_device(HOST, other_emu.port, name="Shed")
            await provider.device_added(device)
            await provider.device_added(other)
            porch = device.player_id
            tokens = []
            for _ in range(2):
                await provider.play_media(porch, PlayerMedia(uri="x", media_type=MediaType.TRACK))
                token = emu.core.requests[-1].headers["active-remote"]
                tokens.append(token)
                assert token != str(device.active_remote)  # not computable from its mDNS name
                assert (await send(provider, "nextitem", token)).status == 204
                assert await host.next_call() == ("next", porch, None)
                # The public, MAC-derived token acts on nothing.
                assert (await send(provider, "nextitem", str(device.active_remote))).status == 204
                await provider.cmd_stop(porch)
            assert tokens[0] != tokens[1]
            for old in tokens:  # both streams ended: their tokens are retired
                assert (await send(provider, "nextitem", old)).status == 204
            await provider.play_media(
                other.player_id, PlayerMedia(uri="y", media_type=MediaType.TRACK)
            )
            marker = other_emu.core.requests[-1].headers["active-remote"]
            assert (await send(provider, "previtem", marker)).status == 204
            # Nothing was queued before the marker's command.
            assert await host.next_call() == ("previous", other.player_id, None)
            await provider.cmd_stop(other.player_id)
    finally:
        await provider.unload()


class LongPlayingHost(RecordingHost):
    """A recording host whose flow audio is 12 s of silence."""

    async def _silence(self) -> AsyncIterator[bytes]:
        for _ in range(24):
            yield bytes(22050 * 8)


async def test_a_member_that_rejoins_keeps_its_token_working(zeroconf: AsyncZeroconf) -> None:
    """A grouped receiver that went away and came back (the session's rejoin, same stream
    target) is still the player its buttons name: its token is not retired with the departed
    member."""
    host = LongPlayingHost()
    provider = AirPlayProvider(
        host, browse=False, zeroconf=zeroconf, interfaces=[HOST], dacp_id=DACP_ID
    )
    await provider.handle_async_init()
    try:
        async with RaopEmulator() as leader_emu:
            leader = manual_device(HOST, leader_emu.port, name="Hall")
            await provider.device_added(leader)
            async with RaopEmulator() as emu:
                port = emu.port
                device = manual_device(HOST, port, name="Porch")
                await provider.device_added(device)
                porch = device.player_id
                await provider.set_members(leader.player_id, [porch])
                await provider.play_media(
                    leader.player_id, PlayerMedia(uri="x", media_type=MediaType.TRACK)
                )
                token = emu.core.requests[-1].headers["active-remote"]
                emu.kill()
            async with RaopEmulator(port=port) as back:  # the first rejoin comes 5 s later
                await back.wait_for(
                    lambda core: any(r.method == "RECORD" for r in core.requests), 15
                )
                assert back.core.requests[-1].headers["active-remote"] == token
                assert (await send(provider, "nextitem", token)).status == 204
                assert await host.next_call() == ("next", porch, None)
                await provider.cmd_stop(leader.player_id)
            assert (await send(provider, "nextitem", token)).status == 204  # stopped: retired
            with pytest.raises(TimeoutError):
                await host.next_call()
    finally:
        await provider.unload()
