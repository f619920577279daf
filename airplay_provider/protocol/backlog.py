"""Resend backlog: the last N audio packets as sent, by 16-bit sequence number."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SentPacket:
    """One audio packet as it went on the wire, with the input it was made from."""

    seq: int
    first_sample: int
    wire: bytes
    pcm: bytes


class Backlog:
    """A ring of recently sent packets, looked up by sequence number (wraps at 2**16).

    The capacity is a power of two dividing 2**16, so `seq % capacity` stays a consistent slot
    across the sequence-number wrap. `frame_bytes`: bytes of one input frame in `pcm` (4 for
    s16le stereo, 6 for s24le).
    """

    def __init__(self, capacity: int = 1024, *, frame_bytes: int = 4) -> None:
        if capacity <= 0 or capacity & (capacity - 1) or 65536 % capacity:
            raise ValueError("capacity must be a power of two <= 65536")
        self.capacity = capacity
        self.frame_bytes = frame_bytes
        self._slots: list[SentPacket | None] = [None] * capacity
        self._newest_seq: int | None = None

    def add(self, packet: SentPacket) -> None:
        """Remember a packet just sent."""
        self._slots[packet.seq % self.capacity] = packet
        self._newest_seq = packet.seq

    def get(self, seq: int) -> SentPacket | None:
        """The packet sent with `seq`, if it is still in the backlog."""
        entry = self._slots[(seq & 0xFFFF) % self.capacity]
        if entry is None or entry.seq != (seq & 0xFFFF):
            return None
        return entry

    def newest_first(self) -> Iterator[SentPacket]:
        """Packets from the newest back to the oldest still held, stopping at the first gap."""
        if self._newest_seq is None:
            return
        seq = self._newest_seq
        for _ in range(self.capacity):
            entry = self.get(seq)
            if entry is None:
                return
            yield entry
            seq = (seq - 1) & 0xFFFF

    def pcm_from(self, sample: int) -> tuple[int, bytes] | None:
        """Input PCM that was sent from input sample `sample` onwards, for a resume after pause.

        Returns (first sample covered, pcm bytes) starting exactly at `sample`, or None when the
        backlog no longer reaches back that far or nothing at or after it was sent.
        """
        chunks: list[SentPacket] = []
        for entry in self.newest_first():
            if entry.first_sample + len(entry.pcm) // self.frame_bytes <= sample:
                break
            chunks.append(entry)
        if not chunks:
            return None
        chunks.reverse()
        if chunks[0].first_sample > sample:
            return None
        pcm = b"".join(entry.pcm for entry in chunks)
        skip = (sample - chunks[0].first_sample) * self.frame_bytes
        return sample, pcm[skip:]

    def clear(self) -> None:
        """Forget every packet (after a flush the old ones must never be resent)."""
        self._slots = [None] * self.capacity
        self._newest_seq = None
