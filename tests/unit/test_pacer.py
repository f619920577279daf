"""The pacer's decisions with a fake clock: pre-roll, the paced start, skip-late, underruns."""

from __future__ import annotations

from dataclasses import dataclass, field

from airplay_provider.protocol.schedule import Timeline
from airplay_provider.protocol.timing import (
    FRAMES_PER_PACKET,
    SAMPLE_RATE,
    frames_to_ns,
    ns_to_frames,
    ntp_add_ns,
    ntp_diff_ns,
)
from airplay_provider.streamer.pacer import (
    BATCH_PACKETS,
    DEFAULT_START_LEAD_NS,
    HEAL_LEAD_NS,
    PREROLL_FRAMES,
    PRESTART_LEAD_NS,
    SEND_MARGIN_NS,
    SEND_WINDOW_NS,
    InputDone,
    Pacer,
    PacketKind,
    Phase,
    Send,
    Skip,
    Wait,
)

T0 = 0xE000_0000_0000_0000  # an NTP time in 2019
PACKET_NS = frames_to_ns(FRAMES_PER_PACKET)
LATENCY_MS = 2000


class FakeClock:
    """Time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = T0

    def ntp(self) -> int:
        return self.now

    def advance_to(self, ntp: int) -> None:
        assert ntp >= self.now, "the pacer asked to wake in the past"
        self.now = ntp


@dataclass
class Run:
    """What a simulated stream did: (send time, first sample, kind) per packet."""

    sends: list[tuple[int, int, PacketKind]] = field(default_factory=list)
    copies: list[bool] = field(default_factory=list)  # per send: the pacer asked for a copy
    skips: list[Skip] = field(default_factory=list)
    wakes: int = 0
    phases: list[Phase] = field(default_factory=list)

    def audio_ns(self, i: int, j: int) -> int:
        """Audio in packets i..j inclusive."""
        return (j - i + 1) * PACKET_NS


def make(ntpstart_in_s: float | None, latency_ms: int = LATENCY_MS) -> tuple[Pacer, FakeClock]:
    clock = FakeClock()
    timeline = Timeline(
        start_ntp=0 if ntpstart_in_s is None else ntp_add_ns(T0, int(ntpstart_in_s * 1e9)),
        first_rtp=1234,
        latency_frames=ns_to_frames(latency_ms * 1_000_000),
    )
    return Pacer(timeline, clock), clock


def simulate(
    pacer: Pacer,
    clock: FakeClock,
    *,
    seconds: float,
    input_frames: int = 10**9,
    input_from_ns: int = 0,
    wake_late_ns: int = 0,
) -> Run:
    """Drive the pacer like the streamer's loop does, for `seconds` of fake time.

    Input (`input_frames` in all) is available from `input_from_ns` after T0; every wake-up
    comes `wake_late_ns` after the time asked for.
    """
    run = Run()
    end = ntp_add_ns(T0, int(seconds * 1e9))
    consumed = pacer.next_sample if pacer.next_sample > 0 else 0
    while clock.now < end:
        arrived = input_frames if ntp_diff_ns(clock.now, T0) >= input_from_ns else 0
        available = max(0, arrived - max(consumed, pacer.next_sample))
        eof = arrived == input_frames and ntp_diff_ns(clock.now, T0) >= input_from_ns
        action = pacer.next_action(available, eof)
        if isinstance(action, Send):
            run.sends.append((clock.now, pacer.next_sample, action.kind))
            run.copies.append(action.copy)
            run.phases.append(pacer.phase)  # the phase the packet left in
            if action.kind is not PacketKind.PREROLL:
                consumed = pacer.next_sample + FRAMES_PER_PACKET
            pacer.sent()
        elif isinstance(action, Skip):
            run.skips.append(action)
        elif isinstance(action, InputDone):
            break
        else:
            assert isinstance(action, Wait)
            run.wakes += 1
            target = action.until_ntp
            if action.wake_on_input and input_from_ns:
                target = min(target, ntp_add_ns(T0, input_from_ns))
            clock.advance_to(max(clock.now, ntp_add_ns(target, wake_late_ns)))
    return run


def assert_token_bucket(run: Run, burst_s: float = 0.25, rate: float = 4.0) -> None:
    """In any stretch of time W, at most `burst_s` + `rate`·W of audio left."""
    times = [t for t, _, _ in run.sends]
    for i in range(len(times)):
        for j in range(i, min(len(times), i + 400)):
            wall_ns = ntp_diff_ns(times[j], times[i])
            audio = run.audio_ns(i, j)
            assert audio <= burst_s * 1e9 + rate * wall_ns, (i, j, audio / 1e9, wall_ns / 1e9)


def test_a_near_start_builds_the_lead_paced_never_in_one_burst() -> None:
    pacer, clock = make(0.4)
    first_real = pacer.place_start(ntp_add_ns(T0, 400_000_000))
    assert first_real == 0  # 0.4 s is enough: nothing skipped
    assert pacer.phase is Phase.PREROLL
    run = simulate(pacer, clock, seconds=4.0)
    assert_token_bucket(run)
    # The first real packet opens at exactly the start instant, after 10 silent packets.
    kinds = [kind for _, _, kind in run.sends]
    assert kinds[:10] == [PacketKind.PREROLL] * 10
    assert kinds[10] is PacketKind.AUDIO
    assert run.sends[10][1] == 0
    assert pacer.timeline.play_ntp_of(0) == ntp_add_ns(T0, 400_000_000)
    assert run.skips == []
    # No packet late; the lead reaches one latency and stays there (steady state).
    for sent_at, sample, _ in run.sends:
        lead = ntp_diff_ns(pacer.timeline.play_ntp_of(sample), sent_at)
        assert lead >= SEND_MARGIN_NS
    assert Phase.BUILDING_LEAD in run.phases
    assert run.phases[-1] is Phase.STEADY
    steady = [s for s, p in zip(run.sends, run.phases, strict=True) if p is Phase.STEADY]
    assert len(steady) > 100
    for sent_at, sample, _ in steady[BATCH_PACKETS:]:
        early = ntp_diff_ns(pacer.timeline.send_ntp_of(sample), sent_at)
        assert 0 <= early <= SEND_WINDOW_NS
    # Built at most 4x real time: reaching a 2 s lead from 0.4 s takes >= 0.4 s.
    first_steady = ntp_diff_ns(steady[0][0], T0)
    assert first_steady >= 400_000_000


def test_before_the_start_instant_the_lead_stays_short() -> None:
    """Few packets arrive while the receiver still buffers, so it can ask for lost ones."""
    start = ntp_add_ns(T0, 1_500_000_000)
    pacer, clock = make(1.5)
    pacer.place_start(start)
    run = simulate(pacer, clock, seconds=3.0)
    # shairport-sync stops buffering when the pre-roll's first packet is due to play
    buffering_ends = ntp_add_ns(start, -frames_to_ns(PREROLL_FRAMES))
    before = [(t, s) for t, s, _ in run.sends if t < buffering_ends]
    assert before
    for sent_at, sample in before:
        lead = ntp_diff_ns(pacer.timeline.play_ntp_of(sample), sent_at)
        assert lead <= PRESTART_LEAD_NS + SEND_WINDOW_NS
    assert len(before) <= 10 + PRESTART_LEAD_NS // PACKET_NS + 1
    assert_token_bucket(run)


def test_packets_with_too_little_lead_to_heal_are_copied_and_no_others() -> None:
    """A start at the earliest instant: the first real packets leave with ~0.23 s of lead, too
    little for a receiver to ask for a lost one in time; they (and only they) are copied."""
    pacer, clock = make(0.0)
    pacer.place_start(T0)  # already too near: starts at the earliest instant
    run = simulate(pacer, clock, seconds=4.0)
    leads = [ntp_diff_ns(pacer.timeline.play_ntp_of(s), t) for t, s, _ in run.sends]
    kinds = [kind for _, _, kind in run.sends]
    for lead, kind, copy in zip(leads, kinds, run.copies, strict=True):
        assert copy == (kind is PacketKind.AUDIO and lead < HEAL_LEAD_NS), (lead, kind)
    assert run.copies[10]  # the first real packet ...
    assert leads[10] < 300_000_000
    copied = sum(run.copies)
    assert 20 <= copied <= 80  # the lead grows past the heal lead quickly (4x real time)
    assert not any(run.copies[copied + 10 :])


def test_a_latency_below_the_heal_lead_copies_only_while_building_it() -> None:
    pacer, clock = make(0.0, latency_ms=400)
    pacer.place_start(T0)
    run = simulate(pacer, clock, seconds=6.0)
    leads = [ntp_diff_ns(pacer.timeline.play_ntp_of(s), t) for t, s, _ in run.sends]
    assert len(run.sends) > 600
    assert run.copies[10]  # the first real packet: lead ~0.23 s
    for lead, copy in zip(leads[10:], run.copies[10:], strict=True):
        assert copy == (lead < 400_000_000 - SEND_WINDOW_NS)
    assert not any(run.copies[100:])  # a steady stream at its own latency is never copied


def test_steady_state_wakes_once_per_send_window() -> None:
    pacer, clock = make(2.5)
    pacer.place_start(ntp_add_ns(T0, 2_500_000_000))
    run = simulate(pacer, clock, seconds=12.0)
    packets = len(run.sends)
    assert packets > 1000
    assert run.wakes <= packets / 3  # packets due within 32 ms leave together


def test_a_late_start_skips_input_and_never_shifts_it() -> None:
    start = ntp_add_ns(T0, 100_000_000)  # closer than the 230 ms a start needs
    pacer, clock = make(0.1)
    first_real = pacer.place_start(start)
    # the first sample at least the start margin + pre-roll away, and no later one
    margin_ns = 150_000_000 + frames_to_ns(PREROLL_FRAMES)
    assert ntp_diff_ns(pacer.timeline.play_ntp_of(first_real), clock.now) >= margin_ns - 23_000
    assert ntp_diff_ns(pacer.timeline.play_ntp_of(first_real - 2), clock.now) < margin_ns
    assert pacer.timeline.play_ntp_of(0) == start  # sample 0 keeps its instant
    run = simulate(pacer, clock, seconds=1.0)
    assert run.sends[10][1] == first_real


def test_slow_wakeups_make_input_late_and_it_is_skipped() -> None:
    pacer, clock = make(0.5)
    pacer.place_start(ntp_add_ns(T0, 500_000_000))
    simulate(pacer, clock, seconds=1.0)
    clock.advance_to(ntp_add_ns(clock.now, 2_000_000_000))  # the process stalled for 2 s
    before = pacer.next_sample
    action = pacer.next_action(10**6, False)
    assert isinstance(action, Skip)
    assert action.from_sample == before
    # the first sample still sendable is the one that plays a send margin from now
    assert action.to_sample == pacer.timeline.sample_at(ntp_add_ns(clock.now, SEND_MARGIN_NS)) + 1
    assert pacer.next_sample == action.to_sample
    # sent with a send margin of lead: too little to heal a loss by asking, so sent twice
    assert pacer.next_action(10**6, False) == Send(PacketKind.AUDIO, copy=True)


def test_missing_input_becomes_an_underrun_at_its_last_moment() -> None:
    pacer, clock = make(0.5)
    pacer.place_start(ntp_add_ns(T0, 500_000_000))
    run = simulate(pacer, clock, seconds=0.7, input_frames=0, input_from_ns=10**12)
    kinds = [kind for _, _, kind in run.sends]
    assert kinds[:10] == [PacketKind.PREROLL] * 10
    assert set(kinds[10:]) == {PacketKind.UNDERRUN}
    for sent_at, sample, _ in run.sends[10:]:
        lead = ntp_diff_ns(pacer.timeline.play_ntp_of(sample), sent_at)
        assert SEND_MARGIN_NS - SEND_WINDOW_NS <= lead <= SEND_MARGIN_NS


def test_without_ntpstart_sample_0_gets_the_default_lead() -> None:
    pacer, clock = make(None)
    assert pacer.place_start(None) == 0
    assert pacer.timeline.play_ntp_of(0) == ntp_add_ns(T0, DEFAULT_START_LEAD_NS)
    run = simulate(pacer, clock, seconds=3.0)
    assert_token_bucket(run)
    # when sample 0 plays, the receiver already holds at least the first burst
    play0 = pacer.timeline.play_ntp_of(0)
    held = [s for t, s, _ in run.sends if t <= ntp_add_ns(play0, -SEND_MARGIN_NS) and s >= 0]
    assert len(held) * FRAMES_PER_PACKET >= SAMPLE_RATE // 5


def test_end_of_input_then_drain_is_paced_too() -> None:
    pacer, clock = make(0.4)
    pacer.place_start(ntp_add_ns(T0, 400_000_000))
    run = simulate(pacer, clock, seconds=5.0, input_frames=SAMPLE_RATE // 2)
    assert run.sends[-1][1] + FRAMES_PER_PACKET >= SAMPLE_RATE // 2
    pacer.drain()
    drained: list[int] = []
    for _ in range(300):
        action = pacer.next_drain_action()
        if isinstance(action, Send):
            assert action.kind is PacketKind.SILENCE
            drained.append(clock.now)
            pacer.sent()
        else:
            clock.advance_to(action.until_ntp)
    assert pacer.phase is Phase.DRAINING
    # the drain's silence keeps the same budget: never more than 0.25 s + 4x back to back
    first = drained[0]
    burst = [t for t in drained if t == first]
    assert len(burst) * PACKET_NS <= 250_000_000


def test_pause_and_resume_at_an_instant() -> None:
    pacer, clock = make(0.4)
    pacer.place_start(ntp_add_ns(T0, 400_000_000))
    simulate(pacer, clock, seconds=3.0)
    playing = pacer.timeline.sample_at(clock.now)
    keep_from = pacer.pause()
    assert pacer.phase is Phase.PAUSED
    assert keep_from == playing + 1  # everything sent but unplayed is put back
    pacer.rewind_to(keep_from)
    at = ntp_add_ns(clock.now, 1_000_000_000)
    assert pacer.resume(at, flush_rtp=99) == at
    assert pacer.phase is Phase.PREROLL
    assert pacer.timeline.play_ntp_of(keep_from) == at
    assert pacer.timeline.rtp_of(keep_from - PREROLL_FRAMES) == 99
    assert pacer.requested_first_sample == keep_from
    run = simulate(pacer, clock, seconds=6.0)
    assert_token_bucket(run)
    assert run.sends[10][1] == keep_from
    assert run.skips == []


def test_a_resume_without_an_instant_starts_at_the_earliest_safe_one() -> None:
    pacer, clock = make(0.4)
    pacer.place_start(ntp_add_ns(T0, 400_000_000))
    simulate(pacer, clock, seconds=1.0)
    pacer.pause()
    used = pacer.resume(None, flush_rtp=0)
    assert ntp_diff_ns(used, clock.now) == 150_000_000 + frames_to_ns(PREROLL_FRAMES) + 50_000_000


def test_a_resume_at_a_past_instant_keeps_its_timeline_and_skips_what_is_too_late() -> None:
    # a late joiner held until its receiver's clock was ready: its frame 0 was due 2 s ago
    pacer, clock = make(0.25)
    pacer.place_start(ntp_add_ns(T0, 60_000_000_000))  # far away, held before any audio left
    pacer.pause()
    at = ntp_add_ns(clock.now, -2_000_000_000)
    assert pacer.resume(at, flush_rtp=7) == at
    first_real = pacer.preroll_end
    lead_ns = 150_000_000 + frames_to_ns(PREROLL_FRAMES)
    # the first sample that can still play behind a pre-roll, on the line sample 0 @ `at`
    assert first_real == (2_000_000_000 + lead_ns) * SAMPLE_RATE // 1_000_000_000 + 1
    assert pacer.timeline.play_ntp_of(0) == at  # (to the NTP unit)
    assert pacer.timeline.rtp_of(first_real - PREROLL_FRAMES) == 7
    assert pacer.requested_first_sample == 0
    assert 0 < ntp_diff_ns(pacer.start_ntp, clock.now) <= lead_ns
    run = simulate(pacer, clock, seconds=2.0)
    assert run.sends[10][1] == first_real  # behind 10 pre-roll packets, nothing shifted
    assert run.skips == []


def test_wakeups_that_come_late_lose_nothing() -> None:
    pacer, clock = make(0.4)
    pacer.place_start(ntp_add_ns(T0, 400_000_000))
    run = simulate(pacer, clock, seconds=5.0, wake_late_ns=3_000_000)
    assert run.skips == []
    samples = [s for _, s, _ in run.sends]
    assert samples == list(range(samples[0], samples[-1] + 1, FRAMES_PER_PACKET))


def test_a_skipped_first_real_packet_passes_the_opening_to_the_next_one() -> None:
    pacer, clock = make(0.5)
    first_real = pacer.place_start(ntp_add_ns(T0, 500_000_000))
    for _ in range(10):  # the pre-roll leaves at once
        assert pacer.next_action(10**6, False) == Send(PacketKind.PREROLL)
        assert not pacer.opens_start
        assert pacer.sent() is False
    assert pacer.next_sample == first_real
    clock.advance_to(ntp_add_ns(clock.now, 1_000_000_000))  # the set-up stalled for 1 s
    action = pacer.next_action(10**6, False)
    assert isinstance(action, Skip)
    assert action.from_sample == first_real
    assert pacer.opens_start  # the first packet that leaves opens the start
    assert isinstance(pacer.next_action(10**6, False), Send)
    assert pacer.sent() is True
    assert not pacer.opens_start
    assert isinstance(pacer.next_action(10**6, False), Send)
    assert pacer.sent() is False
