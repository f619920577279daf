"""Announcements over the music, sans-I/O: the music's gain envelope and the mix.

An announcement, in the session's PCM format (s16le stereo 44.1 kHz, or s24le stereo 48 kHz
in a hi-res session), starts at session frame ``start`` and lasts ``L`` frames. The music is
ducked by ``duck_db`` around it with raised-cosine ramps of ``R`` frames (``ramp_s`` at the
session's rate): ``[start − R, start)`` ramps down, ``[start, start + L)`` stays down,
``[start + L, start + L + R)`` ramps back up. Gains are Q15 integers, so a mix is exactly
reproducible, with the same formula at either bit depth (``B`` = 16 or 24)::

    out = clamp(((music · gain + 2^14) >> 15) + announcement, −2^(B−1), 2^(B−1) − 1)

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

from airplay_provider.pcm_convert import s32le_to_s24le
from airplay_provider.protocol.pcm_format import CD, PcmFormat

Q15: Final = 1 << 15
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
    pcm: bytes = field(repr=False)  # in `pcm_format` (s16le or s24le stereo), whole frames
    duck_q15: int
    ramp_frames: int
    pcm_format: PcmFormat = CD
    _down: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        size = self.pcm_format.bytes_per_frame
        if len(self.pcm) % size or not self.pcm:
            raise ValueError(
                f"an announcement is non-empty {self.pcm_format.ffmpeg_format} stereo "
                f"(whole {size}-byte frames)"
            )
        if not 0 <= self.duck_q15 <= Q15 or self.ramp_frames < 0:
            raise ValueError("duck gain must be 0..32768 (Q15) and the ramp ≥ 0 frames")
        object.__setattr__(self, "_down", tuple(ramp_down_q15(self.duck_q15, self.ramp_frames)))

    @property
    def frames(self) -> int:
        """Length of the announcement itself."""
        return len(self.pcm) // self.pcm_format.bytes_per_frame

    @property
    def start_s(self) -> float:
        """Session position (s) of its first sample."""
        return self.start / self.pcm_format.rate

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
    pcm_format: PcmFormat = CD,
) -> Announcement:
    """Place `pcm` (in `pcm_format`) at `at_frame` (None: as early as possible), never before
    the ramp down can start at `earliest_frame` (the first frame not yet handed to the
    members). Frames and the ramp are counted at `pcm_format`'s rate."""
    if not 0.0 <= ramp_s <= MAX_RAMP_S:
        raise ValueError(f"ramp_s must be within 0..{MAX_RAMP_S:g} s, got {ramp_s!r}")
    ramp = round(ramp_s * pcm_format.rate)
    start = max(earliest_frame + ramp, at_frame if at_frame is not None else 0)
    return Announcement(start, pcm, duck_gain_q15(duck_db), ramp, pcm_format)


def _samples(pcm: bytes, bits: int = 16) -> array[int]:
    """The signed samples of s16le or packed s24le `pcm`."""
    if bits == 16:
        samples = array("h")
        samples.frombytes(pcm)
    else:  # each 3-byte sample into the top of an int32, then shifted down (sign kept)
        wide = bytearray(len(pcm) // 3 * 4)
        wide[1::4], wide[2::4], wide[3::4] = pcm[0::3], pcm[1::3], pcm[2::3]
        samples = array("i")
        samples.frombytes(wide)
    if sys.byteorder == "big":
        samples.byteswap()
    if bits != 16:
        samples = array("i", [s >> 8 for s in samples])
    return samples


def _pcm(samples: list[int], bits: int) -> bytes:
    """s16le or packed s24le bytes of `samples` (each within range)."""
    out = array("h", samples) if bits == 16 else array("i", [s << 8 for s in samples])
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes() if bits == 16 else s32le_to_s24le(out.tobytes())


class AnnouncementMixer:
    """The announcements of one session; `mix` applies them to each chunk in session order.
    `pcm_format` is the session's: announcements and chunks are in it."""

    def __init__(self, pcm_format: PcmFormat = CD) -> None:
        self.pcm_format = pcm_format
        self.scheduled: list[Announcement] = []
        #: The latest announcements placed, as (first frame, frames): for reports and tests.
        self.placed: collections.deque[tuple[int, int]] = collections.deque(maxlen=16)

    def add(self, announcement: Announcement) -> None:
        """Schedule an announcement (it may overlap others: they add up). ValueError when it
        is not in the mixer's format."""
        if announcement.pcm_format != self.pcm_format:
            raise ValueError(
                f"an announcement in {announcement.pcm_format} cannot be mixed into "
                f"{self.pcm_format} audio"
            )
        self.scheduled.append(announcement)
        self.placed.append((announcement.start, announcement.frames))

    def busy_after(self, frame: int) -> bool:
        """True while an announcement still changes frames at or after `frame`."""
        return any(a.duck_end > frame for a in self.scheduled)

    def mix(self, first: int, pcm: bytes) -> bytes:
        """Mix into `pcm` (the mixer's format, session frames from `first`); unchanged, and no
        copy, outside every announcement. Announcements wholly before the chunk's end are
        dropped."""
        size, bits = self.pcm_format.bytes_per_frame, self.pcm_format.bits
        count = len(pcm) // size
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
            voice = _samples(announcement.pcm[skip * size : (skip + hi - lo) * size], bits)
            base = 2 * (lo - first)
            for i, value in enumerate(voice):
                added[base + i] += value
        music = _samples(pcm[: count * size], bits)
        per_sample = [g for g in gains for _ in (0, 1)]
        low, top = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        mixed = [
            low if (v := ((m * g + 16384) >> 15) + a) < low else top if v > top else v
            for m, g, a in zip(music, per_sample, added, strict=True)
        ]
        return _pcm(mixed, bits) + pcm[count * size :]
