"""`play_url` / `UrlPlayer` against the AirPlay 2 emulator taught the video endpoints
(`tests.receivers.ap2_video`): it really fetches what it is told to play, over HTTP with range
requests, from our one-file server or from a test's own server, all on loopback."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from airplay_provider.pairing.client import pin_pair_setup
from airplay_provider.protocol.hap.credentials import HapCredentials
from airplay_provider.protocol.txt import (
    AIRPLAY_SERVICE_TYPE,
    RAOP_SERVICE_TYPE,
    DeviceRecord,
    merge_records,
    parse_service,
)
from airplay_provider.protocol.video import (
    CertificateRejected,
    DevicePlaybackError,
    NeedsPairingError,
    PlaybackState,
    Progress,
    UrlPlaybackUnsupported,
)
from airplay_provider.rtsp_connection import RtspConnection
from airplay_provider.video import UrlPlayer, play_url
from tests.receivers.ap2_emulator import Ap2Emulator
from tests.receivers.ap2_emulator_core import FEATURES
from tests.receivers.ap2_video import VIDEO_FEATURES, Ap2Video

HOST = "127.0.0.1"
IDENTIFIER = "0123456789ABCDEF"
BYTE_RATE = 100_000
POLL_S = 0.1


def media(size: int, seed: int = 1) -> bytes:
    """Deterministic, non-repeating bytes (a stand-in for a media file)."""
    out = bytearray()
    value = seed
    while len(out) < size:
        value = (value * 6364136223846793005 + 1442695040888963407) % 2**64
        out += value.to_bytes(8, "big")
    return bytes(out[:size])


def device_record(emulator: Ap2Emulator, *, features: int, flags: int = 0x4) -> DeviceRecord:
    """The record discovery would make of the emulator's `_airplay._tcp` announcement."""
    txt = {
        "deviceid": emulator.device.device_id,
        "features": f"0x{features & 0xFFFFFFFF:X},0x{features >> 32:X}",
        "flags": f"0x{flags:X}",
        "model": "AppleTV14,1",
    }
    record = parse_service(
        AIRPLAY_SERVICE_TYPE,
        f"Living Room.{AIRPLAY_SERVICE_TYPE}",
        port=emulator.port,
        addresses=[HOST],
        properties=txt,
    )
    return merge_records(None, record)


async def pair(emulator: Ap2Emulator) -> HapCredentials:
    """PIN pair-setup with the emulator (what `airplay-provider pair` stores)."""
    reader, writer = await asyncio.open_connection(HOST, emulator.port)
    connection = RtspConnection(reader, writer)

    async def pin() -> str:
        assert emulator.displayed_pin is not None
        return emulator.displayed_pin

    try:
        return await pin_pair_setup(connection, IDENTIFIER, pin)
    finally:
        await connection.close()


