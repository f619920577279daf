"""The announcement mix written out from its definition (session/mixing.py docstring), frame by
frame, for tests to compare against: independent of the session's implementation."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path


def _samples(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) - len(pcm) % 4]))


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
    music: bytes, voice: bytes, start: int, *, duck_db: float = -18.0, ramp: int = 3528
) -> bytes:
    """`music` (s16le stereo) with `voice` mixed in from frame `start`, the music ducked."""
    m, v = _samples(music), _samples(voice)
    length = len(v) // 2
    out = []
    for index, value in enumerate(m):
        frame = index // 2
        gain = music_gain(frame, start, length, duck_db, ramp)
        extra = v[2 * (frame - start) + index % 2] if start <= frame < start + length else 0
        out.append(max(-32768, min(32767, ((value * gain + 16384) >> 15) + extra)))
    return struct.pack(f"<{len(out)}h", *out)


def write_wav(path: Path, pcm: bytes) -> Path:
    """A 44.1 kHz 16-bit stereo WAV of `pcm` (decodes back to exactly `pcm`)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        out.writeframes(pcm)
    return path
