"""Sans-I/O arithmetic of a group session: start lead, member start instants, late-join
position, group resume instants, and the ring buffer of recent session audio.

Session frame s is audible at ``T + s/rate`` on every member (+ that member's sync_adjust);
rate is the session's (44100, or 48000 for hi-res: `pcm_format`). A member whose stdin begins
at session frame ``offset`` gets ``-ntpstart T + offset/rate``.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from airplay_provider.protocol.timing import (
    SAMPLE_RATE,
    ns_to_frames,
    ntp_add_frames,
    ntp_add_ns,
    ntp_diff_ns,
)

FLOW_FRAME_BYTES: Final = 8  # f32le stereo
#: cliraop skips input whose play time is closer than this when the stream starts
#: (START_MARGIN 150 ms + 10-packet pre-roll 80 ms), so a start instant needs this much lead.
STREAMER_START_MARGIN_S: Final = 0.23
LEAD_SAFETY_S: Final = 0.1
INITIAL_CONNECT_S: Final = 0.25
MIN_LEAD_S: Final = STREAMER_START_MARGIN_S + LEAD_SAFETY_S
MAX_LEAD_S: Final = 10.0
#: An AirPlay 2 receiver on PTP timing plays nothing until its PTP follower has taken our clock
#: as master (shairport-sync 5 with nqptp: ~1.2 s after SETPEERS, measured; audio due earlier
#: is dropped as out of date). The session waits for the measured readiness (`session/clock.py`);
#: when it cannot be measured, a PTP member's first frame is due this long after `connected`.
PTP_SETTLE_S: Final = 1.5


def ptp_settle_wait_s(timing: str | None, connected_at: float | None, now: float) -> float:
    """How long a member that reported `connected` (its `timing`, at monotonic
    `connected_at`) must still be held before its receiver's clock follows ours."""
    if timing != "ptp" or connected_at is None:
        return 0.0
    return max(0.0, connected_at + PTP_SETTLE_S - now)


def concurrency_factor(members: int) -> float:
    """How much longer `members` streamers take to connect when started together."""
    n = max(1, members)
    return n * (1.0 + 0.15 * (n - 1))


class LeadEstimator:
    """Measured spawn → `connected` times; the start lead they allow.

    `StreamSession` holds members until they connected, so this only paces the source during
    the start (and predicts T); a start instant fixed at spawn time would need it exactly.

    Streamers started together share the CPU, so a start of n members takes longer: measured
    on 2 cores, 0.11 s alone, 0.22 s for 2, 0.4 s for 3, 0.6 s for 4 — about
    `n · (1 + 0.15 (n − 1))` times the cost of one. Each measurement is kept divided by that
    factor; the lead for n members is the slowest recent per-member cost times the factor,
    plus the streamer's start margin and a safety margin. A start instant any closer makes
    members skip their first samples (never shift them: a short lead costs audio, not sync).
    """

    def __init__(self, *, initial_connect_s: float = INITIAL_CONNECT_S, window: int = 8) -> None:
        self._samples: collections.deque[float] = collections.deque(maxlen=window)
        self._initial = initial_connect_s

    def record(self, connect_s: float, members: int = 1) -> None:
        """One measured spawn → connected time (seconds) in a start of `members` streamers."""
        if connect_s >= 0:
            self._samples.append(connect_s / concurrency_factor(members))

    @property
    def connect_estimate_s(self) -> float:
        """Per-member connect cost planned for (the slowest recent one)."""
        return max(self._samples) if self._samples else self._initial

    def lead_s(self, members: int = 1) -> float:
        """Lead from now to the start instant for a start of `members` processes at once."""
        connect = self.connect_estimate_s * concurrency_factor(members)
        return min(MAX_LEAD_S, max(MIN_LEAD_S, connect + STREAMER_START_MARGIN_S + LEAD_SAFETY_S))


#: cliraop needs ≥ 0.23 s between taking NTPSTART/PLAY and the instant (or it picks its own);
#: the rest is slack for the command to arrive and a FLUSH still in flight to finish.
RESUME_LEAD_S: Final = 0.4
#: Per member started together: N streamers take the command and send their first packets at
#: once on a shared CPU (measured: at 32 members on 2 cores the last takes it ~0.1 s later).
RELEASE_LEAD_PER_MEMBER_S: Final = 0.008


def release_lead_s(members: int) -> float:
    """Lead from now to T when `members` connected, primed streamers are released together."""
    return RESUME_LEAD_S + RELEASE_LEAD_PER_MEMBER_S * max(0, members - 1)


#: After the start the audio fed ahead grows by this many seconds per second (so members'
#: input arrives at ≤ 1 + RAMP_RATE times real time), in pieces of at most FEED_PIECE_S: a
#: streamer sends what it holds within its latency at once, and a receiver's socket buffer
#: takes ~0.25 s of audio, not the seconds a whole lead would be.
RAMP_RATE: Final = 2.0
FEED_PIECE_S: Final = 0.1


def ahead_limit_s(base_s: float, since_s: float, ahead_s: float) -> float:
    """How far ahead of the audible position the fan-out may feed, `since_s` after a start
    that had `base_s` fed ahead: growing at `RAMP_RATE` up to `ahead_s`."""
    return min(ahead_s, base_s + RAMP_RATE * max(0.0, since_s))


