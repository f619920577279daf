"""Sans-I/O buffered audio (stream type 103) of the AirPlay 2 emulator, strict like a device.

The TCP data stream is split at its 2-byte length prefixes (the length counts itself); each
packet must carry marker + a 23-bit sequence number that goes up by one, the SSRC word naming
its encoding (shairport-sync 5 takes its decoder and sample rate from it, and plays nothing --
silently -- behind one it does not know; it must be the one of the format the SETUP named:
0x0000FACE for ALAC 44100/16/2, 0x15000000 for ALAC 48000/24/2, whose audio is kept as s24le at
48000 Hz), and the nonce tail the sender's counter (0, 1, 2, ... under one key: anything else
is recorded as an error and the packet refused). Playback follows SETRATEANCHORTIME: rate 1 at
an anchor (refused with 400 until the receiver has measured the sender's clock), rate 0 pauses;
FLUSHBUFFERED starts a new segment and drops later-arriving packets before its `flushUntilTS`.
Every packet's arrival time is kept, so a test can check that it came before its play time.
Nothing from ``airplay_provider``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tests.receivers.alac_decoder import AlacConfig, AlacDecodeError, decode_alac
from tests.receivers.ap2_segment import Anchor, Segment, ntp_to_unix_ns

MIN_PACKET = 12 + 16 + 8 + 1
# SSRC → encoding, as shairport-sync 5's buffered reader knows them (ALAC 44.1/16 is its own id)
SSRC_ENCODINGS = {
    0x0000FACE: "ALAC/44100/16/2",
    0x15000000: "ALAC/48000/24/2",
    0x16000000: "AAC/44100/2",
    0x17000000: "AAC/48000/2",
    0x27000000: "AAC/48000/5.1",
    0x28000000: "AAC/48000/7.1",
}
SSRC_ALAC_44100_16_2 = 0x0000FACE


def signed32(value: int) -> int:
    """A 32-bit RTP difference as a signed number."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


@dataclass
class Arrivals:
    """When (receiver clock, Unix ns) each packet of a segment arrived, by frame offset."""

    by_offset: dict[int, int] = field(default_factory=dict)


