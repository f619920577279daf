"""A group mixing AirPlay 2 (cliap2 → AP2 emulator) and RAOP (cliraop → RAOP emulator) members
through the provider, as `play` and Music Assistant drive it: late join of an AirPlay 2 member,
volume, metadata, and the group paused and resumed by DACP buttons pressed on an AirPlay 2
member. Every receiver's audio is compared sample by sample with the source, and the receivers
play the same source frame at the same instant (≤ 1 frame) before and after the resume."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from music_assistant_models.enums import MediaType
from music_assistant_models.player import PlayerMedia
from zeroconf.asyncio import AsyncZeroconf

from airplay_provider.host.standalone import StandaloneHost, manual_device
from airplay_provider.player import AirPlayPlayer
from airplay_provider.protocol.timing import volume_to_db
from airplay_provider.protocol.txt import (
    AIRPLAY_SERVICE_TYPE,
    DeviceRecord,
    StreamingProtocol,
    merge_records,
    parse_service,
)
from airplay_provider.provider import AirPlayProvider
from airplay_provider.session import SessionState, StreamSession
from tests.audio import assert_audio_delivered, test_signal
from tests.integration.test_play_cli import write_track
from tests.receivers.ap2_emulator_core import AccessoryConnection, EmuRequest, EmuResponse
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_segment import Segment, ntp_to_unix_ns
from tests.receivers.ap2_sender import NO_PTP_FEATURES
from tests.receivers.ap2_stream import Ap2StreamSession
from tests.receivers.raop_emulator import RaopEmulator
from tests.receivers.raop_emulator_wire import SyncRecord, parse_dmap, play_time_ntp

HOST = "127.0.0.1"
DACP_ID = "C0FFEE0123456789"
FRAME_NS = 1e9 / 44100
RATE = 44100
WAIT_S = 10.0


class RequestLog:
    """Every encrypted-session request an AP2 emulator answers (headers and bodies)."""

    def __init__(self, receiver: Ap2Receiver) -> None:
        self.requests: list[EmuRequest] = []
        inner = receiver.emulator.device.session_handler
        assert inner is not None

        def recording(conn: AccessoryConnection, request: EmuRequest) -> EmuResponse | None:
            self.requests.append(request)
            return inner(conn, request)

        receiver.emulator.device.session_handler = recording

    def header(self, name: str) -> set[str]:
        """The values header `name` took over all requests."""
        return {r.headers[name] for r in self.requests if name in r.headers}

    def titles(self) -> list[str]:
        """Track titles sent as DMAP metadata."""
        bodies = [
            parse_dmap(r.body)
            for r in self.requests
            if r.method == "SET_PARAMETER"
            and r.headers.get("content-type") == "application/x-dmap-tagged"
        ]
        return [body["minm"].decode() for body in bodies if "minm" in body]


def ap2_device(receiver: Ap2Receiver, name: str) -> DeviceRecord:
    """An AirPlay 2 speaker that offers only `_airplay._tcp` (as announced by mDNS)."""
    device = receiver.emulator.device
    features = f"0x{NO_PTP_FEATURES & 0xFFFFFFFF:X},0x{NO_PTP_FEATURES >> 32:X}"
    record = parse_service(
        AIRPLAY_SERVICE_TYPE,
        f"{name}.{AIRPLAY_SERVICE_TYPE}",
        port=receiver.port,
        addresses=[HOST],
        properties={"deviceid": device.device_id, "features": features, "model": device.model},
    )
    return merge_records(None, record)


def session_of(receiver: Ap2Receiver) -> Ap2StreamSession:
    assert receiver.session is not None
    return receiver.session


Heard = tuple[bytes, Callable[[int], int]]


def ap2_segments(receiver: Ap2Receiver) -> list[Heard]:
    """(audio, play instant in Unix ns of its frame i) of each segment that got audio."""
    out: list[Heard] = []
    for segment in session_of(receiver).segments:
        if segment.packets and segment.first_rtp is not None:

            def when(i: int, segment: Segment = segment, first: int = segment.first_rtp) -> int:
                return segment.scheduled_ns((first + i) & 0xFFFFFFFF)

            out.append((segment.pcm(), when))
    return out


def raop_segments(emu: RaopEmulator) -> list[Heard]:
    """The same for a RAOP emulator (the segment's latest sync packet places its frames)."""
    out: list[Heard] = []
    for segment in emu.stream.segments:
        if segment.first_audio is None:
            continue
        first = segment.first_audio.rtptime
        pcm = b"".join(segment.pcm[offset] for offset in sorted(segment.pcm))
        assert len(pcm) // 4 == max(segment.pcm) + len(segment.pcm[max(segment.pcm)]) // 4
        sync = [s for s in emu.stream.sync_packets if s.segment == segment.index][-1]

        def when(i: int, first: int = first, sync: SyncRecord = sync) -> int:
            return ntp_to_unix_ns(play_time_ntp(sync, (first + i) & 0xFFFFFFFF))

        out.append((pcm, when))
    return out


async def press(remote_port: int, command: str, token: str) -> int:
    """A receiver's DACP button: GET /ctrl-int/1/<command> with its Active-Remote token."""
    url = f"http://{HOST}:{remote_port}/ctrl-int/1/{command}"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT_S)) as client,
        client.get(url, headers={"Active-Remote": token}) as response,
    ):
        await response.read()
        return response.status


