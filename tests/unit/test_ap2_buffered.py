"""Buffered AirPlay 2 audio (type 103): the sans-I/O sender side and the emulator's strictness."""

from __future__ import annotations

import os
import plistlib
from typing import Any

import pytest

from airplay_provider.protocol import ap2
from airplay_provider.protocol.alac import encode_uncompressed
from airplay_provider.protocol.alac_encoder import AlacEncoder, encode_escape
from airplay_provider.protocol.ap2_buffered import (
    SEQ_MASK,
    SSRC_ALAC_44100_16_2,
    buffered_header,
    choose_stream_type,
    flush_buffered,
    frame_packet,
    network_time_of_ns,
    network_time_of_ntp,
    pause_rate,
    set_rate_anchor_time,
    unwrap_seq,
)
from airplay_provider.protocol.timing import ntp_from_unix_ns
from tests.receivers.ap2_buffered import BufferedStream
from tests.receivers.ap2_emulator_core import AccessoryConnection, AccessoryDevice, EmuRequest
from tests.receivers.ap2_segment import Segment
from tests.receivers.ap2_stream import Ap2StreamSession

BIT40 = 1 << 40


@pytest.mark.parametrize(
    ("choice", "features", "model", "expected"),
    [
        ("auto", BIT40, "Speaker1,1", "buffered"),
        ("auto", BIT40, "", "buffered"),
        ("auto", 0, "Speaker1,1", "realtime"),
        ("auto", BIT40, "AppleTV6,2", "realtime"),  # takes 103 but never syncs its clock
        ("auto", BIT40, "AudioAccessory5,1", "realtime"),
        ("auto", BIT40, "ShairportSync", "buffered"),  # shairport-sync 5
        ("auto", BIT40, "Shairport Sync", "realtime"),  # 4: decodes buffered audio as AAC
        ("buffered", 0, "AppleTV6,2", "buffered"),
        ("realtime", BIT40, "Speaker1,1", "realtime"),
    ],
)
def test_stream_type_choice(choice: Any, features: int, model: str, expected: str) -> None:
    assert choose_stream_type(choice, features=features, model=model) == expected


def test_header_carries_marker_and_a_23_bit_sequence() -> None:
    header = buffered_header(seq=0x123456, timestamp=0xDEADBEEF, ssrc=7)
    assert header == bytes.fromhex("80923456deadbeef00000007")
    assert int.from_bytes(header[:4], "big") & SEQ_MASK == 0x123456
    assert buffered_header(seq=SEQ_MASK + 1, timestamp=0, ssrc=0)[1:4] == b"\x80\x00\x00"


def test_header_ssrc_names_alac_44100_16_2_by_default() -> None:
    # shairport-sync 5 picks decoder and rate from the SSRC: 0 (what we sent) plays nothing
    header = buffered_header(seq=1, timestamp=2)
    assert header[8:12] == bytes.fromhex("0000face")
    assert int.from_bytes(header[8:12], "big") == SSRC_ALAC_44100_16_2


@pytest.mark.parametrize(
    ("last", "seq16", "expected"),
    [(5, 6, 6), (0xFFFF, 0, 0x10000), (0x12FFFF, 0x0001, 0x130001), (SEQ_MASK, 0, 0)],
)
def test_unwrap_seq_follows_the_16_bit_counter(last: int, seq16: int, expected: int) -> None:
    assert unwrap_seq(last, seq16) == expected


def test_frame_length_counts_itself() -> None:
    assert frame_packet(b"abc") == b"\x00\x05abc"
    with pytest.raises(ValueError, match="does not fit"):
        frame_packet(bytes(0xFFFE))


def test_network_time_forms() -> None:
    assert network_time_of_ns(1_500_000_000) == (1, 1 << 63)
    assert network_time_of_ntp((7 << 32) | (1 << 31)) == (7, 1 << 63)


