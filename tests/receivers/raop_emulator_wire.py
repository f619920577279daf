"""Wire formats and record types of the RAOP receiver emulator (tests only, sans-I/O).

Its own RTSP parser, SDP/DMAP/parameter parsers, RTP packet parser and ALAC decoding (escape
frames here, compressed frames by tests/receivers/alac_decoder.py): nothing is imported from
``airplay_provider``, so the emulator cannot share a bug
with the sender it checks. Plain (unencrypted) RAOP only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from typing import Literal

from tests.receivers.alac_decoder import AlacConfig, AlacDecodeError, decode_alac

NTP_UNIX_OFFSET = 2_208_988_800
RECEIVER_FIXED_DELAY = 11025
SAMPLE_RATE = 44100
_MAX_HEAD = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024
METHODS = (
    *("ANNOUNCE", "SETUP", "RECORD", "FLUSH", "TEARDOWN"),
    *("OPTIONS", "GET_PARAMETER", "SET_PARAMETER", "POST"),
)
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    470: "Connection Authorization Required",
    453: "Not Enough Bandwidth",
    455: "Method Not Valid in This State",
    501: "Not Implemented",
}
_TOKEN = re.compile(r"[A-Z][A-Z_-]{0,31}")
_DIGEST_PARAM = re.compile(r'(\w+)="([^"]*)"')
UdpSocket = Literal["audio", "control", "timing"]


class EmulatorError(Exception):
    """A question the recorded data cannot answer (gaps in the audio, no sync packet yet)."""


class WireError(ValueError):
    """Bytes that do not parse as the RAOP element they claim to be."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Datagram:
    """A UDP datagram the emulator wants sent from its ``socket`` to ``addr``."""

    socket: UdpSocket
    addr: tuple[str, int]
    data: bytes


@dataclass(frozen=True)
class RtspOutput:
    """Bytes to write back on an RTSP connection, and whether to close it afterwards."""

    data: bytes
    close: bool


@dataclass(frozen=True)
class RtspRequest:
    """One parsed RTSP request (header names lower-cased)."""

    method: str
    uri: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class RequestRecord:
    """An RTSP request and the status the emulator answered it with."""

    conn: int
    method: str
    uri: str
    headers: dict[str, str]
    body: bytes
    status: int
    received_at: float


@dataclass(frozen=True)
class SyncRecord:
    """A sync packet: frame ``rtp_latency - 11025`` is audible at sender NTP time ``ntp``."""

    first: bool
    rtp_latency: int
    ntp: int
    rtp_now: int
    received_at: float
    segment: int = 0


@dataclass(frozen=True)
class AudioPacketRecord:
    """An accepted audio packet (``resent`` when it came as an answer to a resend request)."""

    seq: int
    rtptime: int
    marker: bool
    frames: int
    received_at: float
    resent: bool
    segment: int


@dataclass(frozen=True)
class TimingRecord:
    """One timing exchange; ``offset_s`` is sender clock minus receiver clock."""

    sent_at: float
    received_at: float
    offset_s: float
    rtt_s: float


@dataclass(frozen=True)
class FlushRecord:
    """A FLUSH and its ``RTP-Info`` values (None when absent)."""

    seq: int | None
    rtptime: int | None
    received_at: float


@dataclass(frozen=True)
class MetadataRecord:
    """DMAP items of an ``mlit`` container, with the request's RTP-Info rtptime."""

    rtptime: int | None
    items: dict[str, bytes]

    def text(self, tag: str) -> str | None:
        """The UTF-8 value of ``tag`` (``minm`` title, ``asar`` artist, ``asal`` album)."""
        value = self.items.get(tag)
        return None if value is None else value.decode("utf-8", "replace")


@dataclass(frozen=True)
class ArtworkRecord:
    """Artwork bytes from SET_PARAMETER."""

    content_type: str
    data: bytes
    rtptime: int | None


@dataclass(frozen=True)
class LossStats:
    """Simulated loss and its recovery, counted in audio packets (sequence numbers)."""

    dropped: int
    requested: int
    healed: int
    still_missing: int
    resend_requests_sent: int
    duplicates: int
    unsolicited_resends: int


@dataclass(frozen=True)
class AudioPacket:
    """A parsed RTP audio packet."""

    seq: int
    rtptime: int
    marker: bool
    ssrc: int
    payload: bytes


# --------------------------------------------------------------------------- wire helpers


