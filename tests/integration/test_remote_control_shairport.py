"""shairport-sync as a real DACP client: D-Bus remote buttons reach the provider's host.

The provider discovers the lab's receiver over zeroconf on 127.0.0.1 and announces its DACP
service there; bin/cliraop streams silence with our DACP-ID and a per-stream Active-Remote.
shairport-sync finds ``iTunes_Ctrl_<DACP-ID>`` over avahi and sends ``/ctrl-int/1/...`` when
told over its D-Bus RemoteControl interface. Note: shairport-sync 3.3.8 strips leading zeros
from the id in the service name before comparing, so an id starting with ``0`` never matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from music_assistant_models.enums import PlaybackState
from zeroconf.asyncio import AsyncZeroconf

from airplay_provider.host.receivers import LocalReceiver, ReceiverLab
from airplay_provider.player import AirPlayPlayer
from airplay_provider.provider import AirPlayProvider
from airplay_provider.streamer.clock import SenderClock
from tests.receivers.shairport import StartShairport
from tests.recording_host import Call, RecordingHost

HOST = "127.0.0.1"
DACP_ID = "D5A1C0DE12345678"
CLIRAOP = Path(__file__).resolve().parents[2] / "bin" / "cliraop"
SILENCE_S = 40
DISCOVERY_S = 15.0
RETRY_S = 0.5


async def dbus_send(lab: ReceiverLab, *args: str) -> str:
    """Run ``dbus-send --system --print-reply ARGS`` on the lab's bus; its stdout."""
    process = await asyncio.create_subprocess_exec(
        "dbus-send",
        "--system",
        "--print-reply",
        *args,
        env=lab.environ(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 10.0)
    assert process.returncode == 0, stderr.decode(errors="replace")
    return stdout.decode(errors="replace")


async def bus_name(lab: ReceiverLab, receiver: LocalReceiver) -> str:
    """The receiver's D-Bus name: ``org.gnome.ShairportSync``, or ``….i<pid>`` when another
    instance on the bus holds the plain name."""
    own = f"org.gnome.ShairportSync.i{receiver.pid}"
    reply = await dbus_send(
        lab,
        "--dest=org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus.NameHasOwner",
        f"string:{own}",
    )
    return own if "boolean true" in reply else "org.gnome.ShairportSync"


async def dbus_remote(lab: ReceiverLab, name: str, method: str) -> None:
    """Call one RemoteControl method of the shairport-sync owning ``name``."""
    await dbus_send(
        lab,
        f"--dest={name}",
        "/org/gnome/ShairportSync",
        f"org.gnome.ShairportSync.RemoteControl.{method}",
    )


@contextlib.asynccontextmanager
async def streaming(receiver: LocalReceiver, token: str) -> AsyncIterator[None]:
    """bin/cliraop streaming silence to the receiver with our DACP id and ``token``."""
    ntpstart = SenderClock().ntp() + 2**32  # one second from now
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIRAOP),
        "-ntpstart",
        str(ntpstart),
        "-port",
        str(receiver.port),
        "-dacp",
        DACP_ID,
        "-activeremote",
        token,
        HOST,
        "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdin is not None
    process.stdin.write(bytes(44100 * 4 * SILENCE_S))  # the streamer reads it in real time
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10.0)
        except TimeoutError:
            process.kill()
            await process.wait()
        process.stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await process.stdin.wait_closed()


async def press_until_heard(lab: ReceiverLab, name: str, host: RecordingHost, method: str) -> Call:
    """Press a button until the first command arrives (shairport needs to find us first)."""
    async with asyncio.timeout(DISCOVERY_S):
        while True:
            await dbus_remote(lab, name, method)
            try:
                return await asyncio.wait_for(host.calls.get(), RETRY_S)
            except TimeoutError:
                continue


async def stragglers(host: RecordingHost, quiet_s: float = 1.0) -> list[Call]:
    """Calls that still arrive until none came for ``quiet_s`` seconds."""
    calls: list[Call] = []
    while True:
        try:
            calls.append(await asyncio.wait_for(host.calls.get(), quiet_s))
        except TimeoutError:
            return calls


async def registered(host: RecordingHost, name: str) -> AirPlayPlayer:
    async with asyncio.timeout(DISCOVERY_S):
        while True:
            found = [p for p in host.registered.values() if p.name == name]
            if found:
                return found[0]
            await asyncio.sleep(0.1)


@pytest.mark.receiver
async def test_shairport_sync_remote_buttons_reach_the_host(
    receiver_lab: ReceiverLab, start_shairport: StartShairport
) -> None:
    await start_shairport("other")  # another instance on the bus: ours gets an .i<pid> name
    receiver = await start_shairport("dacp")
    host = RecordingHost()
    zeroconf = AsyncZeroconf(interfaces=[HOST])
    provider = AirPlayProvider(host, zeroconf=zeroconf, interfaces=[HOST], dacp_id=DACP_ID)
    try:
        await provider.handle_async_init()
        player = await registered(host, receiver.name)
        assert provider.remote_control is not None
        token = provider.remote_control.new_stream(player.player_id)
        player.state.playback_state = PlaybackState.PLAYING
        name = await bus_name(receiver_lab, receiver)
        async with streaming(receiver, token):
            assert await press_until_heard(receiver_lab, name, host, "Next") == (
                "next",
                player.player_id,
                None,
            )
            for late in await stragglers(host):  # presses sent while it was still looking
                assert late == ("next", player.player_id, None)
            await dbus_remote(receiver_lab, name, "Pause")
            assert await host.next_call() == ("pause", player.player_id, None)
            await dbus_remote(receiver_lab, name, "Previous")
            assert await host.next_call() == ("previous", player.player_id, None)
            await dbus_remote(receiver_lab, name, "VolumeUp")
            assert await host.next_call() == ("volume_set", player.player_id, 25)
    finally:
        await provider.unload()
        await zeroconf.async_close()