def primed(in_streamer: int | None, fed: int, wanted: int) -> bool:
    """Whether a member's streamer holds enough input to be given its start instant.

    `in_streamer`: frames already inside the streamer (None: unknown, taken as primed);
    `fed`: frames handed to the member; `wanted`: frames it should hold. A member holding all it
    was fed is primed too (a short or slow source).
    """
    return in_streamer is None or in_streamer >= min(fed, wanted)


def start_instant(now_ntp: int, lead_s: float) -> int:
    """The group start instant T, `lead_s` from now."""
    return ntp_add_ns(now_ntp, round(lead_s * 1e9))


def member_start_ntp(
    start_ntp: int, offset_frames: int, sync_adjust_ms: int, rate: int = SAMPLE_RATE
) -> int:
    """`-ntpstart` for a member whose stdin begins at session frame `offset_frames`."""
    return ntp_add_ns(ntp_add_frames(start_ntp, offset_frames, rate), sync_adjust_ms * 1_000_000)


def position_at(now_ntp: int, start_ntp: int, rate: int = SAMPLE_RATE) -> int:
    """The session frame audible at `now_ntp` (negative before T)."""
    return ns_to_frames(ntp_diff_ns(now_ntp, start_ntp), rate)


def join_position(
    now_ntp: int,
    start_ntp: int,
    lead_s: float,
    oldest: int,
    fed: int,
    *,
    rate: int = SAMPLE_RATE,
) -> int:
    """First session frame a late joiner gets: the earliest it can still play, in the buffer.

    It is the frame audible `lead_s` from now, clamped to the buffered range [oldest, fed].
    """
    wanted = position_at(start_instant(now_ntp, lead_s), start_ntp, rate) + 1
    return max(oldest, min(fed, wanted))


@dataclass(frozen=True)
class ResumePlan:
    """A group resume: new T and each member's `NTPSTART` so all stay on one timeline."""

    start_ntp: int
    member_ntp: dict[str, int]


def resume_plan(
    now_ntp: int,
    members: Mapping[str, tuple[int, int]],
    lead_s: float,
    rate: int = SAMPLE_RATE,
    rates: Mapping[str, int] | None = None,
) -> ResumePlan | None:
    """Plan a resume from members' (first unplayed frame, sync_adjust_ms); frames count at
    `rate`, or at a member's own rate in `rates` (a member of a format branch).

    Members may have stopped at slightly different frames; each one resumes at the instant its
    own frame has on the new common timeline, and the earliest of them `lead_s` from now.
    """
    if not members:
        return None
    own = rates or {}
    earliest = start_instant(now_ntp, lead_s)
    # New T such that min over members of (T + frame + adjust) == earliest.
    candidates = [
        ntp_add_ns(ntp_add_frames(earliest, -frame, own.get(key, rate)), -adjust * 1_000_000)
        for key, (frame, adjust) in members.items()
    ]
    new_start = max(candidates, key=lambda ntp: ntp_diff_ns(ntp, earliest))
    return ResumePlan(
        start_ntp=new_start,
        member_ntp={
            key: member_start_ntp(new_start, frame, adjust, own.get(key, rate))
            for key, (frame, adjust) in members.items()
        },
    )


class RingBuffer:
    """The last `seconds` of session audio by session frame, for late joins (frames of
    `frame_bytes`: f32le stereo by default, s16le stereo in a session)."""

    def __init__(
        self, seconds: float = 10.0, *, frame_bytes: int = FLOW_FRAME_BYTES, rate: int = SAMPLE_RATE
    ) -> None:
        self.capacity_frames = int(seconds * rate)
        self.frame_bytes = frame_bytes
        self._chunks: collections.deque[tuple[int, bytes]] = collections.deque()
        self.end = 0  # session frame after the last buffered one

    @property
    def start(self) -> int:
        """Oldest buffered session frame (== end when empty)."""
        return self._chunks[0][0] if self._chunks else self.end

    def append(self, position: int, chunk: bytes) -> None:
        """Add `chunk` (whole frames) starting at session frame `position`."""
        if self._chunks and position != self.end:
            raise ValueError(f"chunk at {position} does not follow {self.end}")
        if not self._chunks:
            self.end = position
        self._chunks.append((position, chunk))
        self.end = position + len(chunk) // self.frame_bytes
        while self._chunks and self._chunks[0][0] + self._frames(0) <= self.end - (
            self.capacity_frames
        ):
            self._chunks.popleft()

    def _frames(self, index: int) -> int:
        return len(self._chunks[index][1]) // self.frame_bytes

    def since(self, frame: int) -> list[bytes]:
        """The buffered audio from session frame `frame` to the end (first chunk cut)."""
        if frame < self.start or frame > self.end:
            raise ValueError(f"frame {frame} is outside the buffer [{self.start}, {self.end}]")
        out: list[bytes] = []
        for position, chunk in self._chunks:
            chunk_end = position + len(chunk) // self.frame_bytes
            if chunk_end <= frame:
                continue
            cut = max(0, frame - position) * self.frame_bytes
            out.append(chunk[cut:] if cut else chunk)
        return out
