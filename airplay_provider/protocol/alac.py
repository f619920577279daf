"""Uncompressed ("escape") ALAC frames of 352 stereo 16-bit frames (docs/protocol.md A.11).

Layout, MSB first with no byte alignment: 23-bit header (channel pair element, escape
flag set), 352 x (left, right) big-endian 16-bit samples, 3-bit end tag (7), zero padding.
The samples start one bit into byte 2, so the whole frame is built as one big integer.
"""

from __future__ import annotations

from array import array

from airplay_provider.protocol.errors import AirplayError

FRAMES_PER_ALAC_FRAME = 352
PCM_BYTES = FRAMES_PER_ALAC_FRAME * 4
ALAC_FRAME_BYTES = 1412

_HEADER_BITS = 23
_END_BITS = 3
_SAMPLE_BITS = PCM_BYTES * 8
_TOTAL_BITS = ALAC_FRAME_BYTES * 8
_PAD_BITS = _TOTAL_BITS - _HEADER_BITS - _SAMPLE_BITS - _END_BITS
_SAMPLES_SHIFT = _END_BITS + _PAD_BITS
# element type 1 (3 bits), tag 0 (4), unused 0 (12), has-size 0 (1), shift 0 (2), escape 1 (1)
_HEADER_VALUE = (1 << 20) | 1
_END_TAG = 7
_FRAME_FIXED_BITS = (_HEADER_VALUE << (_SAMPLE_BITS + _SAMPLES_SHIFT)) | (_END_TAG << _PAD_BITS)
_SAMPLES_MASK = (1 << _SAMPLE_BITS) - 1


class AlacError(AirplayError, ValueError):
    """Input of the wrong size or a frame that is not an uncompressed stereo ALAC frame."""


def _swap16(data: bytes | bytearray | memoryview) -> bytes:
    """Swap the two bytes of every 16-bit sample (little ⇄ big endian, on any host)."""
    samples = array("h")
    samples.frombytes(data)
    samples.byteswap()
    return samples.tobytes()


def encode_uncompressed(pcm_s16le: bytes | bytearray | memoryview) -> bytes:
    """352 frames of s16le stereo PCM (1408 bytes) → one 1412-byte uncompressed ALAC frame."""
    if len(pcm_s16le) != PCM_BYTES:
        raise AlacError(f"expected {PCM_BYTES} bytes of PCM, got {len(pcm_s16le)}")
    samples = int.from_bytes(_swap16(pcm_s16le), "big")
    return (_FRAME_FIXED_BITS | (samples << _SAMPLES_SHIFT)).to_bytes(ALAC_FRAME_BYTES, "big")


def decode_uncompressed(frame: bytes) -> bytes:
    """Inverse of :func:`encode_uncompressed`: 1412-byte frame → 1408 bytes of s16le PCM."""
    if len(frame) != ALAC_FRAME_BYTES:
        raise AlacError(f"expected {ALAC_FRAME_BYTES} bytes of ALAC, got {len(frame)}")
    value = int.from_bytes(frame, "big")
    header = value >> (_TOTAL_BITS - _HEADER_BITS)
    end_tag = (value >> _PAD_BITS) & 0b111
    padding = value & ((1 << _PAD_BITS) - 1)
    if header != _HEADER_VALUE or end_tag != _END_TAG or padding:
        raise AlacError("not an uncompressed stereo ALAC frame")
    samples_be = ((value >> _SAMPLES_SHIFT) & _SAMPLES_MASK).to_bytes(PCM_BYTES, "big")
    return _swap16(samples_be)
