"""`airplay-provider play --timing ntp`: a receiver that advertises PTP (feature bit 41, like a
Sony TV that never answers it) is streamed on NTP timing when the user says so, bit-exact, and
the progress line shows the member's clock."""

from __future__ import annotations

import secrets
from pathlib import Path

from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from tests.audio import assert_audio_delivered, test_signal
from tests.integration.test_play_cli import run_cli, write_track
from tests.integration.test_play_cli_ap2 import AIRPLAY, HOST, session_of
from tests.receivers.ap2_emulator_core import FEATURES
from tests.receivers.ap2_receiver import Ap2Receiver

PTP_BIT = 1 << 41


async def test_play_timing_ntp_overrides_an_advertised_ptp(
    tmp_path: Path, zeroconf: AsyncZeroconf
) -> None:
    assert FEATURES & PTP_BIT
    tag = secrets.token_hex(2).upper()
    name = f"Tv {tag}"
    pcm = test_signal(1.5, seed=73)
    track = write_track(tmp_path / "track.flac", pcm)
    device_id = ":".join(["02", "B2", *(secrets.token_hex(1).upper() for _ in range(4))])
    async with Ap2Receiver(device_id=device_id, name=name) as receiver:
        info = AsyncServiceInfo(
            AIRPLAY,
            f"{name}.{AIRPLAY}",
            port=receiver.port,
            properties={
                "deviceid": device_id,
                "features": f"0x{FEATURES & 0xFFFFFFFF:X},0x{FEATURES >> 32:X}",
                "flags": "0x4",
                "model": receiver.emulator.device.model,
                "manufacturer": "Emulated",
                "srcvers": "770.8.1",
            },
            server=f"tv-{tag.lower()}.local.",
            parsed_addresses=[HOST],
        )
        await (await zeroconf.async_register_service(info))
        code, out, err = await run_cli(
            "play", str(track), "--player", name, "--timing", "ntp", "--interface", HOST,
            tmp_path=tmp_path,
        )  # fmt: skip
        assert code == 0, out + err
        assert "done: 1 of 1 player(s) played to the end" in out
        assert f"{name}: playing [ntp]" in out
        session = session_of(receiver)
        assert session.errors == []
        assert session.timing == "NTP"  # not PTP, though advertised
        (segment,) = [segment for segment in session.segments if segment.packets]
        assert_audio_delivered(segment.pcm(), pcm, tolerance_lsb=0)
