"""AirPlay 2 audio, sans-I/O: SETUP/SETPEERS/TEARDOWN plists, audio sealing, 0xD7 sync.

References: docs/protocol.md B.11-B.15 and B.18. Plists are binary (`plistlib`); replies are
read by key because receivers order them freely.
"""

from __future__ import annotations

import plistlib
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.pcm_format import CD, PcmFormat

STREAM_TYPE_REALTIME = 96
STREAM_TYPE_BUFFERED = 103
COMPRESSION_ALAC = 2
# `audioFormat` bits (docs/protocol.md B.13): 18 ALAC/44100/16/2 .. 21 ALAC/48000/24/2
AUDIO_FORMAT_ALAC_44100_16_2 = 0x40000
AUDIO_FORMAT_ALAC_44100_24_2 = 0x80000
AUDIO_FORMAT_ALAC_48000_16_2 = 0x100000
AUDIO_FORMAT_ALAC_48000_24_2 = 0x200000
LATENCY_MIN_FRAMES = 11025
LATENCY_MAX_FRAMES = 88200
PTP_ANCHOR_OFFSET = 11035  # the receiver anchors frame F1 - 11035 at the 0xD7 time (B.15)
PTP_NOTIFIED_LATENCY = 77175  # F2 - F1 in the iOS capture
PTP_SYNC_PACKET_BYTES = 28
AUDIO_KEY_BYTES = 32
AUDIO_TAG_BYTES = 16
AUDIO_NONCE_TAIL_BYTES = 8
PLIST_CONTENT_TYPE = "application/x-apple-binary-plist"

_PTP_SYNC = struct.Struct(">BBHIQIQ")


class Ap2Error(AirplayError, ValueError):
    """A malformed or incomplete AirPlay 2 reply."""


def _plist(value: Any) -> bytes:
    return plistlib.dumps(value, fmt=plistlib.FMT_BINARY, sort_keys=True)


