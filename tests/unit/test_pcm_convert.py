"""flow_to_s16 converts exactly as ffmpeg does (f32le → s16le: round half to even, saturate)."""

from __future__ import annotations

import random
import subprocess
from array import array

from airplay_provider.pcm_convert import flow_to_s16, flow_to_s24

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


# ---- s24le (hi-res): ffmpeg's f32 → s32 (round half to even, saturate), then the low byte dropped

EDGES_24 = [
    0.0, -0.0, 1.0, -1.0, 1.5, -1.5, (2**23 - 1) / 2**23, (2**23 - 0.5) / 2**23, 0.5 / 2**23,
    -0.5 / 2**23, 1.5 / 2**23, -1.5 / 2**23, 1 / 2**31, -1 / 2**31, 0.5 / 2**31, -0.5 / 2**31,
    1.5 / 2**31, -1.5 / 2**31, 255.5 / 2**31, -255.5 / 2**31, 1e-12, -1e-12, float("-inf"),
]  # fmt: skip


def ffmpeg_s24(flow: bytes) -> bytes:
    argv = ["ffmpeg", "-v", "error", "-f", "f32le", "-ar", "48000", "-ac", "2", "-i", "pipe:0"]
    argv += ["-f", "s24le", "-ar", "48000", "-ac", "2", "pipe:1"]
    return subprocess.run(argv, input=flow, capture_output=True, check=True).stdout


def s24_values(pcm: bytes) -> list[int]:
    return [int.from_bytes(pcm[i : i + 3], "little", signed=True) for i in range(0, len(pcm), 3)]


def test_s24_matches_ffmpeg_on_edges_halves_and_noise() -> None:
    rng = random.Random(24)
    values = EDGES_24 + [rng.uniform(-1.2, 1.2) for _ in range(40000)]
    values += [
        rng.randint(-(2**23) - 99, 2**23 + 99) / 2**23 + rng.choice((0.0, 0.5, 0.25)) / 2**23
        for _ in range(40000)
    ]
    values += [rng.uniform(-1e-4, 1e-4) for _ in range(20000)]  # quiet: the low bits matter
    flow = array("f", values[: len(values) // 2 * 2]).tobytes()
    ours = flow_to_s24(flow)
    assert len(ours) == len(flow) // 4 * 3
    assert ours == ffmpeg_s24(flow)


def test_s24_is_a_floor_of_the_32_bit_value_not_a_rounding() -> None:
    # 255.5/2^31 → s32 256 (half to even) → s24 1; 255/2^31 → s32 255 → s24 0; −1/2^31 → −1.
    pcm = flow_to_s24(array("f", [255.5 / 2**31, 255 / 2**31, -1 / 2**31, 0.5]).tobytes())
    assert s24_values(pcm) == [1, 0, -1, 2**22]


def test_s24_nan_is_silence_and_infinities_saturate() -> None:
    pcm = flow_to_s24(array("f", [float("nan"), float("inf"), float("-inf"), -2.0]).tobytes())
    assert s24_values(pcm) == [0, 2**23 - 1, -(2**23), -(2**23)]


def test_s24_drops_a_partial_sample() -> None:
    assert s24_values(flow_to_s24(array("f", [-0.5]).tobytes() + b"\x01")) == [-(2**22)]
