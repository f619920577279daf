"""RAOP RTP packets: byte-exact vectors written out by hand from docs/protocol.md A.11-A.13."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.protocol.rtp import (
    ResendRequest,
    RtpError,
    SyncPacket,
    TimingReply,
    TimingRequest,
    audio_packet,
    parse_audio_header,
    parse_resend_reply,
    parse_resend_request,
    parse_sync_packet,
    parse_timing_reply,
    parse_timing_request,
    resend_reply,
    resend_request,
    sync_packet,
    timing_reply,
    timing_request,
)


def test_audio_packet_exact_bytes() -> None:
    packet = audio_packet(
        seq=0x1234, timestamp=0xDEADBEEF, ssrc=0x01020304, payload=b"\xaa\xbb\xcc"
    )
    assert packet == bytes.fromhex("80 60 1234 DEADBEEF 01020304 AABBCC")


def test_audio_packet_marker_and_wrap() -> None:
    packet = audio_packet(seq=0x10001, timestamp=2**32 + 352, ssrc=7, payload=b"", marker=True)
    assert packet == bytes.fromhex("80 E0 0001 00000160 00000007")


def test_parse_audio_header() -> None:
    packet = bytes.fromhex("80 E0 FFFF 00000160 CAFEBABE 00")
    assert parse_audio_header(packet) == (0xFFFF, 352, 0xCAFEBABE, True)
    assert parse_audio_header(bytes.fromhex("80 60 0002 00000000 00000001")) == (2, 0, 1, False)


@pytest.mark.parametrize(
    "packet",
    [
        b"",
        bytes.fromhex("80 60 0001 00000000 000000"),  # 11 bytes
        bytes.fromhex("90 60 0001 00000000 00000000"),  # extension bit
        bytes.fromhex("80 61 0001 00000000 00000000"),  # wrong PT
        bytes.fromhex("80 D4 0007 00000000 00000000"),  # sync, not audio
    ],
)
def test_parse_audio_header_rejects(packet: bytes) -> None:
    with pytest.raises(RtpError):
        parse_audio_header(packet)


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.booleans(),
    st.binary(max_size=64),
)
def test_audio_round_trip(seq: int, ts: int, ssrc: int, marker: bool, payload: bytes) -> None:
    packet = audio_packet(seq=seq, timestamp=ts, ssrc=ssrc, payload=payload, marker=marker)
    assert parse_audio_header(packet) == (seq, ts, ssrc, marker)
    assert packet[12:] == payload


def test_sync_packet_first_exact_bytes() -> None:
    packet = sync_packet(
        first=True, rtp_latency=0x00010000, ntp=0x83AA7E80_80000000, rtp_now=0x00011B39
    )
    assert packet == bytes.fromhex("90 D4 0007 00010000 83AA7E80 80000000 00011B39")


def test_sync_packet_later_wraps_values() -> None:
    packet = sync_packet(first=False, rtp_latency=-1, ntp=2**64 + 1, rtp_now=2**32 + 2)
    assert packet == bytes.fromhex("80 D4 0007 FFFFFFFF 00000000 00000001 00000002")


def test_parse_sync_packet() -> None:
    data = bytes.fromhex("90 D4 0007 00000010 00000001 00000002 00000020")
    assert parse_sync_packet(data) == SyncPacket(
        first=True, rtp_latency=0x10, ntp=(1 << 32) | 2, rtp_now=0x20, magic=7
    )
    with pytest.raises(RtpError):
        parse_sync_packet(data[:19])
    with pytest.raises(RtpError):
        parse_sync_packet(bytes.fromhex("80 D5") + data[2:])


def test_parse_timing_request_and_reply_exact_bytes() -> None:
    request_bytes = bytes.fromhex(
        "80 D2 0007 0000000000000000000000000000000000000000E93C7F00 40000000"
    )
    request = parse_timing_request(request_bytes)
    assert request == TimingRequest(seq_bytes=b"\x00\x07", transmit_ntp=0xE93C7F00_40000000)
    reply = timing_reply(request, receive_ntp=0x83AA7E81_00000001, transmit_ntp=0x83AA7E81_00000002)
    assert reply == bytes.fromhex(
        "80 D3 0007 00000000E93C7F00 4000000083AA7E81 0000000183AA7E81 00000002"
    )


def test_timing_reply_copies_request_seq_bytes() -> None:
    request = TimingRequest(seq_bytes=b"\xab\xcd", transmit_ntp=0)
    reply = timing_reply(request, receive_ntp=1, transmit_ntp=2)
    assert reply[:4] == b"\x80\xd3\xab\xcd"
    with pytest.raises(RtpError):
        timing_reply(
            TimingRequest(seq_bytes=b"\x00", transmit_ntp=0), receive_ntp=0, transmit_ntp=0
        )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(32),
        bytes.fromhex("80 D2") + bytes(29),  # 31 bytes
        bytes.fromhex("80 D2") + bytes(31),  # 33 bytes
        bytes.fromhex("80 D3") + bytes(30),  # a reply, not a request
        bytes.fromhex("90 D2") + bytes(30),
    ],
)
def test_parse_timing_request_rejects(data: bytes) -> None:
    with pytest.raises(RtpError):
        parse_timing_request(data)


def test_emulator_timing_helpers() -> None:
    request = timing_request(transmit_ntp=0x0102030405060708)
    assert request == bytes.fromhex("80 D2 0007 00000000") + bytes(16) + bytes.fromhex(
        "0102030405060708"
    )
    reply = timing_reply(parse_timing_request(request), receive_ntp=5, transmit_ntp=6)
    assert parse_timing_reply(reply) == TimingReply(
        seq_bytes=b"\x00\x07", origin_ntp=0x0102030405060708, receive_ntp=5, transmit_ntp=6
    )
    with pytest.raises(RtpError):
        parse_timing_reply(request)


def test_parse_resend_request() -> None:
    assert parse_resend_request(bytes.fromhex("80 D5 0001 FFFE 0003")) == ResendRequest(
        first_seq=0xFFFE, count=3
    )
    assert parse_resend_request(bytes.fromhex("90 D5 0001 0010 0001")) == ResendRequest(
        first_seq=0x10, count=1
    )


@pytest.mark.parametrize(
    "data",
    [
        bytes.fromhex("80 D5 0001 0010"),
        bytes.fromhex("80 D5 0001 0010 0001 00"),
        bytes.fromhex("80 D6 0001 0010 0001"),
        bytes.fromhex("A0 D5 0001 0010 0001"),
    ],
)
def test_parse_resend_request_rejects(data: bytes) -> None:
    with pytest.raises(RtpError):
        parse_resend_request(data)


def test_resend_request_encoder() -> None:
    assert resend_request(first_seq=0x1234, count=2) == bytes.fromhex("80 D5 0001 1234 0002")


def test_resend_reply_exact_bytes() -> None:
    original = bytes.fromhex("80 60 1234 DEADBEEF 01020304 AABBCC")
    reply = resend_reply(original)
    assert reply == bytes.fromhex("80 D6 0001 80 60 1234 DEADBEEF 01020304 AABBCC")
    assert parse_resend_reply(reply) == original
    with pytest.raises(RtpError):
        resend_reply(original[:11])
    with pytest.raises(RtpError):
        parse_resend_reply(bytes.fromhex("80 D5 0001") + original)
    with pytest.raises(RtpError):
        parse_resend_reply(reply[:15])


@given(st.binary(max_size=40))
def test_parsers_raise_only_rtp_error(data: bytes) -> None:
    for parse in (
        parse_audio_header,
        parse_sync_packet,
        parse_timing_request,
        parse_timing_reply,
        parse_resend_request,
        parse_resend_reply,
    ):
        with contextlib.suppress(RtpError):
            parse(data)