def _load_dict(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = plistlib.loads(body)
    except Exception as exc:  # plistlib raises several unrelated types on garbage
        raise Ap2Error(f"{what}: body is not a plist") from exc
    if not isinstance(value, dict):
        raise Ap2Error(f"{what}: plist is not a dictionary")
    return value


def _port(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise Ap2Error(f"{what} missing or not a port number: {value!r}")
    return value


def _signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


@dataclass(frozen=True)
class SenderIdentity:
    """Who we are in SETUP: ids as receivers expect them (B.11)."""

    device_id: str  # colon MAC-style
    session_uuid: str  # upper-case UUID
    name: str
    model: str = "iPhone14,3"


def setup_session_ntp(sender: SenderIdentity, *, timing_port: int) -> bytes:
    """SETUP #1, NTP timing: the receiver asks our timing port for the time (B.11)."""
    return _plist(
        {
            "deviceID": sender.device_id,
            "macAddress": sender.device_id,
            "sessionUUID": sender.session_uuid,
            "timingProtocol": "NTP",
            "timingPort": timing_port,
            "name": sender.name,
            "model": sender.model,
            "isMultiSelectAirPlay": True,
            "groupContainsGroupLeader": False,
            "senderSupportsRelay": False,
            "statsCollectionEnabled": False,
        }
    )


def timing_peer_info(*, peer_id: str, clock_id: int, addresses: list[str]) -> dict[str, Any]:
    """The `timingPeerInfo` dict naming our PTP clock (ClockID as a signed int64)."""
    return {
        "ID": peer_id,
        "DeviceType": 0,
        "ClockID": _signed64(clock_id),
        "SupportsClockPortMatchingOverride": False,
        "Addresses": list(addresses),
    }


def setup_session_ptp(
    sender: SenderIdentity, *, group_uuid: str, clock_id: int, addresses: list[str]
) -> bytes:
    """SETUP #1, PTP timing: our grandmaster is the session's timing peer (B.11)."""
    peer = timing_peer_info(peer_id=sender.session_uuid, clock_id=clock_id, addresses=addresses)
    return _plist(
        {
            "deviceID": sender.device_id,
            "macAddress": sender.device_id,
            "sessionUUID": sender.session_uuid,
            "groupUUID": group_uuid,
            "groupContainsGroupLeader": False,
            "timingProtocol": "PTP",
            "timingPeerInfo": peer,
            "timingPeerList": [peer],
            "name": sender.name,
            "model": sender.model,
        }
    )


@dataclass(frozen=True)
class SessionReply:
    """What SETUP #1 answered."""

    event_port: int
    timing_port: int | None
    timing_peer_addresses: tuple[str, ...]


def parse_setup_session_reply(body: bytes) -> SessionReply:
    """Read `eventPort` (required), `timingPort` and `timingPeerInfo.Addresses` (optional)."""
    reply = _load_dict(body, "SETUP session reply")
    event_port = _port(reply.get("eventPort"), "eventPort")
    timing = reply.get("timingPort")
    peer = reply.get("timingPeerInfo")
    addresses: tuple[str, ...] = ()
    if isinstance(peer, dict) and isinstance(peer.get("Addresses"), list):
        addresses = tuple(str(item) for item in peer["Addresses"] if isinstance(item, str))
    timing_port = timing if isinstance(timing, int) and 0 < timing < 65536 else None
    return SessionReply(event_port, timing_port, addresses)


def setup_stream(
    *,
    shk: bytes,
    control_port: int,
    connection_id: int,
    latency_min: int = LATENCY_MIN_FRAMES,
    latency_max: int = LATENCY_MAX_FRAMES,
    stream_type: int = STREAM_TYPE_REALTIME,
    pcm: PcmFormat = CD,
) -> bytes:
    """SETUP #2: one ALAC stereo stream of `pcm` (44100/16, or 48000/24) sealed with `shk` (B.13).

    Realtime (96) names our control port and the latency range; buffered (103) has neither:
    no sync or resends, and Sonos adds `latencyMax` as extra delay. `ct` 2 (ALAC) stands for
    compressed and escape frames alike: both are ALAC.
    """
    if len(shk) != AUDIO_KEY_BYTES:
        raise ValueError("shk must be 32 bytes")
    if stream_type not in (STREAM_TYPE_REALTIME, STREAM_TYPE_BUFFERED):
        raise ValueError(f"unsupported stream type {stream_type}")
    audio_format = audio_format_of(pcm)
    stream: dict[str, Any] = {
        "type": stream_type,
        "ct": COMPRESSION_ALAC,
        "audioFormat": audio_format,
        "audioMode": "default",
        "spf": 352,
        "sr": pcm.rate,
        "shk": shk,
        "isMedia": True,
        "supportsDynamicStreamID": False,
        "streamConnectionID": connection_id & 0xFFFFFFFF,
    }
    if stream_type == STREAM_TYPE_REALTIME:
        stream["controlPort"] = control_port
        stream["latencyMin"] = latency_min
        stream["latencyMax"] = latency_max
    return _plist({"streams": [stream]})


def audio_format_of(pcm: PcmFormat) -> int:
    """The `audioFormat` bit of ALAC stereo at `pcm`'s depth and rate."""
    return {
        (16, 44100): AUDIO_FORMAT_ALAC_44100_16_2,
        (24, 44100): AUDIO_FORMAT_ALAC_44100_24_2,
        (16, 48000): AUDIO_FORMAT_ALAC_48000_16_2,
        (24, 48000): AUDIO_FORMAT_ALAC_48000_24_2,
    }[pcm.bits, pcm.rate]


@dataclass(frozen=True)
class StreamReply:
    """What SETUP #2 answered for our stream."""

    data_port: int
    control_port: int
    latency_min: int | None
    latency_max: int | None
    audio_buffer_size: int | None = None


def parse_setup_stream_reply(body: bytes, *, buffered: bool = False) -> StreamReply:
    """Read `dataPort`/`controlPort` of the first stream (by key, never by position).

    A buffered stream needs no `controlPort` (0 when absent) and may state `audioBufferSize`.
    """
    reply = _load_dict(body, "SETUP stream reply")
    streams = reply.get("streams")
    if not isinstance(streams, list) or not streams or not isinstance(streams[0], dict):
        raise Ap2Error("SETUP stream reply has no streams array")
    stream = streams[0]

    def frames(key: str) -> int | None:
        value = stream.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    control = stream.get("controlPort")
    return StreamReply(
        data_port=_port(stream.get("dataPort"), "dataPort"),
        control_port=0 if buffered and control is None else _port(control, "controlPort"),
        latency_min=frames("latencyMin"),
        latency_max=frames("latencyMax"),
        audio_buffer_size=frames("audioBufferSize"),
    )


def setpeers(addresses: list[str]) -> bytes:
    """SETPEERS body: the receiver's address first, then ours (B.12)."""
    return _plist(list(addresses))


def teardown_stream(stream_type: int = STREAM_TYPE_REALTIME) -> bytes:
    """TEARDOWN body closing our stream (sent first)."""
    return _plist({"streams": [{"type": stream_type}]})


def teardown_session() -> bytes:
    """TEARDOWN body closing the whole session (sent last)."""
    return _plist({})


class AudioSealer:
    """ChaCha20-Poly1305 sealing of realtime audio packets (B.14).

    Wire: 12-byte RTP header in clear, ciphertext, 16-byte tag, 8-byte nonce tail. AAD = header
    bytes 4..11. The nonce tail is a 64-bit little-endian packet counter, so no nonce ever
    repeats under one key (a resend re-sends the stored packet unchanged).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != AUDIO_KEY_BYTES:
            raise ValueError("audio key must be 32 bytes")
        self._aead = ChaCha20Poly1305(key)
        self.counter = 0

    def seal(self, header: bytes, payload: bytes) -> bytes:
        """The full packet for `header` (12 bytes) and clear `payload`."""
        if len(header) != 12:
            raise ValueError("RTP header must be 12 bytes")
        tail = self.counter.to_bytes(AUDIO_NONCE_TAIL_BYTES, "little")
        self.counter = (self.counter + 1) & ((1 << 64) - 1)
        sealed = self._aead.encrypt(bytes(4) + tail, payload, header[4:12])
        return header + sealed + tail


def ptp_sync_packet(*, first: bool, rtp_frame: int, ptp_ns: int, clock_id: int) -> bytes:
    """28-byte 0xD7 announce (iOS layout): frame `rtp_frame - 11035` plays at `ptp_ns` (B.15)."""
    return _PTP_SYNC.pack(
        0x90 if first else 0x80,
        0xD7,
        0x0006,
        rtp_frame & 0xFFFFFFFF,
        ptp_ns & ((1 << 64) - 1),
        (rtp_frame + PTP_NOTIFIED_LATENCY) & 0xFFFFFFFF,
        clock_id & ((1 << 64) - 1),
    )
