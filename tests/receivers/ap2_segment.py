"""What the AirPlay 2 receiver emulator heard: a `Segment` of audio per RECORD/FLUSH with the
sync `Anchor`s that place it on the sender's timeline, and the NTP ↔ Unix time arithmetic."""

from __future__ import annotations

from dataclasses import dataclass, field

RATE = 44100
NTP_UNIX_OFFSET_S = 2208988800


def ntp_to_unix_ns(ntp: int) -> int:
    """64-bit NTP (era 0) → Unix ns."""
    return ((ntp >> 32) - NTP_UNIX_OFFSET_S) * 10**9 + ((ntp & 0xFFFFFFFF) * 10**9 >> 32)


def unix_ns_to_ntp(ns: int) -> int:
    """Unix ns → 64-bit NTP."""
    seconds, rest = divmod(ns, 10**9)
    return ((seconds + NTP_UNIX_OFFSET_S) << 32) | ((rest << 32) // 10**9)


def signed32(value: int) -> int:
    """A 32-bit RTP difference as a signed number."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


@dataclass(frozen=True)
class Anchor:
    """Frame `rtp` plays at `remote_ns` on the sender's timeline (NTP as Unix ns, or PTP ns)."""

    rtp: int
    remote_ns: int
    first: bool


@dataclass
class Segment:
    """Audio between RECORD (or a FLUSH) and the next FLUSH."""

    index: int
    flush_rtp: int | None = None
    first_rtp: int | None = None
    packets: dict[int, bytes] = field(default_factory=dict)  # frame offset from first_rtp
    anchors: list[Anchor] = field(default_factory=list)
    rate: int = RATE  # the stream's: 44100, or 48000 (buffered ALAC/48000/24/2)
    frame_bytes: int = 4  # of the decoded PCM: s16le stereo, or 6 (s24le stereo)

    def pcm(self) -> bytes:
        """Everything received (s16le, or s24le on 24-bit streams), in RTP order from the first
        packet; gaps are zero-filled."""
        if not self.packets:
            return b""
        size = self.frame_bytes
        end = max(offset + len(pcm) // size for offset, pcm in self.packets.items())
        out = bytearray(end * size)
        for offset, pcm in self.packets.items():
            out[offset * size : offset * size + len(pcm)] = pcm
        return bytes(out)

    def missing_frames(self) -> int:
        """Frames between the first and last packet that never arrived."""
        have = sum(len(pcm) // self.frame_bytes for pcm in self.packets.values())
        return len(self.pcm()) // self.frame_bytes - have

    def scheduled_ns(self, rtp: int) -> int:
        """When frame `rtp` plays on the sender timeline, from the latest anchor."""
        anchor = self.anchors[-1]
        return anchor.remote_ns + signed32(rtp - anchor.rtp) * 10**9 // self.rate

    def anchor_spread_ns(self) -> int:
        """How far the anchors disagree about one frame (0 for one fixed anchor line)."""
        if not self.anchors:
            return 0
        probe, rate = self.anchors[0].rtp, self.rate
        times = [a.remote_ns + signed32(probe - a.rtp) * 10**9 // rate for a in self.anchors]
        return max(times) - min(times)
