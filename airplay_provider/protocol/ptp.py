"""gPTP (IEEE 802.1AS flavour of IEEE 1588v2) messages for an AirPlay 2 grandmaster, sans-I/O.

Only what a unicast grandmaster needs (docs/protocol.md B.16): Sync, Follow_Up (with the
802.1AS and Apple TLVs), Announce, Delay_Req in, Delay_Resp out. Timestamps are nanoseconds on
the grandmaster timeline; on the wire they are 48-bit seconds + 32-bit nanoseconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from enum import IntEnum

from airplay_provider.protocol.errors import AirplayError

EVENT_PORT = 319
GENERAL_PORT = 320
TRANSPORT_SPECIFIC = 0x10  # gPTP: majorSdoId 1; receivers ignore plain 1588 messages
PTP_VERSION = 2
OUR_PORT_NUMBER = 0x8005

FLAG_TWO_STEP = 0x0200
FLAG_UNICAST = 0x0400
FLAG_TIMESCALE = 0x0008
FLAGS_SYNC = FLAG_UNICAST | FLAG_TWO_STEP | FLAG_TIMESCALE  # 0x0608 as iOS sends
FLAGS_GENERAL = FLAG_UNICAST | FLAG_TIMESCALE  # 0x0408 on Follow_Up / Announce

LOG_INTERVAL_SYNC = -3  # 125 ms
LOG_INTERVAL_ANNOUNCE = 0  # 1 s

_HEADER = struct.Struct(">BBHBBHq4sQHHBb")  # 34 bytes
_TIMESTAMP = struct.Struct(">HIL")  # 48-bit seconds (high 16 + low 32), nanoseconds
_PORT_ID = struct.Struct(">QH")
_TLV_HEADER = struct.Struct(">HH")
_ANNOUNCE_BODY = struct.Struct(">hBBBBHBQHB")
TLV_ORGANIZATION_EXTENSION = 0x0003
TLV_PATH_TRACE = 0x0008
HEADER_BYTES = _HEADER.size
NS_PER_S = 1_000_000_000


class MessageType(IntEnum):
    """PTP messageType values (low nibble of byte 0)."""

    SYNC = 0x0
    DELAY_REQ = 0x1
    FOLLOW_UP = 0x8
    DELAY_RESP = 0x9
    ANNOUNCE = 0xB
    SIGNALING = 0xC


_CONTROL = {
    MessageType.SYNC: 0,
    MessageType.DELAY_REQ: 1,
    MessageType.FOLLOW_UP: 2,
    MessageType.DELAY_RESP: 3,
}


class PtpError(AirplayError, ValueError):
    """Bytes that are not a PTP message we understand."""


@dataclass(frozen=True)
class PortIdentity:
    """clockIdentity (64 bits) + portNumber."""

    clock_id: int
    port: int = OUR_PORT_NUMBER


@dataclass(frozen=True)
class GrandmasterDataset:
    """Announce fields; the defaults are the iOS values, which out-rank speakers (B.16)."""

    priority1: int = 128
    clock_class: int = 6
    clock_accuracy: int = 0x21
    offset_scaled_log_variance: int = 0x436A
    priority2: int = 128
    time_source: int = 0x20  # GPS
    current_utc_offset: int = 37


@dataclass(frozen=True)
class PtpMessage:
    """One decoded message; `timestamp_ns` is the origin/receive timestamp of its body."""

    message_type: MessageType
    sequence_id: int
    source: PortIdentity
    flags: int
    log_interval: int
    correction_ns: int
    timestamp_ns: int | None = None
    requesting: PortIdentity | None = None
    grandmaster_id: int | None = None
    priority1: int | None = None


def encode_timestamp(ns: int) -> bytes:
    """10-byte PTP timestamp of a non-negative nanosecond count."""
    if ns < 0:
        raise ValueError("PTP timestamps are non-negative")
    seconds, nanos = divmod(ns, NS_PER_S)
    return _TIMESTAMP.pack((seconds >> 32) & 0xFFFF, seconds & 0xFFFFFFFF, nanos)


def decode_timestamp(data: bytes) -> int:
    """Nanoseconds from a 10-byte PTP timestamp."""
    if len(data) < _TIMESTAMP.size:
        raise PtpError(f"timestamp needs {_TIMESTAMP.size} bytes, got {len(data)}")
    high, low, nanos = _TIMESTAMP.unpack(data[: _TIMESTAMP.size])
    high, low, nanos = int(high), int(low), int(nanos)
    if nanos >= NS_PER_S:
        raise PtpError(f"timestamp nanoseconds out of range: {nanos}")
    return ((high << 32) | low) * NS_PER_S + nanos


def _header(
    kind: MessageType, length: int, source: PortIdentity, sequence_id: int, *, flags: int, log: int
) -> bytes:
    return _HEADER.pack(
        TRANSPORT_SPECIFIC | kind,
        PTP_VERSION,
        length,
        0,  # domain
        0,
        flags,
        0,  # correction
        b"\0\0\0\0",
        source.clock_id,
        source.port,
        sequence_id & 0xFFFF,
        _CONTROL.get(kind, 5),
        log,
    )


def encode_sync(source: PortIdentity, sequence_id: int, origin_ns: int = 0) -> bytes:
    """Two-step Sync (44 bytes); the precise time follows in the Follow_Up."""
    body = encode_timestamp(origin_ns)
    return _header(MessageType.SYNC, 44, source, sequence_id, flags=FLAGS_SYNC, log=-3) + body


def _organization_tlv(org: bytes, subtype: int, value: bytes) -> bytes:
    payload = org + subtype.to_bytes(3, "big") + value
    return _TLV_HEADER.pack(TLV_ORGANIZATION_EXTENSION, len(payload)) + payload


def encode_follow_up(source: PortIdentity, sequence_id: int, precise_origin_ns: int) -> bytes:
    """Follow_Up (96 bytes): precise Sync departure time + 802.1AS and Apple TLVs."""
    gptp_info = _organization_tlv(b"\x00\x80\xc2", 1, bytes(22))  # zero rate/phase changes
    apple = _organization_tlv(b"\x00\x0d\x93", 4, source.clock_id.to_bytes(8, "big") + bytes(2))
    body = encode_timestamp(precise_origin_ns) + gptp_info + apple
    header = _header(
        MessageType.FOLLOW_UP,
        HEADER_BYTES + len(body),
        source,
        sequence_id,
        flags=FLAGS_GENERAL,
        log=LOG_INTERVAL_SYNC,
    )
    return header + body


def encode_announce(
    source: PortIdentity,
    sequence_id: int,
    dataset: GrandmasterDataset | None = None,
    origin_ns: int = 0,
) -> bytes:
    """Announce (76 bytes) naming our clock as grandmaster, with a path-trace TLV."""
    ds = dataset or GrandmasterDataset()
    body = encode_timestamp(origin_ns) + _ANNOUNCE_BODY.pack(
        ds.current_utc_offset,
        0,
        ds.priority1,
        ds.clock_class,
        ds.clock_accuracy,
        ds.offset_scaled_log_variance,
        ds.priority2,
        source.clock_id,
        0,  # stepsRemoved
        ds.time_source,
    )
    body += _TLV_HEADER.pack(TLV_PATH_TRACE, 8) + source.clock_id.to_bytes(8, "big")
    header = _header(
        MessageType.ANNOUNCE,
        HEADER_BYTES + len(body),
        source,
        sequence_id,
        flags=FLAGS_GENERAL,
        log=LOG_INTERVAL_ANNOUNCE,
    )
    return header + body


def encode_delay_req(source: PortIdentity, sequence_id: int, origin_ns: int = 0) -> bytes:
    """Delay_Req (44 bytes), as a slave sends it."""
    body = encode_timestamp(origin_ns)
    return (
        _header(MessageType.DELAY_REQ, 44, source, sequence_id, flags=FLAG_UNICAST, log=0x7F) + body
    )


def encode_delay_resp(source: PortIdentity, request: PtpMessage, receive_ns: int) -> bytes:
    """Delay_Resp (54 bytes) answering `request` with its arrival time."""
    body = encode_timestamp(receive_ns) + _PORT_ID.pack(
        request.source.clock_id, request.source.port
    )
    header = _header(
        MessageType.DELAY_RESP,
        54,
        source,
        request.sequence_id,
        flags=FLAGS_GENERAL,
        log=LOG_INTERVAL_SYNC,
    )
    return header + body


def decode(data: bytes) -> PtpMessage:
    """Decode the header and the body fields we use; PtpError on anything malformed."""
    if len(data) < HEADER_BYTES:
        raise PtpError(f"PTP message too short: {len(data)} bytes")
    (first, version, length, _domain, _minor, flags, correction, _spec, clock, port, seq, _ctl,
     log_interval) = _HEADER.unpack_from(data)  # fmt: skip
    if version & 0x0F != PTP_VERSION:
        raise PtpError(f"not PTP version 2: {version & 0x0F}")
    if length > len(data) or length < HEADER_BYTES:
        raise PtpError(f"bad messageLength {length} for {len(data)} bytes")
    try:
        kind = MessageType(first & 0x0F)
    except ValueError as exc:
        raise PtpError(f"unsupported messageType {first & 0x0F:#x}") from exc
    body = data[HEADER_BYTES:length]
    message = PtpMessage(
        kind, seq, PortIdentity(clock, port), flags, log_interval, correction >> 16
    )
    needed = {MessageType.DELAY_RESP: 20, MessageType.ANNOUNCE: 30, MessageType.SIGNALING: 10}
    if len(body) < needed.get(kind, 10):
        raise PtpError(f"{kind.name} body too short: {len(body)} bytes")
    if kind is MessageType.SIGNALING:
        return message
    stamp = decode_timestamp(body)
    if kind is MessageType.DELAY_RESP:
        requesting = PortIdentity(*_PORT_ID.unpack_from(body, 10))
        return replace(message, timestamp_ns=stamp, requesting=requesting)
    if kind is MessageType.ANNOUNCE:
        fields = _ANNOUNCE_BODY.unpack_from(body, 10)
        return replace(message, timestamp_ns=stamp, grandmaster_id=fields[7], priority1=fields[2])
    return replace(message, timestamp_ns=stamp)
