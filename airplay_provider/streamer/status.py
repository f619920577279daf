"""Status reporting on stderr: human log lines plus one `[STATUS]` line per event.

The provider parses only the `[STATUS] <event> key=value ...` lines (ARCHITECTURE §3). Values
containing spaces, quotes or '=' are written as JSON strings so they parse back unambiguously.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import TextIO

_BARE_VALUE = re.compile(r"^[A-Za-z0-9_.:/+\-]*$")
_STATUS_LINE = re.compile(r"^\[STATUS\] (?P<event>[a-z_]+)(?P<rest>.*)$")
_PAIR = re.compile(r'\s+(?P<key>[a-z_][a-z0-9_]*)=(?P<value>"(?:[^"\\]|\\.)*"|\S*)')


def format_status(event: str, fields: dict[str, object]) -> str:
    """One `[STATUS]` line (without newline)."""
    parts = [f"[STATUS] {event}"]
    for key, value in fields.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if not _BARE_VALUE.fullmatch(text) or text == "":
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def parse_status(line: str) -> tuple[str, dict[str, str]] | None:
    """Parse a `[STATUS]` line back into (event, fields); None for any other line."""
    match = _STATUS_LINE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    fields: dict[str, str] = {}
    for pair in _PAIR.finditer(match.group("rest")):
        value = pair.group("value")
        if value.startswith('"'):
            try:
                value = str(json.loads(value))
            except ValueError:
                return None
        fields[pair.group("key")] = value
    return match.group("event"), fields


class StatusWriter:
    """Writes log and status lines to a text stream (stderr by default), line-buffered."""

    def __init__(self, stream: TextIO | None = None, *, name: str = "cliraop", debug: int = 3):
        self._stream = stream if stream is not None else sys.stderr
        self._name = name
        self.debug_level = debug

    def status(self, event: str, **fields: object) -> None:
        """Emit one machine-readable status line."""
        self._write(format_status(event, fields))

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
