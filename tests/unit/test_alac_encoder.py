"""Compressed ALAC frames: every frame decodes (our own decoder, tests/receivers/alac_decoder.py)
to exactly the input; FFmpeg's decoder is checked in tests/integration/test_alac_ffmpeg.py."""

from __future__ import annotations

import random
import struct
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airplay_provider.protocol.alac import ALAC_FRAME_BYTES, AlacError, encode_uncompressed
from airplay_provider.protocol.alac_encoder import AlacEncoder
from tests.audio import music_like
from tests.receivers.alac_decoder import AlacConfig, decode_alac

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


def test_a_frame_depends_on_its_own_pcm_only() -> None:
    # No state between packets: the same PCM gives the same bytes whatever came before (group
    # members fed the same audio send the same frames), and any frame decodes alone.
    chunks = frames_of(MUSIC)
    in_order = [AlacEncoder().encode(pcm) for pcm in chunks]
    shared = AlacEncoder()
    assert [shared.encode(pcm) for pcm in reversed(chunks)] == in_order[::-1]
    for index in (0, 7, len(chunks) - 1):
        assert decode_alac(in_order[index]) == chunks[index]


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


@settings(max_examples=80, deadline=None)
@given(
    st.integers(min_value=0, max_value=16),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=-4, max_value=4),
)
def test_random_signals_of_any_level_decode_exactly(bits: int, seed: int, tilt: int) -> None:
    rng = random.Random(seed)
    level = (1 << bits) - 1
    walk = 0
    samples = []
    step = 0
    for _ in range(352):  # a random walk (music-like correlation) plus noise, both clipped;
        # `tilt` makes the steps themselves correlated (or alternating): other coefficients
        step = (tilt * step) // 4 + rng.randint(-level, level) // 4
        walk = max(-32768, min(32767, walk + step))
        samples += [walk, max(-32768, min(32767, walk + rng.randint(-level, level)))]
    round_trip(AlacEncoder(), pcm16(samples))


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
