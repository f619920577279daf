"""`bin/cliap2 --bits 24 --rate 48000`: buffered ALAC/48000/24/2 to the strict AirPlay 2
emulator, compressed and not, bit-exact (sample by sample) and on time; refused where the
receiver can only take a realtime (44100/16) stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.audio import locate_exact, music_like_24
from tests.integration.test_cliap2_buffered import (
    BUFFERED_FEATURES,
    NOT_APPLE,
    _buffered,
    _session,
    pause_and_resume,
)
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_sender import NO_PTP_FEATURES, Cliap2, ntp_in

HIRES = ["--bits", "24", "--rate", "48000"]


@pytest.mark.parametrize(("alac", "codec"), [("off", "pcm-escape"), ("on", "alac")])
async def test_24_bit_48k_buffered_is_bit_exact_and_on_time(alac: str, codec: str) -> None:
    signal = music_like_24(2.0, seed=31)
    async with Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as receiver:
        start_unix, start_ntp = ntp_in(1.5)
        extra = [*HIRES, "--stream-type", "buffered", "--alac", alac]
        run = await Cliap2.start(
            address="127.0.0.1", port=receiver.port, ntpstart=start_ntp, extra=extra
        )
        await run.feed(signal)
        assert await run.finish() == 0, run.text()
        session, buffered = _session(receiver), _buffered(receiver)
        assert session.errors == []
        started = run.status("started")[0]
        assert started["stream_type"] == "buffered"
        assert (started["codec"], started["bits"], started["rate"]) == (codec, "24", "48000")
        assert started["actual_ntp"] == started["requested_ntp"] == str(start_ntp)
        assert session.stream_types == [103]
        assert buffered.ssrc == 0x15000000
        stats = run.status("stats")[-1]
        if alac == "on":
            assert int(stats["compressed"]) == int(stats["sent"])
            assert int(stats["payload_bytes"]) < 0.8 * 2116 * int(stats["sent"])
        else:
            assert int(stats["compressed"]) == 0
        (segment,) = session.segments
        assert (segment.rate, segment.frame_bytes) == (48000, 6)
        offset = locate_exact(segment.pcm(), signal, frame_bytes=6)  # every sample, all 24 bits
        assert segment.first_rtp is not None
        sample0_ns = segment.scheduled_ns((segment.first_rtp + offset) & 0xFFFFFFFF)
        assert abs(sample0_ns - start_unix) <= 1e9 / 48000  # within one frame at 48 kHz
        assert segment.missing_frames() == 0
        assert buffered.late_frames(segment) == 0


async def test_24_bit_to_a_receiver_without_buffered_audio_is_refused() -> None:
    async with Ap2Receiver(features=NO_PTP_FEATURES, model=NOT_APPLE) as receiver:
        run = await Cliap2.start(address="127.0.0.1", port=receiver.port, extra=HIRES)
        await run.feed(music_like_24(0.2))
        assert await run.finish() == 1, run.text()
        error = run.status("error")[0]
        assert error["code"] == "format_unsupported"
        assert "needs a buffered stream" in error["message"]
        assert run.status("started") == []
        assert receiver.session is not None
        assert receiver.session.stream_types == []  # no stream was set up


async def test_24_bit_on_a_realtime_stream_is_a_usage_error() -> None:
    run = await Cliap2.start(
        address="127.0.0.1", port=9, extra=[*HIRES, "--stream-type", "realtime"]
    )
    assert await run.finish() == 2, run.text()
    assert "needs a buffered stream" in run.text()


async def test_24_bit_48k_pause_and_resume_keep_the_48k_timeline(tmp_path: Path) -> None:
    signal = music_like_24(3.0, seed=32)
    async with Ap2Receiver(features=BUFFERED_FEATURES, model=NOT_APPLE) as receiver:
        _, start_ntp = ntp_in(1.0)
        fifo = tmp_path / "cmd"
        run = await Cliap2.start(
            address="127.0.0.1", port=receiver.port, ntpstart=start_ntp, fifo=fifo, extra=HIRES
        )
        await run.feed(signal, close=False)
        paused, resume_unix = await pause_and_resume(
            run,
            lambda: bool(
                receiver.session and receiver.session.buffered and receiver.session.buffered.rates
            ),  # anchored
            0.8,
        )
        assert await run.finish(wait_s=30.0) == 0, run.text()
        session, buffered = _session(receiver), _buffered(receiver)
        assert session.errors == []
        assert buffered.rates == [1, 0, 1]  # anchor, pause, resume
        before, after = session.segments
        resumed_at = int(paused["sample"])
        heard = locate_exact(before.pcm(), signal[: resumed_at * 6], frame_bytes=6)
        played = buffered.played_frames(before, buffered.paused_at_ns[0]) - heard
        assert 0 <= played - resumed_at <= 4800  # < 0.1 s heard twice, nothing skipped
        rest = signal[resumed_at * 6 :]
        offset = locate_exact(after.pcm(), rest, frame_bytes=6)
        assert after.first_rtp is not None
        sample_ns = after.scheduled_ns((after.first_rtp + offset) & 0xFFFFFFFF)
        assert abs(sample_ns - resume_unix) <= 1e9 / 48000  # the resume instant, at 48 kHz
        assert buffered.late_frames(before) == buffered.late_frames(after) == 0
