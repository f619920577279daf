"""Session arithmetic (sans-I/O): lead, member start instants, late-join position, group
resume plan, ring buffer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.protocol.timing import ntp_add_frames, ntp_diff_ns
from airplay_provider.session.timeline import (
    LEAD_SAFETY_S,
    MIN_LEAD_S,
    PTP_SETTLE_S,
    RAMP_RATE,
    RELEASE_LEAD_PER_MEMBER_S,
    RESUME_LEAD_S,
    STREAMER_START_MARGIN_S,
    LeadEstimator,
    RingBuffer,
    ahead_limit_s,
    join_position,
    member_start_ntp,
    position_at,
    primed,
    ptp_settle_wait_s,
    release_lead_s,
    resume_plan,
    start_instant,
)

T = 0xDBF0_0000_8000_0000  # an NTP instant with half a second in the fraction


def test_start_instant_and_member_start_are_exact() -> None:
    assert start_instant(T, 0.5) == 0xDBF0_0001_0000_0000
    assert member_start_ntp(T, 0, 0) == T
    assert member_start_ntp(T, 44100, 0) == T + (1 << 32)
    assert member_start_ntp(T, 0, 250) == T + (1 << 30)  # +250 ms
    assert member_start_ntp(T, 44100, -500) == T + (1 << 31)  # +1 s − 0.5 s


def test_position_at_counts_frames_since_t() -> None:
    assert position_at(T, T) == 0
    assert position_at(ntp_add_frames(T, 12345), T) == 12345
    assert position_at(T - (1 << 32), T) == -44100


def test_lead_follows_the_slowest_recent_connect_per_member() -> None:
    lead = LeadEstimator(initial_connect_s=0.4, window=3)
    margin = STREAMER_START_MARGIN_S + LEAD_SAFETY_S
    assert lead.lead_s() == pytest.approx(0.4 + margin)
    assert lead.lead_s(3) == pytest.approx(0.4 * 3 * 1.3 + margin)
    for seconds in (0.2, 0.3, 0.25):
        lead.record(seconds)
    assert lead.connect_estimate_s == 0.3
    assert lead.lead_s() == pytest.approx(0.3 + margin)
    lead.record(0.78, members=3)  # three started together: 0.2 s each, times 1.3
    lead.record(0.1)
    lead.record(0.1)  # the slow 0.3 leaves the window of 3
    assert lead.connect_estimate_s == pytest.approx(0.2)
    assert lead.lead_s(3) == pytest.approx(0.78 + margin)
    assert lead.lead_s(2) == pytest.approx(0.2 * 2 * 1.15 + margin)
    lead.record(-1.0)  # nonsense is ignored
    assert lead.connect_estimate_s == pytest.approx(0.2)
    assert LeadEstimator(initial_connect_s=0.0).lead_s() == MIN_LEAD_S
    assert LeadEstimator(initial_connect_s=50.0).lead_s() == 10.0


def test_join_position_is_the_first_playable_buffered_frame() -> None:
    now = ntp_add_frames(T, 10 * 44100)  # 10 s into the session
    assert join_position(now, T, 0.5, oldest=0, fed=13 * 44100) == 10 * 44100 + 22050 + 1
    assert join_position(now, T, 0.5, oldest=11 * 44100, fed=13 * 44100) == 11 * 44100
    assert join_position(now, T, 0.5, oldest=0, fed=10 * 44100) == 10 * 44100  # nothing ahead


def test_resume_plan_puts_everyone_on_one_new_timeline() -> None:
    now = T
    plan = resume_plan(now, {"a": (44100, 0), "b": (44541, 0), "c": (44100, 20)}, 0.35)
    assert plan is not None
    # The earliest member (a) resumes exactly 0.35 s from now; b and c at their own offsets.
    assert plan.member_ntp["a"] == start_instant(now, 0.35)
    assert ntp_diff_ns(plan.member_ntp["b"], plan.member_ntp["a"]) == 10_000_000  # 441 frames
    assert ntp_diff_ns(plan.member_ntp["c"], plan.member_ntp["a"]) == 20_000_000  # its adjust
    assert plan.start_ntp == ntp_add_frames(plan.member_ntp["a"], -44100)
    assert resume_plan(now, {}, 0.35) is None


def test_resume_plan_with_negative_adjust_keeps_the_lead() -> None:
    plan = resume_plan(T, {"a": (1000, 0), "b": (1000, -100)}, 0.35)
    assert plan is not None
    assert plan.member_ntp["b"] == start_instant(T, 0.35)  # b is the earliest now
    assert ntp_diff_ns(plan.member_ntp["a"], plan.member_ntp["b"]) == 100_000_000


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=3),
        st.tuples(st.integers(0, 10**8), st.integers(-500, 500)),
        min_size=1,
        max_size=6,
    )
)
def test_resume_plan_property(members: dict[str, tuple[int, int]]) -> None:
    plan = resume_plan(T, members, 0.35)
    assert plan is not None
    earliest = start_instant(T, 0.35)
    offsets = [ntp_diff_ns(ntp, earliest) for ntp in plan.member_ntp.values()]
    assert min(offsets) >= -1  # nobody earlier than the lead (NTP rounding: ≤ 1 ns)
    assert min(offsets) <= 1
    for key, (frame, adjust) in members.items():  # each on T' + frame + adjust
        assert plan.member_ntp[key] == member_start_ntp(plan.start_ntp, frame, adjust)


def test_ring_buffer_keeps_the_last_seconds_and_cuts_chunks() -> None:
    ring = RingBuffer(seconds=2.0)
    second = bytes(range(256)) * (44100 * 8 // 256) + bytes(44100 * 8 % 256)
    for index in range(4):
        ring.append(index * 44100, second)
    assert (ring.start, ring.end) == (2 * 44100, 4 * 44100)
    parts = ring.since(2 * 44100 + 10)
    assert len(parts) == 2
    assert parts[0] == second[80:]
    assert parts[1] == second
    assert ring.since(4 * 44100) == []
    with pytest.raises(ValueError, match="outside the buffer"):
        ring.since(44100)
    with pytest.raises(ValueError, match="does not follow"):
        ring.append(7 * 44100, second)


def test_ring_buffer_starts_anywhere() -> None:
    ring = RingBuffer(seconds=10.0)
    assert (ring.start, ring.end) == (0, 0)
    ring.append(500, bytes(80))
    assert (ring.start, ring.end) == (500, 510)
    assert ring.since(505) == [bytes(40)]


def test_release_lead_grows_with_the_members_released_together() -> None:
    assert release_lead_s(1) == pytest.approx(RESUME_LEAD_S)
    assert release_lead_s(0) == pytest.approx(RESUME_LEAD_S)
    assert release_lead_s(32) == pytest.approx(RESUME_LEAD_S + 31 * RELEASE_LEAD_PER_MEMBER_S)
    assert release_lead_s(8) < release_lead_s(16)


def test_primed_needs_the_wanted_frames_or_all_that_was_fed() -> None:
    assert not primed(0, fed=22050, wanted=22050)  # all still in ffmpeg or a pipe
    assert not primed(22049, fed=44100, wanted=22050)
    assert primed(22050, fed=44100, wanted=22050)
    assert primed(1000, fed=1000, wanted=22050)  # a short source: all of it arrived
    assert not primed(999, fed=1000, wanted=22050)
    assert primed(None, fed=44100, wanted=22050)  # unknown (no probe): not waited for


def test_ahead_limit_ramps_from_the_start_to_the_full_lead() -> None:
    assert ahead_limit_s(0.9, 0.0, 2.5) == pytest.approx(0.9)
    assert ahead_limit_s(0.9, 0.5, 2.5) == pytest.approx(0.9 + 0.5 * RAMP_RATE)
    assert ahead_limit_s(0.9, 10.0, 2.5) == pytest.approx(2.5)
    assert ahead_limit_s(0.9, -1.0, 2.5) == pytest.approx(0.9)  # clock steps never shrink it


def test_a_ptp_member_is_held_until_its_receiver_follows_our_clock() -> None:
    connected_at = 100.0
    assert ptp_settle_wait_s("ptp", connected_at, 100.0) == PTP_SETTLE_S
    assert ptp_settle_wait_s("ptp", connected_at, 100.4) == pytest.approx(PTP_SETTLE_S - 0.4)
    assert ptp_settle_wait_s("ptp", connected_at, 100.0 + PTP_SETTLE_S + 0.1) == 0.0
    assert ptp_settle_wait_s("ntp", connected_at, 100.0) == 0.0  # the receiver asks our clock
    assert ptp_settle_wait_s(None, connected_at, 100.0) == 0.0  # RAOP: no timing field
    assert ptp_settle_wait_s("ptp", None, 100.0) == 0.0
