"""One member of a group session: its ffmpeg (flow PCM → s16le) piped straight into its
streamer process, fed from a private queue by its own writer task.

The session never waits for a member: it queues chunks; the member's writer task writes them
into ffmpeg with a timeout. A member that stops reading, or whose streamer dies, fails on its
own and tells the session through `on_change`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Final

from airplay_provider.streamers import StreamerError, StreamerProcess, StreamTarget

WRITE_TIMEOUT_S: Final = 5.0
CONNECT_TIMEOUT_S: Final = 10.0
CLOSE_TIMEOUT_S: Final = 2.0
MAX_BACKLOG_BYTES: Final = 12 * 44100 * 8  # 12 s of flow PCM queued but not written
# Without a tiny probe size ffmpeg holds back its first ~5 MB of raw input (>3 s of audio)
# before writing anything: a slow or stalled source would then underrun the streamer.
MEMBER_FFMPEG_ARGS: Final = (
    "-hide_banner",
    "-loglevel",
    "error",
    "-probesize",
    "32",
    "-analyzeduration",
    "0",
    "-f",
    "f32le",
    "-ar",
    "44100",
    "-ac",
    "2",
    "-i",
    "pipe:0",
    "-f",
    "s16le",
    "-ar",
    "44100",
    "-ac",
    "2",
    "pipe:1",
)


class MemberState(enum.StrEnum):
    """Life cycle of a member."""

    CONNECTING = "connecting"
    PLAYING = "playing"
    PAUSED = "paused"
    FINISHED = "finished"  # played to the end of the source
    FAILED = "failed"
    STOPPED = "stopped"


ENDED_STATES: Final = frozenset({MemberState.FINISHED, MemberState.FAILED, MemberState.STOPPED})


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:40] or "member"


class SessionMember:
    """ffmpeg + streamer for one target; input sample 0 is session frame `offset`."""

    def __init__(
        self,
        target: StreamTarget,
        *,
        offset: int,
        fifo_dir: Path,
        on_change: Callable[[SessionMember], None] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.target = target
        self.offset = offset
        self.state = MemberState.CONNECTING
        self.error: str | None = None
        self.start_ntp = 0
        self.paused_frame: int | None = None  # session frame to resume from
        self.on_change = on_change
        self.logger = logger or logging.getLogger(__name__)
        self.streamer = StreamerProcess(
            target,
            fifo_dir / f"{_safe_name(target.key)}-cmd",
            on_status=self._on_status,
            logger=self.logger,
        )
        self.bytes_written = 0
        self._ffmpeg: asyncio.subprocess.Process | None = None
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued_bytes = 0
        self._writer: asyncio.Task[None] | None = None
        self._input_closed = False
        self._paused = asyncio.Event()
        self._stop_task: asyncio.Task[None] | None = None
        self._holding = False
        self.expected_ntp: int | None = None  # the instant the next `playing` must report
        self.misaligned = False

    @property
    def key(self) -> str:
        """The target's key (unique in a session)."""
        return self.target.key

    @property
    def ended(self) -> bool:
        """Finished, failed or stopped."""
        return self.state in ENDED_STATES

    @property
    def started(self) -> dict[str, str] | None:
        """Fields of the streamer's first `started`/`playing` line (actual_ntp, first_sample…).

        A member held before its start (see `StreamSession`) reports its start as `playing`.
        """
        for _, event, fields in self.streamer.statuses:
            if event in ("started", "playing"):
                return fields
        return None

    @property
    def pids(self) -> list[int]:
        """Process ids of the streamer and ffmpeg (for tests and diagnostics)."""
        pids = [self.streamer.pid, self._ffmpeg.pid if self._ffmpeg else None]
        return [pid for pid in pids if pid is not None]

    async def start(self, ntpstart: int) -> None:
        """Spawn the streamer (audible start `ntpstart`) and the ffmpeg feeding it."""
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise StreamerError("no_ffmpeg", "ffmpeg not found (install ffmpeg)")
        self.start_ntp = ntpstart
        read_end, write_end = os.pipe()
        try:
            await self.streamer.spawn(ntpstart, read_end)
            self._ffmpeg = await asyncio.create_subprocess_exec(
                ffmpeg,
                *MEMBER_FFMPEG_ARGS,
                stdin=asyncio.subprocess.PIPE,
                stdout=write_end,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise StreamerError("spawn_failed", f"cannot start ffmpeg: {exc}") from exc
        finally:
            os.close(read_end)
            os.close(write_end)
        self._writer = asyncio.create_task(self._write_loop(), name=f"feed-{self.key}")

    def feed(self, chunk: bytes | None) -> None:
        """Queue a flow-PCM chunk (None: end of input). Never blocks."""
        if self.ended or self._input_closed:
            return
        if chunk is None:
            self._input_closed = True
        else:
            self._queued_bytes += len(chunk)
        self._queue.put_nowait(chunk)
        if self._queued_bytes > MAX_BACKLOG_BYTES:
            self._fail("stopped reading audio (backlog)")

    async def _write_loop(self) -> None:
        assert self._ffmpeg is not None
        assert self._ffmpeg.stdin is not None
        stdin = self._ffmpeg.stdin
        while True:
            chunk = await self._queue.get()
            if chunk is None:
                stdin.close()
                with contextlib.suppress(OSError, TimeoutError):
                    await asyncio.wait_for(stdin.wait_closed(), CLOSE_TIMEOUT_S)
                return
            self._queued_bytes -= len(chunk)
            try:
                stdin.write(chunk)
                timeout = None if self.state is MemberState.PAUSED else WRITE_TIMEOUT_S
                if self.streamer.connected_at is None:
                    timeout = CONNECT_TIMEOUT_S
                # Not asyncio.wait_for: on 3.11 it swallows a cancel that lands as drain()
                # completes, and the writer then waited forever for a chunk (stop hung).
                async with asyncio.timeout(timeout):
                    await stdin.drain()
            except TimeoutError:
                self._fail("stopped reading audio (write timeout)")
                return
            except (BrokenPipeError, ConnectionResetError, OSError) as exc:
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

    def _on_status(self, _proc: StreamerProcess, event: str, fields: dict[str, str]) -> None:
        if event in ("started", "playing") and not self.ended:
            self.state = MemberState.PLAYING
            self._holding = False
            self._check_instant(fields)
        elif event == "paused" and not self.ended:
            if not self._holding:
                self.state = MemberState.PAUSED
            with contextlib.suppress(KeyError, ValueError):
                self.paused_frame = int(fields["sample"]) + self.offset
            self._paused.set()
        elif event == "error":
            self.error = fields.get("message") or fields.get("code") or "streamer error"
        elif event == "exit" and not self.ended:
            clean = fields.get("code") == "0" and self._input_closed
            if clean:
                self.state = MemberState.FINISHED
            else:
                self.state = MemberState.FAILED
                self.error = self.error or f"streamer exited ({fields.get('code')})"
        self._notify()

    def _check_instant(self, fields: dict[str, str]) -> None:
        """A streamer that got its start/resume instant too late plays off the timeline."""
        expected, self.expected_ntp = self.expected_ntp, None
        if expected is not None and fields.get("actual_ntp") != str(expected):
            self.misaligned = True
            self.logger.warning(
                "%s started at %s instead of %s: out of sync with the group",
                self.target.name,
                fields.get("actual_ntp"),
                expected,
            )

    def _fail(self, reason: str) -> None:
        if self.ended:
            return
        self.state = MemberState.FAILED
        self.error = reason
        self.logger.warning("%s: %s", self.target.name, reason)
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
        """Stop the streamer and kill ffmpeg; nothing of this member is left running."""
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
        ffmpeg = self._ffmpeg
        if ffmpeg is not None:
            if ffmpeg.stdin is not None:
                ffmpeg.stdin.close()
            if ffmpeg.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    ffmpeg.kill()
            await ffmpeg.wait()
        self._notify()
