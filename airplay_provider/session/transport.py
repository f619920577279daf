"""Pause and resume of a `StreamSession`: ACTION=PAUSE to every member, then one new common
timeline on which each member resumes from its own first unplayed frame (NTPSTART=…,
ACTION=PLAY), so the group stays aligned. A mixin of `StreamSession` (session/group.py), which
holds the state.
"""

from __future__ import annotations

import asyncio
import contextlib

from airplay_provider.session.launch import PAUSE_TIMEOUT_S, ap2_extra_lead_s
from airplay_provider.session.member import SessionMember
from airplay_provider.session.processes import StreamTarget
from airplay_provider.session.reports import JoinReport, SessionError, SessionState
from airplay_provider.session.timeline import RESUME_LEAD_S, position_at, resume_plan
from airplay_provider.streamer.clock import SenderClock


class SessionTransport:
    """Pause and resume (a mixin: its state lives in the session; listed last among
    `StreamSession`'s bases, so these declarations never shadow)."""

    state: SessionState
    clock: SenderClock
    start_ntp: int
    fed: int
    _paused_at: int | None
    _state_before_pause: SessionState
    _drain_guard: asyncio.Task[None] | None
    _wakeup: asyncio.Event
    _joins_after_resume: list[StreamTarget]

    @property
    def rate(self) -> int:
        raise NotImplementedError

    @property
    def active_members(self) -> list[SessionMember]:
        raise NotImplementedError

    async def add_member(self, target: StreamTarget) -> JoinReport:
        raise NotImplementedError

    async def _remove(self, member: SessionMember, *, graceful: bool) -> None:
        raise NotImplementedError

    def _arm_drain_guard(self) -> None:
        raise NotImplementedError

    async def _send_progress(self) -> None:
        raise NotImplementedError

    def _notify(self) -> None:
        raise NotImplementedError

    async def pause(self) -> None:
        """Pause every member; each keeps its unplayed audio for the resume."""
        if self.state not in (SessionState.PLAYING, SessionState.DRAINING):
            return
        self._state_before_pause = self.state
        if self._drain_guard is not None:
            self._drain_guard.cancel()
        self.state = SessionState.PAUSED
        now = position_at(self.clock.ntp(), self.start_ntp, self.rate)
        self._paused_at = max(0, min(self.fed, now))
        self._wakeup.set()
        members = self.active_members
        frames = await asyncio.gather(*(m.request_pause(PAUSE_TIMEOUT_S) for m in members))
        for member, frame in zip(members, frames, strict=True):
            if frame is None:  # it would play on out of sync: drop it
                await self._remove(member, graceful=False)
        self._notify()

    async def resume(self) -> None:
        """Resume all members on one new timeline (each from its own first unplayed frame)."""
        if self.state is not SessionState.PAUSED:
            return
        members = [m for m in self.active_members if m.paused_frame is not None]
        plan = resume_plan(
            self.clock.ntp(),
            {m.key: (m.paused_frame or 0, m.target.sync_adjust_ms) for m in members},
            RESUME_LEAD_S + ap2_extra_lead_s(members),
            self.rate,
            {m.key: m.target.rate for m in members},
        )
        if plan is not None:
            self.start_ntp = plan.start_ntp
            for member in members:
                member.expected_ntp = plan.member_ntp[member.key]
            await asyncio.gather(
                *(m.send(f"NTPSTART={plan.member_ntp[m.key]}", "ACTION=PLAY") for m in members)
            )
        self._paused_at = None
        self.state = self._state_before_pause
        if self.state is SessionState.DRAINING:
            self._arm_drain_guard()
        self._wakeup.set()
        joins, self._joins_after_resume = self._joins_after_resume, []
        for target in joins:
            with contextlib.suppress(SessionError):
                await self.add_member(target)
        await self._send_progress()
        self._notify()
