"""Our compressed ALAC frames through FFmpeg's ALAC decoder (in a CAF file we write ourselves,
tests/alac_caf.py): the decoded samples equal the input exactly, 16 and 24 bit."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from array import array
from pathlib import Path

import pytest

from airplay_provider.protocol.alac_encoder import AlacEncoder
from tests.alac_caf import caf_file
from tests.audio import music_like

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def ffmpeg_decode(caf: bytes, tmp_path: Path, sample_format: str) -> bytes:
    path = tmp_path / "frames.caf"
    path.write_bytes(caf)
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", sample_format, "-"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stderr == b""
    return done.stdout


def edge_cases() -> bytes:
    rng = random.Random(11)
    signals = [
        [0] * 704,
        [0] * 301 + [5] + [0] * 402,
        [rng.choice([0, 0, 0, 0, 1, -1, 3000]) for _ in range(704)],
        [32767, -32768] * 352,
        [32767, -32768, -32768, 32767] * 176,
        [1] * 400 + [30000, -30000] * 152,
        [rng.randrange(-32768, 32768) for _ in range(704)],
    ]
    return b"".join(array("h", samples).tobytes() for samples in signals)


def test_ffmpeg_decodes_our_16_bit_frames_exactly(tmp_path: Path) -> None:
    pcm = music_like(3.0, seed=21, peak=0.9) + edge_cases()
    pcm = pcm[: len(pcm) // 1408 * 1408]
    encoder = AlacEncoder()
    frames = [encoder.encode(pcm[i : i + 1408]) for i in range(0, len(pcm), 1408)]
    assert encoder.compressed > 0.9 * len(frames)
    assert encoder.uncompressed >= 1  # the white-noise packet
    assert ffmpeg_decode(caf_file(frames), tmp_path, "s16le") == pcm


def test_ffmpeg_decodes_our_24_bit_frames_exactly(tmp_path: Path) -> None:
    rng = random.Random(5)
    high = array("h", music_like(1.0, seed=22))
    pcm = b"".join(struct.pack("<i", (v << 8) | rng.randrange(256))[:3] for v in high)
    pcm = pcm[: len(pcm) // 2112 * 2112] + rng.randbytes(2112)
    encoder = AlacEncoder(bits=24)
    frames = [encoder.encode(pcm[i : i + 2112]) for i in range(0, len(pcm), 2112)]
    assert encoder.compressed == len(frames) - 1
    assert ffmpeg_decode(caf_file(frames, bit_depth=24), tmp_path, "s24le") == pcm
