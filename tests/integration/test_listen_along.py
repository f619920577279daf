"""Listen along (issue 11): `airplay-provider play ... --listen-port PORT` serves the session over
RTSP; real ffmpeg/ffprobe clients receive exactly what the room (a RAOP emulator) plays, and a
client that stops reading is dropped without disturbing the room or the other listeners."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.audio import test_signal
from tests.receivers.raop_emulator import RaopEmulator
from tests.rtsp_listener import rtsp_play_client

ROOT = Path(__file__).resolve().parents[2]
PREROLL_FRAMES = 3520
LISTEN_LINE = "listen along: "


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wav(pcm: bytes) -> bytes:
    """`pcm` (s16le stereo 44.1 kHz) as a WAV stream for the CLI's stdin."""
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "s16le", "-ar", "44100", "-ac", "2", "-i", "pipe:0",
         "-f", "wav", "pipe:1"],
        input=pcm, capture_output=True, check=True,
    ).stdout  # fmt: skip


@dataclass
class PlayRun:
    """The CLI's process and what it said on stderr."""

    proc: asyncio.subprocess.Process
    stderr: list[str] = field(default_factory=list)
    url: asyncio.Future[str] = field(default_factory=asyncio.Future)


@contextlib.asynccontextmanager
async def play_with_listen(
    emu: RaopEmulator, pcm: bytes, tmp_path: Path, port: int
) -> AsyncIterator[PlayRun]:
    """`play - --player 127.0.0.1:EMU --listen-port PORT` fed `pcm`; killed if still running."""
    env = {**os.environ, "AIRPLAY_PROVIDER_CONFIG": str(tmp_path / "config.json")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "airplay_provider.host.cli", "play", "-",
        "--player", f"127.0.0.1:{emu.port}", "--interface", "127.0.0.1",
        "--listen-port", str(port),
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        cwd=ROOT, env=env,
    )  # fmt: skip
    run = PlayRun(proc)
    assert proc.stdin is not None
    assert proc.stderr is not None
    proc.stdin.write(wav(pcm))
    proc.stdin.close()

    async def read_err() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode().rstrip("\n")
            run.stderr.append(line)
            if line.startswith(LISTEN_LINE) and not run.url.done():
                run.url.set_result(line[len(LISTEN_LINE) :])

    reader = asyncio.ensure_future(read_err())
    try:
        yield run
        await asyncio.wait_for(proc.wait(), 60)
        await asyncio.wait_for(reader, 5)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def ffmpeg_record(
    url: str, seconds: float | None, *, bits: int = 16, wait_s: float | None = None
) -> bytes:
    """What `ffmpeg -rtsp_transport tcp -i URL` receives in `seconds` (None: until the stream
    ends), as s16le (or s24le with `bits=24`); it must end within `wait_s` (default: the
    recording's length + 20 s, or 50 s)."""
    limit = ["-t", str(seconds)] if seconds is not None else []
    sample = f"s{bits}le"
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url, *limit,
        "-c:a", f"pcm_{sample}", "-f", sample, "pipe:1",
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait = (seconds or 30) + 20 if wait_s is None else wait_s
    try:
        out, err = await asyncio.wait_for(proc.communicate(), wait)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    return out


def slice_of(room: bytes, heard: bytes) -> int:
    """Where `heard` is an exact, frame-aligned, contiguous part of `room` (AssertionError if
    it is not)."""
    assert len(heard) >= 44100 * 4 // 2, f"only {len(heard)} bytes heard"
    at = room.find(heard[:4096])
    while at >= 0 and at % 4:
        at = room.find(heard[:4096], at + 1)
    assert at >= 0, "the listener's audio is not in what the room played"
    assert room[at : at + len(heard)] == heard  # every sample, in order, no gap
    return at // 4


async def test_ffmpeg_and_ffprobe_hear_exactly_what_the_room_plays(tmp_path: Path) -> None:
    pcm = test_signal(7.0, seed=61)
    port = free_port()
    async with RaopEmulator() as emu, play_with_listen(emu, pcm, tmp_path, port) as run:
        url = await asyncio.wait_for(run.url, 30)
        assert url.startswith(f"rtsp://127.0.0.1:{port}/")
        probe = await asyncio.create_subprocess_exec(
            "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
            "stream=codec_name,sample_rate,channels", "-of", "csv=p=0", url,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        probed, probe_err = await asyncio.wait_for(probe.communicate(), 20)
        assert probe.returncode == 0, probe_err.decode()
        assert probed.decode().split() == ["pcm_s16be,44100,2"]
        *heard, to_the_end = await asyncio.gather(
            ffmpeg_record(url, 2.0), ffmpeg_record(url, 2.0), ffmpeg_record(url, None)
        )
    assert run.proc.returncode == 0, "\n".join(run.stderr)
    assert sum(line.startswith(LISTEN_LINE) for line in run.stderr) == 1
    room = emu.stream.reconstructed_pcm()[PREROLL_FRAMES * 4 :]
    assert room[: len(pcm)] == pcm
    for each in heard:
        assert len(each) == 2 * 44100 * 4
        slice_of(room, each)
    # the third listener got everything from where it joined to the last sample, then the end
    joined = slice_of(room, to_the_end)
    assert to_the_end == pcm[joined * 4 :]
    assert emu.stream.late_packets() == []
    assert emu.errors == []


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> int | None:
    """Bytes read until the server closed the connection; None if still open after `timeout`."""
    received = 0
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(1 << 16):
                received += len(chunk)
    except ConnectionResetError:
        return received
    except TimeoutError:
        return None
    return received


async def test_a_stalled_client_is_dropped_and_disturbs_nobody(tmp_path: Path) -> None:
    pcm = test_signal(9.0, seed=62)
    port = free_port()
    async with RaopEmulator() as emu, play_with_listen(emu, pcm, tmp_path, port) as run:
        url = await asyncio.wait_for(run.url, 30)
        reader, writer = await rtsp_play_client(url)
        try:
            heard = await ffmpeg_record(url, 5.0)
            # by now the stalled client's queue (1 s + socket buffers) has overflowed
            received = await read_until_closed(reader, 5.0)
            assert received is not None, "the stalled client was not dropped"
            assert received < 4 * 44100 * 4  # it got what fitted in its queue, then nothing
        finally:
            writer.close()
    assert run.proc.returncode == 0, "\n".join(run.stderr)
    room = emu.stream.reconstructed_pcm()[PREROLL_FRAMES * 4 :]
    assert room[: len(pcm)] == pcm
    assert len(heard) == 5 * 44100 * 4
    slice_of(room, heard)
    assert emu.stream.late_packets() == []
    assert emu.errors == []


@pytest.mark.parametrize("path", ["/nothing-here", "/"])
async def test_an_unknown_path_is_not_found(tmp_path: Path, path: str) -> None:
    pcm = test_signal(3.0, seed=63)
    port = free_port()
    async with RaopEmulator() as emu, play_with_listen(emu, pcm, tmp_path, port) as run:
        url = await asyncio.wait_for(run.url, 30)
        bad = url.rsplit("/", 1)[0] + path
        proc = await asyncio.create_subprocess_exec(
            "ffprobe", "-v", "error", "-rtsp_transport", "tcp", bad,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode != 0
        assert "404" in err.decode()
    assert run.proc.returncode == 0
