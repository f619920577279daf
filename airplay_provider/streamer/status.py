"""Status reporting on stderr: human log lines plus one `[STATUS]` line per event.

The provider parses only the `[STATUS]` lines (ARCHITECTURE §3); their events and text are
defined once in `protocol/streamer_status.py`.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

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
    """Wake-up lateness of the pacer (actual minus planned), in microseconds."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._samples: list[int] = []
        self._capacity = capacity

    def add(self, late_s: float) -> None:
        """Record one wake-up that was `late_s` seconds after its plan."""
        if len(self._samples) < self._capacity:
            self._samples.append(round(late_s * 1e6))

    def summary(self) -> dict[str, int]:
        """p50/p99/max in microseconds (empty when nothing was recorded)."""
        if not self._samples:
            return {}
        ordered = sorted(self._samples)
        last = len(ordered) - 1
        return {
            "jitter_p50_us": ordered[last // 2],
            "jitter_p99_us": ordered[(last * 99) // 100],
            "jitter_max_us": ordered[last],
            "wakeups": len(ordered),
        }
