"""Uncompressed ALAC frames: exact bytes derived by hand from the bit layout in protocol.md A.11."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airplay_provider.protocol.alac import (
    ALAC_FRAME_BYTES,
    AlacError,
    decode_uncompressed,
    encode_uncompressed,
)

PCM_BYTES = 352 * 4


def reference_encode(pcm_s16le: bytes) -> bytes:
    """Slow bit-by-bit writer, independent of the big-integer implementation."""
    bits: list[int] = []

    def put(value: int, width: int) -> None:
        bits.extend((value >> (width - 1 - i)) & 1 for i in range(width))

    put(1, 3)  # channel pair element
    put(0, 4)  # element instance tag
    put(0, 12)  # unused
    put(0, 1)  # has size
    put(0, 2)  # uncompressed low bytes
    put(1, 1)  # escape: not compressed
    for (sample,) in struct.iter_unpack("<h", pcm_s16le):
        put(sample & 0xFFFF, 16)
    put(7, 3)  # end tag
    while len(bits) % 8:
        bits.append(0)
    return bytes(
        sum(bit << (7 - i) for i, bit in enumerate(bits[n : n + 8])) for n in range(0, len(bits), 8)
    )


def test_silence_frame_exact() -> None:
    # 23 header bits 001 0000 000000000000 0 00 1, 11264 zero sample bits, end tag 111, then
    # 6 zero bits: byte 1410 holds the last 7 sample bits and the first end-tag bit (0x01),
    # byte 1411 the remaining two end-tag bits (0xC0).
    expected = bytes.fromhex("200002") + bytes(1407) + bytes.fromhex("01C0")
    frame = encode_uncompressed(bytes(PCM_BYTES))
    assert len(frame) == ALAC_FRAME_BYTES == 1412
    assert frame == expected


def test_first_samples_shifted_by_one_bit() -> None:
    # Left 0x1234, right 0xABCD (little-endian input); the sample stream starts at bit 23,
    # i.e. bit 7 of byte 2, so bytes 2.. are 0x02 | (0x1234ABCD << 1 spread over 5 bytes).
    pcm = bytes.fromhex("3412CDAB") + bytes(PCM_BYTES - 4)
    frame = encode_uncompressed(pcm)
    assert frame[:8] == bytes.fromhex("200002 2469579A 00")
    assert frame[8:] == bytes(1402) + bytes.fromhex("01C0")


def test_negative_first_sample_sets_low_bit_of_byte_2() -> None:
    pcm = struct.pack("<h", -2) + bytes(PCM_BYTES - 2)  # 0xFFFE
    frame = encode_uncompressed(pcm)
    assert frame[:4] == bytes.fromhex("200003FF")
    assert frame[4:6] == bytes.fromhex("FC00")  # bits 9..15 of 0xFFFE = 1111110, then zeros


def test_last_sample_and_end_tag() -> None:
    pcm = bytes(PCM_BYTES - 2) + struct.pack("<h", -1)
    frame = encode_uncompressed(pcm)
    # last sample = bits 11271..11286, all ones: low bit of byte 1408, byte 1409, top 7 bits
    # of byte 1410 whose last bit is the first end-tag bit; byte 1411 = 11 + six zero bits.
    assert frame[-4:] == bytes.fromhex("01FFFFC0")


@settings(max_examples=50)
@given(st.binary(min_size=PCM_BYTES, max_size=PCM_BYTES))
def test_matches_bitwise_reference_and_round_trips(pcm: bytes) -> None:
    frame = encode_uncompressed(pcm)
    assert frame == reference_encode(pcm)
    assert decode_uncompressed(frame) == pcm


def test_accepts_bytearray_and_memoryview() -> None:
    pcm = bytes(range(256)) * 5 + bytes(PCM_BYTES - 1280)
    expected = reference_encode(pcm)
    assert encode_uncompressed(bytearray(pcm)) == expected
    assert encode_uncompressed(memoryview(pcm)) == expected


@pytest.mark.parametrize("size", [0, 1, PCM_BYTES - 1, PCM_BYTES + 1, 4096])
def test_encode_rejects_wrong_size(size: int) -> None:
    with pytest.raises(AlacError):
        encode_uncompressed(bytes(size))


def test_decode_rejects_bad_frames() -> None:
    good = encode_uncompressed(bytes(PCM_BYTES))
    with pytest.raises(AlacError):
        decode_uncompressed(good[:-1])
    with pytest.raises(AlacError):
        decode_uncompressed(b"\x00" + good[1:])  # element type 0
    with pytest.raises(AlacError):
        decode_uncompressed(good[:-1] + b"\x80")  # end tag damaged
    with pytest.raises(AlacError):
        decode_uncompressed(good[:-1] + b"\xc1")  # padding not zero
