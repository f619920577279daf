"""NTP / ns / RTP frame arithmetic and the volume map."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airplay_provider.protocol import timing
from airplay_provider.protocol.timing import (
    NTP_UNIX_OFFSET,
    SAMPLE_RATE,
    db_to_volume,
    frames_to_ns,
    ns_to_frames,
    ntp_add_frames,
    ntp_add_ns,
    ntp_diff_ns,
    ntp_from_parts,
    ntp_from_unix_ns,
    ntp_to_parts,
    rtp_add,
    rtp_diff,
    unix_ns_from_ntp,
    volume_to_db,
)

ONE_SECOND = 1 << 32
# Unix times (ns) NTP era 0/1 can represent with the RFC 4330 pivot: 1968-01-20 .. 2104-02-26.
MIN_UNIX_NS = -(NTP_UNIX_OFFSET - 2**31) * 10**9
MAX_UNIX_NS = (2**32 + 2**31 - NTP_UNIX_OFFSET) * 10**9 - 1
unix_times = st.integers(min_value=MIN_UNIX_NS, max_value=MAX_UNIX_NS)


def test_constants() -> None:
    assert (SAMPLE_RATE, timing.FRAMES_PER_PACKET, timing.BYTES_PER_FRAME) == (44100, 352, 4)
    assert NTP_UNIX_OFFSET == 0x83AA7E80
    assert timing.RAOP_RECEIVER_LATENCY == 11025


def test_unix_epoch_is_ntp_offset() -> None:
    assert ntp_from_unix_ns(0) == 0x83AA7E80_00000000
    assert unix_ns_from_ntp(0x83AA7E80_00000000) == 0


def test_half_second_and_fraction_rounding() -> None:
    assert ntp_from_unix_ns(500_000_000) == (0x83AA7E80 << 32) | 0x80000000
    # 1 ns = 4.294967296 units: rounds to 4; 3 ns = 12.88 units: rounds to 13.
    assert ntp_to_parts(ntp_from_unix_ns(1)) == (0x83AA7E80, 4)
    assert ntp_to_parts(ntp_from_unix_ns(3)) == (0x83AA7E80, 13)


def test_known_date() -> None:
    # 2024-01-01T00:00:00Z = Unix 1704067200 → NTP seconds 3913056000 (0xE93C7F00).
    ntp = ntp_from_unix_ns(1_704_067_200 * 10**9 + 250_000_000)
    assert ntp_to_parts(ntp) == (0xE93C7F00, 0x40000000)


def test_era_rollover_2036() -> None:
    # NTP seconds wrap to 0 at Unix 2085978496 (2036-02-07T06:28:16Z).
    rollover_unix_s = 2**32 - NTP_UNIX_OFFSET
    assert ntp_from_unix_ns(rollover_unix_s * 10**9) == 0
    assert unix_ns_from_ntp(0) == rollover_unix_s * 10**9
    before = ntp_from_unix_ns(rollover_unix_s * 10**9 - 1_000_000_000)
    assert ntp_to_parts(before) == (0xFFFFFFFF, 0)
    assert ntp_diff_ns(0, before) == 1_000_000_000
    assert ntp_diff_ns(before, 0) == -1_000_000_000
    assert ntp_add_frames(before, SAMPLE_RATE) == 0


@given(unix_times)
def test_ns_round_trip_is_exact(unix_ns: int) -> None:
    ntp = ntp_from_unix_ns(unix_ns)
    assert 0 <= ntp < 2**64
    assert unix_ns_from_ntp(ntp) == unix_ns


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_ntp_round_trip_within_resolution(ntp: int) -> None:
    back = ntp_from_unix_ns(unix_ns_from_ntp(ntp))
    wrapped_error = (back - ntp + 2**63) % 2**64 - 2**63
    assert abs(wrapped_error) <= 3  # 1 ns ≈ 4.3 fraction units


@pytest.mark.parametrize(
    "unix_ns", [MIN_UNIX_NS, MAX_UNIX_NS, 0, -1, 1, 10**18, 1_999_999_999_999_999_999]
)
def test_round_trip_edges(unix_ns: int) -> None:
    assert unix_ns_from_ntp(ntp_from_unix_ns(unix_ns)) == unix_ns


def test_parts() -> None:
    assert ntp_to_parts(0x0123456789ABCDEF) == (0x01234567, 0x89ABCDEF)
    assert ntp_from_parts(0x01234567, 0x89ABCDEF) == 0x0123456789ABCDEF
    assert ntp_to_parts(2**64 + 5) == (0, 5)


def test_add_frames_one_second_is_exact() -> None:
    base = 0x83AA7E80_12345678
    assert ntp_add_frames(base, 44100) == base + ONE_SECOND
    assert ntp_add_frames(base, -44100) == base - ONE_SECOND
    assert ntp_add_frames(base, 44100 * 3600) == base + 3600 * ONE_SECOND
    assert ntp_add_frames(base, 48000, rate=48000) == base + ONE_SECOND
    assert ntp_add_frames(base, 0) == base


def test_add_frames_rounds_to_nearest() -> None:
    # 1 frame = 2**32 / 44100 = 97391.548... units → 97392; 352 frames = 34281825.0 units.
    assert ntp_add_frames(0, 1) == 97392
    assert ntp_add_frames(0, 352) == 34281825
    assert ntp_add_frames(0, 11025) == ONE_SECOND // 4
    assert ntp_add_frames(2**64 - 1, 44100) == ONE_SECOND - 1


@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(-(10**9), 10**9))
def test_add_frames_matches_exact_fraction(ntp: int, frames: int) -> None:
    result = ntp_add_frames(ntp, frames)
    exact_units = frames * ONE_SECOND / SAMPLE_RATE
    delta = (result - ntp + 2**63) % 2**64 - 2**63
    assert abs(delta - exact_units) <= 0.5 + 1e-6 * abs(exact_units) / 2**40


@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(-(10**15), 10**15))
def test_add_ns_then_diff(ntp: int, ns: int) -> None:
    assert abs(ntp_diff_ns(ntp_add_ns(ntp, ns), ntp) - ns) <= 1


def test_diff_ns_signs() -> None:
    a = 0x83AA7E80_00000000
    assert ntp_diff_ns(a + ONE_SECOND, a) == 1_000_000_000
    assert ntp_diff_ns(a, a + ONE_SECOND) == -1_000_000_000
    assert ntp_diff_ns(a + ONE_SECOND // 2, a) == 500_000_000
    assert ntp_diff_ns(a, a) == 0


@given(unix_times, st.integers(-(2**31) * 10**9 + 1, 2**31 * 10**9 - 1))
def test_diff_ns_matches_unix_difference(x: int, offset_ns: int) -> None:
    y = min(MAX_UNIX_NS, max(MIN_UNIX_NS, x + offset_ns))  # |x - y| < 2**31 s (68 years)
    assert abs(ntp_diff_ns(ntp_from_unix_ns(x), ntp_from_unix_ns(y)) - (x - y)) <= 1


def test_frames_ns_conversions() -> None:
    assert frames_to_ns(44100) == 1_000_000_000
    assert frames_to_ns(352) == 7_981_859  # 7981859.41 ns
    assert frames_to_ns(1) == 22_676  # 22675.7 ns rounds up
    assert frames_to_ns(-352) == -7_981_859
    assert ns_to_frames(1_000_000_000) == 44100
    assert ns_to_frames(22_675) == 0
    assert ns_to_frames(22_676) == 1
    assert ns_to_frames(-1) == -1  # floor
    assert ns_to_frames(7_981_859) == 351
    assert ns_to_frames(7_981_860) == 352


@given(st.integers(-(10**12), 10**12))
def test_frames_ns_round_trip(frames: int) -> None:
    assert ns_to_frames(frames_to_ns(frames) + 11_000) == frames
    exact = Fraction(frames * 10**9, SAMPLE_RATE)  # floats lose precision at 1e16 ns
    assert abs(frames_to_ns(frames) - exact) <= Fraction(1, 2)


def test_rtp_add_wraps() -> None:
    assert rtp_add(0xFFFFFFFF, 1) == 0
    assert rtp_add(0xFFFFFF00, 352) == 0x60
    assert rtp_add(0, -1) == 0xFFFFFFFF
    assert rtp_add(5, 2**32) == 5


def test_rtp_diff_signed() -> None:
    assert rtp_diff(0, 0xFFFFFFFF) == 1
    assert rtp_diff(0xFFFFFFFF, 0) == -1
    assert rtp_diff(352, 0) == 352
    assert rtp_diff(0, 352) == -352
    assert rtp_diff(2**31, 0) == -(2**31)
    assert rtp_diff(2**31 - 1, 0) == 2**31 - 1


@given(st.integers(0, 2**32 - 1), st.integers(-(2**31), 2**31 - 1))
def test_rtp_add_diff_inverse(ts: int, delta: int) -> None:
    later = rtp_add(ts, delta)
    assert 0 <= later < 2**32
    assert rtp_diff(later, ts) == delta


def test_volume_to_db() -> None:
    assert volume_to_db(0) == -144.0
    assert volume_to_db(100) == 0.0
    assert volume_to_db(50) == -15.0
    assert volume_to_db(1) == pytest.approx(-29.7)
    assert volume_to_db(-5) == -144.0
    assert volume_to_db(150) == 0.0
    with pytest.raises(ValueError, match="NaN"):
        volume_to_db(math.nan)


def test_db_to_volume() -> None:
    assert db_to_volume(-144.0) == 0
    assert db_to_volume(-100.0) == 0
    assert db_to_volume(-30.0) == 0
    assert db_to_volume(-50.0) == 0
    assert db_to_volume(0.0) == 100
    assert db_to_volume(3.0) == 100
    assert db_to_volume(-15.0) == 50
    assert db_to_volume(-11.123877) == 63
    with pytest.raises(ValueError, match="NaN"):
        db_to_volume(math.nan)


@pytest.mark.parametrize("percent", range(101))
def test_volume_round_trip(percent: int) -> None:
    assert db_to_volume(volume_to_db(percent)) == percent
