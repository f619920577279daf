"""Run a streamer process (bin/cliraop) in tests: feed stdin, collect `[STATUS]` lines, send
FIFO commands at chosen moments."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from airplay_provider.protocol.streamer_status import parse_status_fields as parse_status
from airplay_provider.streamer.clock import SenderClock

ROOT = Path(__file__).resolve().parent.parent
CLIRAOP = ROOT / "bin" / "cliraop"


def ntp_in(seconds: float) -> int:
    """The NTP time `seconds` from now."""
    return SenderClock().ntp() + int(seconds * 2**32)


@dataclass
class StreamerRun:
    """What a finished streamer process said."""

    returncode: int
    lines: list[str]
    statuses: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def status(self, event: str) -> dict[str, str]:
        """Fields of the first `[STATUS] event` line; AssertionError (with the log) if absent."""
        for name, fields in self.statuses:
            if name == event:
                return fields
        raise AssertionError(f"no [STATUS] {event}; stderr was:\n" + "\n".join(self.lines[-40:]))

    def all(self, event: str) -> list[dict[str, str]]:
        """Fields of every `[STATUS] event` line."""
        return [fields for name, fields in self.statuses if name == event]

    @property
    def log(self) -> str:
        """The whole stderr, for assertion messages."""
        return "\n".join(self.lines)


Command = tuple[str, float, str]  # (after event, delay seconds, "KEY=VALUE")


async def run_cliraop(
    port: int,
    pcm: bytes,
    *,
    ntpstart: int | None = None,
    lead_s: float = 1.0,
    args: list[str] | tuple[str, ...] = (),
    host: str = "127.0.0.1",
    commands: list[Command] | None = None,
    timeout: float = 90.0,
    stdin_chunk: int = 65536,
    omit_ntpstart: bool = False,
) -> StreamerRun:
    """Stream `pcm` through bin/cliraop to host:port and wait for it to exit.

    `omit_ntpstart`: no `-ntpstart` (the streamer picks its own start instant).
    """
    with tempfile.TemporaryDirectory(prefix="cliraop-test-") as tmp:
        fifo = os.path.join(tmp, "cmd")
        start = ntpstart if ntpstart is not None else ntp_in(lead_s)
        argv = [
            sys.executable,
            str(CLIRAOP),
            *([] if omit_ntpstart else ["-ntpstart", str(start)]),
            "-port",
            str(port),
            "-cmdpipe",
            fifo,
            *args,
            host,
            "-",
        ]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        run = StreamerRun(returncode=-1, lines=[])
        seen: dict[str, asyncio.Event] = {}

        def event(name: str) -> asyncio.Event:
            return seen.setdefault(name, asyncio.Event())

        async def read_stderr() -> None:
            assert proc.stderr is not None
            async for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip("\n")
                run.lines.append(line)
                parsed = parse_status(line)
                if parsed is not None:
                    run.statuses.append(parsed)
                    event(parsed[0]).set()

        async def feed() -> None:
            assert proc.stdin is not None
            try:
                for offset in range(0, len(pcm), stdin_chunk):
                    proc.stdin.write(pcm[offset : offset + stdin_chunk])
                    await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass

        async def send_commands() -> None:
            for after, delay, line in commands or []:
                await event(after).wait()
                await asyncio.sleep(delay)
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                try:
                    os.write(fd, (line + "\n").encode())
                finally:
                    os.close(fd)

        tasks = [asyncio.ensure_future(c) for c in (read_stderr(), feed(), send_commands())]
        try:
            run.returncode = await asyncio.wait_for(proc.wait(), timeout)
            await asyncio.wait_for(tasks[0], 5)
        finally:
            for task in tasks:
                task.cancel()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        fifo_left = Path(fifo).exists()  # noqa: ASYNC240 - a stat on a tmpfs path
        assert not fifo_left, "the streamer left its command FIFO behind"
        return run
