"""The sender clock: wall-clock time as NTP, read through the monotonic clock.

The wall clock is sampled once; afterwards every reading is monotonic time plus that offset, so
a wall-clock step (an NTP daemon correcting the host) can never make packets, sync stamps and
timing replies disagree with each other mid-stream (docs/ARCHITECTURE.md §4).
"""

from __future__ import annotations

import time

from airplay_provider.protocol.timing import ntp_diff_ns, ntp_from_unix_ns


class SenderClock:
    """One clock for pacing, sync packets and timing replies."""

    def __init__(self) -> None:
        # Take the pair as close together as possible: smallest gap of a few tries.
        best: tuple[int, int] | None = None
        for _ in range(5):
            before = time.monotonic_ns()
            wall = time.time_ns()
            after = time.monotonic_ns()
            if best is None or after - before < best[0]:
                best = (after - before, wall - (before + after) // 2)
        assert best is not None
        self._wall_minus_mono = best[1]

    def unix_ns(self) -> int:
        """Current Unix time in nanoseconds on this clock."""
        return time.monotonic_ns() + self._wall_minus_mono

    def ntp(self) -> int:
        """Current time as 64-bit NTP."""
        return ntp_from_unix_ns(self.unix_ns())

    def monotonic_for_ntp(self, ntp: int) -> float:
        """The `time.monotonic()` value (seconds) at which this clock reads `ntp`."""
        delta_ns = ntp_diff_ns(ntp, self.ntp())
        return (time.monotonic_ns() + delta_ns) / 1e9

    def seconds_until(self, ntp: int) -> float:
        """Seconds from now until `ntp` (negative if past)."""
        return ntp_diff_ns(ntp, self.ntp()) / 1e9
