"""The PCM a streamer reads on stdin and sends: bit depth and sample rate, always stereo.

One value carried from the command line through input framing, the timeline, pacing, ALAC and
the AirPlay 2 SETUP, so nothing below the options hard-codes 16 bit or 44100 Hz. RAOP is always
`CD` (16/44100); AirPlay 2 also takes `HIRES` (24/48000, buffered streams only, see
protocol/ap2_buffered.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from airplay_provider.protocol.timing import FRAMES_PER_PACKET

CHANNELS = 2
SUPPORTED_BITS = (16, 24)
SUPPORTED_RATES = (44100, 48000)


@dataclass(frozen=True)
class PcmFormat:
    """Interleaved stereo little-endian PCM: s16le (16 bit) or packed s24le (24 bit, 3 bytes)."""

    bits: int = 16
    rate: int = 44100

    def __post_init__(self) -> None:
        if self.bits not in SUPPORTED_BITS:
            raise ValueError(f"bit depth must be 16 or 24, got {self.bits}")
        if self.rate not in SUPPORTED_RATES:
            raise ValueError(f"sample rate must be 44100 or 48000, got {self.rate}")

    @property
    def bytes_per_frame(self) -> int:
        """Bytes of one stereo frame (4 for s16le, 6 for s24le)."""
        return CHANNELS * self.bits // 8

    @property
    def packet_bytes(self) -> int:
        """Bytes of PCM in one 352-frame packet."""
        return FRAMES_PER_PACKET * self.bytes_per_frame

    @property
    def hires(self) -> bool:
        """True for anything beyond 16-bit/44.1 kHz."""
        return self != CD

    @property
    def ffmpeg_format(self) -> str:
        """FFmpeg's name of the stdin format (`s16le`, `s24le`)."""
        return f"s{self.bits}le"

    def __str__(self) -> str:
        return f"{self.bits}-bit/{self.rate / 1000:g} kHz"


CD = PcmFormat()
HIRES = PcmFormat(bits=24, rate=48000)
