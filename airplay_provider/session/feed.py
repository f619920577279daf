"""The group session's audio path: source → one conversion → every member, on the timeline.

The source is read into a small queue (backpressure), converted once for the whole group
(flow PCM → s16le), kept in the ring buffer for late joiners and queued to every member, paced
so that at most `ahead_s` of audio is fed beyond what is audible (growing paced after the
start); silence is fed while the source has nothing. `SessionFeed` holds these methods of
`StreamSession` (group.py); the state they use lives in the session and is declared below.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Final

from airplay_provider.pcm_convert import flow_to_s16, flow_to_s24
from airplay_provider.protocol.timing import ntp_diff_ns
from airplay_provider.session.branch import FormatBranch
from airplay_provider.session.member import SessionMember
from airplay_provider.session.mixing import AnnouncementMixer
from airplay_provider.session.pcm_format import PcmFormat
from airplay_provider.session.reports import SessionState
from airplay_provider.session.timeline import (
    FEED_PIECE_S,
    FLOW_FRAME_BYTES,
    RAMP_RATE,
    RingBuffer,
    ahead_limit_s,
)

if TYPE_CHECKING:
    from airplay_provider.streamer.clock import SenderClock

LOW_WATER_S: Final = 0.25  # less than this fed ahead and no source audio: feed silence
WATCHDOG_CHUNK_S: Final = 0.1
SOURCE_QUEUE_CHUNKS: Final = 2
# Before T is chosen every member is fed this much audio and T waits until it is inside the
# streamers: a start with cold pipelines (a streamer just spawned, nothing read yet) underruns.
PRIME_S: Final = 0.5
END_GRACE_S: Final = 5.0


class SessionFeed:
    """The audio-path part of `StreamSession` (a mixin: no state of its own)."""

    # The session's state these methods read and write (set in `StreamSession.__init__`).
    source: AsyncIterator[bytes]
    logger: logging.Logger
    clock: SenderClock
    state: SessionState
    start_ntp: int
    ahead_s: float
    pcm_format: PcmFormat  # what members get: s16le 44.1 kHz, or s24le 48 kHz (the source's rate)
    members: dict[str, SessionMember]
    ring: RingBuffer
    fed: int
    mixer: AnnouncementMixer
    silence_frames: int
    pcm_taps: list[Callable[[int, bytes], None]]
    source_error: str | None
    _pending: collections.deque[bytes]
    _carry: bytes
    _source_done: bool
    _paused_at: int | None
    _stopping: bool
    _priming: bool
    _ramp: tuple[float, float] | None
    _wakeup: asyncio.Event
    _first_audio: asyncio.Event
    _space: asyncio.Event
    _drain_guard: asyncio.Task[None] | None

    def _notify(self) -> None:
        raise NotImplementedError

    def _branch_of(self, member: SessionMember) -> FormatBranch | None:
        raise NotImplementedError

    def _feed_branches(self, pcm: bytes | None) -> None:
        raise NotImplementedError

    def _check_end(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def _read_source(self) -> None:
        """Pull chunks from the source into a small queue (backpressure: 2 chunks)."""
        try:
            async for chunk in self.source:
                data = self._carry + chunk
                whole = len(data) - len(data) % FLOW_FRAME_BYTES
                self._carry = data[whole:]
                if not whole:
                    continue
                while len(self._pending) >= SOURCE_QUEUE_CHUNKS:
                    self._space.clear()
                    await self._space.wait()
                self._pending.append(data[:whole])
                self._first_audio.set()
                self._wakeup.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken source ends the session's input, not the process
            self.source_error = str(exc) or exc.__class__.__name__
            self.logger.warning("audio source failed: %s", self.source_error)
        finally:
            self._source_done = True
            self._first_audio.set()
            self._wakeup.set()
            closer = getattr(self.source, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()

    async def _fan_out(self) -> None:
        """Hand chunks to members in session order, paced on the timeline; silence on stalls."""
        while not self._stopping:
            self._wakeup.clear()
            if self._paused_at is not None:
                await self._wakeup.wait()
                continue
            if self._priming:  # no T yet: fill every member's pipeline with the first audio
                if self._pending and self.fed < PRIME_S * self.pcm_format.rate:
                    self._pending_to_members()
                else:
                    await self._wakeup.wait()
                continue
            ahead = self._ahead_s()
            limit = self._ahead_limit_s()
            if ahead > limit:
                # `ahead` shrinks at 1 s/s; the limit grows at RAMP_RATE while ramping.
                rate = 1.0 if limit >= self.ahead_s else 1.0 + RAMP_RATE
                await self._nap((ahead - limit) / rate)
            elif self._pending:
                self._pending_to_members()
                await asyncio.sleep(0)  # one piece per pass: the loop's other work goes on
            elif self._source_done and not self.mixer.busy_after(self.fed):
                self._end_input()  # (an announcement still due is carried by silence)
                return
            elif ahead > LOW_WATER_S:
                await self._nap(ahead - LOW_WATER_S)
            elif self.state is SessionState.STARTING and not self._first_audio.is_set():
                await self._wakeup.wait()  # T is not chosen before the first audio: no silence
            else:
                frames = round(WATCHDOG_CHUNK_S * self.pcm_format.rate)
                self.silence_frames += frames
                self._distribute(bytes(frames * FLOW_FRAME_BYTES))

    def _ahead_s(self) -> float:
        """Seconds of audio fed beyond the audible position."""
        return ntp_diff_ns(self.start_ntp, self.clock.ntp()) / 1e9 + self.fed / self.pcm_format.rate

    def _ahead_limit_s(self) -> float:
        if self._ramp is None:
            return self.ahead_s
        started, base = self._ramp
        limit = ahead_limit_s(base, asyncio.get_running_loop().time() - started, self.ahead_s)
        if limit >= self.ahead_s:
            self._ramp = None
        return limit

    def _pending_to_members(self) -> None:
        """Feed the next piece of source audio (≤ FEED_PIECE_S while starting, ramping or
        mixing an announcement: the mix is per sample in Python, ~65 ms a second of 24/48
        audio, so a whole source chunk at once held the event loop 0.1 s and more)."""
        chunk = self._pending.popleft()
        if self._priming or self._ramp is not None or self.mixer.busy_after(self.fed):
            piece = round(FEED_PIECE_S * self.pcm_format.rate) * FLOW_FRAME_BYTES
            if len(chunk) > piece:
                self._pending.appendleft(chunk[piece:])
                chunk = chunk[:piece]
        if len(self._pending) < SOURCE_QUEUE_CHUNKS:
            self._space.set()
        self._distribute(chunk)

    async def _nap(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    def _distribute(self, chunk: bytes) -> None:
        """Convert a flow chunk once for everyone, mix in announcements (in the session's
        format: branches resample the mixed audio); keep it for late joins; queue it."""
        convert = flow_to_s24 if self.pcm_format.bits == 24 else flow_to_s16
        pcm = self.mixer.mix(self.fed, convert(chunk))
        self.ring.append(self.fed, pcm)
        for tap in self.pcm_taps:
            tap(self.fed, pcm)
        self.fed += len(pcm) // self.pcm_format.bytes_per_frame
        for member in self.members.values():
            if self._branch_of(member) is None:
                member.feed(pcm)
        self._feed_branches(pcm)

    def _end_input(self) -> None:
        self.state = SessionState.DRAINING
        for member in self.members.values():
            if self._branch_of(member) is None:
                member.feed(None)
        self._feed_branches(None)  # (their members get theirs when the branch drained)
        self._arm_drain_guard()
        self._notify()
        self._check_end()

    def _arm_drain_guard(self) -> None:
        """Stop anyway if members have not finished `END_GRACE_S` after the last frame."""
        if self._drain_guard is not None:
            self._drain_guard.cancel()
        self._drain_guard = asyncio.create_task(self._guard_drain(), name="session-drain")

    async def _guard_drain(self) -> None:
        end = ntp_diff_ns(self.start_ntp, self.clock.ntp()) / 1e9 + self.fed / self.pcm_format.rate
        await asyncio.sleep(max(0.0, end) + END_GRACE_S)
        self.logger.warning("members did not finish after the end of the source; stopping")
        await self.stop()
