"""Pacing decisions of one stream, without I/O: which packet leaves now, and when to wake.

The streamer's loop asks `Pacer.next_action(available, eof)` and carries the answer out (send a
packet, drop late input, sleep); the pacer reads time only through the injected clock, so the
whole policy is tested with a fake clock (tests/unit/test_pacer.py). Time flows through one
`Timeline`: input sample k is audible at `anchor + k/rate` (the timeline's rate: 44100, or 48000
on hi-res streams; every duration below is in time, every count in packets, so both rates pace
alike).

The rules, in the order they apply to the next packet:

* Pre-roll: packets before `preroll_end` carry silence; shairport-sync 3.3.8 plays the first 9
  packets after every start or flush as silence (player.c, play_number_after_flush), so real
  audio begins with the 10th packet.
* Lead: a packet is due one receiver latency before its play time; packets due within
  `SEND_WINDOW_NS` leave together (one wake-up per ~8 packets, ~14 a second, keeps a stream
  near 1 % CPU).
* Start pacing (issue 10): when the start instant is closer than a latency, the lead is built
  up, never sent in one burst. A token bucket (GCRA) lets at most `BURST_NS` of audio leave back
  to back, then `LEAD_RATE` times real time, so a receiver's socket buffer never overflows.
  Until the start instant the lead is also capped at `PRESTART_LEAD_NS`, so a start burst stays
  short.
* Copies: a lost packet heals only if the receiver can ask for it in time. shairport-sync 3.3.8
  (player.c, player_put_packet) notices a gap when a later packet arrives, asks for it no sooner
  than 0.1 s after that (`resend_control_first_check_time`), again every 0.25 s, and takes a
  frame out of its buffer one back-end buffer (0.15-0.2 s) before its play time; a gap still
  open then plays as silence. So a packet sent with less than `HEAL_LEAD_NS` of lead (a near
  start, a late join, a resume) cannot be healed by asking: the streamer sends it a second
  time, two packets later, on the audio port (a duplicate, harmless to any RTP receiver; a resend
  reply on the control port could overtake packets the receiver's audio thread has not read
  yet and make it start at the copy). A near start's lead grows past it within ~60 packets;
  steady state never copies (with a latency below `HEAL_LEAD_NS`: only packets short of it).
* Skip-late: input whose play time is closer than `SEND_MARGIN_NS` is dropped, never shifted,
  so a late start or join stays on the group's timeline (the very first packet is exempt: it
  carries the anchor). When the first real packet of a start is itself skipped (the set-up or
  a wake-up took too long), the first one that does leave opens the start (`opens_start`).
* Underrun: when input is missing at its last moment, a silent packet fills its slot and the
  input for it is dropped when it arrives.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from airplay_provider.protocol.schedule import Timeline
from airplay_provider.protocol.timing import (
    FRAMES_PER_PACKET,
    frames_to_ns,
    ns_to_frames,
    ntp_add_frames,
    ntp_add_ns,
    ntp_diff_ns,
)

SEND_MARGIN_NS = 120_000_000  # a packet must leave at least this long before its play time
# Sending up to 64 ms early is harmless: the receiver buffers a whole latency ahead.
SEND_WINDOW_NS = 64_000_000
START_MARGIN_NS = 150_000_000  # the first packet: room for the receiver to take the anchor
PREROLL_FRAMES = 10 * FRAMES_PER_PACKET  # silence before sample 0
RESUME_SLACK_NS = 50_000_000  # a resume without a usable instant: this much after the minimum
# Without -ntpstart, sample 0 plays this long after streaming begins: room for the anchor and
# the pre-roll (230 ms, the least any start gets) plus 270 ms, so the receiver already holds
# ~0.5 s of audio (the whole first burst) when sample 0 plays and can ask for a lost packet.
DEFAULT_START_LEAD_NS = 500_000_000
BURST_NS = 150_000_000  # audio that may leave back to back (+ one packet): well < 0.25 s
LEAD_RATE = 4  # beyond the burst, audio leaves at most this many times faster than it plays
PRESTART_LEAD_NS = 750_000_000  # before the start instant, the lead stays below this
# Less lead than this and a lost packet cannot be asked for (0.1 s), asked for once more
# (0.25 s) and still arrive before the receiver's back end takes it (0.2 s): send it twice.
HEAL_LEAD_NS = 600_000_000
BATCH_PACKETS = 4  # while rate-limited, wake when this many packets may leave

_MASK = (1 << 64) - 1
_WINDOW_NTP = (SEND_WINDOW_NS << 32) // 1_000_000_000
_MARGIN_NTP = (SEND_MARGIN_NS << 32) // 1_000_000_000
_PRESTART_NTP = (PRESTART_LEAD_NS << 32) // 1_000_000_000
_HEAL_NTP = (HEAL_LEAD_NS << 32) // 1_000_000_000
_TOLERANCE = ((BURST_NS << 32) // 1_000_000_000) // LEAD_RATE  # GCRA burst tolerance


class Clock(Protocol):
    """The sender clock, as the pacer sees it."""

    def ntp(self) -> int:
        """Current time as 64-bit NTP."""
        ...


class Phase(enum.Enum):
    """Where the stream is."""

    CONNECTING = "connecting"  # no start placed yet
    PREROLL = "preroll"  # silent packets before the first real sample
    BUILDING_LEAD = "building_lead"  # real audio, less than a latency ahead: paced
    STEADY = "steady"  # a latency ahead: each packet leaves when due
    PAUSED = "paused"  # flushed; waiting for a resume
    DRAINING = "draining"  # input ended; silence until the tail has played


class PacketKind(enum.Enum):
    """What the next packet carries."""

    PREROLL = "preroll"  # silence before the first real sample
    AUDIO = "audio"  # one packet of input
    UNDERRUN = "underrun"  # what input there is, padded with silence; the rest is dropped
    SILENCE = "silence"  # after the end of input, until the tail has played


@dataclass(frozen=True)
class Send:
    """Send the packet for `Pacer.next_sample` now, then call `Pacer.sent()`; `copy`: its lead is
    too short for a resend to heal a loss, so send it a second time (see Copies above)."""

    kind: PacketKind
    copy: bool = False


@dataclass(frozen=True)
class Skip:
    """Drop input from `from_sample` to `to_sample`: too late to send (never shifted)."""

    from_sample: int
    to_sample: int


@dataclass(frozen=True)
class Wait:
    """Nothing to send before `until_ntp`; new input may change that if `wake_on_input`."""

    until_ntp: int
    wake_on_input: bool


@dataclass(frozen=True)
class InputDone:
    """End of input and nothing left to send: drain."""


Action = Send | Skip | Wait | InputDone


class Pacer:
    """The pacing state of one stream: its timeline, position, phase and send budget."""

    def __init__(self, timeline: Timeline, clock: Clock) -> None:
        self.timeline = timeline
        self.clock = clock
        self.rate = timeline.rate
        # GCRA increment per packet (NTP units): a packet's duration over the lead rate
        self._rate_interval = ((FRAMES_PER_PACKET << 32) // self.rate) // LEAD_RATE
        self.phase = Phase.CONNECTING
        self.next_sample = 0
        self.preroll_end = 0
        self.first_packet = True  # the next packet opens a start or resume (carries the marker)
        self._start_pending = False  # no real packet of the current start or resume left yet
        self.start_ntp = 0  # the instant the first real sample of this start plays
        self.requested_ntp = 0
        self.requested_first_sample = 0
        self.resumes = 0
        self._tat = 0  # GCRA theoretical arrival time (NTP); 0: the bucket is full
        self._now = 0  # the clock at the last decision
        # play time minus send time, rounded exactly as `Timeline.send_ntp_of` rounds it
        self._latency_ntp = _signed(timeline.play_ntp_of(0) - timeline.send_ntp_of(0))
        # a stream whose latency is below the heal lead copies only while it builds its lead
        self._copy_below = min(_HEAL_NTP, self._latency_ntp - _WINDOW_NTP)

    # ---- start, pause, resume -----------------------------------------------------------------

    def place_start(self, ntpstart: int | None) -> int:
        """Put sample 0 at `ntpstart` (default: soon) behind the pre-roll; the first real sample.

        Input before the returned sample is too late to play and must be skipped.
        """
        now = self.clock.ntp()
        if ntpstart is None:  # no start instant: start as soon as the receiver can follow
            self.timeline.restart(
                sample=0,
                rtp=self.timeline.anchor.rtp,
                ntp=ntp_add_ns(now, DEFAULT_START_LEAD_NS),
            )
            first_real = 0
        else:
            margin = START_MARGIN_NS + frames_to_ns(PREROLL_FRAMES, self.rate)
            first_real = max(0, self.timeline.sample_at(ntp_add_ns(now, margin)) + 1)
        self.preroll_end = first_real
        self.next_sample = first_real - PREROLL_FRAMES
        self.requested_ntp = ntpstart or self.timeline.anchor.ntp
        self.start_ntp = self.timeline.play_ntp_of(first_real)
        self._begin()
        return first_real

    def pause(self) -> int | None:
        """Stop sending; the first sample to keep for the resume, if already-sent audio must be
        put back (None: nothing real was sent that is still unplayed)."""
        self.phase = Phase.PAUSED
        if self.next_sample <= self.preroll_end:
            self.next_sample = self.preroll_end  # nothing real was sent yet
            return None
        audible = self.timeline.sample_at(self.clock.ntp()) + 1
        resume_at = max(self.preroll_end, audible)
        return resume_at if resume_at < self.next_sample else None

    def rewind_to(self, sample: int) -> None:
        """Sent-but-unplayed input from `sample` on was put back in front of the input."""
        self.next_sample = sample

    def resume(self, at_ntp: int | None, flush_rtp: int) -> int:
        """Continue from `next_sample`, audible at `at_ntp` (default: the earliest safe instant);
        the pre-roll restarts at `flush_rtp`. Returns the instant used.

        An instant too soon (or past: a late joiner held until its receiver was ready) keeps
        its timeline, as a start does: input that can no longer be played is skipped from the
        start (`preroll_end`), never shifted; the caller drops it from its input.
        """
        now = self.clock.ntp()
        lead_ns = START_MARGIN_NS + frames_to_ns(PREROLL_FRAMES, self.rate)
        if at_ntp is None:
            at_ntp = ntp_add_ns(now, lead_ns + RESUME_SLACK_NS)
        resume_sample = first_real = self.next_sample
        late_ns = lead_ns - ntp_diff_ns(at_ntp, now)
        if late_ns > 0:  # the first sample still playable behind a pre-roll
            first_real += ns_to_frames(late_ns, self.rate) + 1
        self.timeline.restart(
            sample=first_real - PREROLL_FRAMES,
            rtp=flush_rtp,
            ntp=ntp_add_frames(at_ntp, first_real - resume_sample - PREROLL_FRAMES, self.rate),
        )
        self.preroll_end = first_real
        self.next_sample = first_real - PREROLL_FRAMES
        self.requested_ntp = at_ntp
        self.requested_first_sample = resume_sample
        self.start_ntp = self.timeline.play_ntp_of(first_real)
        self.resumes += 1
        self._begin()
        return at_ntp

    def drain(self) -> None:
        """Input ended: from now on only silence follows, each packet when due."""
        self.phase = Phase.DRAINING

    def _begin(self) -> None:
        self.phase = Phase.PREROLL
        self.first_packet = True
        self._start_pending = True
        self._tat = 0

    # ---- the decision -------------------------------------------------------------------------

    def next_action(self, available: int, eof: bool) -> Action:
        """What to do now, given `available` buffered input samples and whether input ended.

        Runs once per packet: plain integer arithmetic on NTP values, no conversions.
        """
        now = self._now = self.clock.ntp()
        sample = self.next_sample
        have_packet = available >= FRAMES_PER_PACKET or (eof and available > 0)
        play_at = self.timeline.play_ntp_of(sample)
        due, rate_ok = self._due(play_at, now)
        if sample < self.preroll_end:
            if rate_ok and _signed(due - now) <= _WINDOW_NTP:
                return Send(PacketKind.PREROLL)
        elif have_packet:
            if rate_ok and _signed(due - now) <= _WINDOW_NTP:
                if _signed(play_at - now) < _MARGIN_NTP and not self.first_packet:
                    target = self.timeline.sample_at(now + _MARGIN_NTP) + 1
                    if target > sample:
                        self.next_sample = target
                        return Skip(sample, target)
                return Send(PacketKind.AUDIO, copy=_signed(play_at - now) < self._copy_below)
        elif _signed(play_at - now) <= _MARGIN_NTP and not eof:
            return Send(PacketKind.UNDERRUN)
        if eof and available == 0:
            return InputDone()
        if sample >= self.preroll_end and not have_packet and not eof:
            # waiting for input: wake when it comes, or when an underrun forces a silent packet
            return Wait((play_at - _MARGIN_NTP) & _MASK, wake_on_input=True)
        return Wait(due, wake_on_input=False)

    def next_drain_action(self) -> Send | Wait:
        """While draining: a silent packet now, or when the next one is due."""
        now = self._now = self.clock.ntp()
        due, rate_ok = self._due(self.timeline.play_ntp_of(self.next_sample), now)
        if rate_ok and _signed(due - now) <= 0:
            return Send(PacketKind.SILENCE)
        return Wait(due, wake_on_input=False)

    @property
    def opens_start(self) -> bool:
        """The packet for `next_sample` is the first real one of the current start or resume
        (`preroll_end`, or the first after it when that one was skipped as late)."""
        return self._start_pending and self.next_sample >= self.preroll_end

    def sent(self) -> bool:
        """The packet for `next_sample` left (just after `next_action` said so); True if it was
        the first real one of a start (`opens_start`)."""
        now = self._now
        opened = self.opens_start
        if opened:
            self._start_pending = False
        self._tat = max(self._tat, now) + self._rate_interval
        self.first_packet = False
        self.next_sample += FRAMES_PER_PACKET
        if self.phase is Phase.PREROLL or self.phase is Phase.BUILDING_LEAD:
            self.phase = self._phase_after_send(now)
        return opened

    def _phase_after_send(self, now: int) -> Phase:
        if self.next_sample < self.preroll_end:
            return Phase.PREROLL
        ahead = _signed(self.timeline.send_ntp_of(self.next_sample) - now)
        return Phase.STEADY if ahead > 0 else Phase.BUILDING_LEAD

    def _due(self, play_at: int, now: int) -> tuple[int, bool]:
        """When the packet playing at `play_at` is due, and whether the send budget allows it.

        Due: one latency before its play time, but before the start instant not more than
        `PRESTART_LEAD_NS` ahead. Budget: the GCRA bucket; when it is empty, the time returned
        is when `BATCH_PACKETS` packets may leave together.
        """
        due = (play_at - self._latency_ntp) & _MASK
        if _signed(self.start_ntp - now) > 0:  # before the start instant
            prestart = min(self.start_ntp, (play_at - _PRESTART_NTP) & _MASK)
            if _signed(prestart - due) > 0:
                due = prestart
        conform_at = self._tat - _TOLERANCE
        if now >= conform_at:
            return due, True
        batch_at = conform_at + (BATCH_PACKETS - 1) * self._rate_interval
        return (batch_at if _signed(batch_at - due) > 0 else due), False


def _signed(delta: int) -> int:
    """A difference of two NTP values as a signed number (correct across the 64-bit wrap)."""
    delta &= _MASK
    return delta - (1 << 64) if delta >> 63 else delta