async def until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_mixed_group_late_join_volume_metadata_and_dacp_pause_resume(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    source = test_signal(7.0, seed=81)
    track = write_track(tmp_path / "mixed.flac", source)
    host = StandaloneHost()
    provider = AirPlayProvider(
        host, browse=False, zeroconf=zeroconf, interfaces=[HOST], dacp_id=DACP_ID
    )
    host.provider = provider
    async with (
        RaopEmulator() as raop,
        Ap2Receiver(features=NO_PTP_FEATURES, device_id="02:A2:00:00:00:0B") as den,
        Ap2Receiver(features=NO_PTP_FEATURES, device_id="02:A2:00:00:00:0C") as hall,
    ):
        den_log, hall_log = RequestLog(den), RequestLog(hall)
        devices = [
            manual_device(HOST, raop.port, name="Kitchen"),
            ap2_device(den, "Den"),
            ap2_device(hall, "Hall"),
        ]
        players: list[AirPlayPlayer] = []
        for device in devices:
            await provider.device_added(device)
            players.append(host.players[device.player_id])
        kitchen, den_player, hall_player = players
        assert kitchen.protocol is StreamingProtocol.RAOP
        assert den_player.protocol is hall_player.protocol is StreamingProtocol.AIRPLAY2
        session: StreamSession | None = None
        try:
            await provider.start_remote_control()
            assert provider.remote_control is not None
            remote_port = provider.remote_control.port
            await provider.set_members(kitchen.player_id, [den_player.player_id])
            media = PlayerMedia(uri=str(track), media_type=MediaType.TRACK, title="Mixed Tone")
            await provider.play_media(kitchen.player_id, media)
            found = provider.playback.session_of(kitchen.player_id)
            assert found is not None
            session = found[1]
            await asyncio.sleep(1.5)
            await provider.set_members(kitchen.player_id, [hall_player.player_id])  # late join
            assert hall_player.player_id in session.members
            await provider.cmd_volume_set(hall_player.player_id, 35)
            await until(lambda: volume_to_db(35) in session_of(hall).volumes)
            await asyncio.sleep(1.5)
            # the Den speaker's pause button (its stream's Active-Remote token)
            (den_token,) = den_log.header("active-remote")
            assert await press(remote_port, "pause", den_token) == 204
            await until(lambda: session is not None and session.state is SessionState.PAUSED)
            await asyncio.sleep(0.5)
            assert await press(remote_port, "playresume", den_token) == 204
            await until(lambda: session is not None and session.state is SessionState.PLAYING)
            assert await session.wait_ended(30)
        finally:
            await provider.unload()
        assert session is not None
        for receiver in (den, hall):
            assert session_of(receiver).errors == []
            assert session_of(receiver).timing == "NTP"
        assert raop.errors == []
        assert den_log.header("dacp-id") == hall_log.header("dacp-id") == {DACP_ID}
        assert len(hall_log.header("active-remote")) == 1  # its own stream token
        assert den_log.titles()[0] == hall_log.titles()[0] == "Mixed Tone"
        assert raop.core.metadata[0].text("minm") == "Mixed Tone"
        assert session_of(hall).volumes[-1] == volume_to_db(35)

        members = {m.key: m for m in session.departed}
        resumed_at = {key: m.paused_frame for key, m in members.items()}
        assert all(frame is not None for frame in resumed_at.values())
        segments = {
            kitchen.player_id: raop_segments(raop),
            den_player.player_id: ap2_segments(den),
            hall_player.player_id: ap2_segments(hall),
        }
        # Sample by sample: before the pause each member has the source from its first frame
        # (0, or where the late joiner joined) to where the group paused; after the resume,
        # from there to the end. And one instant per source frame on every receiver.
        probe_before = max(m.offset for m in members.values()) + RATE // 10
        probe_after = max(f for f in resumed_at.values() if f is not None) + RATE // 10
        times_before, times_after = [], []
        for key, heard in segments.items():
            (before, when_before), (after, when_after) = heard
            paused = resumed_at[key]
            assert paused is not None
            first = members[key].offset
            played = assert_audio_delivered(before, source[first * 4 : paused * 4], tolerance_lsb=0)
            rest = assert_audio_delivered(after, source[paused * 4 :], tolerance_lsb=0)
            times_before.append(when_before(played.offset_frames + probe_before - first))
            times_after.append(when_after(rest.offset_frames + probe_after - paused))
        assert max(times_before) - min(times_before) <= FRAME_NS
        assert max(times_after) - min(times_after) <= FRAME_NS
