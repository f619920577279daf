"""The announcement mix written out from its definition (session/mixing.py docstring), frame by
frame, for tests to compare against: independent of the session's implementation. Either s16le
(44.1 kHz sessions) or packed s24le (hi-res 48 kHz sessions): `bits`."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path


def _samples(pcm: bytes, bits: int = 16) -> list[int]:
    """Signed samples of whole stereo frames of s16le or s24le `pcm`."""
    if bits == 16:
        return list(struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) - len(pcm) % 4]))
    whole = len(pcm) - len(pcm) % 6
    return [int.from_bytes(pcm[i : i + 3], "little", signed=True) for i in range(0, whole, 3)]


def _pack(values: list[int], bits: int) -> bytes:
    if bits == 16:
        return struct.pack(f"<{len(values)}h", *values)
    return b"".join(value.to_bytes(3, "little", signed=True) for value in values)


def music_gain(frame: int, start: int, length: int, duck_db: float, ramp: int) -> int:
    """The music's Q15 gain at `frame` for an announcement of `length` frames at `start`."""
    duck = round(32768 * 10 ** (duck_db / 20))
    if frame < start - ramp or frame >= start + length + ramp:
        return 32768
    if start <= frame < start + length:
        return duck
    step = frame - (start - ramp) if frame < start else start + length + ramp - 1 - frame
    fraction = (1 - math.cos(math.pi * (step + 1) / (ramp + 1))) / 2
    return 32768 - round((32768 - duck) * fraction)


def expected_mix(
    music: bytes,
    voice: bytes,
    start: int,
    *,
    duck_db: float = -18.0,
    ramp: int = 3528,
    bits: int = 16,
) -> bytes:
    """`music` (s16le or s24le stereo: `bits`) with `voice` (the same) mixed in from frame
    `start`, the music ducked; `ramp` in frames (80 ms: 3528 at 44.1 kHz, 3840 at 48 kHz)."""
    m, v = _samples(music, bits), _samples(voice, bits)
    length = len(v) // 2
    lowest, highest = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    out = []
    for index, value in enumerate(m):
        frame = index // 2
        gain = music_gain(frame, start, length, duck_db, ramp)
        extra = v[2 * (frame - start) + index % 2] if start <= frame < start + length else 0
        out.append(max(lowest, min(highest, ((value * gain + 16384) >> 15) + extra)))
    return _pack(out, bits)


def write_wav(path: Path, pcm: bytes, *, bits: int = 16, rate: int = 44100) -> Path:
    """A stereo WAV of `pcm` (s16le, or s24le with `bits` 24), which decodes back to exactly
    `pcm` at `rate`."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(bits // 8)
        out.setframerate(rate)
        out.writeframes(pcm)
    return path