def port_closed(port: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except ConnectionRefusedError:
            return True
        writer.close()
        return False

    return check


def served_port(url: str) -> int:
    """The port of a URL our media server made (``http://HOST:PORT/...``)."""
    port = urlsplit(url).port
    assert port is not None
    return port


@pytest.fixture
async def emulator() -> AsyncIterator[Ap2Emulator]:
    async with Ap2Emulator(features=VIDEO_FEATURES, model="AppleTV14,1") as emu:
        yield emu


async def test_plays_a_local_file_to_the_end_fetched_byte_exact_by_range(
    tmp_path: Path, emulator: Ap2Emulator
) -> None:
    content = media(150_000)
    movie = tmp_path / "movie.mp4"
    movie.write_bytes(content)
    seen: list[Progress] = []
    async with Ap2Video(emulator.device, byte_rate=BYTE_RATE) as video:
        result = await play_url(
            device_record(emulator, features=VIDEO_FEATURES),
            str(movie),
            credentials=None,
            pairing_id="",
            on_progress=seen.append,
            poll_interval=POLL_S,
        )
        (item,) = video.items
    assert result.ended
    assert result.progress == Progress(PlaybackState.ENDED, 1.5, 1.5)
    assert bytes(item.data) == content  # every byte, fetched by the device from our server
    assert len(item.ranges) == 15
    assert item.ranges[0] == (0, 9_999)
    assert item.url.startswith(f"http://{HOST}:")
    assert item.url.endswith("/movie.mp4")
    assert item.start_position == 0.0
    assert not item.stopped
    playing = [p for p in seen if p.state is PlaybackState.PLAYING]
    assert playing, seen
    positions = [p.position for p in seen]
    assert positions == sorted(positions)  # progress only moves on
    assert all(p.duration == 1.5 for p in playing)
    assert await port_closed(served_port(item.url))()  # the file server went with the playback
    assert ("POST", "/stop", False) not in video.requests  # it ended by itself
    assert emulator.errors == []


async def test_pause_seek_resume_and_stop_reach_the_device(
    tmp_path: Path, emulator: Ap2Emulator
) -> None:
    content = media(400_000, seed=2)
    movie = tmp_path / "movie.bin"
    movie.write_bytes(content)
    device = device_record(emulator, features=VIDEO_FEATURES)
    async with (
        Ap2Video(emulator.device, byte_rate=BYTE_RATE) as video,
        UrlPlayer(device, str(movie), credentials=None, pairing_id="") as player,
    ):
        await player.start()
        (item,) = video.items
        for _ in range(50):  # the device loads, then plays
            if (await player.poll()).state is PlaybackState.PLAYING:
                break
            await asyncio.sleep(POLL_S)
        await player.pause()
        paused = await player.poll()
        assert paused.state is PlaybackState.PAUSED
        fetched = len(item.ranges)
        await asyncio.sleep(0.3)  # a playing device would fetch 3 more chunks meanwhile
        assert len(item.ranges) <= fetched + 1  # (one in flight when paused)
        await player.seek(3.0)
        await player.resume()
        async with asyncio.timeout(5):
            while not any(first >= 300_000 for first, _ in item.ranges):  # noqa: ASYNC110
                await asyncio.sleep(POLL_S)
        after_seek = [r for r in item.ranges if r[0] >= 300_000]
        assert after_seek[0][0] == 300_000  # the device fetched on from the sought byte
        progress = await player.poll()
        assert progress.position >= 3.0
        assert progress.duration == 4.0
        await player.stop()
    assert item.rates == [0.0, 1.0]
    assert item.scrubs == [3.0]
    assert item.stopped
    assert item.data[300_000 : after_seek[0][1] + 1] == content[300_000 : after_seek[0][1] + 1]
    assert [r for r in video.requests if r[1] == "/stop"] == [("POST", "/stop", False)]
    assert emulator.errors == []


async def test_stop_event_stops_the_device_and_the_file_server(
    tmp_path: Path, emulator: Ap2Emulator
) -> None:
    movie = tmp_path / "long.mp4"
    movie.write_bytes(media(1_000_000, seed=3))  # 10 s
    stop = asyncio.Event()

    def on_progress(progress: Progress) -> None:
        if progress.state is PlaybackState.PLAYING:
            stop.set()

    async with Ap2Video(emulator.device, byte_rate=BYTE_RATE) as video:
        result = await play_url(
            device_record(emulator, features=VIDEO_FEATURES),
            str(movie),
            credentials=None,
            pairing_id="",
            stop=stop,
            on_progress=on_progress,
            poll_interval=POLL_S,
        )
        (item,) = video.items
    assert not result.ended
    assert result.progress.state is PlaybackState.PLAYING
    assert result.progress.position < 10
    assert item.stopped
    assert [r[1] for r in video.requests].count("/stop") == 1
    assert await port_closed(served_port(item.url))()


async def test_pair_verify_with_stored_credentials_when_the_device_demands_it(
    tmp_path: Path, emulator: Ap2Emulator
) -> None:
    movie = tmp_path / "movie.mp4"
    content = media(50_000, seed=4)
    movie.write_bytes(content)
    credentials = await pair(emulator)
    device = device_record(emulator, features=VIDEO_FEATURES, flags=0x8)
    async with Ap2Video(emulator.device, byte_rate=BYTE_RATE, require_pairing=True) as video:
        result = await play_url(
            device, str(movie), credentials=credentials, pairing_id=IDENTIFIER, poll_interval=POLL_S
        )
        (item,) = video.items
    assert result.ended
    assert bytes(item.data) == content
    assert video.requests
    assert all(encrypted for _, _, encrypted in video.requests)
    assert emulator.errors == []


async def test_no_credentials_when_the_device_demands_pairing(
    tmp_path: Path, emulator: Ap2Emulator
) -> None:
    movie = tmp_path / "movie.mp4"
    movie.write_bytes(media(10_000))
    async with Ap2Video(emulator.device, require_pairing=True) as video:
        # the TXT flags say so: nothing is sent
        flagged = device_record(emulator, features=VIDEO_FEATURES, flags=0x8)
        with pytest.raises(NeedsPairingError, match="requires pairing: run `airplay-provider"):
            await play_url(flagged, str(movie), credentials=None, pairing_id="")
        assert video.requests == []
        # the TXT does not say so, the device answers 470
        emulator.expect_error(r"POST /play without pair-verify")
        quiet = device_record(emulator, features=VIDEO_FEATURES)
        with pytest.raises(NeedsPairingError, match=r"demands pairing \(470"):
            await play_url(quiet, str(movie), credentials=None, pairing_id="")
        assert video.items == []
    assert emulator.errors == ["POST /play without pair-verify"]


async def test_stale_credentials_are_a_pairing_error(tmp_path: Path, emulator: Ap2Emulator) -> None:
    movie = tmp_path / "movie.mp4"
    movie.write_bytes(media(10_000))
    stale = HapCredentials(seed=bytes(range(32)), accessory_ltpk=emulator.device.public_key)
    emulator.expect_error(r"/pair-verify: HAP error authentication")
    async with Ap2Video(emulator.device, require_pairing=True) as video:
        with pytest.raises(NeedsPairingError, match="refused the stored pairing"):
            await play_url(
                device_record(emulator, features=VIDEO_FEATURES),
                str(movie),
                credentials=stale,
                pairing_id=IDENTIFIER,
            )
        assert video.requests == []


@pytest.mark.parametrize(
    ("features", "has_airplay", "kind"),
    [(FEATURES, True, "an audio-only device"), (VIDEO_FEATURES, False, "RAOP")],
)
async def test_a_speaker_without_video_is_refused_before_connecting(
    emulator: Ap2Emulator, features: int, has_airplay: bool, kind: str
) -> None:
    if has_airplay:
        device = device_record(emulator, features=features)
    else:
        raop = parse_service(
            RAOP_SERVICE_TYPE,
            f"AABBCCDDEEFF@Kitchen.{RAOP_SERVICE_TYPE}",
            port=emulator.port,
            addresses=[HOST],
            properties={"ft": "0x5A7FFFF7,0x1E", "am": "AudioAccessory5,1"},
        )
        device = merge_records(raop, None)
    with pytest.raises(UrlPlaybackUnsupported, match=f"cannot play a URL itself.*{kind}"):
        await play_url(device, "http://127.0.0.1:1/a.mp4", credentials=None, pairing_id="")
    assert emulator.connections == []


async def test_an_unreachable_url_is_the_device_reported_error(emulator: Ap2Emulator) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind((HOST, 0))
        free = int(probe.getsockname()[1])
    url = f"http://{HOST}:{free}/gone.mp4"
    emulator.expect_error(r"playback error -1004")
    async with Ap2Video(emulator.device) as video:
        with pytest.raises(DevicePlaybackError, match=r"reported a playback error.*-1004"):
            await play_url(
                device_record(emulator, features=VIDEO_FEATURES),
                url,
                credentials=None,
                pairing_id="",
                poll_interval=POLL_S,
            )
        (item,) = video.items
    assert item.url == url
    assert item.stopped
    assert item.ranges == []


def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a certificate no one trusts (self-signed, for 127.0.0.1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def test_an_https_url_with_an_untrusted_certificate(
    tmp_path: Path, emulator: Ap2Emulator
) -> None:
    requests: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        requests.append(request.path)  # pragma: no cover - the handshake fails first
        return web.Response(body=b"x")  # pragma: no cover

    app = web.Application()
    app.router.add_get("/movie.mp4", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, 0, ssl_context=self_signed(tmp_path))
        await site.start()
        url = f"https://{HOST}:{runner.addresses[0][1]}/movie.mp4"
        emulator.expect_error(r"playback error -1202: certificate not trusted")
        async with Ap2Video(emulator.device) as video:
            with pytest.raises(CertificateRejected, match="does not accept the certificate"):
                await play_url(
                    device_record(emulator, features=VIDEO_FEATURES),
                    url,
                    credentials=None,
                    pairing_id="",
                    poll_interval=POLL_S,
                )
            (item,) = video.items
    finally:
        await runner.cleanup()
    assert item.ranges == []
    assert requests == []
