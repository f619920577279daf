"""Hi-res AirPlay 2 (`cliap2 --bits 24 --rate 48000`), sans-I/O: options, the SETUP plist, the
buffered SSRC, 24-bit escape frames, s24le input framing, pacing at 48 kHz, the status fields."""

from __future__ import annotations

import asyncio
import os
import plistlib
import random

import pytest

from airplay_provider.protocol import ap2
from airplay_provider.protocol.alac_encoder import AlacEncoder, encode_escape, encoded_escape_bytes
from airplay_provider.protocol.ap2_buffered import (
    SSRC_ALAC_44100_16_2,
    SSRC_ALAC_48000_24_2,
    buffered_header,
    buffered_ssrc,
    format_possible,
)
from airplay_provider.protocol.backlog import Backlog, SentPacket
from airplay_provider.protocol.pcm_format import CD, HIRES, PcmFormat
from airplay_provider.protocol.schedule import Timeline
from airplay_provider.protocol.streamer_status import (
    CODEC_ALAC,
    Started,
    format_status,
    parse_status,
)
from airplay_provider.protocol.timing import FRAMES_PER_PACKET, ntp_add_ns, ntp_diff_ns
from airplay_provider.streamer.airplay2_options import parse_options
from airplay_provider.streamer.pacer import PREROLL_FRAMES, InputDone, Pacer, Phase, Send, Wait
from airplay_provider.streamer.pcm_input import PcmInput
from airplay_provider.streamer.raop_options import UsageError
from tests.receivers.alac_decoder import AlacConfig, decode_alac

BASE = ["--name", "K", "--hostname", "k.local", "--address", "10.0.0.5", "--port", "7000"]
BASE += ["--txt", '"deviceid=AA:BB"', "--pipe", "-"]
T0 = 0xE000_0000_0000_0000