def signed32(value: int) -> int:
    """The difference ``value`` (mod 2^32) as a signed 32-bit number."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def unix_to_ntp(seconds: float) -> int:
    """Unix seconds as a 64-bit NTP 32.32 timestamp."""
    whole = int(seconds // 1)
    return ((whole + NTP_UNIX_OFFSET) << 32) + int((seconds - whole) * (1 << 32))


def ntp_to_unix(ntp: int) -> float:
    """A 64-bit NTP 32.32 timestamp as Unix seconds."""
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / (1 << 32)


class RtspParser:
    """Incremental RTSP/1.0 request parser; raises WireError on anything malformed."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[RtspRequest]:
        """Add bytes; return every complete request."""
        self._buffer += data
        requests: list[RtspRequest] = []
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    raise WireError("RTSP header too long")
                return requests
            head = bytes(self._buffer[:end])
            try:
                lines = head.decode("utf-8").split("\r\n")
            except UnicodeDecodeError as exc:
                raise WireError("RTSP header is not UTF-8") from exc
            parts = lines[0].split(" ")
            if len(parts) != 3 or parts[2] != "RTSP/1.0" or not _TOKEN.fullmatch(parts[0]):
                raise WireError(f"bad RTSP request line {lines[0][:80]!r}")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or not name.strip() or name != name.strip():
                    raise WireError(f"bad RTSP header line {line[:80]!r}")
                headers[name.lower()] = value.strip()
            length_text = headers.get("content-length", "0")
            if not length_text.isdigit() or int(length_text) > _MAX_BODY:
                raise WireError(f"bad Content-Length {length_text[:20]!r}")
            total = end + 4 + int(length_text)
            if len(self._buffer) < total:
                return requests
            body = bytes(self._buffer[end + 4 : total])
            del self._buffer[:total]
            requests.append(RtspRequest(parts[0], parts[1], headers, body))


def parse_audio_packet(data: bytes) -> AudioPacket:
    """Parse an RTP audio packet (0x80, PT 96, optional marker)."""
    if len(data) < 12:
        raise WireError(f"audio packet of {len(data)} bytes")
    if data[0] != 0x80 or data[1] & 0x7F != 0x60:
        raise WireError(f"audio packet header {data[:2].hex()}, want 80 60 or 80 e0")
    seq, rtptime, ssrc = struct.unpack_from(">HII", data, 2)
    return AudioPacket(seq, rtptime, bool(data[1] & 0x80), ssrc, data[12:])


class _BitReader:
    """MSB-first bit reader."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self.remaining = len(data) * 8

    def read(self, bits: int) -> int:
        if bits > self.remaining:
            raise WireError("ALAC frame ends early")
        self.remaining -= bits
        return (self._value >> self.remaining) & ((1 << bits) - 1)


def decode_alac_escape(payload: bytes, frame_length: int) -> bytes:
    """Decode one uncompressed (escape) stereo 16-bit ALAC frame into s16le PCM."""
    bits = _BitReader(payload)
    element, _tag, unused = bits.read(3), bits.read(4), bits.read(12)
    has_size, shift, escape = bits.read(1), bits.read(2), bits.read(1)
    if element != 1:
        raise WireError(f"ALAC element type {element}, want 1 (channel pair)")
    if unused != 0 or shift != 0:
        raise WireError("ALAC header: unused bits or sample shift not zero")
    if escape != 1:
        raise WireError("compressed ALAC frame (the emulator only decodes escape frames)")
    frames = bits.read(32) if has_size else frame_length
    if frames == 0 or frames > frame_length:
        raise WireError(f"ALAC frame of {frames} frames (max {frame_length})")
    big_endian = bits.read(frames * 32).to_bytes(frames * 4, "big")
    if bits.read(3) != 7:
        raise WireError("ALAC frame lacks the END tag after the samples")
    if bits.remaining >= 8 or bits.read(bits.remaining) != 0:
        raise WireError("ALAC frame has trailing bytes or non-zero padding")
    return swap16(big_endian)


def alac_header(payload: bytes, frame_length: int) -> tuple[int, bool]:
    """(frames, compressed) from a stereo ALAC frame's header, checked; the body unread."""
    bits = _BitReader(payload[:8])
    element, _tag, unused = bits.read(3), bits.read(4), bits.read(12)
    has_size, _shift, escape = bits.read(1), bits.read(2), bits.read(1)
    if element != 1:
        raise WireError(f"ALAC element type {element}, want 1 (channel pair)")
    if unused != 0:
        raise WireError("ALAC header: unused bits not zero")
    frames = bits.read(32) if has_size else frame_length
    if frames == 0 or frames > frame_length:
        raise WireError(f"ALAC frame of {frames} frames (max {frame_length})")
    return frames, not escape