def test_anchor_pause_and_flush_bodies() -> None:
    body = plistlib.loads(
        set_rate_anchor_time(rtp_time=-1, network_time=(5, (1 << 64) - 1), clock_id=1 << 63)
    )
    assert body == {
        "networkTimeSecs": 5,
        "networkTimeFrac": -1,
        "networkTimeTimelineID": -(1 << 63),
        "rtpTime": 0xFFFFFFFF,
        "rate": 1,
    }
    assert plistlib.loads(pause_rate()) == {"rate": 0}
    flush = plistlib.loads(flush_buffered(until_seq=SEQ_MASK + 3, until_ts=1 << 32))
    assert flush == {"flushUntilSeq": 2, "flushUntilTS": 0}


def test_type_103_setup_has_no_latency_range_nor_control_port() -> None:
    body = plistlib.loads(
        ap2.setup_stream(
            shk=bytes(32), control_port=0, connection_id=9, stream_type=ap2.STREAM_TYPE_BUFFERED
        )
    )
    stream = body["streams"][0]
    assert stream["type"] == 103
    assert not {"latencyMin", "latencyMax", "controlPort"} & stream.keys()
    realtime = plistlib.loads(ap2.setup_stream(shk=bytes(32), control_port=6001, connection_id=9))
    assert realtime["streams"][0]["latencyMax"] == 88200
    with pytest.raises(ValueError, match="unsupported stream type"):
        ap2.setup_stream(shk=bytes(32), control_port=1, connection_id=1, stream_type=130)


def test_buffered_reply_needs_no_control_port() -> None:
    body = plistlib.dumps({"streams": [{"type": 103, "dataPort": 7100, "audioBufferSize": 4096}]})
    reply = ap2.parse_setup_stream_reply(body, buffered=True)
    assert (reply.data_port, reply.control_port, reply.audio_buffer_size) == (7100, 0, 4096)
    with pytest.raises(ap2.Ap2Error, match="controlPort"):
        ap2.parse_setup_stream_reply(body)


# ---- the emulator is strict ------------------------------------------------------------------


def _request(method: str, body: Any) -> EmuRequest:
    return EmuRequest(
        method,
        "rtsp://127.0.0.1/1",
        "RTSP/1.0",
        {"content-type": "application/x-apple-binary-plist"},
        plistlib.dumps(body, fmt=plistlib.FMT_BINARY),
    )


def _ntp_session(*, samples: int) -> Ap2StreamSession:
    session = Ap2StreamSession(
        event_port=1, data_port=2, control_port=3, addresses=["127.0.0.1"], buffered_port=4
    )
    conn = AccessoryConnection(AccessoryDevice())
    setup = {"sessionUUID": "X", "timingProtocol": "NTP", "timingPort": 5}
    assert session.handle(conn, _request("SETUP", setup)) is not None
    session.timing_samples.extend([(1, 0)] * samples)
    return session


def _stream(shk: bytes, **extra: object) -> dict[str, object]:
    stream = {"type": 103, "ct": 2, "audioFormat": 0x40000, "spf": 352, "sr": 44100, "shk": shk}
    return {"streams": [{**stream, **extra}]}


def test_emulator_refuses_a_103_setup_with_a_latency_range() -> None:
    session = _ntp_session(samples=3)
    conn = AccessoryConnection(AccessoryDevice())
    reply = session.handle(conn, _request("SETUP", _stream(bytes(32), latencyMax=88200)))
    assert reply is not None
    assert reply.status == 400
    assert session.errors == ["type 103 SETUP carries latencyMin/latencyMax"]


def _anchor_body(rtp: int) -> dict[str, int]:
    return {
        "networkTimeSecs": 100,
        "networkTimeFrac": 0,
        "networkTimeTimelineID": 0,
        "rtpTime": rtp,
        "rate": 1,
    }


def _buffered_session(samples: int) -> tuple[Ap2StreamSession, BufferedStream, bytes]:
    session = _ntp_session(samples=samples)
    conn = AccessoryConnection(AccessoryDevice())
    shk = os.urandom(32)
    reply = session.handle(conn, _request("SETUP", _stream(shk)))
    assert reply is not None
    assert reply.status == 200
    assert session.handle(conn, _request("RECORD", {})) is not None
    assert session.buffered is not None
    return session, session.buffered, shk


