"""`airplay-provider play` to an AirPlay 2 receiver (the AP2 emulator, announcing only
`_airplay._tcp` by mDNS on loopback) and a RAOP one in the same group: cliap2 is started for the
first, cliraop for the second, both get the file bit-exact and play its first sample at the same
instant; `discover` shows the protocol play used."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import pytest
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from airplay_provider.protocol.timing import volume_to_db
from tests.audio import assert_audio_delivered, test_signal
from tests.integration.test_group_mixed_ap2 import RequestLog
from tests.integration.test_play_cli import run_cli, sample0_ntp, write_track
from tests.integration.test_play_cli_stops import run
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_segment import Segment, ntp_to_unix_ns
from tests.receivers.ap2_sender import NO_PTP_FEATURES
from tests.receivers.ap2_stream import Ap2StreamSession
from tests.receivers.raop_emulator import RaopEmulator

HOST = "127.0.0.1"
AIRPLAY = "_airplay._tcp.local."
FRAME_NS = 1e9 / 44100


async def announce_ap2(zeroconf: AsyncZeroconf, receiver: Ap2Receiver, name: str) -> str:
    """Announce `receiver` as an AirPlay 2 speaker (no `_raop` record); its player id."""
    device_id = receiver.emulator.device.device_id
    features = f"0x{NO_PTP_FEATURES & 0xFFFFFFFF:X},0x{NO_PTP_FEATURES >> 32:X}"
    info = AsyncServiceInfo(
        AIRPLAY,
        f"{name}.{AIRPLAY}",
        port=receiver.port,
        properties={
            "deviceid": device_id,
            "features": features,
            "flags": "0x4",
            "model": receiver.emulator.device.model,
            "manufacturer": "Emulated",
            "srcvers": "770.8.1",
        },
        server=f"{name.lower().replace(' ', '-')}.local.",
        parsed_addresses=[HOST],
    )
    await asyncio.wait_for(await zeroconf.async_register_service(info), 10.0)
    return "ap" + device_id.replace(":", "").lower()


def ap2_sample0_ns(segment: Segment, sent: bytes) -> float:
    """Sender-timeline instant (Unix ns) of the first frame of `sent` in the segment."""
    comparison = assert_audio_delivered(segment.pcm(), sent, tolerance_lsb=0)
    assert segment.first_rtp is not None
    return segment.scheduled_ns((segment.first_rtp + comparison.offset_frames) & 0xFFFFFFFF)


def session_of(receiver: Ap2Receiver) -> Ap2StreamSession:
    assert receiver.session is not None
    return receiver.session


async def test_play_streams_airplay2_and_raop_members_in_sync_bit_exact(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    tag = secrets.token_hex(2).upper()
    name = f"Den {tag}"
    pcm = test_signal(2.0, seed=71)
    track = write_track(tmp_path / "track.flac", pcm)
    device_id = ":".join(["02", "A2", *(secrets.token_hex(1).upper() for _ in range(4))])
    async with (
        Ap2Receiver(features=NO_PTP_FEATURES, device_id=device_id, name=name) as ap2,
        RaopEmulator() as raop,
    ):
        player_id = await announce_ap2(zeroconf, ap2, name)
        log = RequestLog(ap2)
        code, out, err = await run(
            "discover", "--interface", HOST, "--json", "--timeout", "3", tmp_path=tmp_path
        )
        assert code == 0, err
        (shown,) = [entry for entry in json.loads(out) if entry["player_id"] == player_id]
        assert shown["protocol"] == "airplay2"
        code, out, err = await run_cli(
            "play", str(track), "--player", name, "--player", f"{HOST}:{raop.port}",
            "--volume", "30", "--interface", HOST, tmp_path=tmp_path,
        )  # fmt: skip
        assert code == 0, out + err
        assert "done: 2 of 2 player(s) played to the end" in out
        session = session_of(ap2)
        assert session.errors == []
        assert raop.errors == []
        assert session.timing == "NTP"  # cliap2 spoke AirPlay 2 to it
        assert session.teardowns == ["stream", "session"]
        # the session holds each member (a FLUSH before any audio) until the start instant
        (segment,) = [segment for segment in session.segments if segment.packets]
        ap2_start = ap2_sample0_ns(segment, pcm)  # bit-exact
        raop_body = raop.stream.reconstructed_pcm()
        comparison = assert_audio_delivered(raop_body, pcm, tolerance_lsb=0)
        first = raop.stream.audio_packets[0].rtptime
        raop_start = ntp_to_unix_ns(
            raop.stream.play_time_ntp((first + comparison.offset_frames) & 0xFFFFFFFF)
        )
        assert raop_start == ntp_to_unix_ns(sample0_ntp(raop))  # after cliraop's pre-roll
        assert abs(ap2_start - raop_start) <= FRAME_NS  # the same instant, within a frame
        assert session.volumes[0] == pytest.approx(volume_to_db(30), abs=1e-3)
        assert raop.core.volumes[0] == pytest.approx(volume_to_db(30), abs=1e-3)
        assert log.titles()[0] == "Sünny Test"  # again with the cover once extracted
        artwork = [r.body for r in log.requests if r.headers.get("content-type") == "image/png"]
        assert artwork  # the file's cover
        assert artwork[0].startswith(b"\x89PNG")
        assert raop.core.metadata[0].text("minm") == "Sünny Test"
