"""The stream timeline: which input sample plays when, under which RTP timestamp.

Pure arithmetic, no clock reads. One `Timeline` holds the anchor line of a stream: input sample
`k` carries RTP timestamp `rtp_of(k)` and is audible at NTP time `play_ntp_of(k)`. Every sync
packet is derived from that one line, so the receiver never sees a re-anchor (ARCHITECTURE.md §4).
After a pause the line restarts at a new (sample, rtp, ntp) point; nothing else changes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from airplay_provider.protocol.timing import (
    FRAMES_PER_PACKET,
    RAOP_RECEIVER_LATENCY,
    SAMPLE_RATE,
    frames_to_ns,
    ntp_add_frames,
    rtp_add,
)


@dataclass(frozen=True)
class Anchor:
    """Input sample `sample` has RTP timestamp `rtp` and plays at NTP time `ntp`."""

    sample: int
    rtp: int
    ntp: int


@dataclass(frozen=True)
class SyncFields:
    """The three numbers of a RAOP sync packet (0xD4)."""

    rtp_latency: int
    ntp: int
    rtp_now: int


class Timeline:
    """Maps input samples to RTP timestamps and NTP play times on one anchor line."""

    def __init__(
        self,
        *,
        start_ntp: int,
        first_rtp: int,
        latency_frames: int,
        rate: int = SAMPLE_RATE,
    ) -> None:
        if latency_frames < 0:
            raise ValueError("latency_frames must be >= 0")
        self.rate = rate
        self.latency_frames = latency_frames
        self.anchor = Anchor(sample=0, rtp=first_rtp & 0xFFFFFFFF, ntp=start_ntp)

    def rtp_of(self, sample: int) -> int:
        """RTP timestamp of input sample `sample`."""
        return rtp_add(self.anchor.rtp, sample - self.anchor.sample)

    def play_ntp_of(self, sample: int) -> int:
        """NTP time at which input sample `sample` is audible."""
        return ntp_add_frames(self.anchor.ntp, sample - self.anchor.sample, self.rate)

    def send_ntp_of(self, sample: int) -> int:
        """Preferred send time: one receiver latency before play time."""
        return ntp_add_frames(self.play_ntp_of(sample), -self.latency_frames, self.rate)

    def sample_at(self, ntp: int) -> int:
        """The input sample whose play time is nearest to NTP time `ntp`."""
        offset = ntp - self.anchor.ntp  # in 2**-32 s
        return self.anchor.sample + (offset * self.rate + 2**31) // 2**32

    def sync_fields(self, next_sample: int) -> SyncFields:
        """Sync packet numbers when `next_sample` starts the next audio packet.

        The receiver plays frame `rtp_latency - 11025` at `ntp` (docs/protocol.md A.12), so we
        name that frame and give its exact play time from the anchor line.
        """
        rtp_now = self.rtp_of(next_sample)
        anchor_sample = next_sample - self.latency_frames - RAOP_RECEIVER_LATENCY
        return SyncFields(
            rtp_latency=rtp_add(rtp_now, -self.latency_frames),
            ntp=self.play_ntp_of(anchor_sample),
            rtp_now=rtp_now,
        )

    def restart(self, *, sample: int, rtp: int, ntp: int) -> None:
        """Start a new anchor line: `sample` plays at `ntp` with timestamp `rtp` (after a flush)."""
        self.anchor = Anchor(sample=sample, rtp=rtp & 0xFFFFFFFF, ntp=ntp)

    def latency_ns(self) -> int:
        """The send-ahead interval in nanoseconds."""
        return frames_to_ns(self.latency_frames, self.rate)


def packets_for(frames: int) -> int:
    """Number of 352-frame packets needed for `frames` frames."""
    return -(-frames // FRAMES_PER_PACKET)
