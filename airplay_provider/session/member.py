"""One member of a group session: its streamer process, fed s16le PCM through a pipe from a
private queue by its own writer task.

The session converts the flow PCM once for the whole group (`pcm_convert`) and never waits
for a member: it queues chunks; the member's writer task writes them into the streamer's stdin
with a timeout. A member that stops reading, or whose streamer dies, fails on its own and tells
the session through `on_change`.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import enum
import fcntl
import logging
import os
import re
import termios
from collections.abc import Callable
from pathlib import Path
from typing import Final

from airplay_provider.protocol.streamer_status import (
    Error,
    ErrorCode,
    Exit,
    Paused,
    StartFields,
    StatusEvent,
    StreamerError,
)
from airplay_provider.protocol.timing import ntp_add_frames, ntp_diff_ns
from airplay_provider.session.processes import StreamerProcess, StreamTarget
from airplay_provider.streamer_launcher import ForkServer

WRITE_TIMEOUT_S: Final = 5.0
CONNECT_TIMEOUT_S: Final = 10.0
CLOSE_TIMEOUT_S: Final = 2.0
EXIT_CAUSE_WAIT_S: Final = 1.0  # a closed audio pipe: how long to wait for the streamer to say why
S16_FRAME_BYTES: Final = 4  # s16le stereo, what the streamers read (s24le: 6, hi-res)
MAX_BACKLOG_S: Final = 12  # seconds of audio not written yet


class MemberState(enum.StrEnum):
    """Life cycle of a member."""

    CONNECTING = "connecting"
    PLAYING = "playing"
    PAUSED = "paused"
    FINISHED = "finished"  # played to the end of the source
    FAILED = "failed"
    STOPPED = "stopped"


ENDED_STATES: Final = frozenset({MemberState.FINISHED, MemberState.FAILED, MemberState.STOPPED})


def _unread_bytes(fd: int) -> int:
    """Bytes waiting in the pipe `fd` belongs to (FIONREAD works on either end)."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:40] or "member"


