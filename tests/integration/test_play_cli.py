"""`airplay-provider play` and `demo` as a user runs them (subprocesses), against RAOP
emulators given as HOST:PORT, and real shairport-sync receivers found by mDNS on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airplay_provider.protocol.timing import volume_to_db
from tests.audio import assert_audio_delivered, test_signal
from tests.receivers.raop_emulator import RaopEmulator
from tests.receivers.shairport import StartShairport

ROOT = Path(__file__).resolve().parents[2]
FRAME_NTP = 2**32 / 44100
PREROLL_FRAMES = 3520


def write_track(path: Path, pcm: bytes, *, tags: bool = True) -> Path:
    """A FLAC file of `pcm` (lossless: the receiver must get exactly `pcm`), tags and cover."""
    cover = path.with_suffix(".png")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=blue:s=8x8:d=1",
         "-frames:v", "1", str(cover)],
        check=True,
    )  # fmt: skip
    argv = ["ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", "44100", "-ac", "2"]
    argv += ["-i", "pipe:0"]
    if tags:
        argv += ["-i", str(cover), "-map", "0:a", "-map", "1:v", "-c:v", "png"]
        argv += ["-disposition:v", "attached_pic", "-metadata", "title=Sünny Test"]
        argv += ["-metadata", "artist=The Testers", "-metadata", "album=Loopback"]
    argv += ["-c:a", "flac", str(path)]
    subprocess.run(argv, input=pcm, check=True)
    return path


async def run_cli(
    *args: str, tmp_path: Path, stdin: bytes | None = None, interrupt_after: float | None = None
) -> tuple[int, str, str]:
    """Run `airplay-provider ARGS`; optionally SIGINT it `interrupt_after` s after "playing"."""
    env = {**os.environ, "AIRPLAY_PROVIDER_CONFIG": str(tmp_path / "config.json")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "airplay_provider.host.cli", *args,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    lines: list[str] = []

    async def read_out() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            lines.append(raw.decode())
            if interrupt_after is not None and raw.startswith(b"playing"):
                await asyncio.sleep(interrupt_after)
                proc.send_signal(signal.SIGINT)

    async def feed() -> None:
        if stdin is not None and proc.stdin is not None:
            try:
                proc.stdin.write(stdin)
                await proc.stdin.drain()
                proc.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass  # it stopped reading: interrupted

    reader = asyncio.ensure_future(read_out())
    try:
        await asyncio.wait_for(asyncio.gather(feed(), proc.wait()), 60)
        await asyncio.wait_for(reader, 5)
        err = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, "".join(lines), err


def streamers_for(port: int) -> list[int]:
    """Running cliraop processes streaming to `port` (none may be left after a run)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"-port" in cmdline and str(port).encode() in cmdline and stat != "Z":
            pids.append(int(entry.name))
    return pids


def sample0_ntp(emu: RaopEmulator) -> int:
    """When the emulator plays the first real sample (after cliraop's pre-roll)."""
    first = emu.stream.audio_packets[0].rtptime
    return emu.stream.play_time_ntp((first + PREROLL_FRAMES) & 0xFFFFFFFF)


async def test_unreadable_files_are_clear_errors_and_start_nothing(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"\x00\x01garbage" * 2000)
    async with RaopEmulator() as emu:
        for source in (str(tmp_path / "missing.flac"), str(garbage)):
            code, out, err = await run_cli(
                "play", source, "--player", f"127.0.0.1:{emu.port}", tmp_path=tmp_path
            )
            assert code == 1
            assert err.startswith("error: ")
            assert source in err
            assert "playing" not in out
        assert emu.core.requests == []  # nobody ever connected


async def test_play_file_on_two_players_with_tags_volume_and_sync_adjust(tmp_path: Path) -> None:
    pcm = test_signal(2.0, seed=51)
    track = write_track(tmp_path / "track.flac", pcm)
    async with RaopEmulator() as emu_a, RaopEmulator() as emu_b:
        a, b = f"127.0.0.1:{emu_a.port}", f"127.0.0.1:{emu_b.port}"
        code, out, err = await run_cli(
            "play", str(track), "--player", a, "--player", b, "--volume", "30",
            "--sync-adjust", f"{b}=10", "--interface", "127.0.0.1", tmp_path=tmp_path,
        )  # fmt: skip
        assert code == 0, out + err
        assert "done: 2 of 2 player(s) played to the end" in out
        assert "playing" in out
        assert f"{a}: playing" in out
        for emu in (emu_a, emu_b):
            core = emu.core
            body = emu.stream.reconstructed_pcm()[PREROLL_FRAMES * 4 :]
            assert body[: len(pcm)] == pcm  # bit-exact: FLAC → f32 → s16
            assert core.volumes[0] == pytest.approx(volume_to_db(30), abs=1e-3)
            volume_at = next(r.received_at for r in core.requests if r.method == "SET_PARAMETER")
            assert volume_at < emu.stream.audio_packets[0].received_at  # before any audio
            assert core.metadata[0].text("minm") == "Sünny Test"
            assert core.metadata[0].text("asar") == "The Testers"
            assert core.metadata[0].text("asal") == "Loopback"
            assert core.artwork
            assert core.artwork[0].data.startswith(b"\x89PNG")
            assert core.progress  # position sent with the metadata
        shift = (sample0_ntp(emu_b) - sample0_ntp(emu_a)) / FRAME_NTP
        assert abs(shift - 441) <= 1.0  # 10 ms on b only
        assert streamers_for(emu_a.port) == streamers_for(emu_b.port) == []


def sine_wav(seconds: float) -> bytes:
    """A stereo 440 Hz WAV stream (for stdin)."""
    return subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-ac", "2", "-f", "wav", "pipe:1"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip


async def test_stdin_source_and_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    wav = sine_wav(20.0)
    async with RaopEmulator() as emu:
        started = time.monotonic()
        code, out, err = await run_cli(
            "play", "-", "--player", f"127.0.0.1:{emu.port}", "--interface", "127.0.0.1",
            tmp_path=tmp_path, stdin=wav, interrupt_after=1.5,
        )  # fmt: skip
        assert code == 130, out + err
        assert "stopped at 0:0" in out
        assert time.monotonic() - started < 15  # not the 20 s of the source
        assert emu.core.teardown_at is not None  # the receiver was hung up on properly
        assert len(emu.stream.audio_packets) > 100
        assert streamers_for(emu.port) == []


@pytest.mark.receiver
async def test_play_by_mdns_name_on_shairport(
    start_shairport: StartShairport, tmp_path: Path
) -> None:
    receiver = await start_shairport("cli")
    pcm = test_signal(3.0, seed=52)
    track = write_track(tmp_path / "t.flac", pcm, tags=False)
    code, out, err = await run_cli(
        "play", str(track), "--player", receiver.name, "--interface", "127.0.0.1",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert code == 0, out + err
    await asyncio.sleep(1.0)
    assert_audio_delivered(receiver.read_output(), pcm)


@pytest.mark.receiver
async def test_demo_reports_two_complete_receivers_in_sync(tmp_path: Path) -> None:
    started = time.monotonic()
    code, out, err = await run_cli("demo", "--seconds", "3", tmp_path=tmp_path)
    assert code == 0, out + err
    assert time.monotonic() - started < 30
    assert out.count("— complete") == 2
    assert "schedule error between the receivers: 0.000 frames" in out
    assert "demo OK" in out
