"""Compressed ALAC frames: every frame decodes (our own decoder, tests/receivers/alac_decoder.py)
to exactly the input; FFmpeg's decoder is checked in tests/integration/test_alac_ffmpeg.py."""

from __future__ import annotations

import random
import struct
from array import array

import pytest
from audio import music_like
from hypothesis import given, settings
from hypothesis import strategies as st
from receivers.alac_decoder import AlacConfig, decode_alac

from airplay_provider.protocol.alac import ALAC_FRAME_BYTES, AlacError, encode_uncompressed
from airplay_provider.protocol.alac_encoder import AlacEncoder

PCM_BYTES = 352 * 4
MUSIC = music_like(2.0, seed=5)


def frames_of(pcm: bytes, size: int = PCM_BYTES) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm) - size + 1, size)]


def pcm16(samples: list[int]) -> bytes:
    return array("h", samples).tobytes()


def round_trip(encoder: AlacEncoder, pcm: bytes) -> bytes:
    frame = encoder.encode(pcm)
    assert decode_alac(frame, AlacConfig(bit_depth=encoder.bits)) == pcm
    return frame


def test_music_decodes_exactly_and_is_over_a_third_smaller() -> None:
    encoder = AlacEncoder()
    sizes = [len(round_trip(encoder, pcm)) for pcm in frames_of(MUSIC)]
    assert encoder.compressed == len(sizes)
    assert encoder.uncompressed == 0
    assert sum(sizes) < 0.65 * ALAC_FRAME_BYTES * len(sizes)


def test_coefficient_carried_over_stays_exact_when_packets_are_decoded_alone() -> None:
    # Each frame carries its starting coefficient: decoding any frame by itself (a receiver
    # joining late, a resend) gives its samples.
    encoder = AlacEncoder()
    frames = [encoder.encode(pcm) for pcm in frames_of(MUSIC)]
    for index in (0, 7, len(frames) - 1):
        assert decode_alac(frames[index]) == frames_of(MUSIC)[index]


@pytest.mark.parametrize(
    ("name", "samples"),
    [
        ("silence", [0] * 704),
        ("dc", [-1234] * 704),
        ("one click in silence", [0] * 301 + [5] + [0] * 402),
        ("click at the very end", [0] * 703 + [-1]),
        ("sparse values", [random.Random(3).choice([0, 0, 0, 0, 1, -1, 3000]) for _ in range(704)]),
        ("full-scale square", [32767, -32768] * 352),
        ("full-scale side", [32767, -32768, -32768, 32767] * 176),
        ("tiny noise", [random.Random(4).randrange(-2, 3) for _ in range(704)]),
        ("jump after quiet", [1] * 400 + [30000, -30000] * 152),
    ],
)
def test_edge_signals_decode_exactly(name: str, samples: list[int]) -> None:
    frame = round_trip(AlacEncoder(), pcm16(samples))
    assert len(frame) <= ALAC_FRAME_BYTES, name


def test_silence_is_a_few_bytes() -> None:
    assert len(round_trip(AlacEncoder(), bytes(PCM_BYTES))) < 32


def test_white_noise_falls_back_to_the_escape_frame() -> None:
    pcm = random.Random(9).randbytes(PCM_BYTES)
    encoder = AlacEncoder()
    assert encoder.encode(pcm) == encode_uncompressed(pcm)
    assert (encoder.compressed, encoder.uncompressed) == (0, 1)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=16),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.sampled_from([0, 1, 100, 512, 1536, -512]),
)
def test_random_signals_of_any_level_decode_exactly(bits: int, seed: int, start: int) -> None:
    rng = random.Random(seed)
    level = (1 << bits) - 1
    walk = 0
    samples = []
    for _ in range(352):  # a random walk (music-like correlation) plus noise, both clipped
        walk = max(-32768, min(32767, walk + rng.randint(-level, level) // 4))
        samples += [walk, max(-32768, min(32767, walk + rng.randint(-level, level)))]
    # any starting coefficient a previous packet may have left
    round_trip(AlacEncoder(coefs=(start, -start)), pcm16(samples))


def test_24_bit_keeps_the_low_byte() -> None:
    rng = random.Random(2)
    high = array("h", MUSIC[: PCM_BYTES * 3])
    pcm = b"".join(struct.pack("<i", (v << 8) | rng.randrange(256))[:3] for v in high)
    encoder = AlacEncoder(bits=24)
    sizes = [len(round_trip(encoder, chunk)) for chunk in frames_of(pcm, 352 * 6)]
    assert encoder.compressed == 3
    assert max(sizes) < 352 * 6  # the raw low bytes alone take 704 of the 2112 bytes


def test_24_bit_noise_escape_frame() -> None:
    pcm = random.Random(8).randbytes(352 * 6)
    frame = round_trip(AlacEncoder(bits=24), pcm)
    assert len(frame) == (23 + 352 * 48 + 3 + 7) // 8


def test_wrong_input_is_refused() -> None:
    with pytest.raises(AlacError, match="expected 1408 bytes"):
        AlacEncoder().encode(bytes(1404))
    with pytest.raises(AlacError, match="expected 2112 bytes"):
        AlacEncoder(bits=24).encode(bytes(PCM_BYTES))
    with pytest.raises(AlacError, match="16 or 24"):
        AlacEncoder(bits=20)


def test_residual_out_of_range_sends_the_escape_frame() -> None:
    # Side channel alternating between +65535 and -65535: the first residual after the warm-up
    # is out of the 17-bit range, so the frame goes out uncompressed (and still decodes).
    pcm = pcm16([32767, -32768, -32768, 32767] * 176)
    encoder = AlacEncoder()
    assert round_trip(encoder, pcm) == encode_uncompressed(pcm)
    assert encoder.uncompressed == 1