def decode_alac_frame(payload: bytes, frame_length: int) -> bytes:
    """Decode one stereo 16-bit ALAC frame, compressed or escape, into s16le PCM (strictly:
    our own decoder, tests/receivers/alac_decoder.py)."""
    try:
        return decode_alac(payload, AlacConfig(frame_length=frame_length))
    except AlacDecodeError as exc:
        raise WireError(str(exc)) from exc


def swap16(data: bytes) -> bytes:
    """Swap the bytes of every 16-bit sample (big-endian <-> little-endian)."""
    swapped = bytearray(len(data))
    swapped[0::2] = data[1::2]
    swapped[1::2] = data[0::2]
    return bytes(swapped)


def parse_sdp(body: bytes) -> tuple[str, int]:
    """Validate an ANNOUNCE SDP; return (codec ``"ALAC"`` or ``"L16"``, frames per packet)."""
    try:
        lines = [line.rstrip("\r") for line in body.decode("utf-8").split("\n") if line.strip()]
    except UnicodeDecodeError as exc:
        raise WireError("SDP is not UTF-8") from exc
    if not lines or lines[0] != "v=0":
        raise WireError("SDP must start with v=0")
    if any(not re.fullmatch(r"[a-z]=.*", line) for line in lines):
        raise WireError("malformed SDP line")
    media = [line for line in lines if line.startswith("m=")]
    if media != ["m=audio 0 RTP/AVP 96"]:
        raise WireError(f"SDP media lines {media!r}")
    attributes = [line[2:] for line in lines if line.startswith("a=")]
    if any(a.startswith(("rsaaeskey:", "aesiv:")) for a in attributes):
        raise WireError("encrypted stream announced; the emulator speaks plain RAOP only")
    rtpmaps = [a.removeprefix("rtpmap:96 ") for a in attributes if a.startswith("rtpmap:")]
    fmtps = [a.removeprefix("fmtp:96 ").split() for a in attributes if a.startswith("fmtp:")]
    if rtpmaps == ["L16/44100/2"]:
        if fmtps:
            raise WireError("L16 announced with an a=fmtp line (shairport-sync treats it as ALAC)")
        return "L16", 352
    if rtpmaps != ["AppleLossless"] or len(fmtps) != 1 or len(fmtps[0]) != 11:
        raise WireError(f"unsupported rtpmap {rtpmaps!r} / fmtp {fmtps!r}")
    if not all(value.isdigit() for value in fmtps[0]):
        raise WireError("non-numeric ALAC fmtp field")
    fields = [int(value) for value in fmtps[0]]
    if not 0 < fields[0] <= 4096 or fields[2] != 16 or fields[6] != 2 or fields[10] != 44100:
        raise WireError(f"unsupported ALAC parameters {fields!r}")
    return "ALAC", fields[0]


def parse_dmap(data: bytes) -> dict[str, bytes]:
    """DMAP items; an ``mlit`` container at the top is unwrapped."""
    items: dict[str, bytes] = {}
    offset = 0
    while offset < len(data):
        if offset + 8 > len(data):
            raise WireError("truncated DMAP item header")
        tag = data[offset : offset + 4]
        (length,) = struct.unpack_from(">I", data, offset + 4)
        if not tag.isalnum() or offset + 8 + length > len(data):
            raise WireError(f"bad DMAP item {tag!r} of length {length}")
        items[tag.decode("ascii")] = data[offset + 8 : offset + 8 + length]
        offset += 8 + length
    if list(items) == ["mlit"]:
        return parse_dmap(items["mlit"])
    return items


def parse_key_values(text: str, separator: str = ";") -> dict[str, str]:
    """``a=1;b=2`` style header values."""
    pairs = (part.strip().partition("=") for part in text.split(separator) if part.strip())
    return {key: value for key, _, value in pairs}


def int_field(values: dict[str, str], key: str, limit: int) -> int | None:
    """The integer ``values[key]`` below ``limit`` (None when absent; WireError if bad)."""
    text = values.get(key)
    if text is None:
        return None
    if not text.isdigit() or int(text) >= limit:
        raise WireError(f"bad {key}={text[:20]!r}")
    return int(text)


