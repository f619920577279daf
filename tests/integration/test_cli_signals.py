"""Long-running commands as a person uses them, stopped by a signal at any moment: `lab`
(receivers that `play` finds by mDNS on loopback) and `demo` leave no process and no file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audio import test_signal

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "airplay_provider.host.cli"]


def descendants(root: int) -> set[int]:
    """Every live process below `root` (by parent pid)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def read_until(stream: asyncio.StreamReader, marker: str, timeout: float) -> str:
    seen = ""
    async with asyncio.timeout(timeout):
        while marker not in seen:
            line = await stream.readline()
            if not line:
                raise AssertionError(f"output ended before {marker!r}: {seen}")
            seen += line.decode()
    return seen


@pytest.mark.receiver
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
async def test_lab_serves_play_and_leaves_nothing_after_a_signal(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    lab = await asyncio.create_subprocess_exec(
        *CLI, "lab", "--receivers", "2", "--name", "Bench",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert lab.stdout is not None
    try:
        banner = await read_until(lab.stdout, "Ctrl-C stops the lab.", 30)
        assert "'Bench 1' listening on 127.0.0.1" in banner
        assert "'Bench 2' listening on 127.0.0.1" in banner
        wav = tmp_path / "t.wav"
        pcm = test_signal(1.5, seed=9)
        await asyncio.to_thread(
            subprocess.run,
            ["ffmpeg", "-v", "error", "-y", "-f", "s16le", "-ar", "44100", "-ac", "2",
             "-i", "pipe:0", str(wav)],
            input=pcm, check=True,
        )  # fmt: skip
        play = await asyncio.create_subprocess_exec(
            *CLI, "play", str(wav), "--player", "Bench 2", "--interface", "127.0.0.1",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        _, play_err = await asyncio.wait_for(play.communicate(), 60)
        assert play.returncode == 0, play_err.decode()
        assert "Bench 2: receiving audio" in await read_until(lab.stdout, "receiving audio", 10)
        children = descendants(lab.pid)
        assert len(children) >= 4  # dbus, avahi, two shairport-sync
        lab.send_signal(signum)
        rest, _ = await asyncio.wait_for(lab.communicate(), 30)
    finally:
        if lab.returncode is None:
            lab.kill()
            await lab.wait()
    assert lab.returncode == code
    assert "every receiver and its files are gone" in rest.decode()
    assert [pid for pid in children if alive(pid)] == []
    left = [p.name for p in os.scandir(tmp_path) if p.name.startswith("airplay-")]
    assert left == []


@pytest.mark.receiver
@pytest.mark.parametrize(
    ("signum", "code", "after"),
    [
        (signal.SIGINT, 130, "start"),
        (signal.SIGHUP, 129, "playing"),
        (signal.SIGTERM, 143, "playing"),
    ],
)
async def test_demo_stopped_by_a_signal_leaves_nothing(
    tmp_path: Path, signum: signal.Signals, code: int, after: str
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    demo = await asyncio.create_subprocess_exec(
        *CLI, "demo", "--seconds", "8",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert demo.stdout is not None
    try:
        marker = "advertised" if after == "start" else "playing "
        await read_until(demo.stdout, marker, 30)
        children = descendants(demo.pid)
        commands = [_cmdline(pid) for pid in children]
        demo.send_signal(signum)
        rest, _ = await asyncio.wait_for(demo.communicate(), 30)
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
    assert demo.returncode == code
    assert "demo interrupted" in rest.decode()
    if after == "playing":  # the streamers were running when the signal came
        assert any("cliraop" in command for command in commands)
    assert [pid for pid in children if alive(pid)] == []
    left = [p.name for p in os.scandir(tmp_path) if p.name.startswith("airplay-")]
    assert left == []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
