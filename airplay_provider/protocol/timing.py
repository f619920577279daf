"""Time arithmetic for RAOP: NTP 32.32 timestamps, nanoseconds, RTP frames, volume in dB.

Pure integer maths, no clock reads: callers pass the times in. NTP values are 64-bit
unsigned (seconds since 1900 in the high word, binary fraction in the low word) and all
arithmetic on them is modulo 2**64, so the 2036 era rollover is handled (see
:func:`unix_ns_from_ntp`). RTP timestamps are 32-bit unsigned and wrap modulo 2**32.
"""

from __future__ import annotations

import math

SAMPLE_RATE = 44100
FRAMES_PER_PACKET = 352
BYTES_PER_FRAME = 4
NTP_UNIX_OFFSET = 2208988800
RAOP_RECEIVER_LATENCY = 11025

NS_PER_S = 1_000_000_000
_NTP_ONE_SECOND = 1 << 32
_NTP_MASK = (1 << 64) - 1
_NTP_ERA_NS = (1 << 32) * NS_PER_S
_RTP_MASK = (1 << 32) - 1

MUTE_DB = -144.0
MIN_DB = -30.0
MAX_DB = 0.0


def _round_div(numerator: int, denominator: int) -> int:
    """Integer division rounded to nearest (halves rounded up), denominator > 0."""
    return (2 * numerator + denominator) // (2 * denominator)


def ntp_from_unix_ns(unix_ns: int) -> int:
    """Unix time in ns → 64-bit NTP 32.32, rounded to the nearest fraction unit."""
    ntp_ns = unix_ns + NTP_UNIX_OFFSET * NS_PER_S
    return _round_div(ntp_ns << 32, NS_PER_S) & _NTP_MASK


def unix_ns_from_ntp(ntp: int) -> int:
    """64-bit NTP → Unix time in ns (rounded).

    Seconds with the top bit clear are taken as NTP era 1 (from 2036-02-07), as RFC 4330
    suggests, so the valid range is 1968-01-20 .. 2104-02-26.
    """
    ntp &= _NTP_MASK
    ntp_ns = _round_div(ntp * NS_PER_S, _NTP_ONE_SECOND)
    if not ntp >> 63:
        ntp_ns += _NTP_ERA_NS
    return ntp_ns - NTP_UNIX_OFFSET * NS_PER_S


def ntp_to_parts(ntp: int) -> tuple[int, int]:
    """Split a 64-bit NTP value into (seconds, fraction), both 32-bit."""
    ntp &= _NTP_MASK
    return ntp >> 32, ntp & 0xFFFFFFFF


def ntp_from_parts(seconds: int, fraction: int) -> int:
    """Join 32-bit seconds and fraction into one 64-bit NTP value."""
    return ((seconds & 0xFFFFFFFF) << 32) | (fraction & 0xFFFFFFFF)


def ntp_add_frames(ntp: int, frames: int, rate: int = SAMPLE_RATE) -> int:
    """NTP time plus ``frames / rate`` seconds (rounded once; frames may be negative).

    Always add the total frame count to one anchor; summing per-packet results would
    accumulate rounding error.
    """
    return (ntp + _round_div(frames << 32, rate)) & _NTP_MASK


def ntp_add_ns(ntp: int, ns: int) -> int:
    """NTP time plus ``ns`` nanoseconds (rounded; ns may be negative)."""
    return (ntp + _round_div(ns << 32, NS_PER_S)) & _NTP_MASK


def ntp_diff_ns(a: int, b: int) -> int:
    """``a - b`` in ns (signed), correct across the 64-bit wrap for |a - b| < 68 years."""
    delta = (a - b) & _NTP_MASK
    if delta >> 63:
        delta -= 1 << 64
    return _round_div(delta * NS_PER_S, _NTP_ONE_SECOND)


def frames_to_ns(frames: int, rate: int = SAMPLE_RATE) -> int:
    """Duration of ``frames`` at ``rate`` in ns, rounded to nearest."""
    return _round_div(frames * NS_PER_S, rate)


def ns_to_frames(ns: int, rate: int = SAMPLE_RATE) -> int:
    """Whole frames that fit in ``ns`` nanoseconds (floor, also for negative ns)."""
    return (ns * rate) // NS_PER_S


def rtp_add(ts: int, delta: int) -> int:
    """RTP timestamp plus ``delta`` frames, modulo 2**32."""
    return (ts + delta) & _RTP_MASK


def rtp_diff(a: int, b: int) -> int:
    """Signed 32-bit difference ``a - b`` of two RTP timestamps (range -2**31 .. 2**31-1)."""
    return ((a - b + (1 << 31)) & _RTP_MASK) - (1 << 31)


def _reject_nan(value: float, what: str) -> None:
    if math.isnan(value):
        raise ValueError(f"{what} is NaN")


def volume_to_db(percent: float) -> float:
    """Volume slider 0..100 → AirPlay dB: 0 → -144.0 (mute), else -30 + 30 * p / 100.

    Values outside 0..100 are clamped; NaN raises ValueError.
    """
    _reject_nan(percent, "volume percent")
    percent = min(100.0, max(0.0, float(percent)))
    if percent <= 0.0:
        return MUTE_DB
    return MIN_DB + (MAX_DB - MIN_DB) * percent / 100.0


def db_to_volume(db: float) -> int:
    """AirPlay dB → volume 0..100: -144 (or anything <= -100) → 0, -30..0 → 0..100 rounded.

    Values above 0 dB clamp to 100, between -100 and -30 to 0; NaN raises ValueError.
    """
    _reject_nan(db, "volume dB")
    if db <= -100.0:
        return 0
    db = min(MAX_DB, max(MIN_DB, float(db)))
    return round((db - MIN_DB) * 100.0 / (MAX_DB - MIN_DB))
