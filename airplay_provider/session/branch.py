"""A group's members at another format than its own: one resampling branch per format.

A group plays its source at its own format (24-bit/48 kHz when a member plays hi-res); members
that play 16-bit/44.1 kHz in it share one branch: one ffmpeg (`aresample`) turns the group's
PCM, as the members get it, into flow PCM at the branch's rate, converted once (`pcm_convert`),
kept in the branch's own ring buffer (late join) and queued to its members. Branch frame b is
audible at ``T + b/rate``: ffmpeg compensates its resampler's delay (an impulse at session
frame s comes out at b = s · rate / session rate, measured in tests), and a branch that starts
at session frame q (a late join) starts at q · rate / session rate, q a multiple of the rates'
common step (160 frames at 48 kHz, 147 at 44.1 kHz) so the mapping is exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
from collections.abc import Callable
from typing import Final

from airplay_provider.pcm_convert import flow_to_s16, flow_to_s24
from airplay_provider.session.pcm_format import PcmFormat
from airplay_provider.session.timeline import FLOW_FRAME_BYTES, RingBuffer

READ_BYTES: Final = 1 << 16
STOP_TIMEOUT_S: Final = 2.0

Deliver = Callable[["FormatBranch", bytes | None], None]


def step_frames(session_rate: int, rate: int) -> tuple[int, int]:
    """(session frames, branch frames) of the smallest span both count whole: (160, 147)."""
    common = math.gcd(session_rate, rate)
    return session_rate // common, rate // common


def branch_frame(session_frame: int, session_rate: int, rate: int) -> int:
    """Branch frame playing with `session_frame` (a multiple of the step: exact)."""
    session_step, step = step_frames(session_rate, rate)
    if session_frame % session_step:
        raise ValueError(f"session frame {session_frame} is not a multiple of {session_step}")
    return session_frame // session_step * step


def resampler_argv(source: PcmFormat, rate: int) -> list[str]:
    """ffmpeg reading the group's PCM (s16le/s24le at its rate) and writing flow PCM (f32le
    stereo) at `rate`."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg not found (install ffmpeg)")
    return [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        f"s{source.bits}le",
        "-ar",
        str(source.rate),
        "-ac",
        "2",
        # No probing: ffmpeg would otherwise hold ~1 s of input before its first output (a
        # live source's branch members got their first audio after their start instant).
        "-probesize",
        "32",
        "-analyzeduration",
        "0",
        "-i",
        "pipe:0",
        "-af",
        f"aresample={rate}",
        "-f",
        "f32le",
        "-ac",
        "2",
        "-flush_packets",
        "1",
        "pipe:1",
    ]


class FormatBranch:
    """One format's members in a group of another format: resampler, ring buffer, frames."""

    def __init__(
        self,
        pcm_format: PcmFormat,
        source: PcmFormat,
        *,
        first_frame: int,
        ring_seconds: float,
        deliver: Deliver,
        logger: logging.Logger,
    ) -> None:
        self.pcm_format = pcm_format
        self.source = source
        self.fed = first_frame  # branch frames produced so far (from `first_frame`)
        self.ring = RingBuffer(
            ring_seconds, frame_bytes=pcm_format.bytes_per_frame, rate=pcm_format.rate
        )
        self.ring.end = first_frame
        self.ended = asyncio.Event()  # the resampler's output ended
        self._deliver = deliver
        self._logger = logger
        self._proc: asyncio.subprocess.Process | None = None
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def rate(self) -> int:
        """Branch frames per second."""
        return self.pcm_format.rate

    async def start(self) -> None:
        """Spawn the resampler and the tasks that write to and read from it."""
        self._proc = await asyncio.create_subprocess_exec(
            *resampler_argv(self.source, self.rate),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self._tasks = [
            asyncio.create_task(self._write(), name=f"branch-write-{self.rate}"),
            asyncio.create_task(self._read(), name=f"branch-read-{self.rate}"),
        ]

    def write(self, pcm: bytes | None) -> None:
        """Queue the group's PCM (None: end of input). Never blocks."""
        self._queue.put_nowait(pcm)

    async def _write(self) -> None:
        assert self._proc is not None
        assert self._proc.stdin is not None
        stdin = self._proc.stdin
        try:
            while (pcm := await self._queue.get()) is not None:
                stdin.write(pcm)
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            self._logger.warning("%s branch: resampler input closed (%s)", self.pcm_format, exc)
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    async def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        stdout = self._proc.stdout
        convert = flow_to_s24 if self.pcm_format.bits == 24 else flow_to_s16
        carry = b""
        try:
            while data := await stdout.read(READ_BYTES):
                data = carry + data
                whole = len(data) - len(data) % FLOW_FRAME_BYTES
                carry = data[whole:]
                if not whole:
                    continue
                pcm = convert(data[:whole])
                self.ring.append(self.fed, pcm)
                self.fed += whole // FLOW_FRAME_BYTES
                self._deliver(self, pcm)
            self._deliver(self, None)  # the group's input ended and all of it came out
        finally:
            self.ended.set()

    async def stop(self) -> None:
        """Kill the resampler; no process or task left behind."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        proc = self._proc
        if proc is None:
            return
        if self.ended.is_set():  # its output ended: it is exiting by itself (no kill race)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
