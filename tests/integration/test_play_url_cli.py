"""`airplay-provider play-url` as a user runs it (a subprocess) against the AirPlay 2 emulator
taught the video endpoints, announced by mDNS on loopback as an Apple TV-like device."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path
from typing import Any

from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from tests.integration.test_pairing_cli import FIXED_PIN, run_pair, show_fixed_pin
from tests.integration.test_play_cli import run_cli
from tests.integration.test_play_url import media, port_closed, served_port
from tests.receivers.ap2_emulator import Ap2Emulator
from tests.receivers.ap2_emulator_core import FEATURES
from tests.receivers.ap2_video import VIDEO_FEATURES, Ap2Video

HOST = "127.0.0.1"
AIRPLAY = "_airplay._tcp.local."
PROGRESS = re.compile(r"^\d:\d\d\.\d( / \d:\d\d\.\d)?  (loading|playing|paused|ended)$")


def new_emulator(**options: Any) -> Ap2Emulator:
    """An Apple TV-like emulator with a name and id of its own (other tests share mDNS)."""
    tag = secrets.token_hex(2).upper()
    device_id = ":".join(["02", "A7", *(secrets.token_hex(1).upper() for _ in range(4))])
    return Ap2Emulator(name=f"Telly {tag}", device_id=device_id, model="AppleTV14,1", **options)


async def announce(zeroconf: AsyncZeroconf, emulator: Ap2Emulator, *, flags: int = 0x4) -> str:
    """Announce the emulator's `_airplay._tcp` service; its name."""
    device = emulator.device
    name = device.name
    info = AsyncServiceInfo(
        AIRPLAY,
        f"{name}.{AIRPLAY}",
        port=emulator.port,
        properties={
            "deviceid": device.device_id,
            "features": f"0x{device.features & 0xFFFFFFFF:X},0x{device.features >> 32:X}",
            "flags": f"0x{flags:X}",
            "model": device.model,
            "srcvers": "770.8.1",
        },
        server=f"{name.lower().replace(' ', '-')}.local.",
        parsed_addresses=[HOST],
    )
    await asyncio.wait_for(await zeroconf.async_register_service(info), 10.0)
    return name


async def test_play_url_plays_a_local_file_to_the_end(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    content = media(150_000, seed=11)
    movie = tmp_path / "clip.mp4"
    movie.write_bytes(content)
    async with (
        new_emulator(features=VIDEO_FEATURES) as emulator,
        Ap2Video(emulator.device, byte_rate=100_000) as video,
    ):
        name = await announce(zeroconf, emulator)
        code, out, err = await run_cli(
            "play-url", str(movie), "--player", name, "--interface", HOST, tmp_path=tmp_path
        )
        assert code == 0, out + err
        (item,) = video.items
    assert err == ""  # no warning, no traceback
    lines = out.splitlines()
    assert lines[0] == f"playing {str(movie)!r} on {name}"
    assert lines[-1] == "done: played to the end (0:01.5)"
    progress = lines[1:-1]
    assert progress
    assert all(PROGRESS.match(line) for line in progress), progress
    assert any(line.endswith(" / 0:01.5  playing") for line in progress), progress
    assert bytes(item.data) == content  # the device fetched the whole file, by ranges
    assert len(item.ranges) == 15
    assert await port_closed(served_port(item.url))()
    assert emulator.errors == []


async def test_ctrl_c_stops_playback_on_the_device_and_the_file_server(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    movie = tmp_path / "long.mp4"
    movie.write_bytes(media(2_000_000, seed=12))  # 20 s
    async with (
        new_emulator(features=VIDEO_FEATURES) as emulator,
        Ap2Video(emulator.device, byte_rate=100_000) as video,
    ):
        name = await announce(zeroconf, emulator)
        code, out, err = await run_cli(
            "play-url", str(movie), "--player", name, "--interface", HOST,
            tmp_path=tmp_path, interrupt_after=0.6,
        )  # fmt: skip
        (item,) = video.items
    assert code == 130, out + err
    assert err == ""  # the cut-off transfer is not an error worth a log line
    stopped = re.search(r"^stopped at 0:(\d\d\.\d)$", out, re.MULTILINE)
    assert stopped is not None, out
    assert float(stopped[1]) < 20
    assert item.stopped
    assert [path for _, path, _ in video.requests].count("/stop") == 1
    assert len(item.ranges) < 200  # it did not fetch on to the end
    assert await port_closed(served_port(item.url))()
    assert emulator.errors == []


async def test_play_url_needs_pairing_then_works_with_the_stored_credentials(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    content = media(50_000, seed=13)
    movie = tmp_path / "clip.mp4"
    movie.write_bytes(content)
    async with (
        new_emulator(features=VIDEO_FEATURES, status_flags=0x8) as emulator,
        Ap2Video(emulator.device, byte_rate=100_000, require_pairing=True) as video,
    ):
        show_fixed_pin(emulator.device)
        name = await announce(zeroconf, emulator, flags=0x8)
        args = ("play-url", str(movie), "--player", name, "--interface", HOST)
        code, out, err = await run_cli(*args, tmp_path=tmp_path)
        assert code == 1
        assert f"play-url: {name} requires pairing: run `airplay-provider pair" in err
        assert video.requests == []
        paired = await run_pair(
            tmp_path / "config.json", name, "--pin", FIXED_PIN, "--interface", HOST
        )
        assert paired.code == 0, paired.stderr
        code, out, err = await run_cli(*args, tmp_path=tmp_path)
        assert code == 0, out + err
        (item,) = video.items
    assert "done: played to the end" in out
    assert bytes(item.data) == content
    assert all(encrypted for _, _, encrypted in video.requests)  # after pair-verify
    assert len(emulator.device.paired) == 1
    assert emulator.errors == []


async def test_play_url_refuses_a_speaker_without_video(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    async with new_emulator(features=FEATURES) as emulator, Ap2Video(emulator.device) as video:
        name = await announce(zeroconf, emulator)
        code, _out, err = await run_cli(
            "play-url", "http://127.0.0.1:9/a.mp4", "--player", name, "--interface", HOST,
            tmp_path=tmp_path,
        )  # fmt: skip
    assert code == 1
    assert f"play-url: {name} cannot play a URL itself (an audio-only device" in err
    assert video.requests == []
    assert emulator.connections == []


async def test_play_url_reports_the_device_error_for_an_unreachable_url(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    url = "http://127.0.0.1:9/missing.mp4"  # discard port: nothing listens
    async with (
        new_emulator(features=VIDEO_FEATURES, expect_errors=[r"playback error -1004"]) as emulator,
        Ap2Video(emulator.device) as video,
    ):
        name = await announce(zeroconf, emulator)
        code, _out, err = await run_cli(
            "play-url", url, "--player", name, "--interface", HOST, tmp_path=tmp_path
        )
        (item,) = video.items
    assert code == 1
    assert "play-url: the device reported a playback error: could not connect" in err
    assert "(NSURLErrorDomain -1004)" in err
    assert item.url == url
    assert item.stopped