def test_emulator_refuses_the_anchor_until_it_has_measured_our_clock() -> None:
    session, buffered, _ = _buffered_session(samples=2)
    conn = AccessoryConnection(AccessoryDevice())
    refused = session.handle(conn, _request("SETRATEANCHORTIME", _anchor_body(0)))
    assert refused is not None
    assert refused.status == 400
    assert buffered.anchor_refusals == 1
    session.timing_samples.append((1, 0))
    taken = session.handle(conn, _request("SETRATEANCHORTIME", _anchor_body(0)))
    assert taken is not None
    assert taken.status == 200
    assert buffered.rates == [1]
    assert session.errors == []


def _packet(
    shk: bytes, *, seq: int, rtp: int, nonce: int, pcm: bytes, ssrc: int = SSRC_ALAC_44100_16_2
) -> bytes:
    sealer = ap2.AudioSealer(shk)
    sealer.counter = nonce
    header = buffered_header(seq=seq, timestamp=rtp, ssrc=ssrc)
    return frame_packet(sealer.seal(header, encode_uncompressed(pcm)))


def test_emulator_plays_packets_at_the_anchor_and_rejects_a_wrong_nonce() -> None:
    session, buffered, shk = _buffered_session(samples=3)
    pcm = os.urandom(352 * 4)
    stream = _packet(shk, seq=10, rtp=1000, nonce=0, pcm=pcm)
    stream += _packet(shk, seq=11, rtp=1352, nonce=1, pcm=pcm)
    # delivered in odd pieces, as TCP may
    session.buffered_received(stream[:5], 0)
    session.buffered_received(stream[5:], 0)
    session.buffered_received(_packet(shk, seq=12, rtp=1704, nonce=7, pcm=pcm), 0)
    assert session.errors == ["buffered seq 12: nonce 0700000000000000, expected 0200000000000000"]
    segment: Segment = session.segments[0]
    assert segment.pcm() == pcm + pcm  # the third packet was refused
    play_unix_ns = 1_700_000_000 * 10**9
    ntp = ntp_from_unix_ns(play_unix_ns)
    body = {**_anchor_body(1000), "networkTimeSecs": ntp >> 32}
    body["networkTimeFrac"] = (ntp & 0xFFFFFFFF) << 32
    conn = AccessoryConnection(AccessoryDevice())
    assert session.handle(conn, _request("SETRATEANCHORTIME", body)) is not None
    assert abs(segment.scheduled_ns(1352) - (play_unix_ns + 352 * 10**9 // 44100)) <= 1
    assert buffered.late_frames(segment) == 0  # arrived at Unix time 0


@pytest.mark.parametrize("ssrc", [0, 0x12345678, 0x16000000])
def test_emulator_plays_nothing_behind_an_ssrc_that_is_not_the_streams_encoding(
    ssrc: int,
) -> None:
    session, buffered, shk = _buffered_session(samples=3)
    pcm = os.urandom(352 * 4)
    session.buffered_received(_packet(shk, seq=10, rtp=1000, nonce=0, pcm=pcm, ssrc=ssrc), 0)
    assert len(session.errors) == 1
    assert f"SSRC 0x{ssrc:08X}" in session.errors[0]
    assert "nothing plays" in session.errors[0]
    assert buffered.packets == 0
    segment: Segment = session.segments[0]
    assert segment.pcm() == b""
    # the right SSRC on the next packet (next nonce) plays
    session.buffered_received(_packet(shk, seq=11, rtp=1352, nonce=1, pcm=pcm), 0)
    assert len(session.errors) == 1
    assert segment.pcm() == pcm


# ---- hi-res: ALAC/48000/24/2 ---------------------------------------------------------------------


def _hires_session() -> tuple[Ap2StreamSession, BufferedStream, bytes]:
    session = _ntp_session(samples=3)
    conn = AccessoryConnection(AccessoryDevice())
    shk = os.urandom(32)
    setup = _stream(shk, audioFormat=0x200000, sr=48000)
    reply = session.handle(conn, _request("SETUP", setup))
    assert reply is not None
    assert reply.status == 200
    assert session.handle(conn, _request("RECORD", {})) is not None
    assert session.buffered is not None
    return session, session.buffered, shk


def _packet24(shk: bytes, *, seq: int, rtp: int, nonce: int, frame: bytes, ssrc: int) -> bytes:
    sealer = ap2.AudioSealer(shk)
    sealer.counter = nonce
    return frame_packet(sealer.seal(buffered_header(seq=seq, timestamp=rtp, ssrc=ssrc), frame))


def test_emulator_plays_alac_48000_24_escape_and_compressed_as_s24le_at_48k() -> None:
    session, buffered, shk = _hires_session()
    escape_pcm = os.urandom(352 * 6)
    ramp = b"".join((i * 5000 + 77).to_bytes(3, "little", signed=True) for i in range(-352, 352))
    encoder = AlacEncoder(bits=24)
    compressed = encoder.encode(ramp)
    assert encoder.compressed == 1
    stream = _packet24(
        shk, seq=1, rtp=500, nonce=0, frame=encode_escape(escape_pcm, 24), ssrc=0x15000000
    )
    stream += _packet24(shk, seq=2, rtp=852, nonce=1, frame=compressed, ssrc=0x15000000)
    session.buffered_received(stream, 0)
    assert session.errors == []
    segment: Segment = session.segments[0]
    assert (segment.rate, segment.frame_bytes) == (48000, 6)
    assert segment.pcm() == escape_pcm + ramp
    conn = AccessoryConnection(AccessoryDevice())
    assert session.handle(conn, _request("SETRATEANCHORTIME", _anchor_body(500))) is not None
    first = segment.scheduled_ns(500)
    assert segment.scheduled_ns(500 + 48000) - first == 10**9  # the stream's rate
    assert buffered.played_frames(segment, first + 10**9) == 48000


def test_emulator_refuses_16_bit_packets_on_a_24_bit_stream_and_vice_versa() -> None:
    session, buffered, shk = _hires_session()
    pcm = os.urandom(352 * 4)
    session.buffered_received(_packet(shk, seq=1, rtp=0, nonce=0, pcm=pcm), 0)
    assert session.errors == [
        "buffered seq 1: SSRC 0x0000FACE names ALAC/44100/16/2, the stream is "
        "ALAC/48000/24/2 (0x15000000): nothing plays"
    ]
    assert buffered.packets == 0
    session16, buffered16, shk16 = _buffered_session(samples=3)
    frame = encode_escape(os.urandom(352 * 6), 24)
    session16.buffered_received(
        _packet24(shk16, seq=1, rtp=0, nonce=0, frame=frame, ssrc=0x15000000), 0
    )
    assert len(session16.errors) == 1
    assert "SSRC 0x15000000 names ALAC/48000/24/2" in session16.errors[0]
    assert buffered16.packets == 0


@pytest.mark.parametrize(
    "stream",
    [
        {"type": 103, "audioFormat": 0x200000, "sr": 44100},  # format and rate disagree
        {"type": 103, "audioFormat": 0x40000, "sr": 48000},
        {"type": 103, "audioFormat": 0x80000, "sr": 44100},  # ALAC 44100/24: no SSRC for it
        {"type": 96, "audioFormat": 0x200000, "sr": 48000, "controlPort": 9},  # realtime: 44.1/16
    ],
)
def test_emulator_refuses_setups_the_real_receiver_cannot_play(stream: dict[str, object]) -> None:
    session = _ntp_session(samples=3)
    conn = AccessoryConnection(AccessoryDevice())
    reply = session.handle(conn, _request("SETUP", _stream(bytes(32), **stream)))
    assert reply is not None
    assert reply.status == 400
    assert len(session.errors) == 1
    assert "unsupported" in session.errors[0]