def parse_transport(transport: str) -> tuple[int, int]:
    """The sender's (control_port, timing_port) from a SETUP ``Transport`` header."""
    params = parse_key_values(transport)
    control = int_field(params, "control_port", 1 << 16)
    timing = int_field(params, "timing_port", 1 << 16)
    if not transport.startswith("RTP/AVP/UDP") or not control or not timing:
        raise WireError(f"bad Transport {transport[:120]!r}")
    return control, timing


def parse_parameters(body: bytes) -> tuple[list[float], list[tuple[int, int, int]]]:
    """``text/parameters``: the volumes and progress triples it sets."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("parameters are not UTF-8") from exc
    volumes: list[float] = []
    progress: list[tuple[int, int, int]] = []
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "volume":
            volumes.append(parse_volume(value))
        elif key == "progress":
            parts = value.split("/")
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                raise WireError(f"bad progress {value[:60]!r}")
            progress.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return volumes, progress


def parse_volume(text: str) -> float:
    """A ``volume:`` value: -144 (mute) or a dB value in [-30, 0]."""
    try:
        volume = float(text)
    except ValueError as exc:
        raise WireError(f"bad volume {text[:40]!r}") from exc
    if volume != -144.0 and not -30.0 <= volume <= 0.0:
        raise WireError(f"volume {volume} outside [-30, 0] and not -144")
    return volume


def digest_ok(header: str, method: str, uri: str, nonce: str, password: str) -> bool:
    """Check an RFC 2069 ``Authorization: Digest`` header (realm ``raop``, no qop)."""
    params = dict(_DIGEST_PARAM.findall(header))
    if not header.startswith("Digest ") or "username" not in params:
        return False
    if params.get("nonce") != nonce or params.get("realm") != "raop" or params.get("uri") != uri:
        return False
    ha1 = _md5_hex(f"{params['username']}:raop:{password}")
    expected = _md5_hex(f"{ha1}:{nonce}:{_md5_hex(f'{method}:{uri}')}")
    return hmac.compare_digest(expected, params.get("response", ""))


def _md5_hex(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def encode_timing_request(transmit_ntp: int) -> bytes:
    """A 32-byte timing request (0x80 0xD2) with only the transmit time set."""
    return b"\x80\xd2\x00\x07" + bytes(20) + struct.pack(">Q", transmit_ntp)


def encode_resend_request(request_seq: int, first_seq: int, count: int) -> bytes:
    """An 8-byte resend request (0x80 0xD5)."""
    return b"\x80\xd5" + struct.pack(">HHH", request_seq & 0xFFFF, first_seq & 0xFFFF, count)


def parse_sync(data: bytes, received_at: float, segment: int) -> tuple[SyncRecord, int]:
    """A 20-byte sync packet (0x80/0x90 0xD4) and its bytes 2-3 (7 expected)."""
    if len(data) != 20 or data[0] not in (0x80, 0x90) or data[1] != 0xD4:
        raise WireError(f"not a sync packet: {data[:8].hex()} ({len(data)} bytes)")
    word, rtp_latency, ntp, rtp_now = struct.unpack(">HIQI", data[2:])
    return SyncRecord(data[0] == 0x90, rtp_latency, ntp, rtp_now, received_at, segment), word


def sync_line_deviation(base: SyncRecord, sync: SyncRecord) -> float:
    """How many frames ``sync`` lies off the timeline that ``base`` describes."""
    seconds_apart = (sync.ntp - base.ntp) / (1 << 32)
    return seconds_apart * SAMPLE_RATE - signed32(sync.rtp_latency - base.rtp_latency)


def play_time_ntp(sync: SyncRecord, frame: int) -> int:
    """Sender NTP time at which ``frame`` is audible: ``rtp_latency - 11025`` plays at ``ntp``."""
    frames = signed32(frame - (sync.rtp_latency - RECEIVER_FIXED_DELAY))
    return sync.ntp + ((frames << 33) + SAMPLE_RATE) // (2 * SAMPLE_RATE)


def build_response(
    cseq: str | None, status: int, headers: list[tuple[str, str]], body: bytes
) -> bytes:
    """An RTSP/1.0 response."""
    lines = [f"RTSP/1.0 {status} {_REASONS[status]}"]
    if cseq is not None:
        lines.append(f"CSeq: {cseq}")
    lines.append("Server: AirTunes/105.1")
    lines += [f"{name}: {value}" for name, value in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def signed16(value: int) -> int:
    """The difference ``value`` (mod 2^16) as a signed 16-bit number."""
    value &= 0xFFFF
    return value - (1 << 16) if value >= 1 << 15 else value
