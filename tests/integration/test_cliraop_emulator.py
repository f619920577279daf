"""bin/cliraop against the strict RAOP emulator: the exact schedule, loss recovery, metadata,
and bad input. The emulator has its own parsers (no code shared with the sender)."""

from __future__ import annotations

import asyncio
import struct
import sys
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from airplay_provider.protocol.hap.credentials import LegacyCredentials
from tests.audio import music_like, test_signal
from tests.receivers.ap2_emulator_legacy import LegacyAccessory
from tests.receivers.raop_emulator import RaopEmulator
from tests.streamer_driver import CLIRAOP, ntp_in, run_cliraop

PREROLL_FRAMES = 3520  # cliraop's silent pre-roll before sample 0 (10 packets)
FRAME_NTP = 2**32 / 44100  # one frame in NTP units


def assert_on_schedule(emu: RaopEmulator, *, rtptime: int, ntp: int, frames: list[int]) -> None:
    """Input sample k (RTP `rtptime + k`) is audible at `ntp + k/44100`, ± 1 frame."""
    for k in frames:
        play = emu.stream.play_time_ntp((rtptime + k) & 0xFFFFFFFF)
        error_frames = (play - (ntp + k * FRAME_NTP)) / FRAME_NTP
        assert abs(error_frames) <= 1.0, f"sample {k} off by {error_frames:.3f} frames"


