"""The command FIFO: `KEY=VALUE` lines from the provider to a running streamer.

The streamer creates the named pipe, reads it without blocking from the event loop, and removes
it on exit. A second write end is held open by the streamer itself so the read side never sees
end-of-file between two writers (the provider may open and close the pipe per command).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

MAX_LINE_BYTES = 65536

CommandHandler = Callable[[str, str], None]


def parse_command(line: str) -> tuple[str, str] | None:
    """Split `KEY=VALUE` at the first '='; keys are upper-cased; None for blank/invalid lines."""
    line = line.strip()
    if not line or "=" not in line:
        return None
    key, value = line.split("=", 1)
    key = key.strip().upper()
    if not key or not key.replace("_", "").isalnum():
        return None
    return key, value.strip()


class LineSplitter:
    """Splits a byte stream into text lines, dropping over-long lines."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[str]:
        """Add bytes; return the complete lines now available."""
        lines: list[str] = []
        self._buffer.extend(data)
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE_BYTES:
                    self._buffer.clear()
                    self._discarding = True
                return lines
            raw = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if self._discarding:
                self._discarding = False
                continue
            lines.append(raw.decode("utf-8", errors="replace"))


class CommandFifo:
    """Creates and reads the command FIFO; calls `handler(key, value)` per command."""

    def __init__(self, path: str | Path, handler: CommandHandler) -> None:
        self.path = Path(path)
        self._handler = handler
        self._read_fd: int | None = None
        self._keep_fd: int | None = None
        self._splitter = LineSplitter()
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        """Create the FIFO if needed and start reading it on the running loop."""
        if self.path.exists():
            if not stat.S_ISFIFO(self.path.stat().st_mode):
                raise OSError(f"{self.path} exists and is not a named pipe")
        else:
            os.mkfifo(self.path, 0o600)
        self._read_fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._keep_fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._read_fd, self._on_readable)

    def _on_readable(self) -> None:
        assert self._read_fd is not None
        try:
            data = os.read(self._read_fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            self.close(unlink=False)
            return
        for line in self._splitter.feed(data):
            parsed = parse_command(line)
            if parsed is not None:
                self._handler(*parsed)

    def close(self, *, unlink: bool = True) -> None:
        """Stop reading, close both ends and remove the FIFO."""
        if self._read_fd is not None:
            if self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._read_fd)
            os.close(self._read_fd)
            self._read_fd = None
        if self._keep_fd is not None:
            os.close(self._keep_fd)
            self._keep_fd = None
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
