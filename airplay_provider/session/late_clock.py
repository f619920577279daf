"""A member whose receiver's clock is not ready does not hold the group's start: it joins late.

At the start every member connects and is held (group.py). A PTP member may be scheduled only
once its receiver follows our clock (`session/clock.py`); the group's start instant T is chosen
when the *other* members are ready, holding at most `CLOCK_HOLD_S` beyond the last of them for
a member still locking. A member not ready by then is set aside (held, connected, fed nothing
more) and joins late at its readiness instant, still on the group timeline: its streamer gets
the session audio it lacks from the ring buffer and `NTPSTART` of its own frame 0 on the group
timeline; the streamer skips what is already too late (never shifts it). A member whose clock
stalls (never answered, or keeps its own) is restarted on NTP timing (player timing `auto`)
and joins late the usual way (`add_member`).

"Ready" for the others includes the source's first audio (T waits for it anyway). How long a
late clock holds the start: a member that joins late loses the audio from T to its join, while
holding costs every room that wait. So a receiver that shows it is locking to our clock (Delay_Req
probes, or nqptp's answer to our Announce) and says when it will be ready is waited for up to
`CLOCK_HOLD_S` beyond the others: that covers a Sonos (first probe ~1.1 s after SETPEERS, ready
2.3 s later), so a group of working receivers starts together, from its first frame. A receiver
that has said nothing `COLD_WAIT_S` after `connected` (a probing one would have probed by then)
holds nobody longer: a TV that advertises PTP and never answers it costs the group that 1.6 s,
not the 5 s stall timeout. `decide` is the sans-I/O rule; `SessionLateClocks` holds the
session's side (methods of `StreamSession`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from airplay_provider.protocol.ptp_readiness import ClockState
from airplay_provider.protocol.streamer_status import ClockStatus
from airplay_provider.session.clock import CLOCK_POLL_S, CLOCK_WAIT_S, describe_clock, timing_of
from airplay_provider.session.member import SessionMember
from airplay_provider.session.pcm_format import PcmFormat, target_format
from airplay_provider.session.processes import StreamerProcess, StreamTarget
from airplay_provider.session.reports import JoinReport, SessionState
from airplay_provider.session.timeline import PTP_SETTLE_S, RingBuffer, member_start_ntp

#: Hold the group's start at most this long beyond its other members for a member still locking.
CLOCK_HOLD_S: Final = 3.5
FIRST_AUDIO_WAIT_S: Final = 3.0  # T waits this long, at most, for the source's first audio
#: A passive follower answers our Announce at once after SETPEERS; a probing one sends its first
#: Delay_Req ~1.1 s after it (field). A receiver still silent this long after `connected` (which
#: comes after SETPEERS) is not waited for.
COLD_WAIT_S: Final = 1.6
_FAILED_STATES: Final = frozenset({ClockState.STALLED.value, ClockState.OWN_CLOCK.value})
_WAITING_STATES: Final = frozenset(
    {
        ClockState.COLD.value,
        ClockState.PROBING.value,
        ClockState.FOLLOWING.value,
        ClockState.LOCKING.value,  # we follow its own clock (a HomePod), not locked yet
    }
)


@dataclass(frozen=True)
class ClockView:
    """A connected member's clock for the start: `ready` (may be scheduled now), `failed` (its
    receiver will not follow our clock), else waiting: ready at monotonic `ready_at` if known;
    a receiver that said nothing yet is waited for until `hold_until`."""

    ready: bool = False
    failed: bool = False
    ready_at: float | None = None
    hold_until: float | None = None


def _last_clock(streamer: StreamerProcess) -> tuple[float, ClockStatus] | None:
    for at, event in reversed(streamer.statuses):
        if isinstance(event, ClockStatus):
            return at, event
    return None


def clock_view(streamer: StreamerProcess, now: float, *, measure: bool = True) -> ClockView:
    """Where a connected member's clock is, from its streamer's `[STATUS] clock` events.

    Not PTP: ready. Not measured (`measure` False: it stalled before; or the daemon cannot
    tell): ready `PTP_SETTLE_S` after `connected`. Nothing heard yet: waited for until
    `COLD_WAIT_S` after `connected`. A player insisting on PTP timing is ready even
    when its receiver does not follow (it plays on regardless, as before)."""
    if timing_of(streamer) != "ptp":
        return ClockView(ready=True)
    connected = streamer.connected_at or now
    settle = connected + PTP_SETTLE_S
    last = _last_clock(streamer) if measure else None
    if measure and (last is None or last[1].state == ClockState.COLD):
        return ClockView(hold_until=connected + COLD_WAIT_S)
    if last is None or last[1].state == ClockState.UNMEASURED:
        return ClockView(ready=now >= settle, ready_at=settle)
    at, event = last
    if event.state in _FAILED_STATES:
        return ClockView(ready=streamer.target.timing == "ptp", failed=True)
    if event.state in _WAITING_STATES:
        eta = None if event.ready_in_ms is None else at + event.ready_in_ms / 1000
        return ClockView(ready_at=eta)
    return ClockView(ready=True)  # ready, or a state a newer streamer knows


def decide(
    views: Mapping[str, ClockView], others_ready_at: float | None, now: float, hold_s: float
) -> tuple[list[str], list[str]] | None:
    """(start now, join late) once the start need not wait longer; None: wait on.

    Nobody ready yet: wait for the first ready member, or until all failed (then nobody
    starts: the caller restarts them on NTP). Somebody ready since `others_ready_at`: a
    waiting member is held until its `hold_until` (nothing heard from it yet), or while it
    will be ready by `others_ready_at + hold_s` (when unknown: until then); else it joins
    late, as a failed one does.
    """
    ready = [key for key, view in views.items() if view.ready]
    waiting = {k: v for k, v in views.items() if not v.ready and not v.failed}
    late = [key for key, view in views.items() if not view.ready]
    if not ready:
        return ([], late) if not waiting else None
    deadline = (others_ready_at if others_ready_at is not None else now) + hold_s
    for view in waiting.values():
        if view.hold_until is not None:
            if now < min(view.hold_until, deadline):
                return None
        elif now < deadline and (view.ready_at is None or view.ready_at <= deadline):
            return None
    return ready, late


class SessionLateClocks:
    """The clock-readiness part of `StreamSession` (a mixin: its state lives in the session)."""

    members: dict[str, SessionMember]
    waiting: dict[str, SessionMember]  # set aside at the start until their clock is ready
    departed: list[SessionMember]
    state: SessionState
    start_ntp: int
    ring: RingBuffer
    logger: logging.Logger
    clock_hold_s: float
    _ptp_stalled: set[str]
    _joins_after_resume: list[StreamTarget]
    _rejoining: set[asyncio.Task[None]]
    _first_audio: asyncio.Event
    _stopping: bool

    async def add_member(self, target: StreamTarget) -> JoinReport:
        raise NotImplementedError

    def _ring_and_fed(self, pcm_format: PcmFormat) -> tuple[RingBuffer, int]:
        raise NotImplementedError

    async def _release(self, member: SessionMember, ntp: int) -> None:
        raise NotImplementedError

    def _notify(self) -> None:
        raise NotImplementedError

    def _fell_back(self, join: JoinReport, member: SessionMember) -> JoinReport:
        """A member whose receiver never followed our PTP clock: NTP timing instead (`auto`)."""
        event = member.streamer.last(ClockStatus)
        if event is not None:
            self.logger.warning("%s", describe_clock(member.target.name, event))
        state = event.state if event is not None else "stalled"
        join.error = f"{member.target.name}: PTP clock {state}; retrying on NTP timing"
        join.fallback = dataclasses.replace(member.target, timing="ntp")
        self._ptp_stalled.add(member.key)
        return join

    def _views(self, members: Sequence[SessionMember]) -> dict[str, ClockView]:
        now = time.monotonic()
        return {
            m.key: clock_view(m.streamer, now, measure=m.key not in self._ptp_stalled)
            for m in members
            if not m.ended
        }

    async def _settle_clocks(
        self, members: Sequence[SessionMember]
    ) -> tuple[list[SessionMember], list[SessionMember]]:
        """Wait until the start need not wait for any more clocks: (start now, join late)."""
        by_key = {m.key: m for m in members}
        loop = asyncio.get_running_loop()
        give_up = loop.time() + CLOCK_WAIT_S
        no_audio_until = loop.time() + FIRST_AUDIO_WAIT_S
        ready_count, others_at = 0, None
        while True:
            views = self._views(members)
            now = time.monotonic()
            count = sum(view.ready for view in views.values())
            if count != ready_count:  # the last of the others became ready now
                ready_count, others_at = count, now
            if not self._first_audio.is_set() and loop.time() < no_audio_until:
                others_at = now  # the others need the source's first audio too
            split = decide(views, others_at, now, self.clock_hold_s)
            if split is None and (loop.time() >= give_up or self._stopping):
                # never a final word: start them on the fixed hold (long passed), as before
                split = (
                    [k for k, v in views.items() if not v.failed],
                    [k for k, v in views.items() if v.failed],
                )
            if split is not None:
                go, late = split
                for key in go:  # "Kitchen: PTP clock ready after 3.4 s (27 probes)"
                    last = _last_clock(by_key[key].streamer)
                    if last is not None and last[1].state not in _WAITING_STATES:
                        level = logging.WARNING if last[1].state in _FAILED_STATES else logging.INFO
                        text = describe_clock(by_key[key].target.name, last[1])
                        self.logger.log(level, "%s", text)
                return [by_key[k] for k in go], [by_key[k] for k in late]
            await asyncio.sleep(CLOCK_POLL_S)

    def _set_aside(self, member: SessionMember, join: JoinReport) -> None:
        """Take a member whose clock is not ready out of the start; it joins late by itself."""
        label = _last_clock(member.streamer)
        state = label[1].state if label is not None else "cold"
        join.late = f"its PTP clock was {state} when the others were ready"
        member.late_reason = join.late
        self.members.pop(member.key, None)
        self.waiting[member.key] = member
        self.logger.info("%s: %s; joins late once ready", member.target.name, join.late)
        task = asyncio.create_task(self._join_when_ready(member, join), name=f"late-{member.key}")
        self._rejoining.add(task)
        task.add_done_callback(self._rejoining.discard)

    async def _join_when_ready(self, member: SessionMember, join: JoinReport) -> None:
        """Release a set-aside member at its readiness, on the group timeline; a stalled one
        comes back on NTP timing through `add_member`."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + CLOCK_WAIT_S
        view = ClockView()
        while not self._stopping and not member.ended:
            view = self._views([member]).get(member.key, ClockView())
            if self.state is not SessionState.STARTING and (
                view.ready or view.failed or loop.time() >= give_up
            ):
                break  # (never a final word: the fixed hold has long passed)
            await asyncio.sleep(CLOCK_POLL_S)
        last = _last_clock(member.streamer)
        if last is not None and (view.ready or view.failed):
            level = logging.WARNING if view.failed else logging.INFO
            self.logger.log(level, "%s", describe_clock(member.target.name, last[1]))
        if self._stopping or member.ended or self.state is not SessionState.PLAYING:
            resumes = self.state is SessionState.PAUSED and not member.ended  # (not removed)
            await self._drop_waiting(member)
            if resumes and not self._stopping:
                self._joins_after_resume.append(member.target)  # a fresh join at the resume
            return
        if view.failed and not view.ready:  # never followed our clock: NTP timing instead
            await self._drop_waiting(member)
            self._ptp_stalled.add(member.key)
            state = last[1].state if last is not None else "stalled"
            fallback = dataclasses.replace(member.target, timing="ntp")
            again = await self.add_member(fallback)
            join.error = again.error
            if again.error is not None:
                self.logger.warning("%s: no late join on NTP: %s", member.target.name, again.error)
            join.offset, join.start_ntp = again.offset, again.start_ntp
            join.late = f"its PTP clock {state}; on NTP timing"
            back = self.members.get(member.key)
            if back is not None:
                back.late_reason = join.late
            self._notify()
            return
        await self._release_late(member, join)

    async def _release_late(self, member: SessionMember, join: JoinReport) -> None:
        """Its input continues from the ring buffer; its frame `offset` plays at the instant it
        has on the group timeline (in the past: the streamer skips what is too late)."""
        next_frame = member.offset + member.frames_fed
        pcm_format = target_format(member.target)  # (a branch member: its ring, its frames)
        ring, _ = self._ring_and_fed(pcm_format)
        if next_frame < ring.start:  # waited longer than the ring holds: start afresh
            await self._drop_waiting(member)
            again = await self.add_member(member.target)
            join.error, join.offset, join.start_ntp = again.error, again.offset, again.start_ntp
            return
        # No await until it is registered: the fan-out cannot slip a chunk between.
        for chunk in ring.since(next_frame):
            member.feed(chunk)
        del self.waiting[member.key]
        self.members[member.key] = member
        join.start_ntp = member_start_ntp(
            self.start_ntp, member.offset, member.target.sync_adjust_ms, pcm_format.rate
        )
        await self._release(member, join.start_ntp)
        self.logger.info("%s joined late: %s", member.target.name, member.late_reason)
        self._notify()

    async def _drop_waiting(self, member: SessionMember) -> None:
        if self.waiting.pop(member.key, None) is member:
            self.departed.append(member)
        await member.stop(graceful=False)
        self._notify()
