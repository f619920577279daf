"""`airplay-provider play --hires` to an AirPlay 2 buffered receiver (the emulator, announced by
mDNS on loopback) grouped with a RAOP one: the AirPlay 2 member gets the file decoded at
48 kHz, 24-bit, exactly as ffmpeg decodes it; the RAOP member plays 16-bit/44.1 kHz and the
command says why; the progress line names each member's format.
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import subprocess
from pathlib import Path

from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from airplay_provider.pcm_convert import flow_to_s24
from tests.announce_reference import expected_mix, write_wav
from tests.audio import test_signal
from tests.integration.test_play_cli import run_cli, write_track
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_sender import NO_PTP_FEATURES
from tests.receivers.raop_emulator import RaopEmulator

HOST = "127.0.0.1"
AIRPLAY = "_airplay._tcp.local."
BUFFERED = NO_PTP_FEATURES | (1 << 40)
MODEL = "Speaker1,1"


async def announce(zeroconf: AsyncZeroconf, receiver: Ap2Receiver, name: str) -> None:
    """Announce `receiver` as an AirPlay 2 speaker with buffered audio (no `_raop` record)."""
    info = AsyncServiceInfo(
        AIRPLAY,
        f"{name}.{AIRPLAY}",
        port=receiver.port,
        properties={
            "deviceid": receiver.emulator.device.device_id,
            "features": f"0x{BUFFERED & 0xFFFFFFFF:X},0x{BUFFERED >> 32:X}",
            "flags": "0x4",
            "model": MODEL,
            "manufacturer": "Emulated",
            "srcvers": "770.8.1",
        },
        server=f"{name.lower().replace(' ', '-')}.local.",
        parsed_addresses=[HOST],
    )
    await asyncio.wait_for(await zeroconf.async_register_service(info), 10.0)


def ffmpeg_flow_48k(track: Path) -> bytes:
    argv = ["ffmpeg", "-v", "error", "-i", str(track), "-vn", "-f", "f32le", "-ar", "48000"]
    return subprocess.run([*argv, "-ac", "2", "pipe:1"], capture_output=True, check=True).stdout


async def test_play_hires_streams_24_bit_48k_and_names_each_members_format(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    name = f"Den {secrets.token_hex(2).upper()}"
    track = write_track(tmp_path / "track.flac", test_signal(2.0, seed=91), tags=False)
    expected = flow_to_s24(ffmpeg_flow_48k(track))
    device_id = ":".join(["02", "A3", *(secrets.token_hex(1).upper() for _ in range(4))])
    async with (
        Ap2Receiver(features=BUFFERED, model=MODEL, device_id=device_id, name=name) as ap2,
        RaopEmulator() as raop,
    ):
        await announce(zeroconf, ap2, name)
        code, out, err = await run_cli(
            "play", str(track), "--player", name, "--player", f"{HOST}:{raop.port}",
            "--hires", "--interface", HOST, tmp_path=tmp_path,
        )  # fmt: skip
        assert code == 0, out + err
        assert "done: 2 of 2 player(s) played to the end" in out
        assert "plays 16-bit/44.1 kHz, not hi-res: it plays Classic AirPlay (RAOP)" in out
        # e.g. `0:01.2 / 0:02.0  Den 1A2B: playing [ntp] [24-bit/48 kHz]  127.0.0.1:5000: …`
        shown = re.search(rf"{name}: playing (\[[a-z ]+\] )?\[24-bit/48 kHz\]", out)
        assert shown is not None, out
        assert f"{HOST}:{raop.port}: playing [16-bit/44.1 kHz, not hi-res]" in out
        session = ap2.session
        assert session is not None
        assert session.errors == []
        (segment,) = [segment for segment in session.segments if segment.packets]
        received = segment.pcm()
        probe = expected[: 352 * 6]
        start = received.find(probe)
        while start >= 0 and start % 6:
            start = received.find(probe, start + 1)
        assert start >= 0
        assert received[start : start + len(expected)] == expected  # all 24 bits, every sample
        assert raop.errors == []


async def test_play_hires_mixes_an_announcement_at_24_bit_48k(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    """`--announce` into a hi-res session: the file, decoded before the group's format was
    known, is decoded again at 48 kHz and mixed in s24le from `--announce-at` (48 kHz frames);
    the receiver gets the reference mix bit for bit."""
    name = f"Hall {secrets.token_hex(2).upper()}"
    track = write_track(tmp_path / "track.flac", test_signal(4.0, seed=93), tags=False)
    rng = random.Random(94)
    chime = b"".join(
        rng.randint(-(2**22), 2**22).to_bytes(3, "little", signed=True) for _ in range(2 * 24000)
    )
    bell = write_wav(tmp_path / "bell.wav", chime, bits=24, rate=48000)
    expected = expected_mix(
        flow_to_s24(ffmpeg_flow_48k(track)), chime, 2 * 48000, ramp=3840, bits=24
    )
    device_id = ":".join(["02", "A4", *(secrets.token_hex(1).upper() for _ in range(4))])
    async with Ap2Receiver(features=BUFFERED, model=MODEL, device_id=device_id, name=name) as ap2:
        await announce(zeroconf, ap2, name)
        code, out, err = await run_cli(
            "play", str(track), "--player", name, "--hires", "--announce", str(bell),
            "--announce-at", "2", "--interface", HOST, tmp_path=tmp_path,
        )  # fmt: skip
        assert code == 0, out + err
        assert "announcement at 0:02.0" in out
        session = ap2.session
        assert session is not None
        assert session.errors == []
        (segment,) = [segment for segment in session.segments if segment.packets]
        received = segment.pcm()
        start = received.find(expected[: 352 * 6])
        while start >= 0 and start % 6:
            start = received.find(expected[: 352 * 6], start + 1)
        assert start >= 0
        assert received[start : start + len(expected)] == expected  # 0 LSB, every sample
