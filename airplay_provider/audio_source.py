"""Audio sources through ffmpeg/ffprobe: tags and cover art, and decoding to flow PCM.

Flow PCM is the session format: f32le, 44 100 Hz, stereo (what Music Assistant's flow stream
gives), or 48 kHz for a hi-res group. `decode_source` yields it from anything ffmpeg reads: a
file, a URL or stdin ("-").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from airplay_provider.protocol.errors import AirplayError

FLOW_RATE: Final = 44100
FLOW_FRAME_BYTES: Final = 8  # f32le × 2 channels
FLOW_CHUNK_BYTES: Final = FLOW_RATE * FLOW_FRAME_BYTES  # one second
PROBE_TIMEOUT_S: Final = 15.0
COVER_TIMEOUT_S: Final = 15.0
STOP_TIMEOUT_S: Final = 2.0
_COVER_CODECS: Final = {"mjpeg": ".jpg", "png": ".png"}


class AudioSourceError(AirplayError):
    """The source cannot be read or decoded; the message says why."""


@dataclass(frozen=True)
class TrackInfo:
    """What ffprobe found in a source."""

    title: str | None = None
    artist: str | None = None
    album: str | None = None
    duration_s: float | None = None
    cover_stream: int | None = None  # index of the embedded picture stream
    cover_codec: str | None = None


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise AudioSourceError(f"{tool} not found (install ffmpeg)")
    return path


def _positive(value: object) -> bool:
    try:
        return int(str(value)) > 0
    except ValueError:
        return False


def parse_probe(data: Mapping[str, object]) -> TrackInfo:
    """TrackInfo from `ffprobe -print_format json -show_format -show_streams` output.

    Raises AudioSourceError when there is no audio stream.
    """
    streams = [s for s in data.get("streams", []) or [] if isinstance(s, dict)]  # type: ignore[attr-defined]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not audio:
        raise AudioSourceError("no audio stream found")
    if not any(_positive(s.get("sample_rate")) and _positive(s.get("channels")) for s in audio):
        raise AudioSourceError("no decodable audio stream (no sample rate or channels)")
    fmt = data.get("format")
    fmt = fmt if isinstance(fmt, dict) else {}
    tags: dict[str, str] = {}
    for source in (fmt.get("tags"), *(s.get("tags") for s in streams)):
        if isinstance(source, dict):
            for key, value in source.items():
                tags.setdefault(str(key).lower(), str(value))
    duration: float | None = None
    with contextlib.suppress(TypeError, ValueError):
        duration = float(fmt.get("duration"))  # type: ignore[arg-type]
    cover_stream = cover_codec = None
    for stream in streams:
        disposition = stream.get("disposition")
        attached = isinstance(disposition, dict) and disposition.get("attached_pic") == 1
        codec = stream.get("codec_name")
        if stream.get("codec_type") == "video" and (attached or codec in _COVER_CODECS):
            cover_stream, cover_codec = int(stream.get("index", 0)), str(codec)
            break
    return TrackInfo(
        title=tags.get("title") or None,
        artist=tags.get("artist") or tags.get("album_artist") or None,
        album=tags.get("album") or None,
        duration_s=duration if duration is not None and duration > 0 else None,
        cover_stream=cover_stream,
        cover_codec=cover_codec,
    )


async def _run_tool(argv: list[str], timeout: float) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out, err


def probe_argv(source: str) -> list[str]:
    """The ffprobe command line `probe` runs (AudioSourceError without ffprobe)."""
    argv = [_require("ffprobe"), "-v", "error", "-print_format", "json"]
    return [*argv, "-show_format", "-show_streams", "--", source]


async def _finish(started: subprocess.Popen[bytes], timeout: float) -> tuple[int, bytes, bytes]:
    try:
        out, err = await asyncio.to_thread(started.communicate, timeout=timeout)
    except subprocess.TimeoutExpired:
        started.kill()
        await asyncio.to_thread(started.communicate)
        raise TimeoutError from None
    return started.returncode or 0, out, err


async def probe(
    source: str,
    *,
    timeout: float = PROBE_TIMEOUT_S,
    started: subprocess.Popen[bytes] | None = None,
) -> TrackInfo:
    """Tags, duration and cover-art stream of `source` (not for stdin).

    `started`: the same ffprobe command (`probe_argv`), already running; its output is used.
    """
    try:
        if started is not None:
            code, out, err = await _finish(started, timeout)
        else:
            code, out, err = await _run_tool(probe_argv(source), timeout)
    except TimeoutError:
        raise AudioSourceError(f"{source}: ffprobe timed out after {timeout:.0f} s") from None
    if code != 0:
        reason = err.decode("utf-8", "replace").strip().splitlines()
        raise AudioSourceError(f"{source}: cannot read ({reason[-1] if reason else code})")
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise AudioSourceError(f"{source}: unreadable ffprobe output") from exc
    if not isinstance(data, dict):
        raise AudioSourceError(f"{source}: unreadable ffprobe output")
    try:
        return parse_probe(data)
    except AudioSourceError as exc:
        raise AudioSourceError(f"{source}: {exc}") from None


async def extract_cover(
    source: str,
    info: TrackInfo,
    directory: Path,
    *,
    timeout: float = COVER_TIMEOUT_S,
) -> Path | None:
    """Write the embedded picture as JPEG/PNG into `directory`; None when there is none."""
    if info.cover_stream is None:
        return None
    suffix = _COVER_CODECS.get(info.cover_codec or "", ".png")
    target = directory / f"cover{suffix}"
    codec = ["-c:v", "copy"] if info.cover_codec in _COVER_CODECS else ["-c:v", "png"]
    argv = [_require("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y", "-i", source]
    argv += ["-map", f"0:{info.cover_stream}", "-frames:v", "1", *codec, "-f", "image2"]
    argv.append(str(target))
    try:
        code, _, _ = await _run_tool(argv, timeout)
    except TimeoutError:
        return None
    if code != 0 or not target.exists() or target.stat().st_size == 0:
        return None
    return target


def decoder_argv(source: str, rate: int = FLOW_RATE) -> list[str]:
    """ffmpeg decoding `source` ("-" = stdin) to flow PCM at `rate` on stdout."""
    ffmpeg = _require("ffmpeg")
    reader = ["-i", "pipe:0"] if source == "-" else ["-nostdin", "-i", source]
    return [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "error",
        *reader,
        "-vn",
        "-f",
        "f32le",
        "-ar",
        str(rate),
        "-ac",
        "2",
        "pipe:1",
    ]


async def decode_source(
    source: str,
    *,
    stdin_fd: int | None = None,
    chunk_bytes: int = FLOW_CHUNK_BYTES,
    rate: int = FLOW_RATE,
) -> AsyncIterator[bytes]:
    """Yield flow PCM chunks (whole frames) of `source` at `rate` Hz; ffmpeg is killed when
    iteration ends.

    The first chunk is yielded as soon as ffmpeg produced anything (a fast start); later ones
    are whole `chunk_bytes` (1 s) chunks. AudioSourceError if ffmpeg fails before any audio.
    """
    stdin: int = asyncio.subprocess.DEVNULL
    if source == "-":
        stdin = 0 if stdin_fd is None else stdin_fd
    proc = await asyncio.create_subprocess_exec(
        *decoder_argv(source, rate),
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    errors = asyncio.create_task(proc.stderr.read(65536))
    produced = 0
    carry = b""
    try:
        first = True
        while True:
            if first:
                data = await proc.stdout.read(chunk_bytes)
            else:
                try:
                    data = await proc.stdout.readexactly(chunk_bytes)
                except asyncio.IncompleteReadError as exc:
                    data = exc.partial
            if not data:
                break
            data = carry + data
            whole = len(data) - len(data) % FLOW_FRAME_BYTES
            carry = data[whole:]
            if whole:
                produced += whole
                first = False
                yield data[:whole]
        code = await proc.wait()
        if code != 0 and produced == 0:
            message = (await errors).decode("utf-8", "replace").strip().splitlines()
            raise AudioSourceError(f"{source}: {message[-1] if message else f'ffmpeg exit {code}'}")
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        # Read what is left up to EOF: a pipe paused on a full buffer never sees its end, and
        # its transport would then be closed by the garbage collector after the event loop.
        with contextlib.suppress(TimeoutError, OSError, ValueError):
            await asyncio.wait_for(_drain(proc.stdout), STOP_TIMEOUT_S)
        errors.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await errors


async def _drain(reader: asyncio.StreamReader) -> None:
    while await reader.read(1 << 16):
        pass
