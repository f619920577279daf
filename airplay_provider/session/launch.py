"""Members of a session come and go through here: spawned held far in the future, connected,
held (ACTION=PAUSE) and, when asked, until their receiver's clock is ready; released on the
group timeline (NTPSTART=…, ACTION=PLAY); retried on another timing or format when the first
attempt says so. A mixin of `StreamSession` (session/group.py), which holds the state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Final

from airplay_provider.protocol.pcm_format import PcmFormat
from airplay_provider.protocol.ptp_readiness import ClockState
from airplay_provider.protocol.streamer_status import ErrorCode, StreamerError
from airplay_provider.protocol.txt import StreamingProtocol
from airplay_provider.session.branch import FormatBranch
from airplay_provider.session.clock import describe_clock, hold_until_ready
from airplay_provider.session.member import CONNECT_TIMEOUT_S, MemberState, SessionMember
from airplay_provider.session.pcm_format import CD_FORMAT, target_format
from airplay_provider.session.processes import StreamTarget
from airplay_provider.session.reports import JoinReport, TrackMetadata
from airplay_provider.session.timeline import LeadEstimator, RingBuffer, primed, start_instant
from airplay_provider.streamer.clock import SenderClock

PAUSE_TIMEOUT_S: Final = 3.0
PRIME_POLL_S: Final = 0.01
FAR_START_S: Final = 60.0  # where members wait (connected, held) until T is chosen
#: cliap2's error code when its receiver cannot take the format asked (`--bits 24` on a stream
#: that turned out realtime: its `/info` features lack buffered audio): retried at 16-bit.
FORMAT_UNSUPPORTED: Final = "format_unsupported"
# AirPlay 2 receivers buffer only `latency_ms` (250 ms): more room before T, or a start that
# reaches the streamer a little late loses its first frames (measured ~0.1 s inside MA).
AP2_EXTRA_LEAD_S: Final = 0.2


def ap2_extra_lead_s(members: Sequence[SessionMember]) -> float:
    """More lead when an AirPlay 2 member (a short receiver buffer) is released."""
    if any(m.target.protocol is StreamingProtocol.AIRPLAY2 for m in members):
        return AP2_EXTRA_LEAD_S
    return 0.0


class SessionLaunch:
    """Launching, holding, priming and releasing members (a mixin: its state lives in the
    session; listed among `StreamSession`'s bases before the mixins that only declare its
    methods, so their declarations never shadow these)."""

    members: dict[str, SessionMember]
    metadata: TrackMetadata | None
    pcm_format: PcmFormat
    clock: SenderClock
    lead: LeadEstimator
    logger: logging.Logger
    fed: int
    _ptp_stalled: set[str]
    _stopping: bool
    _source_done: bool
    _priming: bool

    @property
    def rate(self) -> int:
        raise NotImplementedError

    def _new_member(self, target: StreamTarget, *, offset: int) -> SessionMember:
        raise NotImplementedError

    async def _remove(self, member: SessionMember, *, graceful: bool) -> None:
        raise NotImplementedError

    def _without_hires(self, target: StreamTarget, reason: str) -> StreamTarget:
        raise NotImplementedError

    def _ring_and_fed(self, pcm_format: PcmFormat) -> tuple[RingBuffer, int]:
        raise NotImplementedError

    async def _open_branch(self, pcm_format: PcmFormat, first_frame: int) -> FormatBranch:
        raise NotImplementedError

    async def _send_metadata(self, member: SessionMember, metadata: TrackMetadata) -> None:
        raise NotImplementedError

    def _branches_caught_up(self) -> bool:
        raise NotImplementedError

    async def _timing_fallbacks(self, joins: list[JoinReport]) -> list[JoinReport]:
        """Start members whose receiver never followed our PTP clock again on NTP timing, fed
        the audio the first attempt had (the start is still priming: nothing played yet)."""
        retries = [
            j for j in joins if j.fallback is not None and j.fallback.key not in self.members
        ]
        if not retries or self._stopping:
            return joins
        members = []
        for join in retries:
            assert join.fallback is not None
            member = self._new_member(join.fallback, offset=0)
            if target_format(member.target) != self.pcm_format:
                await self._open_branch(target_format(member.target), 0)  # (still priming)
            ring, _ = self._ring_and_fed(target_format(member.target))
            member.offset = ring.start
            for chunk in ring.since(ring.start):
                member.feed(chunk)
            self.members[member.key] = member
            members.append(member)
        again = await asyncio.gather(*(self._launch(m, together=len(members)) for m in members))
        by_key = {join.key: join for join in again}
        return [by_key.get(join.key, join) if join in retries else join for join in joins]

    async def _wait_primed(
        self, members: Sequence[SessionMember], seconds: float, timeout: float
    ) -> bool:
        """Until each member's streamer holds `seconds` of audio (or all it was fed, once the
        source ended; a branch's members: once the branch put out what the group fed it);
        False after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            enough = self._source_done or self.fed >= seconds * self.rate or not self._priming
            if (
                enough
                and self._branches_caught_up()
                and all(
                    primed(m.frames_in_streamer(), m.frames_fed, round(seconds * m.target.rate))
                    for m in members
                    if not m.ended
                )
            ):
                return True
            if loop.time() >= deadline:
                self.logger.info("start: members' input not primed after %.1f s", timeout)
                return False
            await asyncio.sleep(PRIME_POLL_S)

    async def _launch(
        self, member: SessionMember, *, together: int = 1, clock: bool = True
    ) -> JoinReport:
        """Spawn a member held far in the future, wait for `connected`, hold it (PAUSE) and,
        with `clock`, until its receiver's clock is ready (the start settles all clocks at once,
        late_clock.py). The caller releases it with `_release` once T is known."""
        far = start_instant(self.clock.ntp(), FAR_START_S)
        join = JoinReport(member.key, member.offset, 0, name=member.target.name)
        try:
            await member.start(far)
            await member.wait_connected(CONNECT_TIMEOUT_S)
            if await member.request_pause(PAUSE_TIMEOUT_S, hold=True) is None:
                raise StreamerError(
                    ErrorCode.NO_HOLD, f"{member.target.name}: did not take ACTION=PAUSE"
                )
        except StreamerError as exc:
            join.error = str(exc)
            if exc.code == ErrorCode.NTP_REFUSED and member.key in self._ptp_stalled:
                # its PTP stalled and it refuses NTP: PTP after all, on the fixed hold
                join.fallback = dataclasses.replace(member.target, timing="ptp")
            elif exc.code == FORMAT_UNSUPPORTED and member.target.bits != CD_FORMAT.bits:
                join.fallback = self._without_hires(member.target, str(exc))
            await self._remove(member, graceful=False)
            return join
        streamer = member.streamer
        measure = member.key not in self._ptp_stalled
        event = await hold_until_ready(streamer, measure=measure) if clock else None
        stalled = (
            event.state
            if event and event.state in (ClockState.STALLED, ClockState.OWN_CLOCK)
            else ""
        )
        if event is not None:  # "Kitchen: PTP clock ready after 3.4 s (27 probes)"
            level = logging.WARNING if stalled else logging.INFO
            self.logger.log(level, "%s", describe_clock(member.target.name, event))
        if stalled and member.target.timing == "auto" and not member.ended:
            # (a player set to PTP timing plays on anyway: it insists)
            join.error = f"{member.target.name}: PTP clock {stalled}; retrying on NTP timing"
            join.fallback = dataclasses.replace(member.target, timing="ntp")
            self._ptp_stalled.add(member.key)
            await self._remove(member, graceful=False)
            return join
        if streamer.connected_at is not None:
            join.connect_s = streamer.connected_at - streamer.spawned_at
            self.lead.record(join.connect_s, together)
        return join

    async def _release(self, member: SessionMember, ntp: int) -> None:
        """Let a held member play: its first unplayed frame becomes audible at `ntp`.

        Metadata and artwork follow the PLAY: a streamer runs its commands in order, and an
        artwork upload queued before the PLAY could make it miss its instant.
        """
        member.start_ntp = member.expected_ntp = ntp
        if not await member.send(f"NTPSTART={ntp}", "ACTION=PLAY"):
            member.state = MemberState.FAILED  # gone meanwhile: the exit handler removes it
        elif self.metadata is not None:
            await self._send_metadata(member, self.metadata)
