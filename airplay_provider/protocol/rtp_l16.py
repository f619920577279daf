"""RTP packets of L16 audio (RFC 3551: 16-bit big-endian PCM, payload type 10 = 44100 Hz
stereo), or L24 for a hi-res session (RFC 3190: 24-bit big-endian, 48 kHz stereo, dynamic
payload type 96), interleaved on an RTSP connection (RFC 2326 §10.12: `$`, channel, 16-bit
length).

No I/O: `L16Packetizer.packetize` turns s16le (or s24le) PCM into ready-to-write interleaved
frames.
"""

from __future__ import annotations

import array
import struct
import sys
from typing import Final

from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.pcm_format import CD, PcmFormat

PAYLOAD_TYPE: Final = 10  # L16/44100/2 (RFC 3551 table 4)
DYNAMIC_PAYLOAD_TYPE: Final = 96  # any other format (L24/48000/2), named by the SDP's rtpmap
SAMPLE_RATE: Final = 44100
CHANNELS: Final = 2
FRAME_BYTES: Final = 4  # s16, stereo
MAX_PACKET_FRAMES: Final = 1024  # ~23 ms: 4 kB of payload, well under the 64 kB frame limit
RTP_HEADER: Final = struct.Struct(">BBHII")
_INTERLEAVED: Final = struct.Struct(">cBH")


class RtpL16Error(AirplayError, ValueError):
    """PCM that is not whole s16 stereo frames, or a bad packetiser setting."""


def s16le_to_be(pcm: bytes) -> bytes:
    """Swap the byte order of 16-bit samples (L16 is big-endian on the wire)."""
    if len(pcm) % 2:
        raise RtpL16Error(f"odd PCM length {len(pcm)}")
    samples = array.array("h", pcm)
    if sys.byteorder == "little":
        samples.byteswap()
    return samples.tobytes()


def s16be_to_le(pcm: bytes) -> bytes:
    """The inverse of `s16le_to_be` (the same swap)."""
    return s16le_to_be(pcm)


def s24le_to_be(pcm: bytes) -> bytes:
    """Swap the byte order of packed 24-bit samples (L24 is big-endian on the wire); its own
    inverse."""
    if len(pcm) % 3:
        raise RtpL16Error(f"PCM length {len(pcm)} is not whole 24-bit samples")
    out = bytearray(len(pcm))
    out[0::3], out[1::3], out[2::3] = pcm[2::3], pcm[1::3], pcm[0::3]
    return bytes(out)


def pcm_to_be(pcm: bytes, pcm_format: PcmFormat = CD) -> bytes:
    """`pcm` (s16le or s24le, as `pcm_format`) big-endian, as RTP L16/L24 carries it."""
    return s24le_to_be(pcm) if pcm_format.bits == 24 else s16le_to_be(pcm)


def payload_type(pcm_format: PcmFormat = CD) -> int:
    """The RTP payload type of `pcm_format`: 10 (static L16/44100/2) or 96 (dynamic)."""
    return PAYLOAD_TYPE if pcm_format == CD else DYNAMIC_PAYLOAD_TYPE


def rtpmap(pcm_format: PcmFormat = CD) -> str:
    """The SDP ``a=rtpmap`` value: ``10 L16/44100/2``, ``96 L24/48000/2``."""
    return f"{payload_type(pcm_format)} L{pcm_format.bits}/{pcm_format.rate}/{CHANNELS}"


def interleaved(channel: int, data: bytes) -> bytes:
    """One RTSP interleaved frame: `$`, the channel, the length, the data."""
    if not 0 <= channel <= 255 or len(data) > 0xFFFF:
        raise RtpL16Error(f"cannot interleave {len(data)} bytes on channel {channel}")
    return _INTERLEAVED.pack(b"$", channel, len(data)) + data


def rtp_header(
    *, seq: int, timestamp: int, ssrc: int, marker: bool, payload: int = PAYLOAD_TYPE
) -> bytes:
    """The 12-byte RTP header (version 2, no padding, extension or CSRC) for payload type
    `payload` (10 unless said)."""
    return RTP_HEADER.pack(
        0x80,
        (0x80 if marker else 0) | payload,
        seq & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )


class L16Packetizer:
    """Consecutive PCM in `pcm_format` (s16le unless said) in, interleaved RTP/L16 (or L24)
    frames out, for one listener; timestamps count frames at the format's rate."""

    def __init__(
        self,
        *,
        ssrc: int,
        first_seq: int,
        first_timestamp: int,
        channel: int = 0,
        pcm_format: PcmFormat = CD,
    ) -> None:
        self.pcm_format = pcm_format
        self.ssrc = ssrc
        self.channel = channel
        self.first_seq = first_seq & 0xFFFF
        self.first_timestamp = first_timestamp & 0xFFFFFFFF
        self.seq = self.first_seq
        self.timestamp = self.first_timestamp
        self.packets = 0

    def packetize(self, pcm: bytes) -> bytes:
        """The interleaved frames carrying `pcm` (whole stereo frames), concatenated."""
        return self.packetize_be(pcm_to_be(pcm, self.pcm_format))

    def packetize_be(self, big: bytes) -> bytes:
        """Like `packetize`, for PCM already big-endian (converted once for every listener)."""
        size = self.pcm_format.bytes_per_frame
        if len(big) % size:
            raise RtpL16Error(f"{len(big)} bytes is not whole stereo frames")
        step = MAX_PACKET_FRAMES * size
        kind = payload_type(self.pcm_format)
        out = []
        for start in range(0, len(big), step):
            payload = big[start : start + step]
            header = rtp_header(
                seq=self.seq,
                timestamp=self.timestamp,
                ssrc=self.ssrc,
                marker=self.packets == 0,
                payload=kind,
            )
            out.append(interleaved(self.channel, header + payload))
            self.seq = (self.seq + 1) & 0xFFFF
            self.timestamp = (self.timestamp + len(payload) // size) & 0xFFFFFFFF
            self.packets += 1
        return b"".join(out)
