"""flow_to_s16 converts exactly as ffmpeg does (f32le → s16le: round half to even, saturate)."""

from __future__ import annotations

import random
import subprocess
from array import array

from airplay_provider.pcm_convert import flow_to_s16

EDGES = [
    0.0, -0.0, 1.0, -1.0, 1.5, -1.5, 32767 / 32768, 32767.5 / 32768, 32766.5 / 32768,
    -32767.5 / 32768, -32768.5 / 32768, 0.5 / 32768, 1.5 / 32768, 2.5 / 32768, -0.5 / 32768,
    -1.5 / 32768, -2.5 / 32768, 1e-9, -1e-9, float("-inf"),
]  # fmt: skip


def ffmpeg_s16(flow: bytes) -> bytes:
    argv = ["ffmpeg", "-v", "error", "-f", "f32le", "-ar", "44100", "-ac", "2", "-i", "pipe:0"]
    argv += ["-f", "s16le", "-ar", "44100", "-ac", "2", "pipe:1"]
    return subprocess.run(argv, input=flow, capture_output=True, check=True).stdout


def test_matches_ffmpeg_on_edges_halves_and_noise() -> None:
    rng = random.Random(5)
    values = EDGES + [rng.uniform(-1.2, 1.2) for _ in range(40000)]
    values += [
        rng.randint(-33000, 33000) / 32768 + rng.choice((0.0, 0.5 / 32768)) for _ in range(40000)
    ]
    flow = array("f", values[: len(values) // 2 * 2]).tobytes()
    assert flow_to_s16(flow) == ffmpeg_s16(flow)


def test_nan_is_silence_and_plus_infinity_saturates() -> None:
    # ffmpeg's SIMD path turns both into -32768 (a full-scale click); we do not copy that.
    out = array("h")
    out.frombytes(flow_to_s16(array("f", [float("nan"), float("inf"), 0.25, -2.0]).tobytes()))
    assert list(out) == [0, 32767, 8192, -32768]


def test_a_partial_sample_is_dropped() -> None:
    assert flow_to_s16(array("f", [0.5]).tobytes() + b"\x00\x00") == array("h", [16384]).tobytes()