class BufferedStream:
    """The type-103 stream of one emulated session."""

    def __init__(
        self,
        key: bytes,
        segments: list[Segment],
        errors: list[str],
        *,
        timing: str,
        clock_ids: set[int],
        clock_ready: Callable[[], bool],
        encoding: tuple[int, int, int] = (SSRC_ALAC_44100_16_2, 16, 44100),
    ) -> None:
        """`encoding`: (SSRC, bits, rate) of the format the SETUP named."""
        self.ssrc, self.bits, self.rate = encoding
        self._alac = AlacConfig(frame_length=352, bit_depth=self.bits)
        self._aead = ChaCha20Poly1305(key)
        self.segments = segments
        self.errors = errors
        self.timing = timing
        self.clock_ids = clock_ids
        self.clock_ready = clock_ready
        self._buffer = bytearray()
        self.next_nonce = 0
        self.last_seq: int | None = None
        self.packets = 0
        self.flushed_packets = 0
        self.flush_until_ts: int | None = None
        self.anchor_refusals = 0
        self.rates: list[int] = []  # of the accepted SETRATEANCHORTIMEs
        self.paused_at_ns: list[int] = []
        self.arrivals: dict[int, Arrivals] = {}  # by segment index
        self.gaps_ns: list[int] = []
        self._last_arrival: int | None = None

    # ---- the data connection ------------------------------------------------------------------

    def data_received(self, data: bytes, now_ns: int) -> None:
        """Bytes from the TCP data connection, received at `now_ns` (Unix ns)."""
        if self._last_arrival is not None:
            self.gaps_ns.append(now_ns - self._last_arrival)
        self._last_arrival = now_ns
        self._buffer += data
        while len(self._buffer) >= 2:
            size = int.from_bytes(self._buffer[:2], "big")
            if size < 2 + MIN_PACKET:
                self.errors.append(f"buffered frame length {size} too small")
                self._buffer.clear()
                return
            if len(self._buffer) < size:
                return
            packet = bytes(self._buffer[2:size])
            del self._buffer[:size]
            self._packet(packet, now_ns)

    def _packet(self, packet: bytes, now_ns: int) -> None:
        word, rtp = struct.unpack_from(">II", packet, 0)
        if packet[0] != 0x80 or not packet[1] & 0x80:
            self.errors.append(f"buffered packet header {packet[:2].hex()}: not 0x80, marker set")
            return
        seq = word & 0x7FFFFF
        if self.last_seq is not None and seq != (self.last_seq + 1) & 0x7FFFFF:
            self.errors.append(f"buffered seq {seq} after {self.last_seq}")
        self.last_seq = seq
        tail = packet[-8:]
        expected = self.next_nonce.to_bytes(8, "little")
        if tail != expected:
            self.errors.append(f"buffered seq {seq}: nonce {tail.hex()}, expected {expected.hex()}")
            return
        ssrc = int.from_bytes(packet[8:12], "big")
        try:
            frame = self._aead.decrypt(bytes(4) + tail, packet[12:-8], packet[4:12])
        except InvalidTag as exc:
            self.errors.append(f"buffered seq {seq} does not decrypt: {exc!r}")
            return
        self.next_nonce += 1
        if ssrc != self.ssrc:
            name = SSRC_ENCODINGS.get(ssrc, "no encoding")
            self.errors.append(
                f"buffered seq {seq}: SSRC 0x{ssrc:08X} names {name}, the stream is "
                f"{SSRC_ENCODINGS[self.ssrc]} (0x{self.ssrc:08X}): nothing plays"
            )
            return
        try:
            pcm = decode_alac(frame, self._alac)
        except AlacDecodeError as exc:
            self.errors.append(f"buffered seq {seq} does not decode: {exc!r}")
            return
        self.packets += 1
        if self.flush_until_ts is not None and signed32(rtp - self.flush_until_ts) < 0:
            self.flushed_packets += 1  # sent before the flush, arrived after it
            return
        segment = self.segments[-1]
        if segment.first_rtp is None:
            segment.first_rtp = rtp
        offset = signed32(rtp - segment.first_rtp)
        if offset < 0:
            self.errors.append(f"buffered packet before the segment start ({offset} frames)")
            return
        segment.packets[offset] = pcm
        self.arrivals.setdefault(segment.index, Arrivals()).by_offset[offset] = now_ns

    def new_segment(self, *, flush_rtp: int | None = None) -> Segment:
        """The next segment, in this stream's rate and frame size."""
        frame_bytes = 2 * self.bits // 8
        return Segment(len(self.segments), flush_rtp, rate=self.rate, frame_bytes=frame_bytes)

    # ---- requests -----------------------------------------------------------------------------

    def set_rate_anchor_time(self, body: Any, now_ns: int) -> int:
        """SETRATEANCHORTIME: the status to answer."""
        if not isinstance(body, dict) or not isinstance(body.get("rate"), int):
            self.errors.append(f"SETRATEANCHORTIME without a rate: {body!r:.100}")
            return 400
        rate = body["rate"]
        if rate == 0:
            self.rates.append(rate)
            self.paused_at_ns.append(now_ns)
            return 200
        keys = ("networkTimeSecs", "networkTimeFrac", "networkTimeTimelineID", "rtpTime")
        if rate != 1 or not all(isinstance(body.get(key), int) for key in keys):
            self.errors.append(f"SETRATEANCHORTIME rate 1 lacks {keys}: {body!r:.200}")
            return 400
        if not self.clock_ready():
            self.anchor_refusals += 1  # strict receivers: 400 until the clock is measured
            return 400
        secs, frac = body["networkTimeSecs"], body["networkTimeFrac"] & ((1 << 64) - 1)
        if self.timing == "NTP":
            remote_ns = ntp_to_unix_ns((secs << 32) | (frac >> 32))
        else:
            if body["networkTimeTimelineID"] & ((1 << 64) - 1) not in self.clock_ids:
                self.errors.append("anchor on a clock that is not the session's timing peer")
                return 400
            remote_ns = secs * 10**9 + (frac * 10**9 >> 64)
        segment = self.segments[-1]
        anchor = Anchor(body["rtpTime"] & 0xFFFFFFFF, remote_ns, not segment.anchors)
        segment.anchors.append(anchor)
        self.rates.append(rate)
        return 200

    def flush_buffered(self, body: Any) -> int:
        """FLUSHBUFFERED: a new segment; packets before `flushUntilTS` are dropped."""
        if not isinstance(body, dict) or not all(
            isinstance(body.get(key), int) for key in ("flushUntilSeq", "flushUntilTS")
        ):
            self.errors.append(f"FLUSHBUFFERED without flushUntilSeq/TS: {body!r:.100}")
            return 400
        self.flush_until_ts = body["flushUntilTS"] & 0xFFFFFFFF
        self.segments.append(self.new_segment(flush_rtp=self.flush_until_ts))
        return 200

    # ---- what the tests read --------------------------------------------------------------------

    def late_frames(self, segment: Segment, *, remote_minus_local_ns: int = 0) -> int:
        """Frames of `segment` that arrived after their anchored play time (arrivals are on
        our Unix clock: on PTP sessions give the sender timeline's offset from it)."""
        if segment.first_rtp is None or not segment.anchors:
            return 0
        arrivals = self.arrivals.get(segment.index, Arrivals()).by_offset
        late = 0
        for offset, arrived in arrivals.items():
            play_ns = segment.scheduled_ns((segment.first_rtp + offset) & 0xFFFFFFFF)
            if arrived + remote_minus_local_ns > play_ns:
                late += len(segment.packets[offset]) // segment.frame_bytes
        return late

    def played_frames(self, segment: Segment, until_ns: int) -> int:
        """Frames of `segment` (from its first packet) whose play time is before `until_ns`."""
        assert segment.first_rtp is not None
        first_ns = segment.scheduled_ns(segment.first_rtp)
        return max(0, (until_ns - first_ns) * segment.rate // 10**9)
