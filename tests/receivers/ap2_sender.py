"""Run `bin/cliap2` as a subprocess in tests: feed stdin, follow `[STATUS]` lines, use the FIFO."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

from airplay_provider.protocol.streamer_status import parse_status_fields as parse_status
from airplay_provider.protocol.timing import ntp_from_unix_ns

REPO = Path(__file__).resolve().parents[2]
CLIAP2 = str(REPO / "bin" / "cliap2")
NO_PTP_FEATURES = (1 << 9) | (1 << 38) | (1 << 48)


def ntp_in(seconds: float) -> tuple[int, int]:
    """(unix ns, NTP) of an instant `seconds` from now."""
    unix_ns = time.time_ns() + int(seconds * 1e9)
    return unix_ns, ntp_from_unix_ns(unix_ns)


class Cliap2:
    """One running streamer; stderr is collected line by line."""

    def __init__(self, process: asyncio.subprocess.Process, fifo: Path | None) -> None:
        self.process = process
        self.fifo = fifo
        self.lines: list[str] = []
        self.statuses: list[tuple[str, dict[str, str]]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(
        cls,
        *,
        address: str,
        port: int,
        ntpstart: int | None = None,
        extra: list[str] | None = None,
        fifo: Path | None = None,
        netns: str | None = None,
        env: dict[str, str] | None = None,
        txt: str = '"model=Test" ',
    ) -> Cliap2:
        """Spawn `bin/cliap2` (inside `netns` when given)."""
        argv = [sys.executable, CLIAP2, "--name", "Test", "--hostname", "test.local"]
        argv += ["--address", address, "--port", str(port), "--txt", txt]
        argv += ["--pipe", "-", "--loglevel", "5", *(extra or [])]
        if ntpstart is not None:
            argv += ["--ntpstart", str(ntpstart)]
        if fifo is not None:
            argv += ["--command_pipe", str(fifo)]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
        return cls(process, fifo)

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            text = line.decode(errors="replace").rstrip("\n")
            self.lines.append(text)
            parsed = parse_status(text)
            if parsed is not None:
                self.statuses.append(parsed)
            self._changed.set()
        self._changed.set()

    async def feed(self, pcm: bytes, *, close: bool = True) -> None:
        """Write PCM to stdin (and close it: end of input)."""
        assert self.process.stdin is not None
        self.process.stdin.write(pcm)
        with contextlib.suppress(ConnectionError):
            await self.process.stdin.drain()
            if close:
                self.process.stdin.close()

    async def wait_status(self, event: str, wait_s: float = 10.0) -> dict[str, str]:
        """The first `[STATUS] <event>` fields (waiting for it at most `wait_s` s)."""
        async with asyncio.timeout(wait_s):
            while True:
                for name, fields in self.statuses:
                    if name == event:
                        return fields
                if self._reader.done():
                    raise AssertionError(f"no [STATUS] {event}; stderr:\n" + self.text())
                self._changed.clear()
                await self._changed.wait()

    def status(self, event: str) -> list[dict[str, str]]:
        """Every `[STATUS] <event>` seen so far."""
        return [fields for name, fields in self.statuses if name == event]

    def command(self, line: str) -> None:
        """Write one `KEY=VALUE` line into the command FIFO."""
        assert self.fifo is not None
        fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)

    async def finish(self, wait_s: float = 20.0) -> int:
        """Wait for the exit code (the process is killed after `wait_s`)."""
        try:
            code = await asyncio.wait_for(self.process.wait(), wait_s)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reader, 2.0)
        return code

    def text(self) -> str:
        """All stderr so far."""
        return "\n".join(self.lines)
