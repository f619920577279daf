"""ffprobe tags/cover and ffmpeg decoding to flow PCM (real ffmpeg on small local files)."""

from __future__ import annotations

import inspect
import os
import subprocess
import time
from array import array
from pathlib import Path

import pytest

from airplay_provider.audio_source import (
    FLOW_CHUNK_BYTES,
    AudioSourceError,
    TrackInfo,
    decode_source,
    extract_cover,
    parse_probe,
    probe,
)


def make_wav(path: Path, seconds: float, *, tags: bool = False) -> Path:
    argv = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=440:d={seconds}"]
    if tags:
        argv += ["-f", "lavfi", "-i", "color=c=red:s=8x8:d=1", "-map", "0:a", "-map", "1:v"]
        argv += ["-frames:v", "1", "-c:v", "mjpeg", "-disposition:v", "attached_pic"]
        argv += ["-metadata", "title=Tïtle", "-metadata", "ARTIST=Àrtist", "-id3v2_version", "3"]
    argv.append(str(path))
    subprocess.run(argv, check=True)
    return path


def test_parse_probe_reads_tags_any_case_and_the_cover_stream() -> None:
    data = {
        "streams": [
            {"index": 0, "codec_type": "audio", "sample_rate": "48000", "channels": 2,
             "tags": {"ALBUM": "From stream"}},
            {"index": 1, "codec_type": "video", "codec_name": "png",
             "disposition": {"attached_pic": 1}},
        ],
        "format": {"duration": "12.5", "tags": {"TITLE": "T", "album_artist": "AA"}},
    }  # fmt: skip
    assert parse_probe(data) == TrackInfo(
        title="T", artist="AA", album="From stream", duration_s=12.5, cover_stream=1,
        cover_codec="png",
    )  # fmt: skip
    plain = {"codec_type": "audio", "sample_rate": "44100", "channels": 1}
    assert parse_probe({"streams": [plain], "format": {}}) == TrackInfo()
    with pytest.raises(AudioSourceError, match="no decodable audio"):
        parse_probe({"streams": [{"codec_type": "audio", "sample_rate": "0", "channels": 0}]})
    with pytest.raises(AudioSourceError, match="no audio stream"):
        parse_probe({"streams": [{"codec_type": "video"}]})
    with pytest.raises(AudioSourceError):
        parse_probe({"streams": "garbage"})


async def test_probe_and_cover_of_a_tagged_mp3(tmp_path: Path) -> None:
    track = make_wav(tmp_path / "t.mp3", 1.0, tags=True)
    info = await probe(str(track))
    assert (info.title, info.artist) == ("Tïtle", "Àrtist")
    assert info.duration_s is not None
    assert 0.9 < info.duration_s < 1.2
    cover = await extract_cover(str(track), info, tmp_path)
    assert cover is not None
    assert cover.read_bytes().startswith(b"\xff\xd8\xff")


async def test_probe_refuses_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(AudioSourceError, match=r"missing\.wav"):
        await probe(str(tmp_path / "missing.wav"))
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"\x00\x01garbage" * 500)
    with pytest.raises(AudioSourceError, match=r"garbage\.flac"):
        await probe(str(garbage))
    assert await extract_cover(str(garbage), TrackInfo(), tmp_path) is None


async def test_decode_gives_whole_frames_fast_first_then_one_second_chunks(
    tmp_path: Path,
) -> None:
    track = make_wav(tmp_path / "s.wav", 3.0)
    started = time.monotonic()
    chunks = []
    first_at = None
    async for chunk in decode_source(str(track)):
        first_at = first_at or time.monotonic() - started
        chunks.append(chunk)
    assert first_at is not None
    assert first_at < 1.0
    assert all(len(c) % 8 == 0 for c in chunks)
    assert all(len(c) == FLOW_CHUNK_BYTES for c in chunks[1:-1])
    pcm = b"".join(chunks)
    assert len(pcm) == 3 * 44100 * 8
    samples = array("f", pcm)
    peak = max(abs(v) for v in samples[: 44100 * 2])
    assert 0.05 < peak < 0.2  # lavfi sine (1/8) upmixed to stereo (−3 dB), as floats
    assert samples[0::2][:1000] == samples[1::2][:1000]  # mono sine duplicated to stereo


async def test_decode_of_garbage_is_an_error(tmp_path: Path) -> None:
    garbage = tmp_path / "g.mp3"
    garbage.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(AudioSourceError, match=r"g\.mp3"):
        async for _ in decode_source(str(garbage)):
            pass


async def test_decode_stops_ffmpeg_when_the_consumer_stops(tmp_path: Path) -> None:
    track = make_wav(tmp_path / "long.wav", 30.0)
    source = decode_source(str(track))
    assert inspect.isasyncgen(source)
    first = await anext(source)
    assert first
    await source.aclose()  # the finally block kills ffmpeg and waits for it
    assert str(track) not in child_command_lines()


def child_command_lines() -> str:
    """Command lines of this process's children, joined."""
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    lines = []
    for pid in children:
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
        except OSError:
            continue
    return "\n".join(lines)
