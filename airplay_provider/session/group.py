"""StreamSession: one group playing one source in sync (docs/ARCHITECTURE.md §4–5).

Every member gets the same start instant T (plus its own sync_adjust), so session frame s is
audible at ``T + s/rate`` everywhere (one format per group, `pcm_format`: 16-bit/44.1 kHz, or
24-bit/48 kHz when every member plays hi-res; the source then delivers 48 kHz). T is as early
as the members can honour: they are spawned with a far start instant and held (ACTION=PAUSE)
once connected, while the first `PRIME_S` of audio is fed into each streamer. Only when every
member is connected *and* holds that audio is T set `release_lead_s(n)` ahead and sent to all
with NTPSTART=…, ACTION=PLAY: a start on cold pipelines (N streamers just spawned) underruns.
After T the audio fed ahead grows paced (`ahead_limit_s`), never seconds at once. Late joiners
connect the same way, get the ring buffer from the first frame p they can still play
(`JOIN_LEAD_S` ahead), are primed, and start at ``T + p``.

The fan-out task paces the source against that timeline (never more than `ahead_s` seconds
of audio fed ahead of what is audible), feeds silence when the source stalls (before the
first chunk and later), keeps a ring buffer for late joins and hands identical chunks to every
member's queue; members write on their own tasks, so a stuck one never stalls the others.
Pause sends ACTION=PAUSE to all; resume gives each member the instant its own first unplayed
frame has on a new common timeline (NTPSTART=…, ACTION=PLAY), so the group stays aligned
(transport.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Final

from airplay_provider.session.announcing import SessionAnnouncements
from airplay_provider.session.branch import FormatBranch
from airplay_provider.session.branching import SessionBranches
from airplay_provider.session.feed import PRIME_S, SessionFeed
from airplay_provider.session.late_clock import (
    CLOCK_HOLD_S,
    FIRST_AUDIO_WAIT_S,
    SessionLateClocks,
)
from airplay_provider.session.launch import SessionLaunch, ap2_extra_lead_s
from airplay_provider.session.member import MemberState, SessionMember
from airplay_provider.session.metadata import SessionMetadata
from airplay_provider.session.mixing import AnnouncementMixer
from airplay_provider.session.pcm_format import CD_FORMAT, PcmFormat, target_format
from airplay_provider.session.processes import StreamTarget
from airplay_provider.session.rejoin import REJOIN_CODES, REJOIN_DELAYS_S, Rejoin, SessionRejoins
from airplay_provider.session.reports import (
    JoinReport,
    SessionError,
    SessionState,
    StartReport,
    TrackMetadata,
)
from airplay_provider.session.timeline import (
    RESUME_LEAD_S,
    LeadEstimator,
    RingBuffer,
    join_position,
    member_start_ntp,
    position_at,
    release_lead_s,
    resume_plan,
    start_instant,
)
from airplay_provider.session.transport import SessionTransport
from airplay_provider.streamer.clock import SenderClock
from airplay_provider.streamer_launcher import ForkServer

AHEAD_S: Final = 2.5  # audio fed ahead of the audible position, at most
PRIME_TIMEOUT_S: Final = 2.0  # at most this long for the source and pipelines (then: silence)
# A late joiner's first frame is audible this long after it connected: priming its pipeline
# (at most JOIN_LEAD_S − RESUME_LEAD_S) plus the release lead.
JOIN_LEAD_S: Final = 0.6
JOIN_PRIME_S: Final = 0.5
#: Set (True) on the log record of a member's failure: a host that shows failures itself (the
#: `play` command) can leave these records out.
MEMBER_FAILURE: Final = "airplay_member_failure"

__all__ = [  # the report types are defined in reports.py; callers import them from here too
    "MEMBER_FAILURE",
    "JoinReport",
    "SessionError",
    "SessionState",
    "StartReport",
    "StreamSession",
    "TrackMetadata",
]

#: Shared by all sessions of this process: connect times measured so far.
DEFAULT_LEAD = LeadEstimator()


class StreamSession(
    SessionBranches,
    SessionFeed,
    SessionAnnouncements,
    SessionMetadata,
    SessionLaunch,  # before the mixins that only declare its methods (they must not shadow)
    SessionRejoins,
    SessionLateClocks,
    SessionTransport,  # last: it only declares what it calls
):
    """One source, several members, one timeline."""

    def __init__(
        self,
        source: AsyncIterator[bytes],
        *,
        lead: LeadEstimator | None = None,
        ring_seconds: float = 10.0,
        ahead_s: float = AHEAD_S,
        logger: logging.Logger | None = None,
        launcher: ForkServer | None = None,
        rejoin_delays_s: Sequence[float] = REJOIN_DELAYS_S,
        clock_hold_s: float = CLOCK_HOLD_S,
        pcm_format: PcmFormat = CD_FORMAT,
    ) -> None:
        self.source = source  # flow PCM (f32le stereo) at `pcm_format.rate`
        self.pcm_format = pcm_format
        #: Members that wanted hi-res but play `pcm_format`, and why (for status lines).
        self.format_notes: dict[str, str] = {}
        #: Members at another format (16-bit/44.1 kHz in a hi-res group): one branch each.
        self.branches: dict[PcmFormat, FormatBranch] = {}
        self.clock_hold_s = clock_hold_s  # the start waits this long at most for a late clock
        self.waiting: dict[str, SessionMember] = {}  # set aside until their clock is ready
        self.rejoin_delays_s = tuple(rejoin_delays_s)
        self.rejoins: dict[str, Rejoin] = {}  # members whose receiver went away (latest each)
        self.launcher = launcher  # fork streamers from it (None: run bin/cliraop...)
        self.lead = lead or DEFAULT_LEAD
        self.ahead_s = ahead_s
        self.logger = logger or logging.getLogger(__name__)
        self.clock = SenderClock()
        self.state = SessionState.IDLE
        self.start_ntp = 0
        self.members: dict[str, SessionMember] = {}
        self.departed: list[SessionMember] = []
        self._ptp_stalled: set[str] = set()  # members whose receiver never followed our PTP
        # what members get, in the group's format
        self.ring = RingBuffer(
            ring_seconds, frame_bytes=pcm_format.bytes_per_frame, rate=pcm_format.rate
        )
        self.fed = 0  # session frames handed to members so far
        self.mixer = AnnouncementMixer(pcm_format)  # announcements over the music (announcing.py)
        self.silence_frames = 0  # of those, silence fed while the source had nothing
        self.source_error: str | None = None
        self.metadata: TrackMetadata | None = None
        self.track_origin_s = 0.0  # session position where the current track began
        self.listeners: list[Callable[[StreamSession], None]] = []
        # (first session frame, PCM in `pcm_format`): what the members get, e.g. for listen_along
        self.pcm_taps: list[Callable[[int, bytes], None]] = []
        self._pending: collections.deque[bytes] = collections.deque()
        self._carry = b""
        self._source_done = False
        self._paused_at: int | None = None
        self._joins_after_resume: list[StreamTarget] = []
        self._wakeup = asyncio.Event()
        self._first_audio = asyncio.Event()  # the source delivered audio (or ended)
        self._space = asyncio.Event()
        self._ended = asyncio.Event()
        self._helpers: set[asyncio.Task[None]] = set()
        self._rejoining: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._fanout: asyncio.Task[None] | None = None
        self._progress: asyncio.Task[None] | None = None
        self._drain_guard: asyncio.Task[None] | None = None
        self._state_before_pause = SessionState.PLAYING
        self._end_task: asyncio.Task[None] | None = None
        self._fifo_dir: Path | None = None
        self._stopping = False
        self._priming = False  # starting: feed PRIME_S to every member, whatever T is
        self._ramp: tuple[float, float] | None = None  # (loop time, ahead) at the release

    # ---- queries ----------------------------------------------------------------------------

    @property
    def position_s(self) -> float:
        """Seconds of session audio played so far (frozen while paused)."""
        if self._paused_at is not None:
            return self._paused_at / self.rate
        if self.state in (SessionState.IDLE, SessionState.STARTING) and not self.start_ntp:
            return 0.0
        frames = position_at(self.clock.ntp(), self.start_ntp, self.rate)
        return max(0, min(self.fed, frames)) / self.rate

    @property
    def elapsed_s(self) -> float:
        """Like `position_s`, but negative before the first frame is audible (for hosts that
        extrapolate elapsed time from the moment it was reported)."""
        if self._paused_at is not None or not self.start_ntp:
            return self.position_s
        return min(self.fed, position_at(self.clock.ntp(), self.start_ntp, self.rate)) / self.rate

    @property
    def rate(self) -> int:
        """Session frames per second (44100, or 48000 for a hi-res group)."""
        return self.pcm_format.rate

    @property
    def active_members(self) -> list[SessionMember]:
        """Members not ended."""
        return [m for m in self.members.values() if not m.ended]

    async def wait_ended(self, timeout: float | None = None) -> bool:
        """Wait until the session ended (played out or stopped); False on timeout."""
        try:
            await asyncio.wait_for(self._ended.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ---- start ------------------------------------------------------------------------------

    async def start(
        self, targets: Sequence[StreamTarget], metadata: TrackMetadata | None = None
    ) -> StartReport:
        """Start every target on one instant T; members that fail to connect are dropped.

        The streamers are spawned with a far start instant, connected and held (ACTION=PAUSE:
        nothing was played yet) while each is fed the first `PRIME_S` of audio. T is chosen only
        once every member connected *and* holds that audio in its streamer (at most
        `PRIME_TIMEOUT_S`), `release_lead_s(n)` from then; each gets NTPSTART=T (+ its
        sync_adjust), ACTION=PLAY. So T is as early as every member can honour and no member
        starts on a cold pipeline; a member whose receiver's clock is not ready when the others
        are joins late by itself (late_clock.py). SessionError when no member connected (all is
        stopped).
        """
        if self.state is not SessionState.IDLE:
            raise SessionError("a session starts only once")
        keys = [t.key for t in targets]
        if not targets or len(set(keys)) != len(keys):
            raise SessionError("need at least one target, each once")
        self.state = SessionState.STARTING
        self.metadata = metadata
        self._fifo_dir = Path(tempfile.mkdtemp(prefix="airplay-session-"))
        # Provisional T (for position queries) until the real one is known.
        lead_s = self.lead.lead_s(len(targets))
        self.start_ntp = start_instant(self.clock.ntp(), lead_s)
        members = [self._new_member(t, offset=0) for t in targets]
        self.members = {m.key: m for m in members}
        try:
            for pcm_format in {target_format(m.target) for m in members} - {self.pcm_format}:
                await self._open_branch(pcm_format, 0)
        except (OSError, RuntimeError) as exc:  # no ffmpeg, no process
            await self.stop()
            raise SessionError(f"cannot resample for the 16-bit members: {exc}") from exc
        self._priming = True
        self._reader = asyncio.create_task(self._read_source(), name="session-source")
        self._fanout = asyncio.create_task(self._fan_out(), name="session-fanout")
        launches = (self._launch(m, together=len(members), clock=False) for m in members)
        joins = list(await asyncio.gather(*launches))
        for _ in range(3):  # nobody's PTP followed → NTP; NTP refused → PTP on the fixed hold
            for _retry in range(2):
                if not any(join.fallback for join in joins) or self._stopping:
                    break
                joins = await self._timing_fallbacks(joins)
                for join in joins:
                    join.fallback = None if join.key in self.members else join.fallback
            connected = [m for m in self.members.values() if m.paused_frame is not None]
            ready, late = await self._settle_clocks(connected)
            if ready:
                break
            for member in late:  # every clock failed: restart them on NTP, nothing played yet
                joins = [self._fell_back(j, member) if j.key == member.key else j for j in joins]
                await self._remove(member, graceful=False)
        by_key = {join.key: join for join in joins}
        for member in late if ready else []:
            self._set_aside(member, by_key[member.key])
        # T only once the source has audio: a receiver with a short latency (AirPlay 2, 250 ms)
        # would otherwise get the first frames too late for their play time (they are skipped).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_AUDIO_WAIT_S):
                await self._first_audio.wait()
        ready = [m for m in ready if not m.ended and m.paused_frame is not None]
        await self._wait_primed(ready, PRIME_S, PRIME_TIMEOUT_S)
        ready = [m for m in ready if not m.ended]
        plan = resume_plan(
            self.clock.ntp(),
            {m.key: (m.paused_frame or 0, m.target.sync_adjust_ms) for m in ready},
            release_lead_s(len(ready)) + ap2_extra_lead_s(ready),
            self.rate,
            {m.key: m.target.rate for m in ready},
        )
        if plan is None:
            await self.stop()
            reasons = "; ".join(f"{j.name or j.key}: {j.error}" for j in joins)
            raise SessionError(f"no member could start ({reasons})")
        self.start_ntp = plan.start_ntp
        self._priming = False
        loop_now = asyncio.get_running_loop().time()
        self._ramp = (loop_now, self._ahead_s())
        self._wakeup.set()  # the fan-out paces on the real T from now on
        for join in joins:
            join.start_ntp = plan.member_ntp.get(join.key, join.start_ntp)
        await asyncio.gather(*(self._release(m, plan.member_ntp[m.key]) for m in ready))
        if self.state is SessionState.STARTING:
            self.state = SessionState.PLAYING
        self._wakeup.set()  # the fan-out may be holding silence back until T is chosen
        self._progress = asyncio.create_task(self._progress_loop(), name="session-progress")
        self._notify()
        self._check_end()
        return StartReport(self.start_ntp, lead_s, joins)

    def _new_member(self, target: StreamTarget, *, offset: int) -> SessionMember:
        assert self._fifo_dir is not None
        target = self._formatted(target)
        return SessionMember(
            target,
            offset=offset,
            fifo_dir=self._fifo_dir,
            on_change=self._on_member_change,
            logger=self.logger,
            launcher=self.launcher,
        )

    # ---- membership -------------------------------------------------------------------------

    async def add_member(self, target: StreamTarget) -> JoinReport:
        """Late join: once connected, the newcomer gets the ring buffer from the first frame p
        it can still play and starts at `T + p`, in sync; nobody else restarts. While paused,
        it joins at the resume."""
        if self.state not in (SessionState.PLAYING, SessionState.PAUSED):
            raise SessionError(f"cannot add a member to a {self.state} session")
        if target.key in self.members:
            raise SessionError(f"{target.key} is already a member")
        if self._paused_at is not None:
            self._joins_after_resume.append(target)
            return JoinReport(target.key, -1, 0, error="joins at resume", name=target.name)
        member = self._new_member(target, offset=0)
        pcm_format = target_format(member.target)
        if pcm_format != self.pcm_format and pcm_format not in self.branches:
            wanted = join_position(
                self.clock.ntp(), self.start_ntp, 0.0, self.ring.start, self.fed, rate=self.rate
            )
            await self._open_branch(pcm_format, self._branch_start_frame(wanted))
        join = await self._launch(member)
        if join.fallback is not None and not self._stopping:
            self.logger.info("%s", join.error)
            return await self.add_member(join.fallback)
        if join.error is not None:
            return join
        if self._stopping or self.state is not SessionState.PLAYING or target.key in self.members:
            await member.stop(graceful=True)  # paused, ended or joined twice meanwhile
            join.error = f"session became {self.state} while {target.name} connected"
            return join
        # No await from here until it is registered: the fan-out cannot slip a chunk between.
        ring, fed = self._ring_and_fed(pcm_format)  # (a branch member: in its frames)
        rate = pcm_format.rate
        position = join_position(
            self.clock.ntp(), self.start_ntp, JOIN_LEAD_S, ring.start, fed, rate=rate
        )
        member.offset = join.offset = position
        for chunk in ring.since(position):
            member.feed(chunk)
        self.members[member.key] = member
        join.start_ntp = member_start_ntp(self.start_ntp, position, target.sync_adjust_ms, rate)
        # Its first frame is JOIN_LEAD_S away: prime its pipeline, keeping RESUME_LEAD_S.
        await self._wait_primed([member], JOIN_PRIME_S, JOIN_LEAD_S - RESUME_LEAD_S)
        if member.ended or self.state is not SessionState.PLAYING:
            join.error = member.error or f"session became {self.state} while it joined"
            await self._remove(member, graceful=True)
            return join
        await self._release(member, join.start_ntp)
        self._notify()
        return join

    async def remove_member(self, key: str) -> None:
        """Stop one member (TEARDOWN); the others go on untouched. A member on its way back
        (its receiver went away) stops trying."""
        rejoin = self.rejoins.get(key)
        rejoining = rejoin is not None and rejoin.active
        if rejoin is not None:
            rejoin.halt.set()
        member = self.members.get(key)
        if member is None:
            if key in self.waiting:  # set aside until its clock is ready: it joins no more
                await self._drop_waiting(self.waiting[key])
                return
            if rejoining:
                return
            raise SessionError(f"{key} is not a member")
        await self._remove(member, graceful=True)

    async def _remove(self, member: SessionMember, *, graceful: bool) -> None:
        if self.members.get(member.key) is member:
            del self.members[member.key]
            self.departed.append(member)
        await member.stop(graceful=graceful)
        self._notify()
        self._check_end()

    def _on_member_change(self, member: SessionMember) -> None:
        if member.state is MemberState.FAILED and self.members.get(member.key) is member:
            self.logger.warning(
                "%s removed: %s", member.target.name, member.error, extra={MEMBER_FAILURE: True}
            )
            self._spawn(self._remove(member, graceful=False))
            if member.error_code in REJOIN_CODES:
                self._start_rejoin(member.target)
        self._notify()
        self._check_end()

    def _check_end(self) -> None:
        if self._stopping or self.state in (SessionState.IDLE, SessionState.STARTING):
            return
        if not self.active_members and self._end_task is None:
            self._end_task = asyncio.create_task(self.stop(), name="session-end")

    # ---- stop -------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop everything: source, fan-out, every member; remove the FIFO directory."""
        if self._stopping:
            await self._ended.wait()
            return
        self._stopping = True
        self._wakeup.set()
        current = asyncio.current_task()
        tasks = (self._fanout, self._reader, self._progress, self._drain_guard)
        owned = [t for t in tasks if t is not None and t is not current]
        for task in owned:
            task.cancel()
        for rejoin in self.rejoins.values():
            rejoin.halt.set()
        helpers = [t for t in self._helpers if t is not current]  # removals: let them finish
        # A join under way ends by itself (it sees `_stopping`): no cancel midway, no leak.
        helpers += [t for t in self._rejoining if t is not current]
        for task in (*owned, *helpers):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        members = list(self.members.values())
        self.members.clear()
        self.departed.extend(members)
        await asyncio.gather(*(m.stop(graceful=True) for m in members))
        await self._stop_branches()
        if self._fifo_dir is not None:
            shutil.rmtree(self._fifo_dir, ignore_errors=True)
        self.state = SessionState.ENDED
        self._ended.set()
        self._notify()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    def _notify(self) -> None:
        for listener in list(self.listeners):
            try:
                listener(self)
            except Exception:
                self.logger.exception("session listener failed")
