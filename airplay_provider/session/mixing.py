"""Announcements over the music, sans-I/O: the music's gain envelope and s16 mixing.

An announcement (s16le stereo, 44.1 kHz) starts at session frame ``start`` and lasts ``L``
frames. The music is ducked by ``duck_db`` around it with raised-cosine ramps of ``R`` frames:
``[start − R, start)`` ramps down, ``[start, start + L)`` stays down, ``[start + L,
start + L + R)`` ramps back up. Gains are Q15 integers, so a mix is exactly reproducible::

    out = clamp(((music · gain + 2^14) >> 15) + announcement, −32768, 32767)

Overlapping announcements add up; the music then takes the lowest of their gains.
The session mixes once, before the audio is fanned out, so every member gets the same samples
at the same session frames.
"""

from __future__ import annotations

import collections
import math
import sys
from array import array
from dataclasses import dataclass, field
from typing import Final

from airplay_provider.protocol.timing import SAMPLE_RATE

Q15: Final = 1 << 15
FRAME_BYTES: Final = 4  # s16le stereo
DEFAULT_DUCK_DB: Final = -18.0
DEFAULT_RAMP_S: Final = 0.08
MIN_DUCK_DB: Final = -96.0
MAX_RAMP_S: Final = 1.0


def duck_gain_q15(duck_db: float) -> int:
    """Q15 gain of the ducked music (0 dB → 32768); ValueError outside −96..0 dB."""
    if not MIN_DUCK_DB <= duck_db <= 0.0:
        raise ValueError(f"duck_db must be within {MIN_DUCK_DB:g}..0 dB, got {duck_db!r}")
    return round(Q15 * math.pow(10.0, duck_db / 20.0))


def ramp_fraction(step: int, frames: int) -> float:
    """How far a raised-cosine ramp of `frames` is at `step` (0..frames−1): in (0, 1)."""
    return (1.0 - math.cos(math.pi * (step + 1) / (frames + 1))) / 2.0


def ramp_down_q15(duck_q15: int, frames: int) -> list[int]:
    """The music's gains over a ramp from full (Q15) down to `duck_q15`, one per frame."""
    depth = Q15 - duck_q15
    return [Q15 - round(depth * ramp_fraction(i, frames)) for i in range(frames)]


@dataclass(frozen=True)
class Announcement:
    """One announcement placed on the session timeline (frames are session frames)."""

    start: int
    pcm: bytes = field(repr=False)  # s16le stereo, whole frames
    duck_q15: int
    ramp_frames: int
    _down: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.pcm) % FRAME_BYTES or not self.pcm:
            raise ValueError("an announcement is non-empty s16le stereo (whole 4-byte frames)")
        if not 0 <= self.duck_q15 <= Q15 or self.ramp_frames < 0:
            raise ValueError("duck gain must be 0..32768 (Q15) and the ramp ≥ 0 frames")
        object.__setattr__(self, "_down", tuple(ramp_down_q15(self.duck_q15, self.ramp_frames)))

    @property
    def frames(self) -> int:
        """Length of the announcement itself."""
        return len(self.pcm) // FRAME_BYTES

    @property
    def start_s(self) -> float:
        """Session position (s) of its first sample."""
        return self.start / SAMPLE_RATE

    @property
    def end(self) -> int:
        """First frame after the announcement (the ramp up starts here)."""
        return self.start + self.frames

    @property
    def duck_start(self) -> int:
        """First frame the music is lowered."""
        return self.start - self.ramp_frames

    @property
    def duck_end(self) -> int:
        """First frame the music is back at full level."""
        return self.end + self.ramp_frames

    def gains(self, first: int, count: int) -> list[int]:
        """The music's Q15 gain for frames ``first .. first + count − 1``."""
        out = [Q15] * count
        down, ramp = self._down, self.ramp_frames
        for frame in range(max(first, self.duck_start), min(first + count, self.duck_end)):
            if frame < self.start:
                gain = down[frame - self.duck_start]
            elif frame < self.end:
                gain = self.duck_q15
            else:
                gain = down[ramp - 1 - (frame - self.end)]  # the ramp down, mirrored
            out[frame - first] = gain
        return out


def announcement_at(
    pcm: bytes,
    at_frame: int | None,
    *,
    earliest_frame: int,
    duck_db: float = DEFAULT_DUCK_DB,
    ramp_s: float = DEFAULT_RAMP_S,
) -> Announcement:
    """Place `pcm` at `at_frame` (None: as early as possible), never before the ramp down
    can start at `earliest_frame` (the first frame not yet handed to the members)."""
    if not 0.0 <= ramp_s <= MAX_RAMP_S:
        raise ValueError(f"ramp_s must be within 0..{MAX_RAMP_S:g} s, got {ramp_s!r}")
    ramp = round(ramp_s * SAMPLE_RATE)
    start = max(earliest_frame + ramp, at_frame if at_frame is not None else 0)
    return Announcement(start, pcm, duck_gain_q15(duck_db), ramp)


def _samples(pcm: bytes) -> array[int]:
    samples = array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _clamp(value: int) -> int:
    return -32768 if value < -32768 else 32767 if value > 32767 else value


class AnnouncementMixer:
    """The announcements of one session; `mix` applies them to each chunk in session order."""

    def __init__(self) -> None:
        self.scheduled: list[Announcement] = []
        #: The latest announcements placed, as (first frame, frames): for reports and tests.
        self.placed: collections.deque[tuple[int, int]] = collections.deque(maxlen=16)

    def add(self, announcement: Announcement) -> None:
        """Schedule an announcement (it may overlap others: they add up)."""
        self.scheduled.append(announcement)
        self.placed.append((announcement.start, announcement.frames))

    def busy_after(self, frame: int) -> bool:
        """True while an announcement still changes frames at or after `frame`."""
        return any(a.duck_end > frame for a in self.scheduled)

    def mix(self, first: int, pcm: bytes) -> bytes:
        """Mix into `pcm` (s16le stereo, session frames from `first`); unchanged, and no copy,
        outside every announcement. Announcements wholly before the chunk's end are dropped."""
        count = len(pcm) // FRAME_BYTES
        last = first + count
        active = [a for a in self.scheduled if a.duck_start < last and a.duck_end > first]
        self.scheduled = [a for a in self.scheduled if a.duck_end > last]
        if not active:
            return pcm
        gains = active[0].gains(first, count)
        for extra in active[1:]:
            gains = list(map(min, gains, extra.gains(first, count)))
        added = [0] * (2 * count)
        for announcement in active:
            lo, hi = max(first, announcement.start), min(last, announcement.end)
            if lo >= hi:
                continue
            skip = lo - announcement.start
            voice = _samples(announcement.pcm[skip * FRAME_BYTES : (skip + hi - lo) * FRAME_BYTES])
            base = 2 * (lo - first)
            for i, value in enumerate(voice):
                added[base + i] += value
        music = _samples(pcm[: count * FRAME_BYTES])
        per_sample = [g for g in gains for _ in (0, 1)]
        out = array(
            "h",
            [
                _clamp(((m * g + 16384) >> 15) + a)
                for m, g, a in zip(music, per_sample, added, strict=True)
            ],
        )
        if sys.byteorder == "big":
            out.byteswap()
        return out.tobytes() + pcm[count * FRAME_BYTES :]
