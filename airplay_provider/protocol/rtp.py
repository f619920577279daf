"""RAOP RTP packets: audio (PT 0x60), sync (0xD4), timing (0xD2/0xD3), resend (0xD5/0xD6).

Encoders for what a sender transmits and decoders for what a receiver sends back, plus the
mirror-image helpers that receiver emulators in the tests need. All fields are big-endian;
sequence numbers wrap at 2**16, RTP timestamps and SSRCs at 2**32, NTP values at 2**64.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from airplay_provider.protocol.errors import AirplayError

RTP_HEADER_BYTES = 12
PAYLOAD_TYPE_AUDIO = 0x60
MARKER_BIT = 0x80
SYNC_PACKET_BYTES = 20
TIMING_PACKET_BYTES = 32
RESEND_REQUEST_BYTES = 8

_VERSION_2 = 0x80
_EXTENSION = 0x10
_TYPE_TIMING_REQUEST = 0xD2
_TYPE_TIMING_REPLY = 0xD3
_TYPE_SYNC = 0xD4
_TYPE_RESEND_REQUEST = 0xD5
_TYPE_RESEND_REPLY = 0xD6
_SYNC_MAGIC = 0x0007

_AUDIO_HEADER = struct.Struct(">BBHII")
_SYNC = struct.Struct(">BBHIQI")
_TIMING = struct.Struct(">BB2s4xQQQ")
_RESEND_REQUEST = struct.Struct(">BBHHH")


class RtpError(AirplayError, ValueError):
    """A packet that is not the expected RAOP RTP packet."""


def audio_packet(
    *, seq: int, timestamp: int, ssrc: int, payload: bytes, marker: bool = False
) -> bytes:
    """One RTP audio packet: 12-byte header (0x80, 0x60 or 0xE0 with marker) + payload.

    ``seq`` is taken modulo 2**16, ``timestamp`` and ``ssrc`` modulo 2**32.
    """
    second = PAYLOAD_TYPE_AUDIO | (MARKER_BIT if marker else 0)
    header = _AUDIO_HEADER.pack(
        _VERSION_2, second, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF
    )
    return header + payload


def parse_audio_header(packet: bytes) -> tuple[int, int, int, bool]:
    """(seq, timestamp, ssrc, marker) of an audio packet; RtpError if it is not one."""
    if len(packet) < RTP_HEADER_BYTES:
        raise RtpError(f"audio packet too short: {len(packet)} bytes")
    first, second, seq, timestamp, ssrc = _AUDIO_HEADER.unpack_from(packet)
    if first != _VERSION_2:
        raise RtpError(f"audio packet: unexpected first byte 0x{first:02x}")
    if second & 0x7F != PAYLOAD_TYPE_AUDIO:
        raise RtpError(f"audio packet: unexpected payload type 0x{second & 0x7F:02x}")
    return seq, timestamp, ssrc, bool(second & MARKER_BIT)


def sync_packet(*, first: bool, rtp_latency: int, ntp: int, rtp_now: int) -> bytes:
    """20-byte sync packet: frame ``rtp_latency`` (minus the receiver's 11025) plays at ``ntp``.

    ``first`` sets the extension bit (0x90) as required after RECORD, FLUSH or a join.
    """
    return _SYNC.pack(
        _VERSION_2 | (_EXTENSION if first else 0),
        _TYPE_SYNC,
        _SYNC_MAGIC,
        rtp_latency & 0xFFFFFFFF,
        ntp & 0xFFFFFFFFFFFFFFFF,
        rtp_now & 0xFFFFFFFF,
    )


@dataclass(frozen=True)
class SyncPacket:
    """A decoded sync packet (what a receiver emulator sees)."""

    first: bool
    rtp_latency: int
    ntp: int
    rtp_now: int
    magic: int


def parse_sync_packet(data: bytes) -> SyncPacket:
    """Decode a 20-byte 0x80/0x90 0xD4 sync packet; RtpError otherwise."""
    if len(data) != SYNC_PACKET_BYTES:
        raise RtpError(f"sync packet must be {SYNC_PACKET_BYTES} bytes, got {len(data)}")
    first, kind, magic, rtp_latency, ntp, rtp_now = _SYNC.unpack(data)
    if first not in (_VERSION_2, _VERSION_2 | _EXTENSION) or kind != _TYPE_SYNC:
        raise RtpError(f"not a sync packet: 0x{first:02x} 0x{kind:02x}")
    return SyncPacket(
        first=bool(first & _EXTENSION),
        rtp_latency=rtp_latency,
        ntp=ntp,
        rtp_now=rtp_now,
        magic=magic,
    )


@dataclass(frozen=True)
class TimingRequest:
    """A receiver's timing request: raw bytes 2..3 and its transmit time (bytes 24..31)."""

    seq_bytes: bytes
    transmit_ntp: int


def parse_timing_request(data: bytes) -> TimingRequest:
    """Decode a 32-byte 0x80 0xD2 timing request; RtpError otherwise."""
    first, kind, seq_bytes, _origin, _receive, transmit = _unpack_timing(data)
    if first != _VERSION_2 or kind != _TYPE_TIMING_REQUEST:
        raise RtpError(f"not a timing request: 0x{first:02x} 0x{kind:02x}")
    return TimingRequest(seq_bytes=seq_bytes, transmit_ntp=transmit)


def timing_reply(request: TimingRequest, *, receive_ntp: int, transmit_ntp: int) -> bytes:
    """32-byte 0x80 0xD3 reply: origin = the request's transmit time, then our two stamps."""
    if len(request.seq_bytes) != 2:
        raise RtpError("timing request seq_bytes must be 2 bytes")
    return _TIMING.pack(
        _VERSION_2,
        _TYPE_TIMING_REPLY,
        request.seq_bytes,
        request.transmit_ntp & 0xFFFFFFFFFFFFFFFF,
        receive_ntp & 0xFFFFFFFFFFFFFFFF,
        transmit_ntp & 0xFFFFFFFFFFFFFFFF,
    )


def timing_request(*, transmit_ntp: int, seq: int = 7) -> bytes:
    """32-byte 0x80 0xD2 request as a receiver sends it (for emulators)."""
    return _TIMING.pack(
        _VERSION_2,
        _TYPE_TIMING_REQUEST,
        (seq & 0xFFFF).to_bytes(2, "big"),
        0,
        0,
        transmit_ntp & 0xFFFFFFFFFFFFFFFF,
    )


@dataclass(frozen=True)
class TimingReply:
    """A decoded timing reply (for emulators): origin, receive and transmit NTP times."""

    seq_bytes: bytes
    origin_ntp: int
    receive_ntp: int
    transmit_ntp: int


def parse_timing_reply(data: bytes) -> TimingReply:
    """Decode a 32-byte 0x80 0xD3 timing reply; RtpError otherwise."""
    first, kind, seq_bytes, origin, receive, transmit = _unpack_timing(data)
    if first != _VERSION_2 or kind != _TYPE_TIMING_REPLY:
        raise RtpError(f"not a timing reply: 0x{first:02x} 0x{kind:02x}")
    return TimingReply(
        seq_bytes=seq_bytes, origin_ntp=origin, receive_ntp=receive, transmit_ntp=transmit
    )


def _unpack_timing(data: bytes) -> tuple[int, int, bytes, int, int, int]:
    if len(data) != TIMING_PACKET_BYTES:
        raise RtpError(f"timing packet must be {TIMING_PACKET_BYTES} bytes, got {len(data)}")
    first, kind, seq_bytes, origin, receive, transmit = _TIMING.unpack(data)
    return first, kind, seq_bytes, origin, receive, transmit


@dataclass(frozen=True)
class ResendRequest:
    """Receiver asks for ``count`` packets starting at sequence number ``first_seq``."""

    first_seq: int
    count: int


def parse_resend_request(data: bytes) -> ResendRequest:
    """Decode an 8-byte 0x80|0x90 0xD5 retransmit request; RtpError otherwise."""
    if len(data) != RESEND_REQUEST_BYTES:
        raise RtpError(f"resend request must be {RESEND_REQUEST_BYTES} bytes, got {len(data)}")
    first, kind, _request_seq, first_seq, count = _RESEND_REQUEST.unpack(data)
    if first not in (_VERSION_2, _VERSION_2 | _EXTENSION) or kind != _TYPE_RESEND_REQUEST:
        raise RtpError(f"not a resend request: 0x{first:02x} 0x{kind:02x}")
    return ResendRequest(first_seq=first_seq, count=count)


def resend_request(*, first_seq: int, count: int, request_seq: int = 1) -> bytes:
    """8-byte 0x80 0xD5 retransmit request as a receiver sends it (for emulators)."""
    return _RESEND_REQUEST.pack(
        _VERSION_2, _TYPE_RESEND_REQUEST, request_seq & 0xFFFF, first_seq & 0xFFFF, count & 0xFFFF
    )


def resend_reply(original_packet: bytes) -> bytes:
    """0x80 0xD6 0x00 0x01 followed by the complete original audio packet."""
    if len(original_packet) < RTP_HEADER_BYTES:
        raise RtpError(f"original packet too short: {len(original_packet)} bytes")
    return bytes((_VERSION_2, _TYPE_RESEND_REPLY, 0x00, 0x01)) + original_packet


def parse_resend_reply(data: bytes) -> bytes:
    """The original audio packet carried in a 0xD6 retransmit reply; RtpError otherwise."""
    if len(data) < 4 + RTP_HEADER_BYTES:
        raise RtpError(f"resend reply too short: {len(data)} bytes")
    if data[0] != _VERSION_2 or data[1] != _TYPE_RESEND_REPLY:
        raise RtpError(f"not a resend reply: 0x{data[0]:02x} 0x{data[1]:02x}")
    return bytes(data[4:])