class SessionMember:
    """The streamer for one target; its input sample 0 is session frame `offset`."""

    def __init__(
        self,
        target: StreamTarget,
        *,
        offset: int,
        fifo_dir: Path,
        on_change: Callable[[SessionMember], None] | None = None,
        logger: logging.Logger | None = None,
        launcher: ForkServer | None = None,
    ) -> None:
        self.target = target
        self.offset = offset
        self.state = MemberState.CONNECTING
        self.error: str | None = None
        self.error_code: ErrorCode | str | None = None  # the streamer's, when it gave one
        self.start_ntp = 0
        self.paused_frame: int | None = None  # session frame to resume from
        self.on_change = on_change
        self.logger = logger or logging.getLogger(__name__)
        self.streamer = StreamerProcess(
            target,
            fifo_dir / f"{_safe_name(target.key)}-cmd",
            on_status=self._on_status,
            logger=self.logger,
            launcher=launcher,
        )
        self.bytes_written = 0
        self.frames_fed = 0  # flow frames handed to `feed`
        self._pipe: asyncio.StreamWriter | None = None  # into the streamer's stdin
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._input_closed = False
        self._paused = asyncio.Event()
        self._stop_task: asyncio.Task[None] | None = None
        self._holding = False
        self.expected_ntp: int | None = None  # the instant the next `playing` must report
        self.misaligned = False
        self.late_reason: str | None = None  # joined after the group's start, and why

    @property
    def key(self) -> str:
        """The target's key (unique in a session)."""
        return self.target.key

    @property
    def ended(self) -> bool:
        """Finished, failed or stopped."""
        return self.state in ENDED_STATES

    @property
    def started(self) -> StartFields | None:
        """The streamer's first `started`/`playing` event (actual_ntp, first_sample…).

        A member held before its start (see `StreamSession`) reports its start as `playing`.
        """
        return self.streamer.first_start

    @property
    def pids(self) -> list[int]:
        """Process ids of the streamer (for tests and diagnostics)."""
        return [] if self.streamer.pid is None else [self.streamer.pid]

    async def start(self, ntpstart: int) -> None:
        """Spawn the streamer (audible start `ntpstart`) reading our pipe."""
        self.start_ntp = ntpstart
        read_end, write_end = os.pipe()
        try:
            await self.streamer.spawn(ntpstart, read_end)
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        loop = asyncio.get_running_loop()
        pipe = os.fdopen(write_end, "wb", buffering=0)
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, pipe)
        self._pipe = asyncio.StreamWriter(transport, protocol, None, loop)
        self._writer = asyncio.create_task(self._write_loop(), name=f"feed-{self.key}")

    @property
    def frame_bytes(self) -> int:
        """Bytes per stereo frame of its input: s16le (4) or s24le (6, hi-res)."""
        return self.target.bits // 8 * 2

    def feed(self, chunk: bytes | None) -> None:
        """Queue an s16le/s24le chunk (None: end of input). Never blocks."""
        if self.ended or self._input_closed:
            return
        if chunk is None:
            self._input_closed = True
        else:
            self._queued_bytes += len(chunk)
            self.frames_fed += len(chunk) // self.frame_bytes
        self._queue.put_nowait(chunk)
        if self._queued_bytes > MAX_BACKLOG_S * self.target.rate * self.frame_bytes:
            self._fail("stopped reading audio (backlog)")

    def frames_in_streamer(self) -> int | None:
        """Frames fed to this member that the streamer already read (into its own buffer).

        Fed frames minus those still queued here or waiting in the pipe; the streamer reads its
        stdin eagerly once connected. None when unknown (not spawned, or closed).
        """
        pipe = self._pipe
        if pipe is None or pipe.transport.is_closing():
            return None
        pending = self._queued_bytes + pipe.transport.get_write_buffer_size()
        fileobj = pipe.transport.get_extra_info("pipe")
        try:
            pending += _unread_bytes(fileobj.fileno())
        except (OSError, ValueError, AttributeError):
            return None
        return self.frames_fed - pending // self.frame_bytes

    async def _write_loop(self) -> None:
        assert self._pipe is not None
        pipe = self._pipe
        while True:
            chunk = await self._queue.get()
            if chunk is None:
                pipe.close()
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(CLOSE_TIMEOUT_S):
                        await pipe.wait_closed()
                return
            self._queued_bytes -= len(chunk)
            try:
                pipe.write(chunk)
                timeout = None if self.state is MemberState.PAUSED else WRITE_TIMEOUT_S
                if self.streamer.connected_at is None:
                    timeout = CONNECT_TIMEOUT_S
                # Not wait_for: on 3.11 it can swallow our cancellation when the drain
                # completes in the same step, and this loop would then wait forever.
                async with asyncio.timeout(timeout):
                    await pipe.drain()
            except TimeoutError:
                self._fail("stopped reading audio (write timeout)")
                return
            except (BrokenPipeError, ConnectionResetError, OSError) as exc:
                # The streamer closed its input because it is exiting: its last status lines
                # say why (e.g. receiver_gone, which starts a rejoin). Let them arrive first.
                await self.streamer.wait_exit(EXIT_CAUSE_WAIT_S)
                self._fail(f"audio pipe closed ({exc.__class__.__name__})")
                return
            self.bytes_written += len(chunk)

    async def wait_connected(self, timeout: float = CONNECT_TIMEOUT_S) -> None:
        """Wait for the streamer's `connected`; StreamerError (member failed) otherwise."""
        try:
            await self.streamer.wait_connected(timeout)
        except StreamerError as exc:
            self._fail(str(exc))
            raise

    async def send(self, *lines: str) -> bool:
        """FIFO commands to the streamer; False when it cannot take them."""
        if self.ended:
            return False
        return await self.streamer.send(*lines)

    async def request_pause(self, timeout: float, *, hold: bool = False) -> int | None:
        """ACTION=PAUSE; the session frame it will resume from, None if it did not pause.

        `hold`: a pause before the first sample (the session's start); the member stays in
        CONNECTING rather than PAUSED.
        """
        self._holding = hold
        self._paused.clear()
        self.paused_frame = None
        if not await self.send("ACTION=PAUSE"):
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._paused.wait(), timeout)
        return self.paused_frame

    def _on_status(self, _proc: StreamerProcess, event: StatusEvent) -> None:
        if isinstance(event, StartFields) and not self.ended:
            self.state = MemberState.PLAYING
            self._holding = False
            self._check_instant(event)
        elif isinstance(event, Paused) and not self.ended:
            if not self._holding:
                self.state = MemberState.PAUSED
            self.paused_frame = event.sample + self.offset
            self._paused.set()
        elif isinstance(event, Error):
            self.error = event.message or event.code or "streamer error"
            self.error_code = event.code
            if event.code == ErrorCode.RECEIVER_GONE:
                self._fail(self.error)  # now, not when the process is reaped
                return
        elif isinstance(event, Exit) and not self.ended:
            clean = event.code == 0 and self._input_closed
            if clean:
                self.state = MemberState.FINISHED
            else:
                self.state = MemberState.FAILED
                self.error = self.error or f"streamer exited ({event.code})"
        self._notify()

    def _check_instant(self, event: StartFields) -> None:
        """A streamer that got its start/resume instant too late plays off the timeline.

        Input it skipped as late (`skipped_frames`) keeps the timeline: its first sample then
        plays that many frames after the instant (to within a nanosecond of rounding).
        """
        expected, self.expected_ntp = self.expected_ntp, None
        if expected is None:
            return
        on_timeline = ntp_add_frames(expected, event.skipped_frames, self.target.rate)
        if abs(ntp_diff_ns(event.actual_ntp, on_timeline)) > 1:
            self.misaligned = True
            self.logger.warning(
                "%s started at %s instead of %s: out of sync with the group",
                self.target.name,
                event.actual_ntp,
                expected,
            )

    def _fail(self, reason: str) -> None:
        if self.ended:
            return
        self.state = MemberState.FAILED
        self.error = reason
        self.logger.debug("%s: %s", self.target.name, reason)  # the session reports it
        self._notify()

    def _notify(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:
                self.logger.exception("member listener failed")

    async def wait_exit(self, timeout: float | None) -> bool:
        """Wait for the streamer to exit by itself; True if it did."""
        return await self.streamer.wait_exit(timeout) is not None or not self.streamer.running

    async def stop(self, *, graceful: bool = True) -> None:
        """Stop the streamer and close its pipe; nothing of this member is left running."""
        if self._stop_task is None:
            self._stop_task = asyncio.create_task(self._stop(graceful=graceful))
        await asyncio.shield(self._stop_task)

    async def _stop(self, *, graceful: bool) -> None:
        if not self.ended:
            self.state = MemberState.STOPPED
        writer = self._writer
        while writer is not None and not writer.done():
            writer.cancel()  # again if a cancel was swallowed on the way
            await asyncio.wait({writer}, timeout=CLOSE_TIMEOUT_S)
        if writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        await self.streamer.stop(graceful=graceful)
        if self._pipe is not None:
            self._pipe.close()
        self._notify()
