"""Status reporting on stderr: human log lines plus one `[STATUS]` line per event.

The provider parses only the `[STATUS]` lines (docs/ARCHITECTURE.md §3); their events and text are
defined once in `protocol/streamer_status.py`.
"""

from __future__ import annotations

import array
import sys
import time
from typing import Final, TextIO

from airplay_provider.protocol.streamer_status import StatusEvent, format_status


class StatusWriter:
    """Writes log and status lines to a text stream (stderr by default), line-buffered."""

    def __init__(self, stream: TextIO | None = None, *, name: str = "cliraop", debug: int = 3):
        self._stream = stream if stream is not None else sys.stderr
        self._name = name
        self.debug_level = debug

    def emit(self, event: StatusEvent) -> None:
        """Emit one machine-readable status line."""
        self._write(format_status(event))

    def log(self, message: str, *, level: int = 3) -> None:
        """Emit a human log line if `level` is within the debug level."""
        if level <= self.debug_level:
            stamp = time.strftime("%H:%M:%S")
            self._write(f"{stamp} {self._name}: {message}")

    def _write(self, line: str) -> None:
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed by the parent: nothing left to tell


class JitterStats:
    """Wake-up lateness of the pacer (actual minus planned), in microseconds.

    A fixed histogram (10 µs buckets from -20 ms to +100 ms; values beyond are counted at the
    edge), so a stream that runs for days uses the same ~48 kB as one that runs a minute.
    Percentiles are exact to the bucket; the maximum is exact.
    """

    BUCKET_US: Final = 10
    LOW_US: Final = -20_000
    HIGH_US: Final = 100_000

    def __init__(self) -> None:
        self._counts = array.array("I", bytes(4 * ((self.HIGH_US - self.LOW_US) // self.BUCKET_US)))
        self._count = 0
        self._max_us: int | None = None

    def add(self, late_s: float) -> None:
        """Record one wake-up that was `late_s` seconds after its plan."""
        late_us = round(late_s * 1e6)
        index = (min(max(late_us, self.LOW_US), self.HIGH_US - 1) - self.LOW_US) // self.BUCKET_US
        self._counts[index] += 1
        self._count += 1
        self._max_us = late_us if self._max_us is None else max(self._max_us, late_us)

    def _percentile(self, fraction: float) -> int:
        rank = int((self._count - 1) * fraction)
        seen = 0
        for index, count in enumerate(self._counts):
            seen += count
            if seen > rank:
                return self.LOW_US + index * self.BUCKET_US + self.BUCKET_US // 2
        raise AssertionError("unreachable: rank below the total count")

    def summary(self) -> dict[str, int]:
        """p50/p99/max in microseconds (empty when nothing was recorded)."""
        if self._max_us is None:
            return {}
        return {
            "jitter_p50_us": self._percentile(0.5),
            "jitter_p99_us": self._percentile(0.99),
            "jitter_max_us": self._max_us,
            "wakeups": self._count,
        }