async def test_sample_zero_plays_at_ntpstart_and_every_sample_follows() -> None:
    signal = test_signal(3.0, seed=21)
    async with RaopEmulator() as emu:
        start = ntp_in(0.8)
        run = await run_cliraop(emu.port, signal, ntpstart=start)
        assert run.returncode == 0, run.log
        started = run.status("started")
        assert int(started["actual_ntp"]) == start
        assert_on_schedule(
            emu, rtptime=int(started["rtptime"]), ntp=start, frames=[0, 1, 352, 44100, 132299]
        )
        assert emu.stream.syncs_consistent(tolerance_frames=0.01)
        assert len(emu.stream.sync_packets) >= 4
        pcm = emu.stream.reconstructed_pcm()
        assert pcm[: PREROLL_FRAMES * 4] == bytes(PREROLL_FRAMES * 4)
        assert pcm[PREROLL_FRAMES * 4 : PREROLL_FRAMES * 4 + len(signal)] == signal  # bit-exact
        assert set(pcm[PREROLL_FRAMES * 4 + len(signal) :]) <= {0}  # silence after the end
        # The tail is played before teardown: TEARDOWN came after the last sample's play time.
        assert emu.core.teardown_at is not None
        last = (int(started["rtptime"]) + len(signal) // 4 - 1) & 0xFFFFFFFF
        assert emu.core.teardown_at > emu.stream.play_time_local(last)


async def test_five_percent_loss_is_healed() -> None:
    signal = test_signal(4.0, seed=22)
    async with RaopEmulator(drop_rate=0.05, drop_seed=3) as emu:
        run = await run_cliraop(emu.port, signal, lead_s=0.8)
        assert run.returncode == 0, run.log
        stats = emu.stream.loss_stats()
        assert stats.dropped >= 10
        assert stats.still_missing == 0
        assert stats.healed == stats.requested
        pcm = emu.stream.reconstructed_pcm()
        assert pcm[PREROLL_FRAMES * 4 : PREROLL_FRAMES * 4 + len(signal)] == signal


async def test_alac_compressed_stream_is_bit_exact_and_smaller() -> None:
    # -alac: compressed frames (variable size), also as resends after 5 % loss; the emulator
    # decodes them with its own ALAC decoder.
    signal = music_like(3.0, seed=24)
    async with RaopEmulator(drop_rate=0.05, drop_seed=4) as emu:
        run = await run_cliraop(emu.port, signal, lead_s=0.8, args=["-alac"])
        assert run.returncode == 0, run.log
        stats = run.all("stats")[-1]
        sent = int(stats["sent"])
        assert int(stats["compressed"]) == sent  # music and silence: every frame compressed
        assert int(stats["payload_bytes"]) < 0.65 * 1412 * sent
        assert emu.stream.loss_stats().still_missing == 0
        pcm = emu.stream.reconstructed_pcm()
        assert pcm[PREROLL_FRAMES * 4 : PREROLL_FRAMES * 4 + len(signal)] == signal
        assert emu.errors == []


async def test_without_alac_every_frame_is_uncompressed() -> None:
    signal = music_like(1.0, seed=25)
    async with RaopEmulator() as emu:
        run = await run_cliraop(emu.port, signal, lead_s=0.8)
        assert run.returncode == 0, run.log
        stats = run.all("stats")[-1]
        assert int(stats["compressed"]) == 0
        assert int(stats["payload_bytes"]) == 1412 * int(stats["sent"])
        pcm = emu.stream.reconstructed_pcm()
        assert pcm[PREROLL_FRAMES * 4 : PREROLL_FRAMES * 4 + len(signal)] == signal


async def test_late_start_skips_but_stays_on_the_timeline() -> None:
    signal = test_signal(3.0, seed=23)
    async with RaopEmulator() as emu:
        start = ntp_in(-0.5)  # already half a second in the past
        run = await run_cliraop(emu.port, signal, ntpstart=start)
        assert run.returncode == 0, run.log
        started = run.status("started")
        first = int(started["first_sample"])
        assert first >= 0.5 * 44100
        assert int(started["skipped_frames"]) == first
        # Sample k is still scheduled at start + k/44100: the group timeline is kept.
        rtp0 = (int(started["rtptime"]) - first) & 0xFFFFFFFF
        assert_on_schedule(emu, rtptime=rtp0, ntp=start, frames=[first, first + 44100])
        pcm = emu.stream.reconstructed_pcm()
        body = pcm[PREROLL_FRAMES * 4 :]
        assert body[: len(signal) - first * 4] == signal[first * 4 :]


async def test_a_receiver_slow_to_ask_for_timing_still_gets_a_reported_start() -> None:
    # No timing request for 1 s: the streamer waits its 0.4 s for one after placing the start,
    # so the first real packet is already too late when the pre-roll has left, and is skipped.
    signal = test_signal(3.0, seed=25)
    async with RaopEmulator(first_timing_delay=1.0) as emu:
        start = ntp_in(-0.5)
        run = await run_cliraop(emu.port, signal, ntpstart=start)
        assert run.returncode == 0, run.log
        assert len(run.all("started")) == 1, run.log
        assert len(run.all("playing")) == 1, run.log
        started = run.status("started")
        packets = sorted(
            (p for p in emu.stream.audio_packets if not p.resent), key=lambda p: p.received_at
        )
        preroll, first_real = packets[:10], packets[10]
        # the scenario: the packet after the pre-roll jumps past the skipped first real packet
        skipped = (first_real.rtptime - preroll[-1].rtptime - 352) & 0xFFFFFFFF
        assert skipped >= 352, skipped
        first = int(started["first_sample"])
        assert int(started["rtptime"]) == first_real.rtptime
        assert int(started["seq"]) == first_real.seq
        assert int(started["skipped_frames"]) == first
        rtp0 = (first_real.rtptime - first) & 0xFFFFFFFF
        assert_on_schedule(emu, rtptime=rtp0, ntp=start, frames=[first, first + 44100])
        # the skipped frames are the only hole; from the first real packet on, every sample
        gap_start = (preroll[-1].rtptime + 352) & 0xFFFFFFFF
        assert emu.stream.missing_frames() == [(gap_start, skipped)]
        assert emu.errors == []
        segment = emu.stream.segments[0]
        assert segment.first_audio is not None
        offset = (first_real.rtptime - segment.first_audio.rtptime) & 0xFFFFFFFF
        body = bytearray()
        for at in sorted(o for o in segment.pcm if o >= offset):
            assert at == offset + len(body) // 4
            body += segment.pcm[at]
        assert body[: len(signal) - first * 4] == signal[first * 4 :]


async def test_pause_and_resume_at_a_given_instant() -> None:
    signal = test_signal(4.0, seed=24)
    resume_at = ntp_in(3.0)
    async with RaopEmulator() as emu:
        run = await run_cliraop(
            emu.port,
            signal,
            lead_s=0.8,
            commands=[
                ("started", 1.0, "ACTION=PAUSE"),
                ("paused", 0.1, f"NTPSTART={resume_at}"),
                ("paused", 0.2, "ACTION=PLAY"),
            ],
        )
        assert run.returncode == 0, run.log
        paused_at = int(run.status("paused")["sample"])
        resumed = run.all("playing")[1]
        assert int(resumed["first_sample"]) == paused_at
        assert int(resumed["actual_ntp"]) == resume_at
        assert len(emu.core.flushes) == 1
        # The second segment's line puts the resume sample exactly at the requested instant.
        assert_on_schedule(emu, rtptime=int(resumed["rtptime"]), ntp=resume_at, frames=[0, 44100])
        segments = emu.stream.segments
        assert len(segments) == 2
        assert emu.stream.syncs_consistent(tolerance_frames=0.01)
        pcm = emu.stream.reconstructed_pcm()
        # After the second pre-roll the audio continues exactly at the pause point.
        assert signal[paused_at * 4 : paused_at * 4 + 4 * 44100] in pcm


def _tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


async def test_metadata_artwork_progress_and_volume(tmp_path: Path) -> None:
    art = tmp_path / "cover.png"
    art.write_bytes(_tiny_png())
    async with RaopEmulator() as emu:
        run = await run_cliraop(
            emu.port,
            test_signal(2.5, seed=25),
            args=["-md", "0,1,2", "-volume", "40"],
            commands=[
                ("started", 0.1, "TITLE=Ünïcode Song"),
                ("started", 0.0, "ARTIST=The Band"),
                ("started", 0.0, "ALBUM=Debut"),
                ("started", 0.0, "DURATION=200"),
                ("started", 0.0, "ACTION=SENDMETA"),
                ("started", 0.0, f"ARTWORK={art}"),
                ("started", 0.0, "PROGRESS=12"),
                ("started", 0.0, "VOLUME=0"),
            ],
        )
        assert run.returncode == 0, run.log
        core = emu.core
        assert core.volumes == [pytest.approx(-18.0), -144.0]
        assert core.metadata[0].text("minm") == "Ünïcode Song"
        assert core.metadata[0].text("asar") == "The Band"
        assert core.metadata[0].text("asal") == "Debut"
        assert core.artwork
        assert core.artwork[0].data == art.read_bytes()
        start, current, end = core.progress[0]
        assert (current - start) & 0xFFFFFFFF == 12 * 44100
        assert (end - start) & 0xFFFFFFFF == 200 * 44100


async def test_empty_stdin_is_an_error() -> None:
    async with RaopEmulator() as emu:
        run = await run_cliraop(emu.port, b"", lead_s=0.5)
        assert run.returncode == 1
        assert run.status("error")["code"] == "empty_input"
        assert emu.core.teardown_at is not None  # it still hung up properly


async def test_refused_connection() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    run = await run_cliraop(port, b"\0" * 4096)
    assert run.returncode == 1
    assert run.status("error")["code"] == "refused"


async def test_unknown_host() -> None:
    run = await run_cliraop(5000, b"\0" * 4096, host="no-such-receiver.invalid", timeout=30)
    assert run.returncode == 1
    assert run.status("error")["code"] in {"unknown_host", "timeout"}


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (b"HELLO THERE\r\n\r\n", "bad_response"),
        (b"RTSP/1.0 200 OK\r\nContent-Length: -5\r\n\r\n", "bad_response"),
        (b"RTSP/1.0 500 Internal Server Error\r\nCSeq: 1\r\n\r\n", "rejected"),
        (None, "timeout"),
    ],
)
async def test_receiver_answering_garbage_or_nothing(reply: bytes | None, code: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        if reply is not None:
            writer.write(reply)
            await writer.drain()
        await asyncio.sleep(8)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        run = await run_cliraop(port, b"\0" * 4096, timeout=20)
        assert run.returncode == 1, run.log
        assert run.status("error")["code"] == code
    finally:
        server.close()


async def test_usage_error_exit_code() -> None:
    run = await run_cliraop(0, b"", args=["-volume", "500"])
    assert run.returncode == 2
    assert run.status("error")["code"] == "usage"


def _legacy_device() -> tuple[LegacyAccessory, LegacyCredentials]:
    accessory = LegacyAccessory(signing_key=Ed25519PrivateKey.generate())
    credentials = LegacyCredentials.generate()
    public = credentials.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    accessory.paired[credentials.user] = public
    return accessory, credentials


async def test_stored_legacy_secret_passes_pair_verify() -> None:
    accessory, credentials = _legacy_device()
    signal = test_signal(1.0, seed=26)
    async with RaopEmulator(legacy_accessory=accessory) as emu:
        run = await run_cliraop(
            emu.port, signal, lead_s=0.8, args=["-secret", credentials.secret.hex()]
        )
        assert run.returncode == 0, run.log
        assert credentials.secret.hex() not in run.log  # never logged
        methods = [record.method for record in emu.core.requests]
        assert methods[:3] == ["POST", "POST", "ANNOUNCE"]
        pcm = emu.stream.reconstructed_pcm()
        assert pcm[PREROLL_FRAMES * 4 : PREROLL_FRAMES * 4 + len(signal)] == signal


async def test_device_demanding_verification_without_or_with_a_wrong_secret() -> None:
    accessory, _ = _legacy_device()
    refusals = [
        "ANNOUNCE refused with 403: pair-verify required",  # no secret
        "POST refused with 470: pair-verify refused",  # the wrong secret
        # cliraop still says TEARDOWN after the refusal, with no session to end
        "TEARDOWN refused with 455: not valid in state idle",
    ]
    async with RaopEmulator(legacy_accessory=accessory, expect_errors=refusals) as emu:
        missing = await run_cliraop(emu.port, b"\0" * 4096)
        assert missing.returncode == 1
        assert missing.status("error")["code"] == "forbidden"
        wrong = await run_cliraop(emu.port, b"\0" * 4096, args=["-secret", "ab" * 32])
        assert wrong.returncode == 1
        assert wrong.status("error")["code"] == "pairing_failed"


async def test_check_and_ntp_flags() -> None:
    check = await asyncio.create_subprocess_exec(
        sys.executable, str(CLIRAOP), "-check", stdout=asyncio.subprocess.PIPE
    )
    assert (await check.communicate())[0] == b"cliraop check\n"
    assert check.returncode == 0
    before = ntp_in(0)
    ntp = await asyncio.create_subprocess_exec(
        sys.executable, str(CLIRAOP), "-ntp", stdout=asyncio.subprocess.PIPE
    )
    printed = int((await ntp.communicate())[0])
    assert before <= printed <= ntp_in(5)  # the current time as 64-bit NTP