# ---- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], CD),
        (["--bits", "24", "--rate", "48000"], HIRES),
        (["--bits", "24", "--rate", "48000", "--stream-type", "buffered"], HIRES),
        (["--bits", "16", "--rate", "44100", "--stream-type", "realtime"], CD),
    ],
)
def test_bits_and_rate_reach_the_stream(extra: list[str], expected: PcmFormat) -> None:
    assert parse_options([*BASE, *extra]).common.pcm == expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bits", "16", "--rate", "48000"], "not an AirPlay 2 audio format"),
        (["--bits", "24", "--rate", "44100"], "not an AirPlay 2 audio format"),
        (["--bits", "24", "--rate", "48000", "--stream-type", "realtime"], "needs a buffered"),
        (["--bits", "32"], "invalid choice"),
        (["--rate", "96000"], "invalid choice"),
    ],
)
def test_formats_no_receiver_plays_are_refused(extra: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_options([*BASE, *extra])


def test_realtime_carries_cd_only_and_buffered_hires_too() -> None:
    assert format_possible(CD, "realtime")
    assert format_possible(CD, "buffered")
    assert format_possible(HIRES, "buffered")
    assert not format_possible(HIRES, "realtime")
    assert not format_possible(PcmFormat(16, 48000), "buffered")


# ---- SETUP and packets --------------------------------------------------------------------------


def _stream_of(body: bytes) -> dict[str, object]:
    streams = plistlib.loads(body)["streams"]
    assert len(streams) == 1
    stream: dict[str, object] = streams[0]
    return stream


def test_hires_buffered_setup_names_alac_48000_24() -> None:
    stream = _stream_of(
        ap2.setup_stream(
            shk=bytes(32),
            control_port=0,
            connection_id=1,
            stream_type=ap2.STREAM_TYPE_BUFFERED,
            pcm=HIRES,
        )
    )
    assert stream["audioFormat"] == 0x200000 == 1 << 21
    assert (stream["sr"], stream["spf"], stream["ct"], stream["type"]) == (48000, 352, 2, 103)
    assert "latencyMin" not in stream
    default = _stream_of(ap2.setup_stream(shk=bytes(32), control_port=5, connection_id=1))
    assert (default["audioFormat"], default["sr"]) == (0x40000, 44100)


def test_buffered_packets_name_their_format_in_the_ssrc() -> None:
    assert buffered_ssrc(CD) == SSRC_ALAC_44100_16_2 == 0xFACE
    assert buffered_ssrc(HIRES) == SSRC_ALAC_48000_24_2 == 0x15000000
    assert buffered_header(seq=1, timestamp=2, ssrc=buffered_ssrc(HIRES))[8:] == b"\x15\0\0\0"
    with pytest.raises(ValueError, match="no buffered ALAC"):
        buffered_ssrc(PcmFormat(24, 44100))


def _s24(rng: random.Random, frames: int) -> bytes:
    return rng.randbytes(frames * 6)


def test_24_bit_escape_frames_decode_exactly() -> None:
    rng = random.Random(3)
    pcm = _s24(rng, FRAMES_PER_PACKET)
    frame = encode_escape(pcm, 24)
    assert len(frame) == encoded_escape_bytes(24) == 2116
    assert decode_alac(frame, AlacConfig(bit_depth=24)) == pcm
    assert decode_alac(encode_escape(pcm[:1408], 16)) == pcm[:1408]


def test_24_bit_compressed_frames_decode_exactly() -> None:
    encoder = AlacEncoder(bits=24)
    rng = random.Random(4)
    ramp = b"".join(
        (i * 3000 + rng.randrange(256)).to_bytes(3, "little", signed=True) for i in range(-352, 352)
    )
    frame = encoder.encode(ramp)
    assert encoder.compressed == 1
    assert len(frame) < encoded_escape_bytes(24)
    assert decode_alac(frame, AlacConfig(bit_depth=24)) == ramp


# ---- s24le input framing ------------------------------------------------------------------------


async def _until(source: PcmInput, frames: int) -> None:
    while source.available_samples < frames and not source.eof:
        source.changed.clear()
        await asyncio.wait_for(source.changed.wait(), 2)


async def test_s24_input_keeps_frames_whole_across_torn_reads() -> None:
    read_fd, write_fd = os.pipe()
    source = PcmInput(read_fd, HIRES.bytes_per_frame)
    source.start()
    frames = b"".join(i.to_bytes(3, "little") + (-i).to_bytes(3, "little", signed=True)
                      for i in range(1, 101))  # fmt: skip
    try:
        for piece in (frames[:7], frames[7:11], frames[11:299], frames[299:]):  # torn frames
            os.write(write_fd, piece)
            await asyncio.sleep(0.01)
        await _until(source, 100)
        assert source.available_samples == 100
        assert source.skip_to(10) == 10
        assert source.take(3) == frames[60:78]
        os.write(write_fd, b"\x01\x02\x03\x04")  # a torn last frame: padded at the end
        os.close(write_fd)
        write_fd = -1
        await _until(source, 10**9)
        assert source.available_samples == 88
        assert source.take(88)[-12:] == frames[-6:] + b"\x01\x02\x03\x04\0\0"
    finally:
        source.close()
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


# ---- pacing at 48 kHz ---------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def ntp(self) -> int:
        return self.now


def test_pacer_at_48k_plays_sample_k_at_start_plus_k_over_48000() -> None:
    clock = _Clock()
    start = ntp_add_ns(T0, 2_000_000_000)
    timeline = Timeline(start_ntp=start, first_rtp=7, latency_frames=48000, rate=48000)
    pacer = Pacer(timeline, clock)
    first_real = pacer.place_start(start)
    assert first_real == 0
    assert ntp_diff_ns(timeline.play_ntp_of(48000 * 3), start) == 3_000_000_000
    sends: list[tuple[int, int]] = []  # (send time, first sample)
    frames = 48000 * 4  # 4 s of input, then the end
    while True:
        action = pacer.next_action(max(0, frames - max(pacer.next_sample, 0)), True)
        if isinstance(action, Send):
            sends.append((clock.now, pacer.next_sample))
            pacer.sent()
        elif isinstance(action, InputDone):
            break
        else:
            assert isinstance(action, Wait)
            clock.now = max(clock.now, action.until_ntp)
    samples = [sample for _, sample in sends]
    assert samples == list(range(-PREROLL_FRAMES, frames, FRAMES_PER_PACKET))
    # every packet left before its play time, and at most the 1 s lead (+ the send window) early
    for sent, sample in sends:
        ahead = ntp_diff_ns(timeline.play_ntp_of(sample), sent)
        assert 0 < ahead <= 1_000_000_000 + 64_000_000 + 1, (sample, ahead)
    # once steady, the packets leave at the 48 kHz packet rate: 4 s of audio in ~4 s
    steady = [t for t, s in sends if s >= 48000]
    span_ns = ntp_diff_ns(steady[-1], steady[0])
    audio_ns = (len(steady) - 1) * FRAMES_PER_PACKET * 10**9 // 48000
    assert abs(span_ns - audio_ns) <= 70_000_000


def test_pacer_builds_a_48k_lead_at_four_times_real_time_at_most() -> None:
    clock = _Clock()
    start = ntp_add_ns(T0, 400_000_000)  # nearer than the 2 s lead: it is built up, paced
    timeline = Timeline(start_ntp=start, first_rtp=7, latency_frames=96000, rate=48000)
    pacer = Pacer(timeline, clock)
    pacer.place_start(start)
    times: list[int] = []
    while ntp_diff_ns(clock.now, T0) < 3_000_000_000:
        action = pacer.next_action(10**9, False)
        if isinstance(action, Send):
            times.append(clock.now)
            pacer.sent()
        else:
            assert isinstance(action, Wait)
            clock.now = action.until_ntp
    packet_ns = FRAMES_PER_PACKET * 10**9 / 48000
    for i in range(len(times)):
        for j in range(i, min(len(times), i + 300)):
            audio = (j - i + 1) * packet_ns
            assert audio <= 0.25e9 + 4 * ntp_diff_ns(times[j], times[i]), (i, j)
    assert pacer.phase is Phase.STEADY  # the 2 s lead was reached within 3 s
    lead_ns = ntp_diff_ns(timeline.play_ntp_of(pacer.next_sample), clock.now)
    assert 1.9e9 < lead_ns <= 2.0e9 + 64e6


# ---- the started line ---------------------------------------------------------------------------


def test_started_names_codec_bits_and_rate_and_old_lines_still_parse() -> None:
    started = Started(
        1, 2, 3, 4, 5, 0, stream_type="buffered", codec=CODEC_ALAC, bits=24, rate=48000
    )
    line = format_status(started)
    assert line.endswith("stream_type=buffered codec=alac bits=24 rate=48000")
    assert parse_status(line) == started
    escape = parse_status(line.replace("codec=alac", "codec=pcm-escape"))
    assert isinstance(escape, Started)
    assert escape.codec == "pcm-escape"
    old = parse_status(
        "[STATUS] started requested_ntp=1 actual_ntp=2 first_sample=3 seq=4 rtptime=5 "
        "skipped_frames=0 stream_type=realtime"
    )
    assert isinstance(old, Started)
    assert (old.codec, old.bits, old.rate) == (None, None, None)


def test_backlog_gives_back_s24_input_from_a_sample_for_the_resume() -> None:
    backlog = Backlog(16, frame_bytes=6)
    packets = [bytes([n]) * (352 * 6) for n in range(3)]
    for n, pcm in enumerate(packets):
        backlog.add(SentPacket(seq=n, first_sample=n * 352, wire=b"", pcm=pcm))
    kept = backlog.pcm_from(400)  # 48 frames into the second packet
    assert kept is not None
    assert kept == (400, packets[1][48 * 6 :] + packets[2])
    assert backlog.pcm_from(3 * 352) is None
