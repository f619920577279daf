"""Test signals and received-audio comparison (s16le, stereo, no numpy).

``test_signal`` makes a deterministic, non-periodic stereo signal (chirp + seeded noise), so
it aligns at exactly one offset. ``compare_audio`` finds where the sent signal starts in what a
receiver wrote (leading silence, ±1 LSB dither) and checks every frame within a tolerance.
"""

from __future__ import annotations

import math
import operator
import random
import sys
from array import array
from dataclasses import dataclass

FRAME_BYTES = 4  # s16le × 2 channels
RATE = 44100
_ANCHOR_MIN_LEVEL = 256  # both channels this loud: never confused with (dithered) silence
_VERIFY_FRAMES = 2048


class AudioMismatchError(AssertionError):
    """Received audio does not contain the sent audio as required."""


def _samples(pcm: bytes) -> array[int]:
    """Interleaved int16 samples of whole frames (a trailing partial frame is ignored)."""
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % FRAME_BYTES])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _to_bytes(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def test_signal(seconds: float, *, seed: int = 1, rate: int = RATE) -> bytes:  # noqa: PT028
    """Deterministic s16le stereo: a log chirp plus seeded noise, about -12 dBFS peak.

    Left and right use different chirps and independent noise, so a channel swap is detected.
    """
    frames = round(seconds * rate)
    rng = random.Random(seed)
    noise = array("h")
    noise.frombytes(rng.randbytes(frames * FRAME_BYTES))
    amplitude = 4096.0  # chirp ±4096 + noise ±4096 → peak 8192 = -12 dBFS
    f0_left, f0_right, f1 = 110.0, 170.0, 6000.0
    duration = max(seconds, 1e-3)
    out = array("h", bytes(frames * FRAME_BYTES))
    for channel, f0 in ((0, f0_left), (1, f0_right)):
        k = math.log(f1 / f0) / duration  # instantaneous frequency f0·e^(k·t)
        scale = 2 * math.pi * f0 / k
        out[channel::2] = array(
            "h",
            (
                int(amplitude * math.sin(scale * (math.exp(k * i / rate) - 1))) + (n >> 3)
                for i, n in enumerate(noise[channel::2])
            ),
        )
    return _to_bytes(out)


test_signal.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _anchor(sent: array[int], start_frame: int) -> int | None:
    """First frame at or after ``start_frame`` loud enough on both channels."""
    for frame in range(start_frame, len(sent) // 2):
        left, right = sent[2 * frame], sent[2 * frame + 1]
        if min(abs(left), abs(right)) >= _ANCHOR_MIN_LEVEL:
            return frame
    return None


def _matches(
    received: array[int], at: int, sent: array[int], start: int, count: int, tol: int
) -> bool:
    r = received[2 * at : 2 * (at + count)]
    s = sent[2 * start : 2 * (start + count)]
    return len(r) == len(s) and all(-tol <= d <= tol for d in map(operator.sub, r, s))


def _locate(
    received: array[int], sent: array[int], search_frames: int | None, tolerance_lsb: int
) -> int:
    sent_frames = len(sent) // 2
    received_frames = len(received) // 2
    limit = received_frames if search_frames is None else min(received_frames, search_frames + 1)
    # Anchor at the start of `sent`; if that part is lost, try later anchors (offset may be < 0).
    for fraction in (0, 1, 2, 3):
        anchor = _anchor(sent, sent_frames * fraction // 4)
        if anchor is None:
            continue
        count = min(_VERIFY_FRAMES, sent_frames - anchor)
        left, right = sent[2 * anchor], sent[2 * anchor + 1]
        lo, hi = left - tolerance_lsb, left + tolerance_lsb
        first = max(0, anchor - sent_frames * fraction // 4)
        window = received[2 * first : 2 * (limit + anchor)]
        for pos, value in enumerate(window[0::2]):
            if not lo <= value <= hi:
                continue
            frame = first + pos
            if abs(received[2 * frame + 1] - right) <= tolerance_lsb and _matches(
                received, frame, sent, anchor, count, tolerance_lsb
            ):
                return frame - anchor
    raise AudioMismatchError("sent audio not found in received audio")


def find_offset(
    received: bytes, sent: bytes, *, search_frames: int | None = None, tolerance_lsb: int = 2
) -> int:
    """Frame offset in ``received`` where ``sent`` begins.

    ``search_frames`` bounds the offset searched (default: all of ``received``). Negative when
    ``received`` begins after the start of ``sent``. Raises AudioMismatchError if not found.
    """
    if tolerance_lsb < 0:
        raise ValueError("tolerance_lsb must be >= 0")
    return _locate(_samples(received), _samples(sent), search_frames, tolerance_lsb)


@dataclass
class Comparison:
    """How ``sent`` appears in ``received`` after alignment."""

    offset_frames: int  # frame of `received` where sent frame 0 is (or would be)
    frames_compared: int  # sent frames with a received counterpart
    max_abs_diff: int  # over compared samples
    mismatched_frames: int  # compared frames off by more than the tolerance, + missing head
    missing_tail_frames: int  # sent frames after the end of `received`
    first_mismatch_frame: int | None = None  # index in `sent`

    @property
    def ok(self) -> bool:
        """Every sent frame present, in order, within tolerance."""
        return self.mismatched_frames == 0 and self.missing_tail_frames == 0


def compare_audio(received: bytes, sent: bytes, *, tolerance_lsb: int = 2) -> Comparison:
    """Align ``sent`` in ``received`` and count frames missing or off by > ``tolerance_lsb``."""
    r, s = _samples(received), _samples(sent)
    offset = _locate(r, s, None, tolerance_lsb)
    sent_frames = len(s) // 2
    head_missing = max(0, -offset)
    start = head_missing  # first sent frame with a received counterpart
    end = min(sent_frames, len(r) // 2 - offset)
    diffs = list(
        map(operator.sub, r[2 * (offset + start) : 2 * (offset + end)], s[2 * start : 2 * end])
    )
    max_abs = max(map(abs, diffs), default=0)
    bad_frames: set[int] = set()
    if max_abs > tolerance_lsb:
        bad_frames = {start + i // 2 for i, d in enumerate(diffs) if abs(d) > tolerance_lsb}
    first_bad = 0 if head_missing else min(bad_frames, default=None)
    return Comparison(
        offset_frames=offset,
        frames_compared=max(0, end - start),
        max_abs_diff=max_abs,
        mismatched_frames=len(bad_frames) + head_missing,
        missing_tail_frames=sent_frames - max(end, start),
        first_mismatch_frame=first_bad,
    )


def assert_audio_delivered(received: bytes, sent: bytes, *, tolerance_lsb: int = 2) -> Comparison:
    """Every sent frame present in ``received``, in order, within tolerance, nothing missing."""
    comparison = compare_audio(received, sent, tolerance_lsb=tolerance_lsb)
    if not comparison.ok:
        raise AudioMismatchError(f"audio not delivered intact: {comparison}")
    return comparison


def silence(seconds: float, *, rate: int = RATE) -> bytes:
    """Digital silence, s16le stereo."""
    return bytes(round(seconds * rate) * FRAME_BYTES)


def add_dither(pcm: bytes, *, lsb: int = 1, seed: int = 7) -> bytes:
    """``pcm`` with independent random ±``lsb`` noise on every sample (clipped to int16)."""
    rng = random.Random(seed)
    samples = _samples(pcm)
    noisy = array("h", (max(-32768, min(32767, v + rng.randint(-lsb, lsb))) for v in samples))
    return _to_bytes(noisy)


def music_like(seconds: float, *, seed: int = 1, peak: float = 0.5, rate: int = RATE) -> bytes:
    """Deterministic s16le stereo that codes like music: plucked notes (6 decaying harmonics,
    panned), a bass line, hi-hat noise bursts and a ±2 LSB noise floor; ``peak`` is the
    notes' mixed level as a fraction of full scale (clipped at int16)."""
    frames = round(seconds * rate)
    rng = random.Random(seed)
    left = [rng.gauss(0.0, 1.5) for _ in range(frames)]
    right = [rng.gauss(0.0, 1.5) for _ in range(frames)]
    scale = [0, 3, 5, 7, 10]  # minor pentatonic
    full = 32767.0 * peak * 1.6  # the voices rarely add up: this puts the mix peak near `peak`

    def add(start: int, length: int, pan: float, voice: list[float]) -> None:
        gain_l, gain_r = math.cos(pan * math.pi / 2), math.sin(pan * math.pi / 2)
        for i, value in enumerate(voice[: max(0, min(length, frames - start))]):
            left[start + i] += value * gain_l
            right[start + i] += value * gain_r

    def note(freq: float, length: int, tau: float, level: float) -> list[float]:
        amps = [level * rng.uniform(0.3, 1.0) / h for h in range(1, 7)]
        step = [2 * math.pi * freq * h / rate for h in range(1, 7)]
        return [
            min(1.0, i / (0.004 * rate))
            * math.exp(-i / (tau * rate))
            * sum(a * math.sin(w * i) for a, w in zip(amps, step, strict=True))
            for i in range(length)
        ]

    t = 0
    while t < frames:
        step_len = int(rate * rng.choice((0.125, 0.25, 0.25, 0.5)))
        freq = 220.0 * 2 ** ((12 * rng.randrange(3) + rng.choice(scale)) / 12)
        add(
            t,
            int(rate * 0.9),
            rng.uniform(0.2, 0.8),
            note(freq, int(rate * 0.9), 0.35, 0.25 * full),
        )
        if t % int(rate * 0.5) < step_len:
            bass = 55.0 * 2 ** (rng.choice(scale) / 12)
            add(t, int(rate * 0.5), 0.5, note(bass, int(rate * 0.5), 0.4, 0.35 * full))
        hat = [rng.gauss(0.0, 0.04 * full) * math.exp(-i / (0.01 * rate)) for i in range(2000)]
        add(t, len(hat), rng.uniform(0.3, 0.7), hat)
        t += step_len
    out = array("h", bytes(frames * FRAME_BYTES))
    out[0::2] = array("h", (max(-32768, min(32767, round(v))) for v in left))
    out[1::2] = array("h", (max(-32768, min(32767, round(v))) for v in right))
    return _to_bytes(out)


def to_s24(pcm16: bytes, *, seed: int = 1) -> bytes:
    """s16le stereo → packed s24le stereo: each sample's top 16 bits, plus a seeded random low
    byte (so the low byte carries information a 16-bit path would lose)."""
    rng = random.Random(seed)
    low = rng.randbytes(len(pcm16) // 2)
    out = bytearray(len(pcm16) // 2 * 3)
    out[0::3] = low
    out[1::3] = pcm16[0::2]
    out[2::3] = pcm16[1::2]
    return bytes(out)


def music_like_24(seconds: float, *, seed: int = 1, rate: int = 48000) -> bytes:
    """Deterministic s24le stereo at `rate` that codes like music (`music_like` plus 8 more
    bits of seeded noise)."""
    return to_s24(music_like(seconds, seed=seed, rate=rate), seed=seed)


def locate_exact(received: bytes, sent: bytes, *, frame_bytes: int) -> int:
    """The frame offset at which all of `sent` appears in `received`, byte for byte (frame
    aligned); AudioMismatchError when it does not."""
    probe = sent[: 352 * frame_bytes]
    start = received.find(probe)
    while start >= 0 and start % frame_bytes:
        start = received.find(probe, start + 1)
    if start < 0:
        raise AudioMismatchError("the first packet of the sent audio is nowhere in the received")
    got = received[start : start + len(sent)]
    if got != sent:
        index = next((i for i, (a, b) in enumerate(zip(got, sent, strict=False)) if a != b), None)
        where = len(got) // frame_bytes if index is None else index // frame_bytes
        raise AudioMismatchError(
            f"received audio differs from frame {where} on (of {len(sent) // frame_bytes})"
        )
    return start // frame_bytes
