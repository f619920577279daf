"""Wrap ALAC frames in a CAF file (our own writer) so FFmpeg's ALAC decoder can read them.

CAF layout: 'caff' v1 header; 'desc' (sample rate, 'alac', frames per packet, channels);
'kuki' (the 24-byte ALACSpecificConfig, the same 11 fields as the RAOP fmtp line); 'pakt'
(packet count, valid frames, then every packet size as a base-128 varint); 'data'.
"""

from __future__ import annotations

import struct


def alac_cookie(
    *, frame_length: int = 352, bit_depth: int = 16, channels: int = 2, rate: int = 44100
) -> bytes:
    """ALACSpecificConfig: frameLength, version, bitDepth, pb 40, mb 10, kb 14, channels,
    maxRun 255, maxFrameBytes 0, avgBitRate 0, sampleRate."""
    return struct.pack(
        ">IBBBBBBHIII", frame_length, 0, bit_depth, 40, 10, 14, channels, 255, 0, 0, rate
    )


def _varint(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack(">q", len(body)) + body


def caf_file(
    frames: list[bytes], *, frame_length: int = 352, bit_depth: int = 16, rate: int = 44100
) -> bytes:
    """A CAF file holding `frames` (each one ALAC packet of `frame_length` stereo frames)."""
    flags = {16: 1, 20: 2, 24: 3, 32: 4}[bit_depth]
    desc = struct.pack(">d4sIIIII", float(rate), b"alac", flags, 0, frame_length, 2, 0)
    valid = len(frames) * frame_length
    pakt = struct.pack(">qqii", len(frames), valid, 0, 0)
    pakt += b"".join(_varint(len(frame)) for frame in frames)
    data = struct.pack(">I", 0) + b"".join(frames)
    return (
        b"caff"
        + struct.pack(">HH", 1, 0)
        + _chunk(b"desc", desc)
        + _chunk(b"kuki", alac_cookie(frame_length=frame_length, bit_depth=bit_depth, rate=rate))
        + _chunk(b"pakt", pakt)
        + _chunk(b"data", data)
    )
